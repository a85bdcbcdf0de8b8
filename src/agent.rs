//! The configurator and the agent: an agent file's `[planning]` table names the world-model
//! checkpoint, the cost terms and the planner(s); [`PlanningAgent`] assembles them and acts
//! closed loop (receding-horizon MPC, warm-started from the shifted previous plan).
//! [`OracleAgent`] runs the same planner with the sandbox as its model.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::cost::{
    CommitteeCost, CommitteePart, CostConfig, EnsembleCost, GoalCost, Reduce, SubgoalCost,
};
use crate::data::Dataset;
use crate::error::InputError;
use crate::model::config::{ActionFrame, EncoderKind, ObservationKind};
use crate::model::critic::encode_all;
use crate::model::data::TrainingData;
use crate::model::train::CheckpointMeta;
use crate::model::world_model::CriticNet;
use crate::model::{AgentFile, Trainer, WorldModel};
use crate::plan::hierarchical::{plan_lower, plan_upper};
use crate::plan::landmarks::{
    farthest_points, kmeans, LandmarkConfig, LandmarkGraph, Placement, Subgoal,
};
use crate::plan::oracle::{SandboxEncoded, SandboxModel, TrueCost};
use crate::plan::{
    make_planner, shift_plan, ActionBox, Objective, Plan, Planner, PlannerConfig, PlannerKind,
    Unroll,
};
use crate::sim::{Env, Observation, Scene};

/// The `[planning]` table of an agent file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlanningConfig {
    /// Run folder (made by `hjepa train`) whose checkpoint the agent loads.
    pub checkpoint: String,
    /// Further run folders whose world models plan beside the checkpoint's as a committee
    /// (flat planner only): each was trained for the same scene and observations, with its
    /// own encoder (another `[train] seed`, other data). Every model predicts the candidates
    /// from its own encoding of the observation and scores them against its own encoding of
    /// the goal (its ensemble's mean and disagreement, as for the checkpoint alone); a
    /// candidate costs the mean over the models. The predictors of one model share an
    /// encoder and a batch order; separately trained models fail on different goals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// The run folder of a state model (`[perception] encoder = "identity"`: its predictors
    /// model the normalised state itself), or a list of them, that predicts the candidates
    /// instead of the checkpoint's predictors (flat planner only). Its predicted states are
    /// encoded by the checkpoint's encoder (and each peer's) and scored there, so the cost
    /// stays the learned latent distance while the dynamics are learned where they are
    /// simplest. Several state models pool their predictors into one ensemble, whose
    /// disagreement is their members'.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "one_or_many")]
    pub dynamics: Vec<String>,
    /// What `dynamics` does: `replace` the predictors (default), or `join` them: the
    /// checkpoint (and peers) predict as usual and the state models' predictions, encoded
    /// as `dynamics_seen_by` says, are one more model of the committee.
    #[serde(default, skip_serializing_if = "DynamicsRole::is_replace")]
    pub dynamics_role: DynamicsRole,
    /// With `dynamics_role = "join"`, whose encoders score the state models' predictions:
    /// the `checkpoint`'s (default: they weigh as one model of the committee), or `every`
    /// model's of the committee (one scorer per encoder: they weigh as much as the latent
    /// predictors together).
    #[serde(default, skip_serializing_if = "SeenBy::is_checkpoint")]
    pub dynamics_seen_by: SeenBy,
    /// With `dynamics_role = "join"`, the weight of the state models' cost (each scorer's)
    /// in the committee's mean, where every other model weighs 1.
    #[serde(default = "unit_weight", skip_serializing_if = "is_unit_weight")]
    pub dynamics_weight: f64,
    /// With `dynamics_role = "join"` and several state models: each joins the committee as
    /// a model of its own (its ensemble's mean and disagreement, weighed `dynamics_weight`)
    /// instead of pooling their predictors into one ensemble.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dynamics_separate: bool,
    #[serde(default)]
    pub cost: CostConfig,
    /// The flat planner, or the lower level of the hierarchical one.
    pub planner: PlannerConfig,
    /// When present, plan hierarchically: this planner searches macro-actions at level 2
    /// (`horizon` in jumps, `replan_every` in env steps) and hands a subgoal down.
    #[serde(default)]
    pub upper: Option<PlannerConfig>,
    /// Offset-free MPC: at each replan, the gap between the observed z and what the model
    /// predicted for it from the last replan's z and the actions taken since (per step) is
    /// added to every step of the candidates' predictions. Where the predictor is wrong in
    /// one place, e.g. a move blocked by a wall it predicts as free, the plans see it.
    #[serde(default)]
    pub offset_correction: bool,
    /// The same at the upper level (needs `[planning.upper]`): when it replans, the gap
    /// between the observed abstract state and the one its last plan predicted for now (per
    /// jump) is added to every jump of its candidates' predictions, so a subgoal the lower
    /// level could not reach (a macro-action the level-2 predictor thinks crosses a wall)
    /// stops looking good. The subgoal handed down stays the model's own prediction.
    #[serde(default)]
    pub upper_offset_correction: bool,
    /// With `[planning.upper]`: which of the upper plan's predicted states is handed down as
    /// the subgoal, in jumps (1, HWM's: the state after the first macro-action).
    #[serde(default = "first_jump")]
    pub subgoal_jump: i64,
    /// With `[planning.upper]`: the weight of the level-2 critic's cost-to-go from the lower
    /// level's predicted states to the subgoal, added to their latent distance to it (weight
    /// 1); the distance alone pulls straight at a subgoal behind a wall. Needs `[critic]
    /// level2 = true`.
    #[serde(default)]
    pub subgoal_critic: f64,
    /// When present, plan hierarchically with landmark subgoals instead of `[planning.upper]`:
    /// the upper level searches a graph of states the data visited (see
    /// [`crate::plan::landmarks`]). Needs level 2 and its critic.
    #[serde(default)]
    pub landmarks: Option<LandmarkConfig>,
}

/// `[planning] dynamics_role`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DynamicsRole {
    #[default]
    Replace,
    Join,
}

impl DynamicsRole {
    fn is_replace(&self) -> bool {
        *self == DynamicsRole::Replace
    }
}

/// `[planning] dynamics_seen_by`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SeenBy {
    #[default]
    Checkpoint,
    Every,
}

impl SeenBy {
    fn is_checkpoint(&self) -> bool {
        *self == SeenBy::Checkpoint
    }
}

/// `planning.dynamics`: one run folder, or a list of them (one is written back as a string,
/// so files and batch run ids from before lists read the same).
mod one_or_many {
    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serialize, Serializer};
    use std::fmt;

    struct Runs;

    impl<'de> Visitor<'de> for Runs {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a run folder or a list of run folders")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<String>, E> {
            Ok(vec![s.to_string()])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut runs = Vec::new();
            while let Some(run) = seq.next_element::<String>()? {
                runs.push(run);
            }
            Ok(runs)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        d.deserialize_any(Runs)
    }

    pub fn serialize<S: Serializer>(runs: &[String], s: S) -> Result<S::Ok, S::Error> {
        match runs {
            [one] => one.serialize(s),
            _ => runs.serialize(s),
        }
    }
}

fn first_jump() -> i64 {
    1
}
fn unit_weight() -> f64 {
    1.0
}
fn is_unit_weight(w: &f64) -> bool {
    *w == 1.0
}

impl PlanningConfig {
    /// Whether an upper level hands subgoals down (`[planning.upper]` or `[planning.landmarks]`).
    pub fn hierarchical(&self) -> bool {
        self.upper.is_some() || self.landmarks.is_some()
    }

    /// Checks the planning table against the model it will drive; errors name the key.
    pub fn validate(&self, agent: &AgentFile) -> Result<(), (String, String)> {
        self.planner.validate("planning.planner")?;
        if !(1..=2).contains(&self.cost.level) {
            return Err((
                "planning.cost.level".into(),
                format!("expected 1 or 2, found {}", self.cost.level),
            ));
        }
        if self.cost.level == 2 && !agent.level2.enabled {
            return Err((
                "planning.cost.level".into(),
                "level 2 costs need level2.enabled = true".into(),
            ));
        }
        for (k, v) in [
            ("goal_weight", self.cost.goal_weight),
            ("action_magnitude", self.cost.action_magnitude),
            ("action_smoothness", self.cost.action_smoothness),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err((
                    format!("planning.cost.{k}"),
                    format!("expected a weight >= 0, found {v}"),
                ));
            }
        }
        if !(self.cost.critic.is_finite() && self.cost.critic >= 0.0) {
            return Err((
                "planning.cost.critic".into(),
                format!("expected a weight >= 0, found {}", self.cost.critic),
            ));
        }
        if self.cost.critic > 0.0 && !agent.critic.enabled {
            return Err((
                "planning.cost.critic".into(),
                "a critic cost needs [critic] enabled = true in the model".into(),
            ));
        }
        let disagreement = self.cost.disagreement;
        if !(disagreement.is_finite() && disagreement >= 0.0) {
            return Err((
                "planning.cost.disagreement".into(),
                format!("expected a weight >= 0, found {disagreement}"),
            ));
        }
        // With `dynamics` the state model's members disagree (checked when it is loaded).
        if disagreement > 0.0 && agent.level1.ensemble < 2 && self.dynamics.is_empty() {
            return Err((
                "planning.cost.disagreement".into(),
                format!(
                    "weighs the disagreement of level-1 predictors: it needs [level1] ensemble >= 2 in the model, found {}",
                    agent.level1.ensemble
                ),
            ));
        }
        if !(self.subgoal_critic.is_finite() && self.subgoal_critic >= 0.0) {
            return Err((
                "planning.subgoal_critic".into(),
                format!("expected a weight >= 0, found {}", self.subgoal_critic),
            ));
        }
        if self.subgoal_critic > 0.0
            && (!self.hierarchical() || !agent.critic.enabled || !agent.critic.level2)
        {
            return Err((
                "planning.subgoal_critic".into(),
                "scores the lower level's states against the upper level's subgoal: it needs [planning.upper] or [planning.landmarks], and [critic] enabled = true, level2 = true in the model".into(),
            ));
        }
        if let Some(l) = &self.landmarks {
            l.validate()?;
            if self.upper.is_some() {
                return Err((
                    "planning.landmarks".into(),
                    "replaces the upper planner: give [planning.upper] or [planning.landmarks], not both".into(),
                ));
            }
            if !(agent.level2.enabled && agent.critic.enabled && agent.critic.level2) {
                return Err((
                    "planning.landmarks".into(),
                    "landmarks are level-2 states joined by the level-2 critic: they need level2.enabled = true and [critic] enabled = true, level2 = true in the model".into(),
                ));
            }
        }
        let peer_disagreement = self.cost.peer_disagreement;
        if !(peer_disagreement.is_finite() && peer_disagreement >= 0.0) {
            return Err((
                "planning.cost.peer_disagreement".into(),
                format!("expected a weight >= 0, found {peer_disagreement}"),
            ));
        }
        if peer_disagreement > 0.0 && self.peers.is_empty() {
            return Err((
                "planning.cost.peer_disagreement".into(),
                "weighs the disagreement of a committee's models: it needs [planning] peers".into(),
            ));
        }
        if !self.peers.is_empty() && (self.hierarchical() || self.offset_correction) {
            return Err((
                "planning.peers".into(),
                "a committee of models plans flat: it cannot be combined with [planning.upper], [planning.landmarks] or offset_correction".into(),
            ));
        }
        if self.dynamics_role == DynamicsRole::Join && self.dynamics.is_empty() {
            return Err((
                "planning.dynamics_role".into(),
                "\"join\" adds the state model of planning.dynamics to the committee: name one there".into(),
            ));
        }
        let weight = self.dynamics_weight;
        if !(weight.is_finite() && weight > 0.0) {
            return Err((
                "planning.dynamics_weight".into(),
                format!("expected a weight > 0, found {weight}"),
            ));
        }
        if weight != 1.0 && self.dynamics_role != DynamicsRole::Join {
            return Err((
                "planning.dynamics_weight".into(),
                "weighs the state models that join the committee: it needs dynamics_role = \"join\"".into(),
            ));
        }
        if self.dynamics_separate
            && (self.dynamics_role != DynamicsRole::Join || self.dynamics.len() < 2)
        {
            return Err((
                "planning.dynamics_separate".into(),
                format!(
                    "makes each of several joined state models a model of the committee: it needs dynamics_role = \"join\" and at least two run folders in planning.dynamics, found {}",
                    self.dynamics.len()
                ),
            ));
        }
        if self.dynamics_seen_by != SeenBy::Checkpoint && self.dynamics_role != DynamicsRole::Join {
            return Err((
                "planning.dynamics_seen_by".into(),
                "chooses the encoders of state models that join the committee: it needs dynamics_role = \"join\" (replacing, they are seen by every encoder)".into(),
            ));
        }
        if !self.dynamics.is_empty() && (self.hierarchical() || self.offset_correction) {
            return Err((
                "planning.dynamics".into(),
                "a state model predicts for the flat planner: it cannot be combined with [planning.upper], [planning.landmarks] or offset_correction".into(),
            ));
        }
        if self.upper_offset_correction && self.upper.is_none() {
            return Err((
                "planning.upper_offset_correction".into(),
                "corrects the upper level's predictions: it needs [planning.upper]".into(),
            ));
        }
        if let Some(u) = &self.upper {
            u.validate_with_jumps("planning.upper", agent.level2.k)?;
            if !(1..=u.horizon).contains(&self.subgoal_jump) {
                return Err((
                    "planning.subgoal_jump".into(),
                    format!(
                        "expected 1..=planning.upper.horizon ({}), found {}",
                        u.horizon, self.subgoal_jump
                    ),
                ));
            }
            if !agent.level2.enabled {
                return Err((
                    "planning.upper".into(),
                    "hierarchical planning needs level2.enabled = true".into(),
                ));
            }
            if u.kind == PlannerKind::Gradient {
                return Err((
                    "planning.upper.kind".into(),
                    "the upper level plans with cem or mppi".into(),
                ));
            }
            if self.cost.critic > 0.0 && !agent.critic.level2 {
                return Err((
                    "planning.cost.critic".into(),
                    "with [planning.upper] the critic scores the upper level's states: it needs [critic] level2 = true in the model".into(),
                ));
            }
        }
        Ok(())
    }

    /// Longest plans the model supports, checked against the scene once it is known: a
    /// plan may not reach past the end of an episode.
    pub fn check_horizons(
        &self,
        agent: &AgentFile,
        scene: &Scene,
        path: &Path,
    ) -> Result<(), InputError> {
        // Plans count env steps; an env step repeats its action `frameskip` control steps.
        let limit = (scene.episode_steps / scene.physics.frameskip.max(1)) as i64;
        if self.planner.horizon > limit {
            return Err(InputError::new(
                path,
                "planning.planner.horizon",
                format!("{} steps is longer than the model supports here: an episode of {} has {limit} env steps", self.planner.horizon, scene.name),
            ));
        }
        if let Some(u) = &self.upper {
            let steps = u.horizon * agent.level2.k;
            if steps > limit {
                return Err(InputError::new(
                    path,
                    "planning.upper.horizon",
                    format!("{} jumps of k = {} ({steps} steps) is longer than an episode of {} ({limit} steps)", u.horizon, agent.level2.k, scene.name),
                ));
            }
        }
        Ok(())
    }
}

/// Timing of one `act` call.
#[derive(Clone, Copy, Debug, Default)]
pub struct ActTiming {
    /// Seconds spent planning in this call (0 when the plan was reused).
    pub planning_s: f64,
    pub replanned: bool,
}

/// Something that acts in an env: the learned agent reads only observations; the oracle
/// reads the env's true state.
pub trait Actor {
    /// Starts an episode whose goal the env knows.
    fn reset(&mut self, env: &mut Env, seed: u64);
    /// The next action (scene units) and how long planning took.
    fn act(&mut self, env: &Env, obs: &Observation) -> ([f32; 2], ActTiming);
    /// The rest of the current plan (scene units), next action first; empty for actors
    /// that do not plan. A viewer replays it in a snapshot to draw the expected path.
    fn planned_actions(&self) -> Vec<[f32; 2]> {
        Vec::new()
    }
}

/// Rows `from..` of a plan `[H, A]` in normalised units, mapped to scene units. Offsets
/// from the agent are chained from `agent`, taking each target as where the agent will be
/// when the next is set (a PD target is reached within an env step).
fn remaining(
    plan: Option<&Tensor>,
    from: i64,
    space: &ActionBox,
    mut agent: [f32; 2],
) -> Vec<[f32; 2]> {
    let Some(plan) = plan else { return Vec::new() };
    let rows: Vec<Vec<f32>> =
        Vec::try_from(plan.to_kind(Kind::Float).to_device(Device::Cpu)).unwrap_or_default();
    rows.iter()
        .skip(from.max(0) as usize)
        .map(|x| {
            let a = space.to_scene(x, agent);
            agent = [a[0], a[1]];
            agent
        })
        .collect()
}

/// An observation as a batch of one, in the layout the encoder reads.
pub fn observation_tensor(obs: &Observation, kind: ObservationKind, device: Device) -> Tensor {
    match kind {
        ObservationKind::Pixels => {
            let img = obs
                .image
                .as_ref()
                .expect("checked: the scene renders images");
            Tensor::from_slice(&img.rgb)
                .view([1, img.height as i64, img.width as i64, 3])
                .to_device(device)
        }
        ObservationKind::State => Tensor::from_slice(&obs.state)
            .view([1, -1])
            .to_device(device),
    }
}

/// Encodes observations `[n]` in one forward pass: `[n, D]`.
fn encode_observations(
    model: &WorldModel,
    kind: ObservationKind,
    device: Device,
    obs: &[&Observation],
) -> Tensor {
    let x: Vec<Tensor> = obs
        .iter()
        .map(|o| observation_tensor(o, kind, device))
        .collect();
    tch::no_grad(|| model.encode(&Tensor::cat(&x, 0)))
}

/// The learned model's level-1 unroll from one encoded state, optionally corrected by a
/// per-step offset `[1, D]` (see `PlanningConfig::offset_correction`): step t gets t·offset.
pub struct LatentUnroll<'a> {
    pub model: &'a WorldModel,
    pub z0: Tensor,
    pub offset: Option<Tensor>,
    /// Each ensemble member's states, member-major (`[K * N, H, D]`, for an
    /// [`EnsembleCost`]), rather than their mean.
    pub each_member: bool,
}

impl LatentUnroll<'_> {
    /// Predictions per candidate it returns: the ensemble's members, or 1.
    fn rows(&self) -> i64 {
        if self.each_member {
            self.model.members()
        } else {
            1
        }
    }

    fn shallow(&self) -> Self {
        LatentUnroll {
            model: self.model,
            z0: self.z0.shallow_clone(),
            offset: self.offset.as_ref().map(Tensor::shallow_clone),
            each_member: self.each_member,
        }
    }
}

impl Unroll for LatentUnroll<'_> {
    fn unroll(&self, actions: &Tensor) -> Tensor {
        let n = actions.size()[0];
        let z0 = self.z0.expand([n, -1], false);
        let states = if self.each_member {
            self.model.rollout_members(&z0, actions).flatten(0, 1)
        } else {
            self.model.rollout(&z0, actions)
        };
        with_drift(states, self.offset.as_ref())
    }
    fn device(&self) -> Device {
        self.z0.device()
    }
}

/// The unrolls of a committee of models (`planning.peers`), each from its own encoding of
/// the observation, stacked model-major along the first axis for a [`CommitteeCost`]; a
/// state model that joins them (`dynamics_role = "join"`) comes last.
pub struct CommitteeUnroll<'a> {
    pub models: Vec<LatentUnroll<'a>>,
    pub state_model: Option<StateModelUnroll<'a>>,
}

impl Unroll for CommitteeUnroll<'_> {
    fn unroll(&self, actions: &Tensor) -> Tensor {
        let states: Vec<Tensor> = self
            .models
            .iter()
            .map(|u| u.unroll(actions))
            .chain(self.state_model.iter().map(|s| s.unroll(actions)))
            .collect();
        Tensor::cat(&states, 0)
    }
    fn device(&self) -> Device {
        self.models[0].device()
    }
}

/// Candidates predicted by state models (`planning.dynamics`) and encoded by each scorer:
/// `[E * R * N, H, D]` for E encoders (the checkpoint's, then the peers'), encoder-major,
/// each block the state models' R rows per candidate (their members, model- then
/// member-major, or 1).
pub struct StateModelUnroll<'a> {
    pub dynamics: Vec<&'a WorldModel>,
    /// The observation as each state model reads it (its z: the normalised state), `[1, F]`.
    pub s0: Vec<Tensor>,
    pub encoders: Vec<&'a WorldModel>,
    /// One row per member; set when the models have more than one member between them.
    pub each_member: bool,
}

impl StateModelUnroll<'_> {
    pub fn rows(&self) -> i64 {
        if self.each_member {
            self.dynamics.iter().map(|d| d.members()).sum()
        } else {
            1
        }
    }

    /// How one encoder's block of rows per candidate splits into committee models, in the
    /// unroll's order: pooled, one model of all [`rows`](Self::rows); `separate`
    /// (`planning.dynamics_separate`), one model per state model, of its members.
    pub fn scorer_blocks(&self, separate: bool) -> Vec<i64> {
        match separate && self.each_member {
            true => self.dynamics.iter().map(|d| d.members()).collect(),
            false => vec![self.rows()],
        }
    }
}

impl Unroll for StateModelUnroll<'_> {
    fn unroll(&self, actions: &Tensor) -> Tensor {
        let n = actions.size()[0];
        // Each model's predictions read back as states (its own normalisation).
        let per_model: Vec<Tensor> = self
            .dynamics
            .iter()
            .zip(&self.s0)
            .map(|(d, s0)| {
                let s0 = s0.expand([n, -1], false);
                let z = if self.each_member {
                    d.rollout_members(&s0, actions).flatten(0, 1)
                } else {
                    d.rollout(&s0, actions)
                };
                let (rows, h) = (z.size()[0], z.size()[1]);
                d.decode_state(&z.flatten(0, 1))
                    .expect("checked when loaded: an identity encoder")
                    .view([rows, h, -1])
            })
            .collect();
        let states = Tensor::cat(&per_model, 0);
        let (rows, h) = (states.size()[0], states.size()[1]);
        let states = states.flatten(0, 1);
        let encoded: Vec<Tensor> = self
            .encoders
            .iter()
            .map(|m| m.encode(&states).view([rows, h, -1]))
            .collect();
        Tensor::cat(&encoded, 0)
    }
    fn device(&self) -> Device {
        self.s0[0].device()
    }
}

/// Predicted states `[N, H, D]` with step t (from 1) moved by t·offset (`[1, D]`), if any.
fn with_drift(states: Tensor, offset: Option<&Tensor>) -> Tensor {
    match offset {
        Some(d) => {
            let h = states.size()[1];
            let t = Tensor::arange_start(1, h + 1, (Kind::Float, d.device())).view([1, h, 1]);
            states + t * d.view([1, 1, -1])
        }
        None => states,
    }
}

/// Offset-free MPC's correction per step: how far the observed `z_now` `[1, D]` is from what
/// `from_last` (the unroll from the last replan's z) predicted after the `taken` actions
/// `[E, A]` executed since, spread evenly over those E steps: `[1, D]`.
pub fn executed_offset(from_last: &dyn Unroll, taken: &Tensor, z_now: &Tensor) -> Tensor {
    let executed = taken.size()[0];
    let predicted = tch::no_grad(|| from_last.unroll(&taken.unsqueeze(0))).select(1, executed - 1);
    (z_now - predicted) / executed as f64
}

/// The learned model's level-2 unroll over macro-actions from one abstract state,
/// optionally corrected by a per-jump offset `[1, Dh]` as `LatentUnroll` is per step.
pub struct AbstractUnroll<'a> {
    pub model: &'a WorldModel,
    pub h0: Tensor,
    pub offset: Option<Tensor>,
}

impl Unroll for AbstractUnroll<'_> {
    fn unroll(&self, macros: &Tensor) -> Tensor {
        let l2 = self
            .model
            .level2
            .as_ref()
            .expect("validated: level 2 enabled");
        let states = l2.rollout(&self.h0.expand([macros.size()[0], -1], false), macros);
        with_drift(states, self.offset.as_ref())
    }
    fn device(&self) -> Device {
        self.h0.device()
    }
}

/// Short-term memory of one sandbox the agent serves: its goal, current plans, how much of
/// each was executed, the subgoal, and its own seeded planners.
struct Memory {
    goal_z: Tensor,
    goal_h: Option<Tensor>,
    /// The goal as each peer (`planning.peers`) encodes it: z, and h with level 2.
    peer_goals: Vec<PeerGoal>,
    plan: Option<Tensor>,
    executed: i64,
    upper_plan: Option<Tensor>,
    upper_age: i64,
    subgoal: Option<Tensor>,
    /// The upper level's way ahead `[H, dh]`, subgoal first: the states its plan predicts, or
    /// the landmarks of the path and then the goal.
    upper_states: Option<Tensor>,
    planner: Box<dyn Planner>,
    upper: Option<Box<dyn Planner>>,
    /// z at the last replan (for the offset correction).
    replanned_from: Option<Tensor>,
    /// With landmarks: each landmark's cost to this episode's goal along the graph.
    landmarks_to_goal: Option<Vec<f32>>,
    /// The last action taken (scene units), from which the rest of the plan is drawn.
    last_action: [f32; 2],
}

/// The goal as one peer of the committee encodes it.
struct PeerGoal {
    z: Tensor,
    /// Its level-2 state (with level 2).
    h: Option<Tensor>,
}

impl Memory {
    /// Whether the lower level replans at this step (no plan yet, or `every` steps of it run).
    fn replan_due(&self, every: i64) -> bool {
        self.plan.is_none() || self.executed >= every
    }
}

/// A loaded agent: world model, cost, planner(s), and one short-term memory per sandbox it
/// serves. Observations of all sandboxes that replan in a step go through the encoder as one
/// batch (`act_batch`).
pub struct PlanningAgent {
    pub agent: AgentFile,
    pub cfg: PlanningConfig,
    trainer: Trainer,
    device: Device,
    space: ActionBox,
    /// Where `agent.x` (then `agent.y`) sits in the observed state, when the model's actions
    /// are offsets from the agent.
    agent_position: Option<usize>,
    memories: Vec<Option<Memory>>,
    /// The committee's further models (`planning.peers`), in the file's order.
    peers: Vec<Trainer>,
    /// Diagnostic (`hjepa eval --waypoint-subgoals`): a hierarchical agent's subgoal is the
    /// abstract state of the agent at rest at the scene expert's next waypoint, read from the
    /// true state in `Actor::act`, instead of the upper level's plan.
    pub waypoint_subgoals: bool,
    /// The landmark graph (`[planning.landmarks]`).
    landmarks: Option<Landmarks>,
    /// Diagnostic (`hjepa eval --sandbox-dynamics`): level 1 plans on the sandbox's own
    /// dynamics (candidates replayed on it, their observations encoded) instead of the
    /// predictor's, with the agent's cost; read from the env in `Actor::act`.
    pub sandbox_dynamics: bool,
    /// The sandbox at sandbox 0's last replan (with `sandbox_dynamics`).
    sandbox: Option<SandboxModel>,
    /// The state models that predict the candidates (`planning.dynamics`), in the file's order.
    dynamics: Vec<Trainer>,
}

/// The upper level's memory with `[planning.landmarks]`: level-2 states placed among the
/// frames the data visited, and the graph the level-2 critic draws between them.
struct Landmarks {
    cfg: LandmarkConfig,
    /// `[L, dh]`.
    states: Tensor,
    graph: LandmarkGraph,
}

/// The level-2 critic's estimates in data steps from each row of `from` to each of `to`, as
/// rows of a matrix.
fn critic_steps(critic2: &CriticNet, max_steps: i64, from: &Tensor, to: &Tensor) -> Vec<Vec<f32>> {
    let steps = tch::no_grad(|| critic2.pairwise(from, to)) * max_steps as f64;
    let cols = to.size()[0] as usize;
    let flat = Vec::<f32>::try_from(
        steps
            .to_kind(Kind::Float)
            .to_device(Device::Cpu)
            .flatten(0, -1),
    )
    .expect("f32 estimates");
    flat.chunks(cols).map(<[f32]>::to_vec).collect()
}

impl Landmarks {
    /// Places the landmarks among the training frames of the dataset and joins them.
    fn load(
        cfg: &LandmarkConfig,
        agent: &AgentFile,
        agent_path: &Path,
        meta: &CheckpointMeta,
        model: &WorldModel,
        device: Device,
    ) -> Result<Landmarks, InputError> {
        let dir = match &cfg.data {
            Some(d) => resolve_run(d, agent_path),
            None => meta.dataset.clone(),
        };
        if !dir.join(crate::data::dataset::MANIFEST).exists() {
            return Err(InputError::new(
                agent_path,
                "planning.landmarks.data",
                format!(
                    "no dataset at {}{} (landmarks are frames of a dataset of this scene)",
                    dir.display(),
                    if cfg.data.is_none() {
                        ", where the checkpoint was trained"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let data = TrainingData::load(&Dataset::open(&dir)?, agent, agent_path)?;
        if data.shapes.observation != meta.shapes.observation {
            return Err(InputError::new(
                agent_path,
                "planning.landmarks.data",
                format!(
                    "the dataset at {} has observations of shape {:?}, the checkpoint's model reads {:?}",
                    dir.display(),
                    data.shapes.observation,
                    meta.shapes.observation
                ),
            ));
        }
        let l2 = model.level2.as_ref().expect("validated: level 2");
        let critic2 = model.critic2.as_ref().expect("validated: [critic] level2");
        // Every floor(N / 20 000)-th training frame (20 000 to 40 000 of them) to place them among.
        let stride = (data.train_frames.len() / 20_000).max(1);
        let rows: Vec<i64> = data.train_frames.iter().step_by(stride).copied().collect();
        let obs = data.obs.index_select(0, &Tensor::from_slice(&rows));
        let h = tch::no_grad(|| l2.abstract_state(&encode_all(model, &obs, device)));
        let seeds = h.index_select(
            0,
            &Tensor::from_slice(&farthest_points(&h, cfg.count)).to_device(device),
        );
        let states = match cfg.placement {
            Placement::Frames => seeds,
            Placement::Centroids => tch::no_grad(|| kmeans(&h, &seeds, 20)),
        };
        let cost = critic_steps(critic2, model.critic_max_steps, &states, &states);
        let graph = LandmarkGraph::new(&cost, cfg.max_edge as f32);
        Ok(Landmarks {
            cfg: cfg.clone(),
            states,
            graph,
        })
    }

    /// When a choice is due (`replan_every` steps since the last), sets the subgoal of `m`
    /// to the goal or a landmark, and its way ahead to the landmark path and the goal.
    fn refresh_subgoal(&self, model: &WorldModel, m: &mut Memory, z0: &Tensor) {
        if m.subgoal.is_some() && m.upper_age < self.cfg.replan_every {
            return;
        }
        let l2 = model.level2.as_ref().expect("validated: level 2");
        let critic2 = model.critic2.as_ref().expect("validated: [critic] level2");
        let h0 = tch::no_grad(|| l2.abstract_state(z0));
        let goal_h = m.goal_h.as_ref().expect("level 2 enabled");
        let to_goal = m.landmarks_to_goal.as_ref().expect("set at reset");
        let (subgoal, path) = self.subgoal(critic2, model.critic_max_steps, &h0, goal_h, to_goal);
        m.subgoal = Some(subgoal);
        m.upper_states = Some(path);
        m.upper_age = 0;
    }

    /// Each landmark's cost to the goal `[1, dh]` along the graph.
    fn to_goal(&self, critic2: &CriticNet, max_steps: i64, goal_h: &Tensor) -> Vec<f32> {
        let direct: Vec<f32> = critic_steps(critic2, max_steps, &self.states, goal_h)
            .into_iter()
            .map(|row| row[0])
            .collect();
        self.graph.to_goal(&direct)
    }

    /// The subgoal for the agent at `h0` `[1, dh]` (the goal, or a landmark), and the states
    /// from it to the goal along the graph `[P, dh]`.
    fn subgoal(
        &self,
        critic2: &CriticNet,
        max_steps: i64,
        h0: &Tensor,
        goal_h: &Tensor,
        to_goal: &[f32],
    ) -> (Tensor, Tensor) {
        let from = critic_steps(critic2, max_steps, h0, &self.states).remove(0);
        let direct = critic_steps(critic2, max_steps, h0, goal_h)[0][0];
        match self
            .graph
            .choose(&from, direct, to_goal, self.cfg.reach as f32)
        {
            Subgoal::Goal => (goal_h.shallow_clone(), goal_h.shallow_clone()),
            Subgoal::Landmark(i) => {
                let path: Vec<i64> = self
                    .graph
                    .path(i, to_goal)
                    .into_iter()
                    .map(|j| j as i64)
                    .collect();
                let on_path = self
                    .states
                    .index_select(0, &Tensor::from_slice(&path).to_device(h0.device()));
                (
                    self.states.get(i as i64).unsqueeze(0),
                    Tensor::cat(&[on_path, goal_h.shallow_clone()], 0),
                )
            }
        }
    }
}

/// Resolves and checks an agent file for planning in a scene; `checkpoint` overrides the
/// file's `planning.checkpoint` run folder.
pub fn load_planning_agent(
    agent_path: &Path,
    scene: &Scene,
    device: Option<&str>,
    checkpoint: Option<&Path>,
) -> Result<PlanningAgent, InputError> {
    assemble_planning_agent(
        AgentFile::load(agent_path)?,
        agent_path,
        scene,
        device,
        checkpoint,
    )
}

/// Assembles an agent from a parsed (possibly overridden) agent file; `agent_path` names it
/// in errors and anchors a relative `planning.checkpoint`.
pub fn assemble_planning_agent(
    agent: AgentFile,
    agent_path: &Path,
    scene: &Scene,
    device: Option<&str>,
    checkpoint: Option<&Path>,
) -> Result<PlanningAgent, InputError> {
    let Some(cfg) = agent.planning.clone() else {
        return Err(InputError::new(
            agent_path,
            "planning",
            "the agent file has no [planning] table (checkpoint, cost, planner)",
        ));
    };
    cfg.check_horizons(&agent, scene, agent_path)?;
    let run = checkpoint
        .map(Path::to_path_buf)
        .unwrap_or_else(|| resolve_run(&cfg.checkpoint, agent_path));
    if !run.join("checkpoint/meta.json").exists() && !run.join("checkpoint.old/meta.json").exists()
    {
        return Err(InputError::new(
            agent_path,
            "planning.checkpoint",
            format!(
                "no checkpoint at {} (train one with `hjepa train --agent {} --out {}`)",
                run.display(),
                agent_path.display(),
                run.display()
            ),
        ));
    }
    let device = agent.device(agent_path, device)?;
    let (trainer, meta) = Trainer::load(&run, Some(&agent), device)?;
    if (cfg.cost.critic > 0.0 || cfg.subgoal_critic > 0.0) && meta.critic.is_none() {
        return Err(InputError::new(
            agent_path,
            if cfg.cost.critic > 0.0 {
                "planning.cost.critic"
            } else {
                "planning.subgoal_critic"
            },
            format!(
                "the critic of {} was never fitted (training stopped before its fitting stage): finish it with `hjepa train --resume`",
                run.display()
            ),
        ));
    }
    check_scene_matches(scene, &agent, &meta, &run)?;
    let peers = load_peers(&cfg, &agent, agent_path, scene, device)?;
    let dynamics = load_dynamics(&cfg, &agent, agent_path, scene, device)?;
    let landmarks = match &cfg.landmarks {
        Some(l) => Some(Landmarks::load(
            l,
            &agent,
            agent_path,
            &meta,
            &trainer.model,
            device,
        )?),
        None => None,
    };
    agent.level1.action_frame.check_scene(scene, agent_path)?;
    agent
        .level1
        .state_frame
        .check_scene(&agent, scene, agent_path)?;
    let (space, agent_position) = match agent.level1.action_frame {
        ActionFrame::World => (ActionBox::of_space(&scene.agent.action), None),
        ActionFrame::Agent => {
            let names = Env::new(std::sync::Arc::new(scene.clone())).observation_state_names();
            let x = names.iter().position(|n| n == "agent.x");
            (
                ActionBox::agent_offsets(&scene.agent.action),
                Some(x.expect("checked: AgentPosition observed")),
            )
        }
    };
    Ok(PlanningAgent {
        agent,
        cfg,
        trainer,
        device,
        space,
        agent_position,
        memories: Vec::new(),
        peers,
        waypoint_subgoals: false,
        landmarks,
        sandbox_dynamics: false,
        sandbox: None,
        dynamics,
    })
}

/// Loads the state models of `planning.dynamics` and checks that each can predict for the
/// checkpoint's encoder: a state model (identity encoder) of this scene's state, with the
/// same action frame.
fn load_dynamics(
    cfg: &PlanningConfig,
    agent: &AgentFile,
    agent_path: &Path,
    scene: &Scene,
    device: Device,
) -> Result<Vec<Trainer>, InputError> {
    let mut models = Vec::with_capacity(cfg.dynamics.len());
    for (i, run) in cfg.dynamics.iter().enumerate() {
        let key = match cfg.dynamics.len() {
            1 => "planning.dynamics".to_string(),
            _ => format!("planning.dynamics[{i}]"),
        };
        models.push(load_state_model(
            run, &key, cfg, agent, agent_path, scene, device,
        )?);
    }
    Ok(models)
}

/// One state model of `planning.dynamics` (named `key` in the agent file).
fn load_state_model(
    run: &str,
    key: &str,
    cfg: &PlanningConfig,
    agent: &AgentFile,
    agent_path: &Path,
    scene: &Scene,
    device: Device,
) -> Result<Trainer, InputError> {
    let run = resolve_run(run, agent_path);
    if !run.join("checkpoint/meta.json").exists() && !run.join("checkpoint.old/meta.json").exists()
    {
        return Err(InputError::new(
            agent_path,
            key,
            format!(
                "no checkpoint at {} (train a state model there: an agent file with [perception] encoder = \"identity\")",
                run.display()
            ),
        ));
    }
    let (trainer, meta) = Trainer::load(&run, None, device)?;
    let own = &trainer.agent;
    let mismatch = if own.perception.encoder != EncoderKind::Identity {
        Some(
            "has a learned encoder; a dynamics model predicts the state itself ([perception] encoder = \"identity\")"
                .to_string(),
        )
    } else if agent.perception.observation != ObservationKind::State {
        Some(format!(
            "predicts states, but the checkpoint's encoder reads {:?} observations",
            agent.perception.observation
        ))
    } else {
        predicts_beside(own, agent, cfg)
    };
    if let Some(why) = mismatch {
        return Err(InputError::new(
            agent_path,
            key,
            format!("the model at {} {why}", run.display()),
        ));
    }
    check_scene_matches(scene, own, &meta, &run)?;
    Ok(trainer)
}

/// One model of an agent file's committee, as `hjepa train --committee` trains it.
#[derive(Clone, Debug, PartialEq)]
pub struct CommitteeMember {
    /// Where the agent file names it: `planning.checkpoint` or `planning.peers[i]`.
    pub key: String,
    pub run: PathBuf,
    pub seed: u64,
}

/// The models of an agent file's committee: `planning.checkpoint` trained with `seed` (the
/// file's `train.seed` unless given), then each `planning.peers[i]` with `seed + i + 1`, so
/// that the members are trainings of the same file that differ in seed only.
pub fn committee_members(
    agent_path: &Path,
    seed: Option<u64>,
) -> Result<Vec<CommitteeMember>, InputError> {
    let agent = AgentFile::load(agent_path)?;
    let Some(planning) = &agent.planning else {
        return Err(InputError::new(
            agent_path,
            "planning",
            "expected a [planning] section naming the committee's checkpoint and peers",
        ));
    };
    if planning.peers.is_empty() {
        return Err(InputError::new(
            agent_path,
            "planning.peers",
            "expected at least one peer to train beside the checkpoint (without peers, train \
             the checkpoint alone with --out)",
        ));
    }
    let base = seed.unwrap_or(agent.train.seed);
    let checkpoint = ("planning.checkpoint".to_string(), &planning.checkpoint);
    let peers = planning
        .peers
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("planning.peers[{i}]"), p));
    let members = std::iter::once(checkpoint)
        .chain(peers)
        .zip(0u64..)
        .map(|((key, run), i)| CommitteeMember {
            key,
            run: resolve_run(run, agent_path),
            seed: base + i,
        })
        .collect::<Vec<_>>();
    // Two members in one folder: the second training would overwrite the first.
    for (i, m) in members.iter().enumerate() {
        if let Some(first) = members[..i].iter().find(|o| o.run == m.run) {
            return Err(InputError::new(
                agent_path,
                &m.key,
                format!(
                    "{} is also {}: expected a run folder of its own",
                    m.run.display(),
                    first.key
                ),
            ));
        }
    }
    Ok(members)
}

/// Loads the committee's further models (`planning.peers`) and checks that each can plan
/// beside the checkpoint's: same observations, latent size and action frame, trained for
/// this scene, with what the cost asks of it.
fn load_peers(
    cfg: &PlanningConfig,
    agent: &AgentFile,
    agent_path: &Path,
    scene: &Scene,
    device: Device,
) -> Result<Vec<Trainer>, InputError> {
    let mut peers = Vec::with_capacity(cfg.peers.len());
    for (i, peer) in cfg.peers.iter().enumerate() {
        let key = format!("planning.peers[{i}]");
        let run = resolve_run(peer, agent_path);
        if !run.join("checkpoint/meta.json").exists()
            && !run.join("checkpoint.old/meta.json").exists()
        {
            return Err(InputError::new(
                agent_path,
                &key,
                format!(
                    "no checkpoint at {} (train one with `hjepa train --agent {} --seed <another seed> --out {}`)",
                    run.display(),
                    agent_path.display(),
                    run.display()
                ),
            ));
        }
        // Its own agent file: a peer may differ in seed, data or architecture.
        let (trainer, meta) = Trainer::load(&run, None, device)?;
        let own = &trainer.agent;
        let mismatch = if own.perception.observation != agent.perception.observation {
            Some(format!(
                "reads {:?} observations, the checkpoint's model {:?}",
                own.perception.observation, agent.perception.observation
            ))
        } else if own.perception.latent_dim != agent.perception.latent_dim {
            Some(format!(
                "has latent_dim {}, the checkpoint's model {} (the committee stacks their predictions)",
                own.perception.latent_dim, agent.perception.latent_dim
            ))
        } else if cfg.cost.level == 2 && !own.level2.enabled {
            Some("has no level 2, which planning.cost.level = 2 needs".into())
        } else if cfg.cost.critic > 0.0 && meta.critic.is_none() {
            Some("has no fitted critic, which planning.cost.critic needs".into())
        } else {
            predicts_beside(own, agent, cfg)
        };
        if let Some(why) = mismatch {
            return Err(InputError::new(
                agent_path,
                &key,
                format!("the model at {} {why}", run.display()),
            ));
        }
        check_scene_matches(scene, own, &meta, &run)?;
        peers.push(trainer);
    }
    Ok(peers)
}

/// Why a further model (a peer, the state model) cannot predict beside the checkpoint's
/// `agent`, if it cannot: another action frame, or no ensemble for the disagreement term.
fn predicts_beside(own: &AgentFile, agent: &AgentFile, cfg: &PlanningConfig) -> Option<String> {
    if own.level1.action_frame != agent.level1.action_frame {
        Some(format!(
            "takes actions in the {:?} frame, the checkpoint's model in the {:?} frame",
            own.level1.action_frame, agent.level1.action_frame
        ))
    } else if cfg.cost.disagreement > 0.0 && own.level1.ensemble < 2 {
        Some(format!(
            "has [level1] ensemble = {}; planning.cost.disagreement needs >= 2",
            own.level1.ensemble
        ))
    } else {
        None
    }
}

/// `checkpoint` paths are taken relative to the working directory, then to the agent file.
pub fn resolve_run(checkpoint: &str, agent_path: &Path) -> PathBuf {
    let p = PathBuf::from(checkpoint);
    if p.is_absolute() || p.exists() {
        return p;
    }
    agent_path
        .parent()
        .map(|d| d.join(&p))
        .filter(|q| q.exists())
        .unwrap_or(p)
}

/// The scene must produce the observations the checkpoint was trained on, at its env step.
pub fn check_scene_matches(
    scene: &Scene,
    agent: &AgentFile,
    checkpoint: &CheckpointMeta,
    run: &Path,
) -> Result<(), InputError> {
    let meta = run.join("checkpoint/meta.json");
    let shapes = &checkpoint.shapes;
    let (scene_shape, what): (Vec<i64>, &str) = match agent.perception.observation {
        ObservationKind::Pixels => match &scene.observation.image {
            Some(i) => (vec![i.height as i64, i.width as i64, 3], "image"),
            None => {
                return Err(InputError::new(
                    &meta,
                    "shapes.observation",
                    format!(
                        "the checkpoint reads pixels but scene {} renders no images",
                        scene.name
                    ),
                ))
            }
        },
        ObservationKind::State => {
            let env = Env::new(std::sync::Arc::new(scene.clone()));
            (
                vec![env.observation_state_names().len() as i64],
                "state vector",
            )
        }
    };
    if scene_shape != shapes.observation {
        return Err(InputError::new(
            &meta,
            "shapes.observation",
            format!("the checkpoint was trained on {what} observations of shape {:?}; scene {} gives {:?}", shapes.observation, scene.name, scene_shape),
        ));
    }
    if let Some((field, trained, now)) = checkpoint
        .env_step
        .as_ref()
        .and_then(|e| e.first_difference(&scene.physics.env_step()))
    {
        return Err(InputError::new(
            &meta,
            format!("env_step.{field}"),
            format!(
                "the checkpoint was trained with {field} {trained}; scene {} now steps with {now}: recollect its dataset and retrain",
                scene.name
            ),
        ));
    }
    Ok(())
}

impl PlanningAgent {
    pub fn model(&self) -> &WorldModel {
        &self.trainer.model
    }

    /// Level-2 states h of observations `[n, dh]` (None without level 2).
    pub fn abstract_states(&self, obs: &[&Observation]) -> Option<Tensor> {
        let l2 = self.trainer.model.level2.as_ref()?;
        let z = self.encode_batch(obs);
        Some(tch::no_grad(|| l2.abstract_state(&z)))
    }

    /// The hierarchical planner's way ahead at level 2, subgoal first `[H, dh]`: the states
    /// its upper plan predicts, or its landmark path and the goal (sandbox 0; None for a flat
    /// planner or before the first plan).
    pub fn upper_states(&self) -> Option<Tensor> {
        self.memories
            .first()?
            .as_ref()?
            .upper_states
            .as_ref()
            .map(|t| t.shallow_clone())
    }

    /// Whether sandbox 0 replans its lower level at this step (the single-sandbox
    /// diagnostics read the env just before).
    fn first_replan_due(&self) -> bool {
        let every = self.cfg.planner.replan_every;
        self.memories
            .first()
            .and_then(|m| m.as_ref())
            .is_some_and(|m| m.replan_due(every))
    }

    /// Before a lower-level replan of sandbox 0, sets its subgoal to the abstract state of the
    /// agent at rest at the next waypoint (other bodies where the episode started them).
    fn set_waypoint_subgoal(&mut self, env: &Env) {
        if !self.first_replan_due() {
            return;
        }
        let mut layout = env.layout().clone();
        layout.agent_start = crate::data::policy::next_waypoint(env);
        let waypoint = Env::new(env.scene().clone()).reset_to(layout);
        let h = self
            .abstract_states(&[&waypoint])
            .expect("validated: hierarchical");
        let m = self.memories[0].as_mut().expect("due");
        m.upper_states = Some(h.shallow_clone());
        m.subgoal = Some(h);
    }

    /// Encodes observations `[n]` in one forward pass: `[n, D]`.
    fn encode_batch(&self, obs: &[&Observation]) -> Tensor {
        encode_observations(
            &self.trainer.model,
            self.agent.perception.observation,
            self.device,
            obs,
        )
    }

    /// Before a lower-level replan of sandbox 0, snapshots the env for planning on its
    /// dynamics (`sandbox_dynamics`).
    fn snapshot_sandbox(&mut self, env: &Env) {
        if !self.first_replan_due() {
            return;
        }
        let scratch = match self.sandbox.take() {
            Some(s) => s.into_scratch(),
            None => SandboxModel::seeing_scratch_env(env.scene()),
        };
        self.sandbox = Some(SandboxModel::new(env, scratch, self.space.clone()));
    }

    /// Starts an episode in sandbox `slot` toward the goal shown by `goal`; planners are
    /// seeded from `seed`, so an episode plans the same whatever else the agent serves.
    pub fn reset_slot(&mut self, slot: usize, goal: &Observation, seed: u64) {
        let goal_z = self.encode_batch(&[goal]);
        let goal_h = abstract_goal(&self.trainer.model, &goal_z);
        let kind = self.agent.perception.observation;
        let peer_goals = self
            .peers
            .iter()
            .map(|p| {
                let z = encode_observations(&p.model, kind, self.device, &[goal]);
                PeerGoal {
                    h: abstract_goal(&p.model, &z),
                    z,
                }
            })
            .collect();
        if self.memories.len() <= slot {
            self.memories.resize_with(slot + 1, || None);
        }
        self.memories[slot] = Some(Memory {
            goal_z,
            goal_h,
            peer_goals,
            plan: None,
            executed: 0,
            upper_plan: None,
            upper_age: 0,
            subgoal: None,
            upper_states: None,
            planner: make_planner(&self.cfg.planner, seed),
            upper: self
                .cfg
                .upper
                .as_ref()
                .map(|u| make_planner(u, seed ^ 0x0A11)),
            replanned_from: None,
            landmarks_to_goal: None,
            last_action: [0.0; 2],
        });
        if let (Some(lm), Some(m)) = (&self.landmarks, self.memories[slot].as_mut()) {
            let model = &self.trainer.model;
            let critic2 = model.critic2.as_ref().expect("validated: [critic] level2");
            let goal_h = m.goal_h.as_ref().expect("validated: level 2");
            m.landmarks_to_goal = Some(lm.to_goal(critic2, model.critic_max_steps, goal_h));
        }
    }

    /// The next action of each listed sandbox (scene units) and its planning time. The
    /// sandboxes that must replan are encoded together, then planned one by one.
    pub fn act_batch(
        &mut self,
        slots: &[usize],
        obs: &[&Observation],
    ) -> Vec<([f32; 2], ActTiming)> {
        let every = self.cfg.planner.replan_every;
        let due: Vec<usize> = (0..slots.len())
            .filter(|&i| {
                self.memories[slots[i]]
                    .as_ref()
                    .is_some_and(|m| m.replan_due(every))
            })
            .collect();
        let mut timing = vec![ActTiming::default(); slots.len()];
        if !due.is_empty() {
            let t = Instant::now();
            let batch: Vec<&Observation> = due.iter().map(|&i| obs[i]).collect();
            let z = self.encode_batch(&batch);
            let kind = self.agent.perception.observation;
            let peer_z: Vec<Tensor> = self
                .peers
                .iter()
                .map(|p| encode_observations(&p.model, kind, self.device, &batch))
                .collect();
            let state_z: Vec<Tensor> = self
                .dynamics
                .iter()
                .map(|d| encode_observations(&d.model, kind, self.device, &batch))
                .collect();
            let encode_share = t.elapsed().as_secs_f64() / due.len() as f64;
            for (row, &i) in due.iter().enumerate() {
                let t = Instant::now();
                let row = row as i64;
                let peers_z0 = peer_z.iter().map(|z| z.narrow(0, row, 1)).collect();
                let s0 = state_z.iter().map(|z| z.narrow(0, row, 1)).collect();
                self.replan(slots[i], z.narrow(0, row, 1), peers_z0, s0);
                timing[i] = ActTiming {
                    planning_s: encode_share + t.elapsed().as_secs_f64(),
                    replanned: true,
                };
            }
        }
        slots
            .iter()
            .zip(obs)
            .zip(timing)
            .map(|((&slot, obs), timing)| {
                let m = self.memories[slot].as_mut().expect("reset_slot called");
                let plan = m.plan.as_ref().expect("planned");
                let x: Vec<f32> = Vec::try_from(
                    plan.get(m.executed)
                        .to_kind(Kind::Float)
                        .to_device(Device::Cpu),
                )
                .expect("float plan");
                m.executed += 1;
                m.upper_age += 1;
                // Offsets are taken from the agent's observed position (its proprioception).
                let at = self
                    .agent_position
                    .map_or([0.0; 2], |i| [obs.state[i], obs.state[i + 1]]);
                let a = self.space.to_scene(&x, at);
                m.last_action = [a[0], a[1]];
                (m.last_action, timing)
            })
            .collect()
    }

    /// Replans sandbox `slot` from its encoded observation `z0` `[1, D]` (both levels when
    /// due), each peer's encoding of it `peers_z0`, and each state model's `s0` (with
    /// `planning.dynamics`).
    fn replan(&mut self, slot: usize, z0: Tensor, peers_z0: Vec<Tensor>, s0: Vec<Tensor>) {
        let model = &self.trainer.model;
        let m = self.memories[slot].as_mut().expect("reset_slot called");
        // Sandbox 0 under the diagnostic plans on the sandbox's own dynamics, which need no
        // correction.
        let sandbox = self
            .sandbox
            .as_ref()
            .filter(|_| self.sandbox_dynamics && slot == 0);
        let correct = self.cfg.offset_correction && sandbox.is_none();
        let offset = match (&m.replanned_from, &m.plan) {
            (Some(z_prev), Some(plan)) if correct && m.executed > 0 => {
                let from_last = LatentUnroll {
                    model,
                    z0: z_prev.shallow_clone(),
                    offset: None,
                    each_member: false,
                };
                let taken = self.space.project(&plan.narrow(0, 0, m.executed));
                Some(executed_offset(&from_last, &taken, &z0))
            }
            _ => None,
        };
        m.replanned_from = Some(z0.shallow_clone());
        let latent = LatentUnroll {
            model,
            z0: z0.shallow_clone(),
            offset,
            each_member: model.members() > 1,
        };
        let (kind, device) = (self.agent.perception.observation, self.device);
        let encode = |obs: &[&Observation]| encode_observations(model, kind, device, obs);
        // The state models (`planning.dynamics`) predict for every scorer's encoder, or
        // join the committee as one more model seen through the checkpoint's encoder (or,
        // `dynamics_seen_by = "every"`, through each model's).
        let join = self.cfg.dynamics_role == DynamicsRole::Join;
        let every_encoder = !join || self.cfg.dynamics_seen_by == SeenBy::Every;
        let on_states = (sandbox.is_none() && !self.dynamics.is_empty()).then(|| {
            let dynamics: Vec<&WorldModel> = self.dynamics.iter().map(|d| &d.model).collect();
            StateModelUnroll {
                each_member: dynamics.iter().map(|d| d.members()).sum::<i64>() > 1,
                dynamics,
                s0,
                encoders: match every_encoder {
                    false => vec![model],
                    true => std::iter::once(model)
                        .chain(self.peers.iter().map(|p| &p.model))
                        .collect(),
                },
            }
        });
        let (on_states, joining) = match join {
            true => (None, on_states),
            false => (on_states, None),
        };
        // Under the sandbox diagnostic the committee's predictors are replaced too.
        let committee = (sandbox.is_none()
            && on_states.is_none()
            && (!self.peers.is_empty() || joining.is_some()))
        .then(|| CommitteeUnroll {
            models: std::iter::once(latent.shallow())
                .chain(self.peers.iter().zip(&peers_z0).map(|(p, z)| LatentUnroll {
                    model: &p.model,
                    z0: z.shallow_clone(),
                    offset: None,
                    each_member: p.model.members() > 1,
                }))
                .collect(),
            state_model: joining,
        });
        let on_sandbox;
        let (unroll, members): (&dyn Unroll, i64) = match sandbox {
            Some(sandbox) => {
                on_sandbox = SandboxEncoded {
                    sandbox,
                    encode: &encode,
                    device,
                };
                (&on_sandbox, 1)
            }
            // The cost must take the members apart exactly when the unroll returns them.
            None => match (&on_states, &committee) {
                (Some(s), _) => (s, s.rows()),
                (None, Some(c)) => (c, latent.rows()),
                (None, None) => (&latent, latent.rows()),
            },
        };
        let warm = m.plan.as_ref().map(|p| shift_plan(p, m.executed));
        let search = LowerSearch {
            unroll,
            members,
            disagreement: self.cfg.cost.disagreement,
            space: &self.space,
            warm: warm.as_ref(),
        };
        let plan = if self.cfg.hierarchical() {
            // The upper level, at its own rate: a landmark of the graph, or the first state
            // of a macro-action plan (unless the waypoint diagnostic set the subgoal).
            if !self.waypoint_subgoals {
                if let Some(lm) = &self.landmarks {
                    lm.refresh_subgoal(model, m, &z0);
                }
                refresh_macro_subgoal(&self.cfg, model, m, &z0);
            }
            plan_toward_subgoal(&self.cfg, model, m, &search)
        } else {
            // The checkpoint's model, then the peers (when the unroll runs them).
            let mut scorers = vec![FlatScorer {
                model,
                goal_z: &m.goal_z,
                goal_h: m.goal_h.as_ref(),
                rows: members,
                weight: 1.0,
            }];
            if committee.is_some() || (on_states.is_some() && !self.peers.is_empty()) {
                scorers.extend(
                    self.peers
                        .iter()
                        .zip(&m.peer_goals)
                        .map(|(p, g)| FlatScorer {
                            model: &p.model,
                            goal_z: &g.z,
                            goal_h: g.h.as_ref(),
                            rows: match &on_states {
                                Some(s) => s.rows(),
                                None => p.model.members(),
                            },
                            weight: 1.0,
                        }),
                );
            }
            // The state models that joined, scored by the checkpoint's encoder (and the
            // peers', seen by every one): pooled, one scorer per encoder; separate, one per
            // encoder and state model, in the unroll's order (encoder-, then model-major).
            if let Some(joined) = committee.as_ref().and_then(|c| c.state_model.as_ref()) {
                let seen_by = joined.encoders.len();
                let weight = self.cfg.dynamics_weight;
                let encoders = std::iter::once((model, &m.goal_z, m.goal_h.as_ref())).chain(
                    self.peers
                        .iter()
                        .zip(&m.peer_goals)
                        .map(|(p, g)| (&p.model, &g.z, g.h.as_ref())),
                );
                let blocks = joined.scorer_blocks(self.cfg.dynamics_separate);
                for (model, goal_z, goal_h) in encoders.take(seen_by) {
                    scorers.extend(blocks.iter().map(|&rows| FlatScorer {
                        model,
                        goal_z,
                        goal_h,
                        rows,
                        weight,
                    }));
                }
            }
            let objective = flat_objective(&self.cfg, &scorers, search.disagreement);
            m.planner
                .plan(search.unroll, objective.as_ref(), search.space, search.warm)
        };
        m.plan = Some(plan.actions);
        m.executed = 0;
    }
}

/// What the level-1 planner searches: its model of the dynamics (the predictor, or the
/// sandbox), the action box, and the warm start.
struct LowerSearch<'a> {
    unroll: &'a dyn Unroll,
    /// Predictions per candidate the unroll returns: the ensemble's members, or 1.
    members: i64,
    /// `planning.cost.disagreement`.
    disagreement: f64,
    space: &'a ActionBox,
    warm: Option<&'a Tensor>,
}

impl LowerSearch<'_> {
    /// The level-1 cost on this search's unroll: `cost` itself, or its mean over the
    /// ensemble's members plus their disagreement.
    fn objective<'b>(&self, cost: Box<dyn Objective + 'b>) -> Box<dyn Objective + 'b> {
        over_members(cost, self.members, self.disagreement)
    }
}

/// `cost` itself for one prediction per candidate, or its mean over `members` plus their
/// disagreement.
fn over_members<'b>(
    cost: Box<dyn Objective + 'b>,
    members: i64,
    disagreement: f64,
) -> Box<dyn Objective + 'b> {
    if members == 1 {
        return cost;
    }
    Box::new(EnsembleCost {
        inner: cost,
        members,
        disagreement,
    })
}

/// The goal's level-2 state under `model` (None without level 2).
fn abstract_goal(model: &WorldModel, goal_z: &Tensor) -> Option<Tensor> {
    let l2 = model.level2.as_ref()?;
    Some(tch::no_grad(|| l2.abstract_state(goal_z)))
}

/// HWM's upper level: when due, plans macro-actions toward the goal at level 2, and the
/// first state they predict (`subgoal_jump`) becomes the subgoal of `m`.
fn refresh_macro_subgoal(cfg: &PlanningConfig, model: &WorldModel, m: &mut Memory, z0: &Tensor) {
    let Some(upper_cfg) = &cfg.upper else {
        return;
    };
    if m.subgoal.is_some() && m.upper_age < upper_cfg.replan_every {
        return;
    }
    let l2 = model.level2.as_ref().expect("validated: level 2");
    let goal_h = m.goal_h.as_ref().expect("level 2 enabled");
    let h0 = tch::no_grad(|| l2.abstract_state(z0));
    // Where the last upper plan said we would be by now, once a jump has passed.
    let jumps = m.upper_age / l2.k;
    let offset = match &m.upper_states {
        Some(states) if cfg.upper_offset_correction && jumps > 0 => {
            let j = jumps.min(states.size()[0]);
            Some((&h0 - states.get(j - 1).unsqueeze(0)) / j as f64)
        }
        _ => None,
    };
    let search = AbstractUnroll {
        model,
        h0: h0.shallow_clone(),
        offset,
    };
    let objective = GoalCost {
        cfg: CostConfig {
            level: 2,
            ..cfg.cost.clone()
        },
        goal: goal_h.shallow_clone(),
        abstraction: None,
        critic: (cfg.cost.critic > 0.0).then(|| {
            let critic2 = model.critic2.as_ref().expect("validated: [critic] level2");
            (critic2, goal_h.shallow_clone(), model.critic_max_steps)
        }),
    };
    let warm = m.upper_plan.as_ref().map(|p| shift_plan(p, jumps));
    // The subgoal is the model's own prediction of the chosen macro-actions (uncorrected),
    // and the next correction compares against it.
    let predict = AbstractUnroll {
        model,
        h0,
        offset: None,
    };
    let upper = m.upper.as_mut().expect("made from [planning.upper]");
    let r = plan_upper(
        upper.as_mut(),
        &search,
        &predict,
        &objective,
        &ActionBox::unit(l2.macro_dim),
        warm.as_ref(),
        cfg.subgoal_jump,
    );
    m.subgoal = Some(r.subgoal);
    m.upper_states = Some(r.states);
    m.upper_plan = Some(r.plan.actions);
    m.upper_age = 0;
}

/// The hierarchical lower level: plans toward the subgoal of `m` by latent distance at
/// level 2 (plus `subgoal_critic` x the level-2 critic's steps to it). The goal's own terms
/// (distance, critic) weigh only the upper level's plans.
fn plan_toward_subgoal(
    cfg: &PlanningConfig,
    model: &WorldModel,
    m: &mut Memory,
    search: &LowerSearch,
) -> Plan {
    let l2 = model.level2.as_ref().expect("validated: level 2");
    let cost_cfg = CostConfig {
        level: 2,
        goal_weight: 1.0,
        ..cfg.cost.clone()
    };
    let objective_for = |sub: &Tensor| -> Box<dyn Objective + '_> {
        let distance = |abstraction| GoalCost {
            cfg: cost_cfg.clone(),
            goal: sub.shallow_clone(),
            abstraction,
            critic: None,
        };
        search.objective(if cfg.subgoal_critic > 0.0 {
            Box::new(SubgoalCost {
                distance: distance(None),
                level2: l2,
                critic2: model.critic2.as_ref().expect("validated: [critic] level2"),
                subgoal: sub.shallow_clone(),
                max_steps: model.critic_max_steps,
                weight: cfg.subgoal_critic,
            })
        } else {
            Box::new(distance(Some(l2)))
        })
    };
    plan_lower(
        m.planner.as_mut(),
        search.unroll,
        &objective_for,
        m.subgoal.as_ref().expect("set by the upper level"),
        search.space,
        search.warm,
    )
}

/// One model's view of the flat planner's goal: the goal as it encodes it, and how many
/// predictions per candidate its unroll returns.
struct FlatScorer<'a> {
    model: &'a WorldModel,
    goal_z: &'a Tensor,
    goal_h: Option<&'a Tensor>,
    rows: i64,
    /// Its weight in the committee's mean (`planning.dynamics_weight` for a joined state
    /// model, else 1).
    weight: f64,
}

/// The flat planner's cost: the goal terms at its level (latent distance, critic) under
/// each scorer's model, over its ensemble's members; with several models (a committee), the
/// weighted mean of their costs.
fn flat_objective<'a>(
    cfg: &PlanningConfig,
    scorers: &[FlatScorer<'a>],
    disagreement: f64,
) -> Box<dyn Objective + 'a> {
    let level2 = cfg.cost.level == 2;
    let mut parts: Vec<CommitteePart<'a>> = scorers
        .iter()
        .map(|s| {
            let goal = if level2 {
                s.goal_h.expect("level 2 enabled")
            } else {
                s.goal_z
            };
            let cost = GoalCost {
                cfg: cfg.cost.clone(),
                goal: goal.shallow_clone(),
                abstraction: if level2 {
                    s.model.level2.as_ref()
                } else {
                    None
                },
                critic: (cfg.cost.critic > 0.0).then(|| {
                    let critic = s
                        .model
                        .critic
                        .as_ref()
                        .expect("validated: [critic] enabled");
                    (critic, s.goal_z.shallow_clone(), s.model.critic_max_steps)
                }),
            };
            CommitteePart {
                objective: over_members(Box::new(cost), s.rows, disagreement),
                rows: s.rows,
                weight: s.weight,
            }
        })
        .collect();
    if parts.len() == 1 {
        return parts.pop().expect("one").objective;
    }
    Box::new(CommitteeCost {
        parts,
        disagreement: cfg.cost.peer_disagreement,
    })
}

impl Actor for PlanningAgent {
    fn reset(&mut self, env: &mut Env, seed: u64) {
        let goal = env.goal_observation();
        self.reset_slot(0, &goal, seed);
    }

    fn act(&mut self, env: &Env, obs: &Observation) -> ([f32; 2], ActTiming) {
        if self.waypoint_subgoals {
            self.set_waypoint_subgoal(env);
        }
        if self.sandbox_dynamics {
            self.snapshot_sandbox(env);
        }
        self.act_batch(&[0], &[obs])[0]
    }

    fn planned_actions(&self) -> Vec<[f32; 2]> {
        match self.memories.first().and_then(|m| m.as_ref()) {
            Some(m) => remaining(m.plan.as_ref(), m.executed, &self.space, m.last_action),
            None => Vec::new(),
        }
    }
}

/// A scripted policy (the random floor) behind the same interface as the planning agents.
pub struct ScriptedActor(pub Box<dyn crate::data::Policy>);

impl Actor for ScriptedActor {
    fn reset(&mut self, env: &mut Env, seed: u64) {
        self.0.reset(env, seed);
    }

    fn act(&mut self, env: &Env, _obs: &Observation) -> ([f32; 2], ActTiming) {
        (self.0.act(env), ActTiming::default())
    }
}

/// The same planner and budget with the sandbox as the model and the true cost.
pub struct OracleAgent {
    cfg: PlannerConfig,
    reduce: Reduce,
    planner: Box<dyn Planner>,
    space: ActionBox,
    scratch: Option<Env>,
    plan: Option<Tensor>,
    executed: i64,
}

impl OracleAgent {
    /// The sandbox is not differentiable: the planner must sample (cem, mppi, shooting).
    pub fn new(cfg: PlannerConfig, reduce: Reduce, scene: &Scene) -> Result<OracleAgent, String> {
        if cfg.kind == PlannerKind::Gradient {
            return Err("the oracle model (the sandbox) is not differentiable: plan it with cem, mppi or shooting".into());
        }
        Ok(OracleAgent {
            planner: make_planner(&cfg, 0),
            cfg,
            reduce,
            space: ActionBox::of_space(&scene.agent.action),
            scratch: None,
            plan: None,
            executed: 0,
        })
    }
}

impl Actor for OracleAgent {
    fn reset(&mut self, _env: &mut Env, seed: u64) {
        self.planner = make_planner(&self.cfg, seed);
        self.plan = None;
        self.executed = 0;
    }

    fn act(&mut self, env: &Env, _obs: &Observation) -> ([f32; 2], ActTiming) {
        let mut timing = ActTiming::default();
        if self.plan.is_none() || self.executed >= self.cfg.replan_every {
            let t = Instant::now();
            let scratch = self
                .scratch
                .take()
                .unwrap_or_else(|| SandboxModel::scratch_env(env.scene()));
            let model = SandboxModel::new(env, scratch, self.space.clone());
            let warm = self.plan.as_ref().map(|p| shift_plan(p, self.executed));
            let plan = self.planner.plan(
                &model,
                &TrueCost {
                    reduce: self.reduce,
                },
                &self.space,
                warm.as_ref(),
            );
            self.scratch = Some(model.into_scratch());
            self.plan = Some(plan.actions);
            self.executed = 0;
            timing = ActTiming {
                planning_s: t.elapsed().as_secs_f64(),
                replanned: true,
            };
        }
        let x: Vec<f32> = Vec::try_from(self.plan.as_ref().expect("planned").get(self.executed))
            .expect("float plan");
        self.executed += 1;
        let a = self.space.to_scene(&x, env.world().agent_position().into());
        ([a[0], a[1]], timing)
    }

    fn planned_actions(&self) -> Vec<[f32; 2]> {
        remaining(self.plan.as_ref(), self.executed, &self.space, [0.0; 2])
    }
}
