//! The Gymnasium-style environment: `reset(seed)`, `step(&action)`, goals and success,
//! observations, and complete snapshots.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::geometry::{overlap_area, shape_polygons, wrap_angle, Grid, Pose2};
use super::layout::dist;
use super::render::{Image, Renderer};
use super::scene::{CostKind, Criterion, Scene, StateField};
pub use super::scene_agent::check_action;
use super::world::{Layout, World, WorldSnapshot};
use crate::error::ActionError;

// Layouts are drawn and checked in `layout`; their old paths here keep working.
pub use super::layout::{check_layout, sample_layout};

/// A 2-D action in the scene's action space.
pub type Action = [f32; 2];

/// What the agent sees.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The scene's state fields, concatenated.
    pub state: Vec<f32>,
    /// An RGB image, when the scene asks for one.
    pub image: Option<Image>,
}

/// One criterion's status, named as in the scene.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CriterionStatus {
    pub name: String,
    pub success: bool,
    /// The measured quantity: distance (m), coverage or fraction.
    pub value: f32,
    /// A body pose's angle error (rad), beside its position error in `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub angle_error: Option<f32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// The first criterion.
    pub success: bool,
    /// Every criterion, in scene order.
    pub criteria: Vec<CriterionStatus>,
    /// Agent-to-goal distance in metres.
    pub goal_distance: f32,
    /// Active contact pairs involving the agent, and in the whole world.
    pub agent_contacts: u32,
    pub contacts: u32,
    /// Control steps taken this episode.
    pub steps: u32,
    /// The action was outside the action space and was clipped.
    pub action_clipped: bool,
    /// A body's state became non-finite or left the world; the episode ends.
    pub blew_up: bool,
    /// For distance-binned start/goal pairs.
    pub distance_bin: Option<usize>,
}

/// The result of `Env::step`.
#[derive(Clone, Debug)]
pub struct Step {
    pub observation: Observation,
    pub cost: f32,
    pub terminated: bool,
    pub truncated: bool,
    pub info: Info,
}

/// A complete environment snapshot: physics, layout and counters.
#[derive(Clone)]
pub struct Snapshot {
    world: WorldSnapshot,
    layout: Layout,
    steps: u32,
    done: bool,
}

pub struct Env {
    /// The scene as written; `scene` is this episode's (its factors of variation applied).
    declared: Arc<Scene>,
    scene: Arc<Scene>,
    world: World,
    layout: Layout,
    renderer: Option<Renderer>,
    grid: Option<Grid>,
    /// Shortest cell-path lengths to the goal's cell (maze scenes), computed once per layout:
    /// experts and the oracle read it at every step of every candidate.
    goal_cells: Option<Vec<Vec<u32>>>,
    steps: u32,
    done: bool,
}

impl Env {
    /// Creates an environment and resets it with seed 0.
    pub fn new(scene: Arc<Scene>) -> Env {
        let layout = sample_layout(&scene, 0);
        let world = World::build(&scene, &layout);
        let renderer = scene
            .observation
            .image
            .as_ref()
            .map(|spec| Renderer::new(&scene, spec));
        let grid = scene.grid();
        let mut env = Env {
            declared: scene.clone(),
            scene,
            world,
            layout,
            renderer,
            grid,
            goal_cells: None,
            steps: 0,
            done: false,
        };
        env.reset(0);
        env
    }

    /// The scene as written (with its factors of variation; this episode's values are in
    /// [`Env::layout`]).
    pub fn scene(&self) -> &Arc<Scene> {
        &self.declared
    }

    /// Starts a new episode; the same seed gives the same episode, bit for bit.
    pub fn reset(&mut self, seed: u64) -> Observation {
        self.reset_to(sample_layout(&self.declared, seed))
    }

    /// Starts a new episode from a given layout, everything at rest (start/goal pairs taken
    /// from recorded trajectories, see `data::goals`).
    pub fn reset_to(&mut self, layout: Layout) -> Observation {
        self.layout = layout;
        self.set_episode_scene();
        self.goal_cells = self.goal_cell_distances_for_layout();
        self.world = World::build(&self.scene, &self.layout);
        if let Some(r) = &mut self.renderer {
            r.set_static_layer(&self.scene, &self.layout);
        }
        self.steps = 0;
        self.done = false;
        self.observe()
    }

    /// Advances one env step (frameskip control steps with the same action).
    /// NaN/inf actions, and out-of-range ones where the scene says `Reject`, are refused and
    /// never reach the physics.
    pub fn step(&mut self, action: &Action) -> Result<Step, ActionError> {
        let (action, clipped) = check_action(&self.scene.agent.action, action)?;
        let mut blew_up = false;
        for _ in 0..self.scene.physics.frameskip {
            self.world.control_step(action);
            self.steps += 1;
            let (w, h) = self.scene.world.size;
            let m = self.scene.world.wall_thickness + 1.0;
            if self.world.blew_up(((-m, -m), (w + m, h + m))) {
                blew_up = true;
                break;
            }
        }
        let mut info = self.info();
        info.action_clipped = clipped;
        info.blew_up = blew_up;
        let cost = if blew_up {
            f32::INFINITY
        } else {
            self.cost(&info)
        };
        let terminated = blew_up || (info.success && self.scene.goal.terminate_on_success);
        let truncated = !terminated && self.steps >= self.scene.episode_steps;
        self.done = terminated || truncated;
        Ok(Step {
            observation: self.observe(),
            cost,
            terminated,
            truncated,
            info,
        })
    }

    /// Whether the episode has ended (further steps still run, as in Gymnasium's no-check mode).
    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            world: self.world.snapshot(),
            layout: self.layout.clone(),
            steps: self.steps,
            done: self.done,
        }
    }

    pub fn restore(&mut self, snap: &Snapshot) {
        if snap.layout != self.layout {
            // The static geometry (doors) belongs to the layout; rebuild it first.
            self.layout = snap.layout.clone();
            self.set_episode_scene();
            self.goal_cells = self.goal_cell_distances_for_layout();
            self.world = World::build(&self.scene, &self.layout);
            if let Some(r) = &mut self.renderer {
                r.set_static_layer(&self.scene, &self.layout);
            }
        }
        self.world.restore(&snap.world);
        self.steps = snap.steps;
        self.done = snap.done;
    }

    /// This episode's scene: the declared one with its factors' values applied (what the
    /// physics and the pixels use; draw other views of the episode with it).
    pub fn episode_scene(&self) -> &Arc<Scene> {
        &self.scene
    }

    /// The declared scene with this layout's factor values applied.
    fn set_episode_scene(&mut self) {
        self.scene = if self.layout.factors.is_empty() {
            self.declared.clone()
        } else {
            Arc::new(super::factors::apply(&self.declared, &self.layout.factors))
        };
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// What the agent would observe with the goal reached: the agent at its goal position,
    /// at rest, and every body that has a goal pose at that pose (other bodies where they
    /// started). Goal-conditioned planners encode this as their target.
    pub fn goal_observation(&mut self) -> Observation {
        let mut goal = self.layout.clone();
        goal.agent_start = goal.agent_goal;
        let mut copy = 0;
        for (def, b) in self.scene.bodies.iter().enumerate() {
            for _ in 0..b.count {
                if let Some(g) = goal.body_goals[def] {
                    goal.body_starts[copy] = g;
                }
                copy += 1;
            }
        }
        let goal_world = World::build(&self.scene, &goal);
        let current = std::mem::replace(&mut self.world, goal_world);
        let obs = self.observe();
        self.world = current;
        obs
    }

    /// The current observation.
    pub fn observe(&mut self) -> Observation {
        let state = self.observation_state();
        let image = match &mut self.renderer {
            Some(r) => Some(r.render(&self.scene, &self.world, &self.layout)),
            None => None,
        };
        Observation { state, image }
    }

    fn observation_state(&self) -> Vec<f32> {
        let mut v = Vec::with_capacity(16);
        for f in &self.scene.observation.state {
            match f {
                StateField::AgentPosition => {
                    v.extend(<[f32; 2]>::from(self.world.agent_position()))
                }
                StateField::AgentVelocity => {
                    v.extend(<[f32; 2]>::from(self.world.agent_velocity()))
                }
                StateField::GoalPosition => v.extend(<[f32; 2]>::from(self.layout.agent_goal)),
                StateField::BodyPose(name) => {
                    for b in self.copies(name) {
                        let p = self.world.body_pose(&b);
                        v.extend([p.x, p.y, wrap_angle(p.angle)]);
                    }
                }
                StateField::BodyVelocity(name) => {
                    for b in self.copies(name) {
                        v.extend(self.world.body_velocity(&b));
                    }
                }
                StateField::BodyGoalPose(name) => {
                    let g = self.body_goal(name);
                    v.extend([g.x, g.y, g.angle]);
                }
                StateField::AgentInBodyFrame(name) => {
                    let (p, vel) = (self.world.agent_position(), self.world.agent_velocity());
                    for b in self.copies(name) {
                        let pose = self.world.body_pose(&b);
                        let (c, s) = (pose.angle.cos(), pose.angle.sin());
                        // The inverse rotation: world offsets into the body's axes.
                        let local = |x: f32, y: f32| [c * x + s * y, -s * x + c * y];
                        v.extend(local(p.0 - pose.x, p.1 - pose.y));
                        v.extend(local(vel.0, vel.1));
                    }
                }
            }
        }
        v
    }

    /// Names of the observation state vector's entries.
    pub fn observation_state_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for f in &self.scene.observation.state {
            let mut push = |prefix: &str, parts: &[&str]| {
                names.extend(parts.iter().map(|p| format!("{prefix}.{p}")))
            };
            match f {
                StateField::AgentPosition => push("agent", &["x", "y"]),
                StateField::AgentVelocity => push("agent", &["vx", "vy"]),
                StateField::GoalPosition => push("goal", &["x", "y"]),
                StateField::BodyPose(n) => {
                    for i in 0..self.copies(n).len() {
                        push(&copy_name(&self.scene, n, i), &["x", "y", "angle"]);
                    }
                }
                StateField::BodyVelocity(n) => {
                    for i in 0..self.copies(n).len() {
                        push(&copy_name(&self.scene, n, i), &["vx", "vy", "omega"]);
                    }
                }
                StateField::BodyGoalPose(n) => push(&format!("{n}.goal"), &["x", "y", "angle"]),
                StateField::AgentInBodyFrame(n) => {
                    for i in 0..self.copies(n).len() {
                        push(
                            &format!("agent_in_{}", copy_name(&self.scene, n, i)),
                            &["x", "y", "vx", "vy"],
                        );
                    }
                }
            }
        }
        names
    }

    /// A 32-bit FNV-1a digest of the physical state's exact bits: recordings keep one per
    /// step, so a replay names the first step where the simulation went another way.
    pub fn state_digest(&self) -> u32 {
        self.physical_state()
            .iter()
            .flat_map(|v| v.to_bits().to_le_bytes())
            .fold(0x811c_9dc5_u32, |h, b| {
                (h ^ b as u32).wrapping_mul(0x0100_0193)
            })
    }

    /// The full physical state (agent position and velocity; every body's pose and velocity),
    /// whatever the observation spec: datasets store it for probes.
    pub fn physical_state(&self) -> Vec<f32> {
        let mut v = Vec::with_capacity(4 + 6 * self.world.bodies().len());
        v.extend(<[f32; 2]>::from(self.world.agent_position()));
        v.extend(<[f32; 2]>::from(self.world.agent_velocity()));
        for b in self.world.bodies() {
            let p = self.world.body_pose(b);
            v.extend([p.x, p.y, wrap_angle(p.angle)]);
            v.extend(self.world.body_velocity(b));
        }
        v
    }

    pub fn physical_state_names(&self) -> Vec<String> {
        let mut names: Vec<String> = ["agent.x", "agent.y", "agent.vx", "agent.vy"]
            .map(String::from)
            .to_vec();
        let mut index = std::collections::BTreeMap::<usize, usize>::new();
        for b in self.world.bodies() {
            let i = index.entry(b.def).or_default();
            let n = copy_name(&self.scene, &self.scene.bodies[b.def].name, *i);
            *i += 1;
            names.extend(["x", "y", "angle", "vx", "vy", "omega"].map(|p| format!("{n}.{p}")));
        }
        names
    }

    fn copies(&self, name: &str) -> Vec<super::world::BodyRef> {
        self.world
            .bodies()
            .iter()
            .filter(|b| self.scene.bodies[b.def].name == name)
            .copied()
            .collect()
    }

    fn body_goal(&self, name: &str) -> Pose2 {
        let i = self
            .scene
            .bodies
            .iter()
            .position(|b| b.name == name)
            .expect("validated body name");
        self.layout.body_goals[i].expect("validated body goal")
    }

    /// Evaluates every success criterion on the current state.
    pub fn info(&self) -> Info {
        let agent = self.world.agent_position();
        let goal = self.layout.agent_goal;
        let goal_distance = dist(agent, goal);
        let criteria = self
            .scene
            .goal
            .success
            .iter()
            .map(|c| self.evaluate(c, goal_distance))
            .collect::<Vec<_>>();
        let (agent_contacts, contacts) = self.world.contacts();
        Info {
            success: criteria[0].success,
            criteria,
            goal_distance,
            agent_contacts,
            contacts,
            steps: self.steps,
            action_clipped: false,
            blew_up: false,
            distance_bin: self.layout.distance_bin,
        }
    }

    fn evaluate(&self, c: &Criterion, goal_distance: f32) -> CriterionStatus {
        match c {
            Criterion::AgentReach { radius } => CriterionStatus {
                name: c.name(),
                success: goal_distance <= *radius,
                value: goal_distance,
                angle_error: None,
            },
            Criterion::BodyPose {
                body,
                position_tol,
                angle_tol,
                agent_tol,
                joint_position,
            } => {
                let b = self.copies(body)[0];
                let (p, g) = (self.world.body_pose(&b), self.body_goal(body));
                let body_err = dist((p.x, p.y), (g.x, g.y));
                // DINO-WM's Push-T bounds the norm of agent and body errors stacked.
                let pos_err = if *joint_position {
                    body_err.hypot(goal_distance)
                } else {
                    body_err
                };
                let ang_err = wrap_angle(p.angle - g.angle).abs();
                let agent_ok = agent_tol.is_none_or(|t| goal_distance < t);
                CriterionStatus {
                    name: c.name(),
                    success: pos_err < *position_tol && ang_err < *angle_tol && agent_ok,
                    value: pos_err,
                    angle_error: Some(ang_err),
                }
            }
            Criterion::Coverage { body, threshold } => {
                let cov = self.coverage(body);
                CriterionStatus {
                    name: c.name(),
                    success: cov >= *threshold,
                    value: cov,
                    angle_error: None,
                }
            }
            Criterion::ParticlesIn {
                body,
                min,
                max,
                fraction,
            } => {
                let copies = self.copies(body);
                let inside = copies
                    .iter()
                    .filter(|b| {
                        let p = self.world.body_pose(b);
                        p.x >= min.0 && p.x <= max.0 && p.y >= min.1 && p.y <= max.1
                    })
                    .count();
                let f = inside as f32 / copies.len() as f32;
                CriterionStatus {
                    name: c.name(),
                    success: f >= *fraction,
                    value: f,
                    angle_error: None,
                }
            }
        }
    }

    /// Fraction of the goal pose's area covered by the body (gym-pusht's coverage).
    pub fn coverage(&self, body: &str) -> f32 {
        let def = self
            .scene
            .bodies
            .iter()
            .find(|b| b.name == body)
            .expect("validated body");
        let b = self.copies(body)[0];
        let now = shape_polygons(&def.shape, &self.world.body_pose(&b));
        let target = shape_polygons(&def.shape, &self.body_goal(body));
        let area: f32 = target
            .iter()
            .map(|p| super::geometry::polygon_area(p))
            .sum();
        (overlap_area(&now, &target) / area).clamp(0.0, 1.0)
    }

    fn cost(&self, info: &Info) -> f32 {
        match self.scene.goal.cost {
            CostKind::Sparse => {
                if info.success {
                    0.0
                } else {
                    1.0
                }
            }
            CostKind::GoalDistance => match &self.scene.goal.success[0] {
                Criterion::AgentReach { .. } => info.goal_distance,
                Criterion::BodyPose { body, .. } => {
                    let b = self.copies(body)[0];
                    let (p, g) = (self.world.body_pose(&b), self.body_goal(body));
                    dist((p.x, p.y), (g.x, g.y)) + wrap_angle(p.angle - g.angle).abs()
                }
                Criterion::Coverage { .. } | Criterion::ParticlesIn { .. } => {
                    1.0 - info.criteria[0].value
                }
            },
        }
    }

    /// Distance from the agent to the goal along free space: the maze's shortest cell path
    /// where the scene has a grid, straight-line otherwise. Used by scripted experts.
    /// Shortest cell-path lengths from every maze cell to the goal's cell (`u32::MAX` where
    /// unreachable); None without a maze or with the goal outside it.
    pub fn goal_cell_distances(&self) -> Option<&Vec<Vec<u32>>> {
        self.goal_cells.as_ref()
    }

    fn goal_cell_distances_for_layout(&self) -> Option<Vec<Vec<u32>>> {
        let g = self.grid.as_ref()?;
        let t = g.cell_of(self.layout.agent_goal)?;
        g.is_free(t.0, t.1)
            .then(|| g.distances_from((t.0 as u32, t.1 as u32)))
    }

    pub fn grid(&self) -> Option<&Grid> {
        self.grid.as_ref()
    }
}

fn copy_name(scene: &Scene, name: &str, i: usize) -> String {
    let def = scene
        .bodies
        .iter()
        .find(|b| b.name == name)
        .expect("validated body");
    if def.count > 1 {
        format!("{name}[{i}]")
    } else {
        name.to_string()
    }
}
