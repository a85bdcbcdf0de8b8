//! One sandbox as the Python package sees it: the hjepa `Env`, the spaces derived from its
//! scene, the action mapping, the goal vectors, the episode's seed and the actions taken
//! since reset (what a snapshot's bytes carry). Shared by the single env and the vector env;
//! knows nothing of Python.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hjepa::error::{ActionError, InputError};
use hjepa::sim::geometry::wrap_angle;
use hjepa::sim::render::Renderer;
use hjepa::sim::scene::{Criterion, ImageSpec, StateField};
use hjepa::sim::{check_action, Action, Env, Image, Info, Layout, Observation, Scene, Step};

/// What a `Core` observes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObsKind {
    State,
    Pixels,
}

impl ObsKind {
    pub fn parse(s: &str) -> Result<ObsKind, String> {
        match s {
            "state" => Ok(ObsKind::State),
            "pixels" => Ok(ObsKind::Pixels),
            other => Err(format!(
                "observation: expected \"state\" or \"pixels\", found {other:?}"
            )),
        }
    }
}

/// One entry of the goal vectors (`achieved_goal` / `desired_goal`).
#[derive(Clone, Debug, PartialEq)]
enum GoalPart {
    /// Agent x, y against the layout's agent goal.
    Agent,
    /// A body's pose (x, y, angle wrapped to (-pi, pi]) against its goal pose.
    Body { def: usize },
    /// The fraction of a body's copies inside a box against the fraction asked for.
    Particles {
        def: usize,
        min: (f32, f32),
        max: (f32, f32),
        fraction: f32,
    },
}

/// Everything derived once from a scene and the observation mode.
pub struct Spec {
    /// The scene the env runs: in state mode without an image spec (nothing rendered per
    /// step), in pixel mode with one.
    pub scene: Arc<Scene>,
    /// Where the scene came from: its file, or `<string>`.
    pub source: PathBuf,
    pub kind: ObsKind,
    /// Actions in [-1, 1]^2 mapped affinely onto the scene's box (else the scene's units).
    pub normalized: bool,
    pub act_center: [f32; 2],
    pub act_half: [f32; 2],
    goal_parts: Vec<GoalPart>,
    pub goal_names: Vec<String>,
    pub goal_low: Vec<f32>,
    pub goal_high: Vec<f32>,
    pub state_names: Vec<String>,
    pub state_low: Vec<f32>,
    pub state_high: Vec<f32>,
    pub physical_names: Vec<String>,
    /// The image observations (pixel mode) and `render()` are drawn with.
    pub image: ImageSpec,
    /// Identifies the scene in snapshot bytes (FNV-1a of its canonical JSON).
    pub fingerprint: u64,
}

impl Spec {
    pub fn obs_len(&self) -> usize {
        match self.kind {
            ObsKind::State => self.state_names.len(),
            ObsKind::Pixels => (self.image.width * self.image.height * 3) as usize,
        }
    }

    pub fn goal_dim(&self) -> usize {
        self.goal_names.len()
    }

    /// The scene-unit action a user action stands for.
    pub fn to_scene(&self, a: [f32; 2]) -> Action {
        if self.normalized {
            [
                self.act_center[0] + a[0] * self.act_half[0],
                self.act_center[1] + a[1] * self.act_half[1],
            ]
        } else {
            a
        }
    }

    /// Checks a user action (finite, and what the scene accepts) without stepping; returns
    /// the scene-unit action to step with.
    pub fn check(&self, a: [f32; 2]) -> Result<Action, ActionError> {
        if !a.iter().all(|x| x.is_finite()) {
            return Err(ActionError {
                action: a,
                reason: "components must be finite numbers".into(),
            });
        }
        let scene_action = self.to_scene(a);
        check_action(&self.scene.agent.action, &scene_action)?;
        Ok(scene_action)
    }

    /// The bounds of the action space users see.
    pub fn action_bounds(&self) -> ([f32; 2], [f32; 2]) {
        if self.normalized {
            ([-1.0, -1.0], [1.0, 1.0])
        } else {
            let s = &self.scene.agent.action;
            ([s.low.0, s.low.1], [s.high.0, s.high.1])
        }
    }

    /// Env steps in an episode (control steps over frameskip, rounded up).
    pub fn max_env_steps(&self) -> u32 {
        let f = self.scene.physics.frameskip.max(1);
        self.scene.episode_steps.div_ceil(f)
    }

    /// Writes `achieved_goal` and `desired_goal` of `env` (an env of this spec's scene).
    pub fn write_goals(&self, env: &Env, achieved: &mut [f32], desired: &mut [f32]) {
        let world = env.world();
        let layout = env.layout();
        let first_copy = |def: usize| {
            *world
                .bodies()
                .iter()
                .find(|b| b.def == def)
                .expect("every body has a copy")
        };
        let mut i = 0;
        for p in &self.goal_parts {
            match p {
                GoalPart::Agent => {
                    let a = world.agent_position();
                    achieved[i..i + 2].copy_from_slice(&[a.0, a.1]);
                    let g = layout.agent_goal;
                    desired[i..i + 2].copy_from_slice(&[g.0, g.1]);
                    i += 2;
                }
                GoalPart::Body { def } => {
                    let pose = world.body_pose(&first_copy(*def));
                    achieved[i..i + 3].copy_from_slice(&[pose.x, pose.y, wrap_angle(pose.angle)]);
                    let g = layout.body_goals[*def].expect("validated body goal");
                    desired[i..i + 3].copy_from_slice(&[g.x, g.y, wrap_angle(g.angle)]);
                    i += 3;
                }
                GoalPart::Particles {
                    def,
                    min,
                    max,
                    fraction,
                } => {
                    let copies: Vec<_> = world.bodies().iter().filter(|b| b.def == *def).collect();
                    let inside = copies
                        .iter()
                        .filter(|b| {
                            let p = world.body_pose(b);
                            p.x >= min.0 && p.x <= max.0 && p.y >= min.1 && p.y <= max.1
                        })
                        .count();
                    achieved[i] = inside as f32 / copies.len().max(1) as f32;
                    desired[i] = *fraction;
                    i += 1;
                }
            }
        }
    }
}

/// Whether a scene argument is RON text rather than a path or a shipped name.
pub fn is_ron_text(arg: &str) -> bool {
    arg.contains("Scene(") || arg.contains('\n')
}

/// A scene from a shipped name, a path or RON text; errors name the file, line and field.
pub fn load_scene(arg: &str) -> Result<(Scene, PathBuf), InputError> {
    if is_ron_text(arg) {
        let path = PathBuf::from("<string>");
        return Scene::parse(arg, &path).map(|s| (s, path));
    }
    let path = Scene::resolve_path(arg);
    Scene::load(&path).map(|s| (s, path))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The next episode's seed after an episode seeded `seed` (splitmix64): what an unseeded
/// reset and the vector env's autoreset use, so both walk the same chain.
pub fn next_seed(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Spec {
    pub fn new(scene: Scene, source: &Path, kind: ObsKind, normalized: bool) -> Arc<Spec> {
        let fingerprint = fnv1a(
            serde_json::to_string(&scene)
                .expect("a scene serialises")
                .as_bytes(),
        );
        let mut scene = scene;
        let image = scene
            .observation
            .image
            .clone()
            .unwrap_or_else(|| ImageSpec::default_with_size(96, 96));
        scene.observation.image = match kind {
            ObsKind::State => None,
            ObsKind::Pixels => Some(image.clone()),
        };
        let (w, h) = scene.world.size;
        let margin = scene.world.wall_thickness + 1.0;
        let pi = std::f32::consts::PI;
        // Beyond these a body crosses the arena, or turns half a turn, in one physics step.
        let vmax = (w.max(h) + 2.0 * margin) / scene.physics.dt;
        let wmax = pi / scene.physics.dt;
        let (x_lo, x_hi, y_lo, y_hi) = (-margin, w + margin, -margin, h + margin);
        let reach = w.hypot(h) + 2.0 * margin;

        let def_of = |name: &str| {
            scene
                .bodies
                .iter()
                .position(|b| b.name == name)
                .expect("validated body name")
        };

        // State bounds, one entry per state component, in the order `Env` fills them.
        let mut lo = Vec::new();
        let mut hi = Vec::new();
        let mut push = |l: &[f32], u: &[f32]| {
            lo.extend_from_slice(l);
            hi.extend_from_slice(u);
        };
        for f in &scene.observation.state {
            match f {
                StateField::AgentPosition | StateField::GoalPosition => {
                    push(&[x_lo, y_lo], &[x_hi, y_hi])
                }
                StateField::AgentVelocity => push(&[-vmax, -vmax], &[vmax, vmax]),
                StateField::BodyPose(n) => {
                    for _ in 0..scene.bodies[def_of(n)].count {
                        push(&[x_lo, y_lo, -pi], &[x_hi, y_hi, pi]);
                    }
                }
                StateField::BodyVelocity(n) => {
                    for _ in 0..scene.bodies[def_of(n)].count {
                        push(&[-vmax, -vmax, -wmax], &[vmax, vmax, wmax]);
                    }
                }
                StateField::BodyGoalPose(n) => {
                    let b = &scene.bodies[def_of(n)];
                    let a = b
                        .goal
                        .as_ref()
                        .map_or(pi, |g| pi.max(g.angle.0.abs()).max(g.angle.1.abs()));
                    push(&[x_lo, y_lo, -a], &[x_hi, y_hi, a]);
                }
                StateField::AgentInBodyFrame(n) => {
                    for _ in 0..scene.bodies[def_of(n)].count {
                        push(&[-reach, -reach, -vmax, -vmax], &[reach, reach, vmax, vmax]);
                    }
                }
            }
        }

        // Goal vectors: the agent where a criterion places it, then each body a criterion
        // names, in criterion order.
        let mut parts = Vec::new();
        for c in &scene.goal.success {
            let part = match c {
                Criterion::AgentReach { .. } => GoalPart::Agent,
                Criterion::BodyPose { body, .. } | Criterion::Coverage { body, .. } => {
                    if c.places_agent() && !parts.contains(&GoalPart::Agent) {
                        parts.push(GoalPart::Agent);
                    }
                    GoalPart::Body { def: def_of(body) }
                }
                Criterion::ParticlesIn {
                    body,
                    min,
                    max,
                    fraction,
                } => GoalPart::Particles {
                    def: def_of(body),
                    min: *min,
                    max: *max,
                    fraction: *fraction,
                },
            };
            if !parts.contains(&part) {
                parts.push(part);
            }
        }
        parts.sort_by_key(|p| !matches!(p, GoalPart::Agent));
        let (mut goal_names, mut goal_low, mut goal_high) = (Vec::new(), Vec::new(), Vec::new());
        for p in &parts {
            match p {
                GoalPart::Agent => {
                    goal_names.extend(["agent.x".to_string(), "agent.y".to_string()]);
                    goal_low.extend([x_lo, y_lo]);
                    goal_high.extend([x_hi, y_hi]);
                }
                GoalPart::Body { def } => {
                    let n = &scene.bodies[*def].name;
                    goal_names.extend(["x", "y", "angle"].map(|c| format!("{n}.{c}")));
                    goal_low.extend([x_lo, y_lo, -pi]);
                    goal_high.extend([x_hi, y_hi, pi]);
                }
                GoalPart::Particles { def, .. } => {
                    goal_names.push(format!("{}.fraction_in_region", scene.bodies[*def].name));
                    goal_low.push(0.0);
                    goal_high.push(1.0);
                }
            }
        }

        let a = &scene.agent.action;
        let act_center = [(a.low.0 + a.high.0) / 2.0, (a.low.1 + a.high.1) / 2.0];
        let act_half = [(a.high.0 - a.low.0) / 2.0, (a.high.1 - a.low.1) / 2.0];
        let scene = Arc::new(scene);
        let probe = Env::new(scene.clone());
        let state_names = probe.observation_state_names();
        let physical_names = probe.physical_state_names();
        assert_eq!(state_names.len(), lo.len(), "state bounds cover the state");
        Arc::new(Spec {
            scene,
            source: source.to_path_buf(),
            kind,
            normalized,
            act_center,
            act_half,
            goal_parts: parts,
            goal_names,
            goal_low,
            goal_high,
            state_names,
            state_low: lo,
            state_high: hi,
            physical_names,
            image,
            fingerprint,
        })
    }
}

/// One sandbox and its episode bookkeeping.
pub struct Core {
    pub spec: Arc<Spec>,
    pub env: Env,
    /// State mode's renderer for `render()`, and the layout its static layer shows with the
    /// scene it was drawn from (the episode's, with the image the state env leaves out).
    renderer: Option<(Renderer, Option<(Layout, Scene)>)>,
    /// This episode's seed (unseeded resets continue from it with `next_seed`).
    pub seed: u64,
    /// Scene-unit actions given to `Env::step` since the episode began.
    pub history: Vec<Action>,
    /// Reset has been called (and no caught panic has left the env in doubt since).
    pub ready: bool,
}

impl Core {
    pub fn new(spec: Arc<Spec>) -> Core {
        let env = Env::new(spec.scene.clone());
        let renderer = match spec.kind {
            ObsKind::State => Some((Renderer::new(&spec.scene, &spec.image), None)),
            ObsKind::Pixels => None,
        };
        Core {
            spec,
            env,
            renderer,
            seed: 0,
            history: Vec::new(),
            ready: false,
        }
    }

    pub fn reset(&mut self, seed: u64) -> Observation {
        self.seed = seed;
        self.history.clear();
        self.ready = true;
        self.env.reset(seed)
    }

    pub fn reset_to(&mut self, layout: Layout, seed: u64) -> Observation {
        self.seed = seed;
        self.history.clear();
        self.ready = true;
        self.env.reset_to(layout)
    }

    pub fn check(&self, a: [f32; 2]) -> Result<Action, ActionError> {
        self.spec.check(a)
    }

    /// One env step with a user action (normalised or in scene units, as the spec says).
    pub fn step(&mut self, a: [f32; 2]) -> Result<Step, ActionError> {
        let scene_action = self.check(a)?;
        let step = self.env.step(&scene_action)?;
        self.history.push(scene_action);
        Ok(step)
    }

    pub fn observe(&mut self) -> Observation {
        self.env.observe()
    }

    /// Writes the observation (state vector or RGB bytes).
    pub fn write_obs(&self, obs: &Observation, f32_out: &mut [f32], u8_out: &mut [u8]) {
        match self.spec.kind {
            ObsKind::State => f32_out.copy_from_slice(&obs.state),
            ObsKind::Pixels => {
                u8_out.copy_from_slice(&obs.image.as_ref().expect("pixel mode renders").rgb)
            }
        }
    }

    /// Writes `achieved_goal` and `desired_goal`.
    pub fn write_goals(&self, achieved: &mut [f32], desired: &mut [f32]) {
        self.spec.write_goals(&self.env, achieved, desired)
    }

    pub fn info(&self) -> Info {
        self.env.info()
    }

    /// An RGB frame of the current state (the observation itself in pixel mode).
    pub fn render(&mut self) -> Image {
        match &mut self.renderer {
            None => self.env.observe().image.expect("pixel mode renders"),
            Some((r, drawn)) => {
                let layout = self.env.layout();
                if drawn.as_ref().map(|d| &d.0) != Some(layout) {
                    // The factors of variation may set the image's colours: apply them to
                    // the scene with its image.
                    let mut declared = (**self.env.scene()).clone();
                    declared.observation.image = Some(self.spec.image.clone());
                    let scene = hjepa::sim::factors::apply(&declared, &layout.factors);
                    r.set_static_layer(&scene, layout);
                    *drawn = Some((layout.clone(), scene));
                }
                let (_, scene) = drawn.as_ref().expect("drawn above");
                r.render(scene, self.env.world(), layout)
            }
        }
    }

    /// The goal as observed: the state vector or the image with the goal reached.
    pub fn goal_observation(&mut self) -> Observation {
        self.env.goal_observation()
    }
}
