//! The task half of a scene file: seeded start/goal samplers, the goal, its success
//! criteria and the cost `step` returns.

use serde::{Deserialize, Serialize};

use super::scene::{default_true, Range, V2};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoseSample {
    pub position: Sample,
    #[serde(default = "zero_range")]
    pub angle: Range,
}

/// A seeded distribution over positions.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Sample {
    Fixed(V2),
    Uniform {
        min: V2,
        max: V2,
    },
    /// A free cell of the scene's `Grid` obstacle, chosen uniformly from `cells`
    /// (row, col) or from all free cells when empty, plus uniform noise of +-`noise` metres.
    Cells {
        #[serde(default)]
        cells: Vec<(u32, u32)>,
        #[serde(default)]
        noise: f32,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goal {
    /// Success criteria, all reported in `info`; the first one decides `success`.
    pub success: Vec<Criterion>,
    /// End the episode (`terminated`) on success.
    #[serde(default = "default_true")]
    pub terminate_on_success: bool,
    /// Cost returned by `step`.
    #[serde(default)]
    pub cost: CostKind,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Criterion {
    /// The agent's centre is within `radius` of the goal point.
    AgentReach { radius: f32 },
    /// A body is within `position_tol` and `angle_tol` of its goal pose and, when
    /// `agent_tol` is set, the agent is within it of the goal point. With `joint_position`
    /// the body's and the agent's position errors are bounded together instead: the norm of
    /// both, `hypot(body error, agent error)`, within `position_tol` (DINO-WM's and
    /// stable-worldmodel's Push-T: `norm(goal[:4] - cur[:4]) < 20 px`, angle `< pi/9`).
    BodyPose {
        body: String,
        position_tol: f32,
        angle_tol: f32,
        agent_tol: Option<f32>,
        #[serde(default)]
        joint_position: bool,
    },
    /// The body's area overlapping its goal pose is at least `threshold` of its area (gym-pusht).
    Coverage { body: String, threshold: f32 },
    /// At least `fraction` of the copies of `body` have their centre inside the box.
    ParticlesIn {
        body: String,
        min: V2,
        max: V2,
        fraction: f32,
    },
}

impl Criterion {
    /// The name `info.criteria` reports it under (`agent_reach`, `tee_pose`, `tee_coverage`,
    /// `ball_in_region`), also what `hjepa eval --success` takes.
    pub fn name(&self) -> String {
        match self {
            Criterion::AgentReach { .. } => "agent_reach".into(),
            Criterion::BodyPose { body, .. } => format!("{body}_pose"),
            Criterion::Coverage { body, .. } => format!("{body}_coverage"),
            Criterion::ParticlesIn { body, .. } => format!("{body}_in_region"),
        }
    }

    /// Whether success also asks for the agent at its goal point.
    pub fn places_agent(&self) -> bool {
        matches!(
            self,
            Criterion::BodyPose {
                agent_tol: Some(_),
                ..
            } | Criterion::BodyPose {
                joint_position: true,
                ..
            }
        )
    }
}

/// The scalar returned as `cost` by `step` (lower is better).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum CostKind {
    /// Distance of the first criterion's quantity to success (goal distance, 1 - coverage, ...).
    #[default]
    GoalDistance,
    /// 0 on success, 1 otherwise.
    Sparse,
}

/// How the agent's start and goal points are drawn at reset.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum StartGoal {
    /// Start and goal drawn independently, redrawn until at least `min_distance` apart.
    Independent {
        start: Sample,
        goal: Sample,
        #[serde(default)]
        min_distance: f32,
    },
    /// One of several (start, goal) pairs of samplers, picked uniformly (Two-Rooms:
    /// left -> right or right -> left).
    OneOf(Vec<(Sample, Sample)>),
    /// Maze start/goal cells whose shortest path (in cells, 4-connected) falls in one of the
    /// bins; the bin is picked uniformly and reported in `info.distance_bin`.
    CellDistanceBins {
        bins: Vec<(u32, u32)>,
        #[serde(default)]
        noise: f32,
    },
}

fn zero_range() -> Range {
    Range(0.0, 0.0)
}
