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

// The agent's and the goal's parts of a scene live in their own files; their paths here
// (`scene::Criterion`, `scene::ActionSpace`, ...) are the public ones.
pub use super::scene_agent::{
    ActionSpace, Actuator, Agent, ImageSpec, ObservationSpec, OutOfRange, StateField,
};
pub use super::scene_goal::{CostKind, Criterion, Goal, PoseSample, Sample, StartGoal};

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
    /// Factors of variation: properties drawn per episode from a range or a set, by key
    /// (`"background"`, `"body.tee.size"`, `"material.block.friction"`; see
    /// [`super::factors`]). Empty: every episode has the values written above.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub factors: BTreeMap<String, super::factors::Factor>,
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

pub(super) fn default_true() -> bool {
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
pub(super) fn default_material_name() -> String {
    "default".into()
}
fn default_body_color() -> [u8; 3] {
    [119, 136, 153]
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
        super::factors::validate(&scene, text, path)?;
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
        for (key, f) in &self.factors {
            s += &format!(
                "\n  varies per episode: {}",
                super::factors::describe(key, f)
            );
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
