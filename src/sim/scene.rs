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

    fn validate(&self, path: &Path) -> Result<(), InputError> {
        let err = |field: &str, msg: String| Err(InputError::new(path, field, msg));
        let (w, h) = self.world.size;
        if !(w.is_finite() && h.is_finite() && w > 0.0 && h > 0.0) {
            return err(
                "world.size",
                format!("expected two positive finite numbers, got ({w}, {h})"),
            );
        }
        if !(self.world.wall_thickness.is_finite() && self.world.wall_thickness > 0.0) {
            return err(
                "world.wall_thickness",
                format!(
                    "expected a positive number, got {}",
                    self.world.wall_thickness
                ),
            );
        }
        let p = &self.physics;
        if !(p.dt.is_finite() && p.dt > 0.0 && p.dt <= 0.1) {
            return err(
                "physics.dt",
                format!("expected a time step in (0, 0.1] s, got {}", p.dt),
            );
        }
        if p.substeps == 0 || p.frameskip == 0 || p.solver_iterations == 0 {
            return err(
                "physics",
                "substeps, frameskip and solver_iterations must be at least 1".into(),
            );
        }
        if self.episode_steps == 0 {
            return err("episode_steps", "expected at least 1 control step".into());
        }
        for (name, m) in &self.materials {
            let f = format!("materials.{name}");
            if !(m.density.is_finite() && m.density > 0.0) {
                return err(&f, format!("density must be positive, got {}", m.density));
            }
            for (k, v) in [
                ("friction", m.friction),
                ("restitution", m.restitution),
                ("linear_damping", m.linear_damping),
                ("angular_damping", m.angular_damping),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    return err(
                        &format!("{f}.{k}"),
                        format!("expected a finite number >= 0, got {v}"),
                    );
                }
            }
        }
        let check_material = |field: &str, m: &str| {
            if m != "default" && !self.materials.contains_key(m) {
                let known: Vec<_> = self.materials.keys().cloned().collect();
                return Err(InputError::new(
                    path,
                    field,
                    format!("unknown material {m:?}; known: {known:?}"),
                ));
            }
            Ok(())
        };
        validate_shape(&self.agent.shape, "agent.shape", path)?;
        check_material("agent.material", &self.agent.material)?;
        self.validate_action(path)?;

        let mut grids = 0;
        for (i, o) in self.obstacles.iter().enumerate() {
            let f = format!("obstacles[{i}]");
            match o {
                Obstacle::Fixed { shape, at, angle } => {
                    validate_shape(shape, &format!("{f}.shape"), path)?;
                    finite2(*at, &format!("{f}.at"), path)?;
                    finite(*angle, &format!("{f}.angle"), path)?;
                }
                Obstacle::DoorWall {
                    axis,
                    at,
                    thickness,
                    door_width,
                    door_center,
                } => {
                    let across = if *axis == Axis::Vertical { w } else { h };
                    let along = if *axis == Axis::Vertical { h } else { w };
                    if !(at.is_finite() && *at > 0.0 && *at < across) {
                        return err(
                            &format!("{f}.at"),
                            format!(
                                "expected a coordinate inside the world (0, {across}), got {at}"
                            ),
                        );
                    }
                    if !(thickness.is_finite()
                        && *thickness > 0.0
                        && door_width.is_finite()
                        && *door_width > 0.0)
                    {
                        return err(&f, "thickness and door_width must be positive".into());
                    }
                    validate_range(door_center, &format!("{f}.door_center"), path)?;
                    if door_center.0 - door_width / 2.0 < 0.0
                        || door_center.1 + door_width / 2.0 > along
                    {
                        return err(&format!("{f}.door_center"), format!("the door ({door_width} wide) must fit inside the wall's length {along}"));
                    }
                }
                Obstacle::Grid { cell, origin, rows } => {
                    grids += 1;
                    if !(cell.is_finite() && *cell > 0.0) {
                        return err(
                            &format!("{f}.cell"),
                            format!("expected a positive cell size, got {cell}"),
                        );
                    }
                    finite2(*origin, &format!("{f}.origin"), path)?;
                    if rows.is_empty()
                        || rows
                            .iter()
                            .any(|r| r.chars().count() != rows[0].chars().count())
                    {
                        return err(
                            &format!("{f}.rows"),
                            "expected a non-empty list of rows of equal length".into(),
                        );
                    }
                    let gw = origin.0 + cell * rows[0].chars().count() as f32;
                    let gh = origin.1 + cell * rows.len() as f32;
                    if gw > w + 1e-4 || gh > h + 1e-4 {
                        return err(
                            &format!("{f}.rows"),
                            format!(
                                "the maze ({gw} x {gh} m) does not fit in the world ({w} x {h} m)"
                            ),
                        );
                    }
                }
            }
        }
        if grids > 1 {
            return err("obstacles", "at most one Grid obstacle per scene".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, b) in self.bodies.iter().enumerate() {
            let f = format!("bodies[{i}]");
            if !names.insert(b.name.clone()) {
                return err(
                    &format!("{f}.name"),
                    format!("duplicate body name {:?}", b.name),
                );
            }
            validate_shape(&b.shape, &format!("{f}.shape"), path)?;
            check_material(&format!("{f}.material"), &b.material)?;
            if b.count == 0 {
                return err(&format!("{f}.count"), "expected at least 1".into());
            }
            self.validate_sample(&b.start.position, &format!("{f}.start.position"), path)?;
            validate_range(&b.start.angle, &format!("{f}.start.angle"), path)?;
            if let Some(g) = &b.goal {
                self.validate_sample(&g.position, &format!("{f}.goal.position"), path)?;
                validate_range(&g.angle, &format!("{f}.goal.angle"), path)?;
            }
        }
        match &self.start_goal {
            StartGoal::Independent {
                start,
                goal,
                min_distance,
            } => {
                self.validate_sample(start, "start_goal.start", path)?;
                self.validate_sample(goal, "start_goal.goal", path)?;
                finite(*min_distance, "start_goal.min_distance", path)?;
            }
            StartGoal::OneOf(pairs) => {
                if pairs.is_empty() {
                    return err(
                        "start_goal",
                        "OneOf needs at least one (start, goal) pair".into(),
                    );
                }
                for (i, (s, g)) in pairs.iter().enumerate() {
                    self.validate_sample(s, &format!("start_goal[{i}].0"), path)?;
                    self.validate_sample(g, &format!("start_goal[{i}].1"), path)?;
                }
            }
            StartGoal::CellDistanceBins { bins, noise } => {
                let Some(grid) = self.grid() else {
                    return err(
                        "start_goal",
                        "CellDistanceBins needs a Grid obstacle".into(),
                    );
                };
                if bins.is_empty() || bins.iter().any(|(lo, hi)| lo > hi) {
                    return err(
                        "start_goal.bins",
                        "expected non-empty (lo, hi) bins with lo <= hi".into(),
                    );
                }
                finite(*noise, "start_goal.noise", path)?;
                for (lo, hi) in bins {
                    if !grid.has_pair_in(*lo, *hi) {
                        return err(
                            "start_goal.bins",
                            format!(
                                "no pair of free cells is {lo}..={hi} cells apart in this maze"
                            ),
                        );
                    }
                }
            }
        }
        for (i, c) in self.goal.success.iter().enumerate() {
            let f = format!("goal.success[{i}]");
            let body_ok = |b: &str| -> Result<(), InputError> {
                if self.bodies.iter().any(|x| x.name == b) {
                    Ok(())
                } else {
                    Err(InputError::new(path, &f, format!("unknown body {b:?}")))
                }
            };
            match c {
                Criterion::AgentReach { radius } => {
                    positive(*radius, &format!("{f}.radius"), path)?
                }
                Criterion::BodyPose {
                    body,
                    position_tol,
                    angle_tol,
                    agent_tol,
                    joint_position,
                } => {
                    body_ok(body)?;
                    positive(*position_tol, &format!("{f}.position_tol"), path)?;
                    positive(*angle_tol, &format!("{f}.angle_tol"), path)?;
                    if let Some(a) = agent_tol {
                        positive(*a, &format!("{f}.agent_tol"), path)?;
                        if *joint_position {
                            return Err(InputError::new(
                                path,
                                &format!("{f}.agent_tol"),
                                "expected no agent_tol with joint_position: true (position_tol \
                                 then bounds the body's and the agent's errors together)",
                            ));
                        }
                    }
                    self.require_body_goal(body, &f, path)?;
                }
                Criterion::Coverage { body, threshold } => {
                    body_ok(body)?;
                    if !(*threshold > 0.0 && *threshold <= 1.0) {
                        return err(
                            &format!("{f}.threshold"),
                            format!("expected a fraction in (0, 1], got {threshold}"),
                        );
                    }
                    self.require_body_goal(body, &f, path)?;
                }
                Criterion::ParticlesIn {
                    body,
                    min,
                    max,
                    fraction,
                } => {
                    body_ok(body)?;
                    finite2(*min, &format!("{f}.min"), path)?;
                    finite2(*max, &format!("{f}.max"), path)?;
                    if !(*fraction > 0.0 && *fraction <= 1.0) {
                        return err(
                            &format!("{f}.fraction"),
                            format!("expected a fraction in (0, 1], got {fraction}"),
                        );
                    }
                }
            }
        }
        if self.goal.success.is_empty() {
            return err(
                "goal.success",
                "expected at least one success criterion".into(),
            );
        }
        for (i, s) in self.observation.state.iter().enumerate() {
            if let StateField::BodyPose(b)
            | StateField::BodyVelocity(b)
            | StateField::BodyGoalPose(b)
            | StateField::AgentInBodyFrame(b) = s
            {
                if !self.bodies.iter().any(|x| &x.name == b) {
                    return err(
                        &format!("observation.state[{i}]"),
                        format!("unknown body {b:?}"),
                    );
                }
                if let StateField::BodyGoalPose(_) = s {
                    self.require_body_goal(b, &format!("observation.state[{i}]"), path)?;
                }
            }
        }
        if let Some(img) = &self.observation.image {
            if img.width == 0 || img.height == 0 || img.width > 1024 || img.height > 1024 {
                return err(
                    "observation.image",
                    format!(
                        "expected a size in 1..=1024 pixels, got {}x{}",
                        img.width, img.height
                    ),
                );
            }
        }
        Ok(())
    }

    fn require_body_goal(&self, body: &str, field: &str, path: &Path) -> Result<(), InputError> {
        if self
            .bodies
            .iter()
            .any(|b| b.name == body && b.goal.is_some())
        {
            Ok(())
        } else {
            Err(InputError::new(
                path,
                field,
                format!("body {body:?} needs a `goal` pose for this criterion"),
            ))
        }
    }

    fn validate_action(&self, path: &Path) -> Result<(), InputError> {
        let a = &self.agent.action;
        finite2(a.low, "agent.action.low", path)?;
        finite2(a.high, "agent.action.high", path)?;
        if a.low.0 > a.high.0 || a.low.1 > a.high.1 {
            return Err(InputError::new(
                path,
                "agent.action",
                "expected low <= high in both coordinates",
            ));
        }
        if let Some(n) = a.max_norm {
            positive(n, "agent.action.max_norm", path)?;
        }
        match &self.agent.actuator {
            Actuator::Velocity { gain } => positive(*gain, "agent.actuator.gain", path),
            Actuator::Force { gain, max_speed } => {
                positive(*gain, "agent.actuator.gain", path)?;
                positive(*max_speed, "agent.actuator.max_speed", path)
            }
            Actuator::PdTarget { kp, kv } => {
                positive(*kp, "agent.actuator.kp", path)?;
                finite(*kv, "agent.actuator.kv", path)
            }
        }
    }

    /// Checks a sampler's numbers, that it stays in the world, and that it can produce a
    /// point outside the obstacles (a start inside a wall is a scene error, not a hang).
    fn validate_sample(&self, s: &Sample, field: &str, path: &Path) -> Result<(), InputError> {
        let (w, h) = self.world.size;
        let inside = |p: V2| p.0 >= 0.0 && p.1 >= 0.0 && p.0 <= w && p.1 <= h;
        match s {
            Sample::Fixed(p) => {
                finite2(*p, field, path)?;
                if !inside(*p) {
                    return Err(InputError::new(
                        path,
                        field,
                        format!("({}, {}) is outside the world (0..{w}, 0..{h})", p.0, p.1),
                    ));
                }
                if super::geometry::point_in_static(self, *p) {
                    return Err(InputError::new(
                        path,
                        field,
                        format!("({}, {}) is inside an obstacle", p.0, p.1),
                    ));
                }
            }
            Sample::Uniform { min, max } => {
                finite2(*min, field, path)?;
                finite2(*max, field, path)?;
                if min.0 > max.0 || min.1 > max.1 {
                    return Err(InputError::new(
                        path,
                        field,
                        "expected min <= max in both coordinates",
                    ));
                }
                if !inside(*min) || !inside(*max) {
                    return Err(InputError::new(
                        path,
                        field,
                        format!("the box {min:?}..{max:?} leaves the world (0..{w}, 0..{h})"),
                    ));
                }
                let free = (0..=8)
                    .flat_map(|i| (0..=8).map(move |j| (i, j)))
                    .any(|(i, j)| {
                        let p = (
                            min.0 + (max.0 - min.0) * i as f32 / 8.0,
                            min.1 + (max.1 - min.1) * j as f32 / 8.0,
                        );
                        !super::geometry::point_in_static(self, p)
                    });
                if !free {
                    return Err(InputError::new(
                        path,
                        field,
                        format!("the box {min:?}..{max:?} lies inside obstacles"),
                    ));
                }
            }
            Sample::Cells { cells, noise } => {
                finite(*noise, field, path)?;
                let Some(grid) = self.grid() else {
                    return Err(InputError::new(
                        path,
                        field,
                        "Cells needs a Grid obstacle in the scene",
                    ));
                };
                if *noise < 0.0 || *noise >= grid.cell / 2.0 {
                    return Err(InputError::new(
                        path,
                        field,
                        format!("noise must be in [0, {}) (half a cell)", grid.cell / 2.0),
                    ));
                }
                for c in cells {
                    if !grid.is_free(c.0 as i64, c.1 as i64) {
                        return Err(InputError::new(
                            path,
                            field,
                            format!("cell {c:?} is a wall or outside the maze"),
                        ));
                    }
                }
                if grid.free_cells().is_empty() {
                    return Err(InputError::new(path, field, "the maze has no free cell"));
                }
            }
        }
        Ok(())
    }
}

fn finite(v: f32, field: &str, path: &Path) -> Result<(), InputError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(InputError::new(
            path,
            field,
            format!("expected a finite number, got {v}"),
        ))
    }
}

fn positive(v: f32, field: &str, path: &Path) -> Result<(), InputError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(InputError::new(
            path,
            field,
            format!("expected a positive finite number, got {v}"),
        ))
    }
}

fn finite2(v: V2, field: &str, path: &Path) -> Result<(), InputError> {
    finite(v.0, field, path)?;
    finite(v.1, field, path)
}

fn validate_range(r: &Range, field: &str, path: &Path) -> Result<(), InputError> {
    finite2((r.0, r.1), field, path)?;
    if r.0 > r.1 {
        return Err(InputError::new(
            path,
            field,
            format!("expected lo <= hi, got ({}, {})", r.0, r.1),
        ));
    }
    Ok(())
}

fn validate_shape(s: &Shape, field: &str, path: &Path) -> Result<(), InputError> {
    match s {
        Shape::Circle { radius } => positive(*radius, &format!("{field}.radius"), path),
        Shape::Box { half } => {
            positive(half.0, &format!("{field}.half"), path)?;
            positive(half.1, &format!("{field}.half"), path)
        }
        Shape::Polygon { points } => {
            if points.len() < 3 {
                return Err(InputError::new(
                    path,
                    field,
                    "a polygon needs at least 3 points",
                ));
            }
            for p in points {
                finite2(*p, &format!("{field}.points"), path)?;
            }
            if super::geometry::polygon_area(&super::geometry::convex_hull(points)) <= 1e-9 {
                return Err(InputError::new(path, field, "the polygon has zero area"));
            }
            Ok(())
        }
        Shape::Compound { parts } => {
            if parts.is_empty() {
                return Err(InputError::new(
                    path,
                    field,
                    "a compound shape needs at least one part",
                ));
            }
            for (i, p) in parts.iter().enumerate() {
                if let Shape::Compound { .. } = p.shape {
                    return Err(InputError::new(
                        path,
                        format!("{field}.parts[{i}]"),
                        "compound parts cannot be compounds",
                    ));
                }
                validate_shape(&p.shape, &format!("{field}.parts[{i}].shape"), path)?;
                finite2(p.offset, &format!("{field}.parts[{i}].offset"), path)?;
                finite(p.angle, &format!("{field}.parts[{i}].angle"), path)?;
            }
            Ok(())
        }
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
