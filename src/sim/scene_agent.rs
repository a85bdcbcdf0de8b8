//! The agent part of a scene file: its body, actuator and action space, and what it
//! observes (state fields and image).

use serde::{Deserialize, Serialize};

use super::scene::{default_material_name, default_true, Shape, V2};
use crate::error::ActionError;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    pub shape: Shape,
    #[serde(default = "default_material_name")]
    pub material: String,
    pub actuator: Actuator,
    pub action: ActionSpace,
    #[serde(default = "default_agent_color")]
    pub color: [u8; 3],
}

/// How an action moves the agent.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Actuator {
    /// Commanded velocity = `gain` x action (m/s), held during the control step.
    Velocity { gain: f32 },
    /// Force = `gain` x action (N); speed is clipped to `max_speed` (PointMaze).
    Force { gain: f32, max_speed: f32 },
    /// The action is a target position; acceleration = kp (target - pos) + kv (0 - vel),
    /// integrated every physics step (gym-pusht's PD control).
    PdTarget { kp: f32, kv: f32 },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpace {
    pub low: V2,
    pub high: V2,
    /// Bound on the action's Euclidean norm (Two-Rooms' step norm).
    #[serde(default)]
    pub max_norm: Option<f32>,
    /// What to do with a finite action outside the bounds. NaN/inf is always rejected.
    #[serde(default)]
    pub out_of_range: OutOfRange,
}

impl ActionSpace {
    /// The nearest action inside the box, then scaled onto the norm ball when `max_norm` is set.
    pub fn project(&self, a: [f32; 2]) -> [f32; 2] {
        let mut out = [
            a[0].clamp(self.low.0, self.high.0),
            a[1].clamp(self.low.1, self.high.1),
        ];
        if let Some(n) = self.max_norm {
            let norm = (out[0] * out[0] + out[1] * out[1]).sqrt();
            if norm > n {
                out = [out[0] * n / norm, out[1] * n / norm];
            }
        }
        out
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum OutOfRange {
    #[default]
    Clip,
    Reject,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservationSpec {
    /// Fields of the state vector, in order.
    pub state: Vec<StateField>,
    #[serde(default)]
    pub image: Option<ImageSpec>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum StateField {
    AgentPosition,
    AgentVelocity,
    GoalPosition,
    /// x, y, angle of a body (of every copy, for particles).
    BodyPose(String),
    /// vx, vy, angular velocity of a body.
    BodyVelocity(String),
    /// x, y, angle of a body's goal pose.
    BodyGoalPose(String),
    /// The agent's position and velocity in a body's frame (x, y, vx, vy; of every copy):
    /// where the agent is relative to the body's shape, which decides contact, without the
    /// rotation a model would otherwise have to learn from the two poses.
    AgentInBodyFrame(String),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    pub width: u32,
    pub height: u32,
    #[serde(default = "default_background")]
    pub background: [u8; 3],
    #[serde(default = "default_obstacle_color")]
    pub obstacle_color: [u8; 3],
    /// Draw the goal (agent goal point, body goal outlines) into the image.
    #[serde(default)]
    pub draw_goal: bool,
    #[serde(default = "default_goal_color")]
    pub goal_color: [u8; 3],
    /// Anti-aliased edges look nicer; off gives crisp, cheaper masks.
    #[serde(default = "default_true")]
    pub anti_alias: bool,
}

impl ImageSpec {
    /// The default style (background, colours, anti-aliasing) at a given size.
    pub fn default_with_size(width: u32, height: u32) -> ImageSpec {
        ImageSpec {
            width,
            height,
            background: default_background(),
            obstacle_color: default_obstacle_color(),
            draw_goal: false,
            goal_color: default_goal_color(),
            anti_alias: true,
        }
    }
}

fn default_agent_color() -> [u8; 3] {
    [65, 105, 225]
}
fn default_background() -> [u8; 3] {
    [255, 255, 255]
}
fn default_obstacle_color() -> [u8; 3] {
    [40, 40, 40]
}
fn default_goal_color() -> [u8; 3] {
    [144, 238, 144]
}

/// Validates an action against the scene's action space: non-finite values are refused,
/// out-of-range ones clipped or refused as the scene declares. Returns the action to apply
/// and whether it was clipped.
pub fn check_action(space: &ActionSpace, a: &[f32; 2]) -> Result<([f32; 2], bool), ActionError> {
    if !a.iter().all(|x| x.is_finite()) {
        return Err(ActionError {
            action: *a,
            reason: "components must be finite numbers".into(),
        });
    }
    let out = space.project(*a);
    // A relative tolerance so a policy that emits exactly the bound is not flagged.
    let clipped = (out[0] - a[0]).abs() > 1e-6 * (1.0 + a[0].abs())
        || (out[1] - a[1]).abs() > 1e-6 * (1.0 + a[1].abs());
    if clipped && space.out_of_range == OutOfRange::Reject {
        return Err(ActionError {
            action: *a,
            reason: format!(
                "outside the action space (low {:?}, high {:?}, max_norm {:?}) and the scene says Reject",
                space.low, space.high, space.max_norm
            ),
        });
    }
    Ok((out, clipped))
}
