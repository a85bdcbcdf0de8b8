//! The world model's part of an agent file (`agents/*.toml`): architecture, losses and
//! training budget, also saved with every checkpoint (`checkpoint/agent.toml`). The
//! `[planning]` table is the agent layer's (`crate::agent::config`). Unknown keys and bad
//! values are errors naming the file, the key and what was expected.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::device::Device;
use crate::error::InputError;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The scene this agent is built for (a shipped name or a path).
    pub scene: String,
    pub perception: Perception,
    pub level1: Level1,
    pub level2: Level2,
    /// A goal-conditioned cost-to-go head on z (off when absent).
    #[serde(default)]
    pub critic: Critic,
    pub train: Train,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ObservationKind {
    /// RGB images through a conv net.
    Pixels,
    /// The scene's state vector through an MLP.
    State,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Perception {
    pub observation: ObservationKind,
    /// Size of the level-1 representation z.
    pub latent_dim: i64,
    /// Conv channels per stride-2 stage (pixels).
    #[serde(default = "default_channels")]
    pub channels: Vec<i64>,
    /// Hidden width of the MLPs.
    #[serde(default = "default_hidden")]
    pub hidden: i64,
    /// `learned` (default) or `identity` (state observations only).
    #[serde(default, skip_serializing_if = "EncoderKind::is_learned")]
    pub encoder: EncoderKind,
}

/// `[perception] encoder`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EncoderKind {
    /// A net trained with the predictors (convs for pixels, an MLP for states).
    #[default]
    Learned,
    /// No trained encoder: z is the state's features (angles as cos and sin) normalised by
    /// the training set's mean and std, so the predictors model the state itself and the
    /// cost is a distance between normalised states. `latent_dim` must equal that count.
    Identity,
}

impl EncoderKind {
    fn is_learned(&self) -> bool {
        *self == EncoderKind::Learned
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AntiCollapse {
    /// Variance + covariance (+ temporal similarity + inverse dynamics) regularisers.
    Vicreg,
    /// LeJEPA's sketched isotropic Gaussian regulariser (Epps-Pulley on random projections).
    Sigreg,
    /// Targets from an exponential-moving-average copy of the encoder (stop-gradient).
    Ema,
}

/// Loss weights; terms that do not apply to the chosen anti-collapse method are ignored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LossWeights {
    #[serde(default = "one")]
    pub prediction: f64,
    #[serde(default)]
    pub std: f64,
    #[serde(default)]
    pub cov: f64,
    #[serde(default)]
    pub time_sim: f64,
    #[serde(default)]
    pub idm: f64,
    /// SIGReg's lambda: loss = lambda sigreg + (1 - lambda) prediction.
    #[serde(default = "default_sigreg")]
    pub sigreg: f64,
    #[serde(default = "default_projections")]
    pub sigreg_projections: i64,
    #[serde(default = "default_ema")]
    pub ema_decay: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Level1 {
    #[serde(default = "default_hidden")]
    pub hidden: i64,
    /// Hidden layers of the level-1 predictor, each `hidden` wide.
    #[serde(default = "default_predictor_layers")]
    pub predictor_layers: i64,
    /// Level-1 predictors trained side by side from different initialisations (1: one).
    /// Planning averages the cost over them and can penalise their disagreement
    /// (`planning.cost.disagreement`), so plans avoid what the model is unsure of, such as
    /// contacts it has rarely seen.
    // Left out when 1, so files (and batch run ids) from before it read the same.
    #[serde(default = "default_ensemble", skip_serializing_if = "is_one")]
    pub ensemble: i64,
    /// LayerNorm and Mish after each hidden layer of the predictor (TD-MPC2's dynamics
    /// net) instead of ReLU alone.
    // Left out when false, so files (and batch run ids) from before it read the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub layer_norm: bool,
    /// How the model reads an action: `world`, the scene's own units (a PD target's
    /// position in the arena), or `agent`, a PD target as an offset from the agent's
    /// position when the action is taken (DINO-WM's relative Push-T actions): the predictor
    /// then sees where the agent is sent without working out its position from z.
    // Left out when `world`, so files (and batch run ids) from before it read the same.
    #[serde(default, skip_serializing_if = "ActionFrame::is_world")]
    pub action_frame: ActionFrame,
    /// What a state model's predictors see (`encoder = "identity"` only): `world`, the
    /// normalised state as it is, or `body`, the agent's position, velocity and PD target
    /// in the frame of the pushed body (where the agent is against its shape, which decides
    /// contact), predicting the body's and the agent's motion in that frame. The arena's
    /// translation and rotation then need no learning, and its errors differ from a world-
    /// frame predictor's. Needs the state `[AgentPosition, AgentVelocity, BodyPose(_)]`.
    // Left out when `world`, so files (and batch run ids) from before it read the same.
    #[serde(default, skip_serializing_if = "StateFrame::is_world")]
    pub state_frame: StateFrame,
    /// The units of the prediction error (`encoder = "identity"` only): `state`, each
    /// normalised feature as it is (its spread over the data), or `step`, each feature in
    /// units of its typical change over one env step in the training data. A pushed body
    /// moves a few centimetres a step while the agent's velocity swings by metres per
    /// second, so under `state` the body's motion is a tiny share of the error; `step`
    /// weighs every feature's motion alike.
    // Left out when `state`, so files (and batch run ids) from before it read the same.
    #[serde(default, skip_serializing_if = "PredictionUnits::is_state")]
    pub prediction_units: PredictionUnits,
    /// Open-loop rollout length trained against target encodings.
    pub horizon: i64,
    pub anti_collapse: AntiCollapse,
    pub loss: LossWeights,
}

/// The frame the world model's actions are expressed in (`[level1] action_frame`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ActionFrame {
    /// The scene's action units as they are.
    #[default]
    World,
    /// A position target minus the agent's position at the time: needs a `PdTarget`
    /// actuator, and an agent that observes its own position (`AgentPosition`) to act.
    Agent,
}

impl ActionFrame {
    fn is_world(&self) -> bool {
        *self == ActionFrame::World
    }

    /// Whether `scene` supports this frame: an agent frame needs a position-target actuator
    /// and the agent's position among the observed state (to turn offsets into targets).
    pub fn check_scene(&self, scene: &crate::sim::Scene, path: &Path) -> Result<(), InputError> {
        if *self == ActionFrame::World {
            return Ok(());
        }
        let field = "level1.action_frame";
        if !matches!(
            scene.agent.actuator,
            crate::sim::scene::Actuator::PdTarget { .. }
        ) {
            return Err(InputError::new(
                path,
                field,
                format!(
                    "\"agent\" needs a scene whose agent is driven to position targets (a PdTarget actuator); {} has {:?}",
                    scene.name, scene.agent.actuator
                ),
            ));
        }
        if !scene
            .observation
            .state
            .contains(&crate::sim::scene::StateField::AgentPosition)
        {
            return Err(InputError::new(
                path,
                field,
                format!(
                    "\"agent\" needs the agent's position in the observed state (AgentPosition), which {} does not observe",
                    scene.name
                ),
            ));
        }
        Ok(())
    }
}

/// The units of a state model's level-1 prediction error (`[level1] prediction_units`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PredictionUnits {
    /// The normalised state's units (each feature's spread over the data).
    #[default]
    State,
    /// Each feature's typical change over one env step.
    Step,
}

impl PredictionUnits {
    fn is_state(&self) -> bool {
        *self == PredictionUnits::State
    }
}

/// The frame a state model's level-1 predictors work in (`[level1] state_frame`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StateFrame {
    /// The normalised state, as the identity encoder gives it.
    #[default]
    World,
    /// The agent relative to the pushed body, in the body's frame.
    Body,
}

impl StateFrame {
    fn is_world(&self) -> bool {
        *self == StateFrame::World
    }

    /// Whether `scene` and the agent file support this frame: a body frame needs the state
    /// model's identity encoder, world-frame PD-target actions, and the observed state
    /// `[AgentPosition, AgentVelocity, BodyPose(_)]` (the layout its geometry reads).
    pub fn check_scene(
        &self,
        agent: &ModelConfig,
        scene: &crate::sim::Scene,
        path: &Path,
    ) -> Result<(), InputError> {
        use crate::sim::scene::StateField;
        if *self == StateFrame::World {
            return Ok(());
        }
        let field = "level1.state_frame";
        let refuse = |why: String| Err(InputError::new(path, field, why));
        if agent.perception.encoder != EncoderKind::Identity {
            return refuse(
                "\"body\" needs a state model (perception.encoder = \"identity\")".into(),
            );
        }
        if agent.level1.action_frame != ActionFrame::World {
            return refuse(
                "\"body\" needs level1.action_frame = \"world\" (PD targets in the arena)".into(),
            );
        }
        if !matches!(
            scene.agent.actuator,
            crate::sim::scene::Actuator::PdTarget { .. }
        ) {
            return refuse(format!(
                "\"body\" needs a scene whose agent is driven to position targets (a PdTarget actuator); {} has {:?}",
                scene.name, scene.agent.actuator
            ));
        }
        match scene.observation.state.as_slice() {
            [StateField::AgentPosition, StateField::AgentVelocity, StateField::BodyPose(_)] => {
                Ok(())
            }
            other => refuse(format!(
                "\"body\" needs the observed state [AgentPosition, AgentVelocity, BodyPose(name)]; {} observes {other:?}",
                scene.name
            )),
        }
    }
}

/// The critic: C(z, z_goal) estimates the control steps from z to z_goal. It is fitted after
/// the world model, on its frozen encodings, to shortest-path lengths through a graph of the
/// training frames (`src/model/critic.rs`), so it measures how far a goal is around walls,
/// not how long a random walk took. It never shapes the representation. Planners use it as
/// a cost (`planning.cost.critic`) to see past walls.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Critic {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_hidden")]
    pub hidden: i64,
    /// 0: the critic is an MLP on (z, z_goal). N > 0: it embeds each side with an MLP to N
    /// dimensions and returns their Euclidean distance, so its estimates are symmetric and obey
    /// the triangle inequality (a state cannot look close to the goal unless it looks close to
    /// states that are).
    #[serde(default)]
    pub metric_dim: i64,
    /// Lengths are capped here (data steps); the critic predicts steps / max_steps. Set it
    /// above the scene's longest shortest path.
    #[serde(default = "default_critic_steps")]
    pub max_steps: i64,
    /// Every `node_stride`-th training frame is a graph node.
    #[serde(default = "default_node_stride")]
    pub node_stride: i64,
    /// Nearest neighbours in latent space joined to each node, if within `radius` (data steps).
    #[serde(default = "default_neighbours")]
    pub neighbours: i64,
    #[serde(default = "default_radius")]
    pub radius: f64,
    /// Std of Gaussian noise on the regression's inputs, in data steps (planners query
    /// predicted z's, slightly off the data).
    #[serde(default = "default_input_noise")]
    pub input_noise: f64,
    /// Fraction of regression queries whose state is the predictor's rollout of that frame
    /// from 1..=`predicted_steps` frames earlier (over the data's actions) instead of its
    /// encoding. Planners query the critic on predictions, which differ from encodings by
    /// the predictor's error, and a critic fitted on encodings alone misreads them (two_rooms:
    /// 57 % success at 0, 96 % at 1). Frames less than `predicted_steps` into their episode
    /// keep their encodings, so 1 still sees some. Set `predicted_steps` to at least the
    /// planner's horizon.
    #[serde(default = "default_predicted")]
    pub predicted: f64,
    #[serde(default = "default_predicted_steps")]
    pub predicted_steps: i64,
    /// Shortest-path sources sampled for the regression targets.
    #[serde(default = "default_sources")]
    pub sources: i64,
    /// Also fit a critic on level-2 states (`critic2`, same settings, `predicted_steps`
    /// counted in level-2 jumps): the hierarchical planner's upper level uses it as its
    /// `[planning.cost] critic`, so macro-plans follow paths rather than straight lines.
    #[serde(default)]
    pub level2: bool,
    /// Fitting steps, batch size and Adam learning rate of the regression.
    #[serde(default = "default_critic_fit_steps")]
    pub steps: i64,
    #[serde(default = "default_critic_batch")]
    pub batch_size: i64,
    #[serde(default = "default_critic_lr")]
    pub learning_rate: f64,
}

impl Default for Critic {
    fn default() -> Self {
        Critic {
            enabled: false,
            hidden: default_hidden(),
            metric_dim: 0,
            max_steps: default_critic_steps(),
            node_stride: default_node_stride(),
            neighbours: default_neighbours(),
            radius: default_radius(),
            input_noise: default_input_noise(),
            predicted: default_predicted(),
            predicted_steps: default_predicted_steps(),
            sources: default_sources(),
            level2: false,
            steps: default_critic_fit_steps(),
            batch_size: default_critic_batch(),
            learning_rate: default_critic_lr(),
        }
    }
}

fn default_critic_steps() -> i64 {
    64
}
fn default_node_stride() -> i64 {
    8
}
fn default_neighbours() -> i64 {
    10
}
fn default_radius() -> f64 {
    2.5
}
fn default_input_noise() -> f64 {
    0.0
}
fn default_predicted() -> f64 {
    1.0
}
fn default_predicted_steps() -> i64 {
    5
}
fn default_sources() -> i64 {
    256
}
fn default_critic_fit_steps() -> i64 {
    10_000
}
fn default_critic_batch() -> i64 {
    512
}
fn default_critic_lr() -> f64 {
    1e-3
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Level2 {
    pub enabled: bool,
    /// Control steps per level-2 jump (HWM uses 10).
    pub k: i64,
    /// Size of the abstract representation h.
    pub dim: i64,
    /// Size of the macro-action u, bounded to [-1, 1] by tanh.
    pub macro_dim: i64,
    /// Jumps rolled out open loop in training.
    pub jumps: i64,
    #[serde(default = "default_hidden")]
    pub hidden: i64,
    pub anti_collapse: AntiCollapse,
    pub loss: LossWeights,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Train {
    pub steps: i64,
    pub batch_size: i64,
    pub learning_rate: f64,
    /// How the learning rate moves over `steps`: `constant`, or `cosine` (from
    /// `learning_rate` down to 0 at `steps`; `--steps` stops early without changing it).
    // Left out when constant, so files (and batch run ids) from before it read the same.
    #[serde(default, skip_serializing_if = "LrSchedule::is_constant")]
    pub lr_schedule: LrSchedule,
    #[serde(default)]
    pub weight_decay: f64,
    pub seed: u64,
    /// `cpu`, `cuda` or `cuda:N` (`--device` overrides).
    #[serde(default)]
    pub device: Device,
    pub validate_every: i64,
    /// Fraction of episodes held out for validation and probes.
    pub validation_fraction: f64,
    /// Intra-op threads for torch (0: leave torch's default).
    #[serde(default)]
    pub threads: i32,
}

/// `[train] lr_schedule`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    #[default]
    Constant,
    Cosine,
}

impl LrSchedule {
    fn is_constant(&self) -> bool {
        *self == LrSchedule::Constant
    }
}

impl Train {
    /// The learning rate at optimiser step `step` (from 0).
    pub fn learning_rate_at(&self, step: i64) -> f64 {
        match self.lr_schedule {
            LrSchedule::Constant => self.learning_rate,
            LrSchedule::Cosine => {
                let progress = (step as f64 / self.steps.max(1) as f64).clamp(0.0, 1.0);
                self.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

fn default_channels() -> Vec<i64> {
    vec![16, 32, 32]
}
fn default_hidden() -> i64 {
    256
}
fn default_predictor_layers() -> i64 {
    2
}
fn default_ensemble() -> i64 {
    1
}
fn is_one(n: &i64) -> bool {
    *n == 1
}
fn one() -> f64 {
    1.0
}
fn default_sigreg() -> f64 {
    0.1
}
fn default_projections() -> i64 {
    256
}
fn default_ema() -> f64 {
    0.99
}

impl ModelConfig {
    /// A saved model configuration (a checkpoint's `agent.toml`).
    pub fn load(path: &Path) -> Result<ModelConfig, InputError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::new(path, "", format!("cannot read agent file: {e}")))?;
        ModelConfig::parse(&text, path)
    }

    /// A saved model configuration's text. Checkpoints written before the agent file was
    /// split into model and planning parts also hold the agent's `[planning]` table, which
    /// the model does not read: it is set aside.
    pub fn parse(text: &str, path: &Path) -> Result<ModelConfig, InputError> {
        let a: ModelConfig = match toml::from_str(text) {
            Ok(a) => a,
            Err(e) => {
                let mut table: toml::Table =
                    toml::from_str(text).map_err(|_| InputError::from_toml(path, text, &e))?;
                if table.remove("planning").is_none() {
                    return Err(InputError::from_toml(path, text, &e));
                }
                ModelConfig::deserialize(toml::Value::Table(table))
                    .map_err(|e| InputError::new(path, "", e.message().to_string()))?
            }
        };
        a.validate(path)?;
        Ok(a)
    }

    /// The torch device named by `[train] device`, or by `overridden` (`--device`); an
    /// error names the key it came from.
    pub fn device(
        &self,
        path: &Path,
        overridden: Option<Device>,
    ) -> Result<tch::Device, InputError> {
        let (device, key) = match overridden {
            Some(d) => (d, "--device"),
            None => (self.train.device, "train.device"),
        };
        super::cuda::tch_device(device).map_err(|why| InputError::new(path, key, why))
    }

    /// Frames per training window: enough for the level-1 horizon and the level-2 jumps.
    pub fn window(&self) -> i64 {
        let l2 = if self.level2.enabled {
            self.level2.k * self.level2.jumps
        } else {
            0
        };
        self.level1.horizon.max(l2) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cosine_schedule_falls_from_the_rate_to_zero_over_the_steps() {
        let mut t: Train = toml::from_str(
            "steps = 100\nbatch_size = 8\nlearning_rate = 0.002\nseed = 0\nvalidate_every = 10\nvalidation_fraction = 0.1\n",
        )
        .unwrap();
        assert_eq!(t.lr_schedule, LrSchedule::Constant);
        assert_eq!(t.learning_rate_at(0), 0.002);
        assert_eq!(t.learning_rate_at(99), 0.002);
        t.lr_schedule = LrSchedule::Cosine;
        assert_eq!(t.learning_rate_at(0), 0.002);
        assert!((t.learning_rate_at(50) - 0.001).abs() < 1e-12);
        assert!(t.learning_rate_at(25) > t.learning_rate_at(75));
        assert!(t.learning_rate_at(100).abs() < 1e-12);
        assert!(t.learning_rate_at(500).abs() < 1e-12, "past the last step");
    }
}
