//! Scene files (`scenes/*.ron`): the declarative description of a task, and its validation.
//!
//! A scene is data. Everything a task needs (geometry, materials, actuator, physics timing,
//! goal and success criteria, seeded start/goal randomisation, observation spec) lives here,
//! so a new maze layout or a Push-T variant needs no Rust change. Units are metres, seconds,
//! radians and kilograms; rapier caps speeds near 400 units/s, so pixels would not do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::InputError;

/// A 2-D point or vector in scene files: `(x, y)` in metres.
pub type V2 = (f32, f32);

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scene {
    pub name: String,
    /// Free text: source of the task and deliberate differences.
    #[serde(default)]
    pub description: String,
    pub world: World,
    pub physics: Physics,
    /// Control steps before `truncated` is set.
    pub episode_steps: u32,
    /// Named materials; bodies refer to them by name. `"default"` is used when none is named.
    #[serde(default)]
    pub materials: BTreeMap<String, Material>,
    #[serde(default)]
    pub obstacles: Vec<Obstacle>,
    #[serde(default)]
    pub bodies: Vec<Body>,
    pub agent: Agent,
    pub goal: Goal,
    pub start_goal: StartGoal,
    pub observation: ObservationSpec,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct World {
    /// Width and height of the arena; the origin is its lower-left corner.
    pub size: V2,
    /// Enclose the arena with four static walls of this thickness (outside the arena).
    #[serde(default = "default_true")]
    pub walls: bool,
    #[serde(default = "default_wall_thickness")]
    pub wall_thickness: f32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Physics {
    /// Physics time step in seconds.
    pub dt: f32,
    /// Physics steps per control step.
    pub substeps: u32,
    /// Control steps per env step: the action is repeated this many times (DINO-WM uses 5).
    #[serde(default = "default_one")]
    pub frameskip: u32,
    /// Rapier's solver iterations per physics step.
    #[serde(default = "default_solver_iterations")]
    pub solver_iterations: u32,
}

/// What one env step is in time: what a dataset was recorded with and a checkpoint trained on.
/// A model trained at one frameskip predicts the wrong displacement at another.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvStep {
    pub dt: f32,
    pub substeps: u32,
    pub frameskip: u32,
}

impl EnvStep {
    /// The first field that differs: `(name, self's value, other's value)`.
    pub fn first_difference(&self, other: &EnvStep) -> Option<(&'static str, String, String)> {
        [
            ("dt", self.dt.to_string(), other.dt.to_string()),
            (
                "substeps",
                self.substeps.to_string(),
                other.substeps.to_string(),
            ),
            (
                "frameskip",
                self.frameskip.to_string(),
                other.frameskip.to_string(),
            ),
        ]
        .into_iter()
        .find(|(_, a, b)| a != b)
    }
}

impl Physics {
    pub fn env_step(&self) -> EnvStep {
        EnvStep {
            dt: self.dt,
            substeps: self.substeps,
            frameskip: self.frameskip,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Material {
    #[serde(default = "default_one_f")]
    pub density: f32,
    #[serde(default = "default_friction")]
    pub friction: f32,
    #[serde(default)]
    pub restitution: f32,
    #[serde(default)]
    pub linear_damping: f32,
    #[serde(default)]
    pub angular_damping: f32,
}

impl Default for Material {
    fn default() -> Self {
        Material {
            density: 1.0,
            friction: 0.5,
            restitution: 0.0,
            linear_damping: 0.0,
            angular_damping: 0.0,
        }
    }
}

/// A rigid shape in body-local coordinates.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Shape {
    Circle {
        radius: f32,
    },
    /// An axis-aligned box given by its half extents.
    Box {
        half: V2,
    },
    /// A convex polygon; vertices counter-clockwise (the hull is taken anyway).
    Polygon {
        points: Vec<V2>,
    },
    /// Several shapes placed in the body frame; parts must not overlap (coverage adds areas).
    Compound {
        parts: Vec<Part>,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Part {
    pub shape: Shape,
    #[serde(default)]
    pub offset: V2,
    #[serde(default)]
    pub angle: f32,
}

/// Static geometry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Obstacle {
    /// A fixed shape at a pose.
    Fixed {
        shape: Shape,
        at: V2,
        #[serde(default)]
        angle: f32,
    },
    /// A straight wall across the arena with one door whose centre may be random per episode.
    DoorWall {
        axis: Axis,
        /// Coordinate of the wall's centre line (x for a vertical wall, y for a horizontal one).
        at: f32,
        thickness: f32,
        door_width: f32,
        door_center: Range,
    },
    /// A maze drawn as text rows, top row first: `#` is a wall cell, anything else is free.
    /// Cell (row, col) has its centre at origin + ((col + 0.5) cell, (rows - row - 0.5) cell).
    Grid {
        cell: f32,
        #[serde(default)]
        origin: V2,
        rows: Vec<String>,
    },
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Axis {
    Vertical,
    Horizontal,
}

/// A closed interval; `lo == hi` is a fixed value.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Range(pub f32, pub f32);

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    pub name: String,
    pub shape: Shape,
    #[serde(default = "default_material_name")]
    pub material: String,
    /// How many copies (particles); copies are named `name[i]`.
    #[serde(default = "default_one")]
    pub count: u32,
    /// Where each copy starts.
    pub start: PoseSample,
    /// The target pose, for goals that involve this body.
    #[serde(default)]
    pub goal: Option<PoseSample>,
    /// Fill colour in images (RGB).
    #[serde(default = "default_body_color")]
    pub color: [u8; 3],
}

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

fn default_true() -> bool {
    true
}
fn default_one() -> u32 {
    1
}
fn default_one_f() -> f32 {
    1.0
}
fn default_friction() -> f32 {
    0.5
}
fn default_wall_thickness() -> f32 {
    0.1
}
fn default_solver_iterations() -> u32 {
    4
}
fn default_material_name() -> String {
    "default".into()
}
fn zero_range() -> Range {
    Range(0.0, 0.0)
}
fn default_body_color() -> [u8; 3] {
    [119, 136, 153]
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

impl Shape {
    /// Radius of a disc around the body origin that contains the shape.
    pub fn bounding_radius(&self) -> f32 {
        match self {
            Shape::Circle { radius } => *radius,
            Shape::Box { half } => (half.0 * half.0 + half.1 * half.1).sqrt(),
            Shape::Polygon { points } => points
                .iter()
                .map(|p| (p.0 * p.0 + p.1 * p.1).sqrt())
                .fold(0.0, f32::max),
            Shape::Compound { parts } => parts
                .iter()
                .map(|p| {
                    (p.offset.0 * p.offset.0 + p.offset.1 * p.offset.1).sqrt()
                        + p.shape.bounding_radius()
                })
                .fold(0.0, f32::max),
        }
    }
}

impl Scene {
    /// Reads, parses and validates a scene file; errors name the file, the line/column or
    /// field, and what was expected.
    pub fn load(path: &Path) -> Result<Scene, InputError> {
        let text = super::shipped::read(path, super::shipped::Kind::Scene)
            .map_err(|e| InputError::new(path, "", format!("cannot read scene file: {e}")))?;
        Scene::parse(&text, path)
    }

    /// A scene argument (a path or a shipped name), resolved, loaded and shared.
    pub fn load_arg(arg: &str) -> Result<std::sync::Arc<Scene>, InputError> {
        Ok(std::sync::Arc::new(Scene::load(&Scene::resolve_path(arg))?))
    }

    /// Resolves a scene argument: a path, or the name of a shipped scene (`two_rooms`).
    pub fn resolve_path(arg: &str) -> PathBuf {
        super::shipped::resolve(arg, super::shipped::Kind::Scene)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Scene, InputError> {
        let scene: Scene = ron::Options::default().from_str(text).map_err(|e| {
            InputError::new(
                path,
                format!("line {}, column {}", e.span.start.line, e.span.start.col),
                e.code.to_string(),
            )
        })?;
        scene.validate(path)?;
        Ok(scene)
    }

    /// The material a body names, or the default one.
    pub fn material(&self, name: &str) -> Material {
        self.materials.get(name).cloned().unwrap_or_default()
    }

    /// The scene's maze grid, if it has one.
    pub fn grid(&self) -> Option<super::geometry::Grid> {
        self.obstacles.iter().find_map(|o| match o {
            Obstacle::Grid { cell, origin, rows } => {
                Some(super::geometry::Grid::new(*cell, *origin, rows))
            }
            _ => None,
        })
    }

    /// A few lines saying what the scene declares (for `hjepa check`).
    pub fn describe(&self) -> String {
        let (w, h) = self.world.size;
        let mut s = format!("scene {:?}: {}\n", self.name, self.description);
        s += &format!("  world {w} x {h} m, walls {}\n", self.world.walls);
        s += &format!(
            "  physics dt {} s x {} substeps = {} s control step, frameskip {}, {} control steps per episode\n",
            self.physics.dt,
            self.physics.substeps,
            self.control_dt(),
            self.physics.frameskip,
            self.episode_steps
        );
        s += &format!(
            "  {} obstacles, {} dynamic bodies ({} copies)\n",
            self.obstacles.len(),
            self.bodies.len(),
            self.bodies.iter().map(|b| b.count).sum::<u32>()
        );
        s += &format!(
            "  agent actuator {:?}, action box {:?}..{:?}, max norm {:?}\n",
            self.agent.actuator,
            self.agent.action.low,
            self.agent.action.high,
            self.agent.action.max_norm
        );
        s += &format!("  success criteria {:?}\n", self.goal.success);
        s += &format!("  state observation {:?}", self.observation.state);
        if let Some(i) = &self.observation.image {
            s += &format!("\n  image observation {}x{} RGB", i.width, i.height);
        }
        s
    }

    /// Control-step duration in seconds.
    pub fn control_dt(&self) -> f32 {
        self.physics.dt * self.physics.substeps as f32
    }
}

/// The scene as evaluated: `max_steps` replaces its episode budget and `success` names the
/// criterion that decides success (moved first; the others are still reported).
pub fn eval_scene(
    mut scene: Scene,
    path: &Path,
    max_steps: Option<u32>,
    success: Option<&str>,
) -> Result<Scene, InputError> {
    if let Some(n) = max_steps {
        if n == 0 {
            return Err(InputError::new(
                path,
                "episode_steps",
                "--max-steps: expected at least 1 step",
            ));
        }
        scene.episode_steps = n;
    }
    if let Some(name) = success {
        let names: Vec<String> = scene.goal.success.iter().map(|c| c.name()).collect();
        let i = names.iter().position(|n| n == name).ok_or_else(|| {
            InputError::new(
                path,
                "goal.success",
                format!(
                    "--success {name}: no such criterion; expected one of {}",
                    names.join(", ")
                ),
            )
        })?;
        let c = scene.goal.success.remove(i);
        scene.goal.success.insert(0, c);
    }
    Ok(scene)
}
