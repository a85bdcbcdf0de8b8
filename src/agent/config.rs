//! Agent files (`agents/*.toml`): the world model's configuration ([`ModelConfig`], the
//! part a checkpoint is bound to) and the `[planning]` table that says how the agent acts:
//! which checkpoint, which cost terms, which planner(s). Read once, checked whole; errors
//! name the file, the key and what was expected.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dynamics::{is_unit_weight, one_or_many, unit_weight, DynamicsKeys};
pub use super::dynamics::{Dynamics, DynamicsRole, JoinedDynamics, SeenBy};
use crate::cost::CostConfig;
use crate::error::{ConfigError, InputError};
use crate::model::config::{Critic, Level1, Level2, Perception, Train};
use crate::model::ModelConfig;
use crate::plan::landmarks::LandmarkConfig;
use crate::plan::{PlannerConfig, PlannerKind};
use crate::sim::shipped;
use crate::sim::Scene;

/// An agent file: a world model's configuration and, for an agent that acts, its
/// `[planning]` table. Derefs to the model's configuration (`agent.level1`, `agent.train`),
/// which is what training and checkpoints see.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "FileTables", into = "FileTables")]
pub struct AgentFile {
    pub model: ModelConfig,
    /// How the agent acts: checkpoint, cost terms, planner(s). Absent for a model that is
    /// only trained; not part of what a checkpoint must match.
    pub planning: Option<PlanningConfig>,
}

impl std::ops::Deref for AgentFile {
    type Target = ModelConfig;
    fn deref(&self) -> &ModelConfig {
        &self.model
    }
}

impl std::ops::DerefMut for AgentFile {
    fn deref_mut(&mut self) -> &mut ModelConfig {
        &mut self.model
    }
}

/// The file as written: the model's tables and `[planning]` side by side, so that a TOML
/// error (an unknown key, a wrong type) is located by line and column in one pass.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTables {
    scene: String,
    perception: Perception,
    level1: Level1,
    level2: Level2,
    #[serde(default)]
    critic: Critic,
    train: Train,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    planning: Option<PlanningConfig>,
}

impl AgentFile {
    /// An agent argument: a path, or the name of a shipped agent (`two_rooms` ->
    /// `agents/two_rooms.toml`, on disk here or embedded in the binary).
    pub fn resolve_path(arg: &str) -> PathBuf {
        shipped::resolve(arg, shipped::Kind::Agent)
    }

    pub fn load(path: &Path) -> Result<AgentFile, InputError> {
        let text = shipped::read(path, shipped::Kind::Agent)
            .map_err(|e| InputError::new(path, "", format!("cannot read agent file: {e}")))?;
        AgentFile::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<AgentFile, InputError> {
        let agent: AgentFile =
            toml::from_str(text).map_err(|e| InputError::from_toml(path, text, &e))?;
        agent.model.validate(path)?;
        if let Some(p) = &agent.planning {
            p.validate(&agent.model).map_err(|e| e.in_file(path))?;
        }
        Ok(agent)
    }
}

impl From<FileTables> for AgentFile {
    fn from(t: FileTables) -> AgentFile {
        AgentFile {
            model: ModelConfig {
                scene: t.scene,
                perception: t.perception,
                level1: t.level1,
                level2: t.level2,
                critic: t.critic,
                train: t.train,
            },
            planning: t.planning,
        }
    }
}

impl From<AgentFile> for FileTables {
    fn from(a: AgentFile) -> FileTables {
        let m = a.model;
        FileTables {
            scene: m.scene,
            perception: m.perception,
            level1: m.level1,
            level2: m.level2,
            critic: m.critic,
            train: m.train,
            planning: a.planning,
        }
    }
}

/// The `[planning]` table of an agent file, read into typed values: the state-model keys
/// (`dynamics*`) become one [`Dynamics`], checked as they are read.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(try_from = "PlanningTable", into = "PlanningTable")]
pub struct PlanningConfig {
    /// Run folder (made by `hjepa train`) whose checkpoint the agent loads.
    pub checkpoint: String,
    /// The shipped model (`models/NAME`) loaded when `checkpoint` holds no trained run.
    pub model: Option<String>,
    /// Further run folders whose world models plan beside the checkpoint's as a committee
    /// (`planning.peers`).
    pub peers: Vec<String>,
    /// State models that predict the candidates, and how (`planning.dynamics*`).
    pub dynamics: Dynamics,
    pub cost: CostConfig,
    /// The flat planner, or the lower level of the hierarchical one.
    pub planner: PlannerConfig,
    /// When present, plan hierarchically: this planner searches macro-actions at level 2.
    pub upper: Option<PlannerConfig>,
    pub offset_correction: bool,
    pub upper_offset_correction: bool,
    pub subgoal_jump: i64,
    pub subgoal_critic: f64,
    pub landmarks: Option<LandmarkConfig>,
}

/// The `[planning]` table as written (docs/agents.md lists its keys).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanningTable {
    /// Run folder (made by `hjepa train`) whose checkpoint the agent loads.
    checkpoint: String,
    /// A shipped model (`models/NAME`, made by `hjepa export`) loaded when `checkpoint` holds
    /// no trained run: a trained run takes precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    /// Further run folders whose world models plan beside the checkpoint's as a committee
    /// (flat planner only): each was trained for the same scene and observations, with its
    /// own encoder (another `[train] seed`, other data). Every model predicts the candidates
    /// from its own encoding of the observation and scores them against its own encoding of
    /// the goal (its ensemble's mean and disagreement, as for the checkpoint alone); a
    /// candidate costs the mean over the models. The predictors of one model share an
    /// encoder and a batch order; separately trained models fail on different goals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    peers: Vec<String>,
    /// The run folder of a state model (`[perception] encoder = "identity"`: its predictors
    /// model the normalised state itself), or a list of them, that predicts the candidates
    /// instead of the checkpoint's predictors (flat planner only). Its predicted states are
    /// encoded by the checkpoint's encoder (and each peer's) and scored there, so the cost
    /// stays the learned latent distance while the dynamics are learned where they are
    /// simplest. Several state models pool their predictors into one ensemble, whose
    /// disagreement is their members'.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "one_or_many")]
    dynamics: Vec<String>,
    /// What `dynamics` does: `replace` the predictors (default), or `join` them: the
    /// checkpoint (and peers) predict as usual and the state models' predictions, encoded
    /// as `dynamics_seen_by` says, are one more model of the committee.
    #[serde(default, skip_serializing_if = "DynamicsRole::is_replace")]
    dynamics_role: DynamicsRole,
    /// With `dynamics_role = "join"`, whose encoders score the state models' predictions:
    /// the `checkpoint`'s (default: they weigh as one model of the committee), or `every`
    /// model's of the committee (one scorer per encoder: they weigh as much as the latent
    /// predictors together).
    #[serde(default, skip_serializing_if = "SeenBy::is_checkpoint")]
    dynamics_seen_by: SeenBy,
    /// With `dynamics_role = "join"`, the weight of the state models' cost (each scorer's)
    /// in the committee's mean, where every other model weighs 1.
    #[serde(default = "unit_weight", skip_serializing_if = "is_unit_weight")]
    dynamics_weight: f64,
    /// With `dynamics_role = "join"` and several state models: each joins the committee as
    /// a model of its own (its ensemble's mean and disagreement, weighed `dynamics_weight`)
    /// instead of pooling their predictors into one ensemble.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    dynamics_separate: bool,
    #[serde(default)]
    cost: CostConfig,
    /// The flat planner, or the lower level of the hierarchical one.
    planner: PlannerConfig,
    /// When present, plan hierarchically: this planner searches macro-actions at level 2
    /// (`horizon` in jumps, `replan_every` in env steps) and hands a subgoal down.
    #[serde(default)]
    upper: Option<PlannerConfig>,
    /// Offset-free MPC: at each replan, the gap between the observed z and what the model
    /// predicted for it from the last replan's z and the actions taken since (per step) is
    /// added to every step of the candidates' predictions. Where the predictor is wrong in
    /// one place, e.g. a move blocked by a wall it predicts as free, the plans see it.
    #[serde(default)]
    offset_correction: bool,
    /// The same at the upper level (needs `[planning.upper]`): when it replans, the gap
    /// between the observed abstract state and the one its last plan predicted for now (per
    /// jump) is added to every jump of its candidates' predictions, so a subgoal the lower
    /// level could not reach (a macro-action the level-2 predictor thinks crosses a wall)
    /// stops looking good. The subgoal handed down stays the model's own prediction.
    #[serde(default)]
    upper_offset_correction: bool,
    /// With `[planning.upper]`: which of the upper plan's predicted states is handed down as
    /// the subgoal, in jumps (1, HWM's: the state after the first macro-action).
    #[serde(default = "first_jump")]
    subgoal_jump: i64,
    /// With `[planning.upper]`: the weight of the level-2 critic's cost-to-go from the lower
    /// level's predicted states to the subgoal, added to their latent distance to it (weight
    /// 1); the distance alone pulls straight at a subgoal behind a wall. Needs `[critic]
    /// level2 = true`.
    #[serde(default)]
    subgoal_critic: f64,
    /// When present, plan hierarchically with landmark subgoals instead of `[planning.upper]`:
    /// the upper level searches a graph of states the data visited (see
    /// [`crate::plan::landmarks`]). Needs level 2 and its critic.
    #[serde(default)]
    landmarks: Option<LandmarkConfig>,
}

impl TryFrom<PlanningTable> for PlanningConfig {
    type Error = ConfigError;
    fn try_from(t: PlanningTable) -> Result<PlanningConfig, ConfigError> {
        Ok(PlanningConfig {
            dynamics: Dynamics::from_keys(&DynamicsKeys {
                runs: t.dynamics.clone(),
                role: t.dynamics_role,
                seen_by: t.dynamics_seen_by,
                weight: t.dynamics_weight,
                separate: t.dynamics_separate,
            })?,
            checkpoint: t.checkpoint,
            model: t.model,
            peers: t.peers,
            cost: t.cost,
            planner: t.planner,
            upper: t.upper,
            offset_correction: t.offset_correction,
            upper_offset_correction: t.upper_offset_correction,
            subgoal_jump: t.subgoal_jump,
            subgoal_critic: t.subgoal_critic,
            landmarks: t.landmarks,
        })
    }
}

impl From<PlanningConfig> for PlanningTable {
    fn from(p: PlanningConfig) -> PlanningTable {
        let joined = p.dynamics.joined().cloned();
        PlanningTable {
            dynamics: p.dynamics.runs().to_vec(),
            dynamics_role: match joined {
                Some(_) => DynamicsRole::Join,
                None => DynamicsRole::Replace,
            },
            dynamics_seen_by: joined.as_ref().map_or(SeenBy::Checkpoint, |j| j.seen_by),
            dynamics_weight: joined.as_ref().map_or(1.0, |j| j.weight),
            dynamics_separate: joined.as_ref().is_some_and(|j| j.separate),
            checkpoint: p.checkpoint,
            model: p.model,
            peers: p.peers,
            cost: p.cost,
            planner: p.planner,
            upper: p.upper,
            offset_correction: p.offset_correction,
            upper_offset_correction: p.upper_offset_correction,
            subgoal_jump: p.subgoal_jump,
            subgoal_critic: p.subgoal_critic,
            landmarks: p.landmarks,
        }
    }
}

fn first_jump() -> i64 {
    1
}
impl PlanningConfig {
    /// Whether an upper level hands subgoals down (`[planning.upper]` or `[planning.landmarks]`).
    pub fn hierarchical(&self) -> bool {
        self.upper.is_some() || self.landmarks.is_some()
    }

    /// Checks the planning table against the model it will drive; errors name the key.
    pub fn validate(&self, agent: &ModelConfig) -> Result<(), ConfigError> {
        self.planner.validate("planning.planner")?;
        self.check_cost(agent)?;
        self.check_subgoal_critic(agent)?;
        self.check_landmarks(agent)?;
        self.check_committee()?;
        self.check_upper(agent)
    }

    /// `planning.cost`: its level, and weights >= 0 whose terms the model can compute.
    fn check_cost(&self, agent: &ModelConfig) -> Result<(), ConfigError> {
        let cost = &self.cost;
        if !(1..=2).contains(&cost.level) {
            return Err(ConfigError::expected(
                "planning.cost.level",
                "1 or 2",
                cost.level,
            ));
        }
        if cost.level == 2 && !agent.level2.enabled {
            return Err(ConfigError::needs(
                "planning.cost.level",
                "level 2 costs need level2.enabled = true",
            ));
        }
        for (k, v) in [
            ("goal_weight", cost.goal_weight),
            ("action_magnitude", cost.action_magnitude),
            ("action_smoothness", cost.action_smoothness),
            ("critic", cost.critic),
            ("disagreement", cost.disagreement),
        ] {
            non_negative(&format!("planning.cost.{k}"), v)?;
        }
        // discount^t over a horizon: past 10 it overflows, and 0 or below keeps no step.
        if !(cost.discount.is_finite() && cost.discount > 0.0 && cost.discount <= 10.0) {
            return Err(ConfigError::expected(
                "planning.cost.discount",
                "a number in (0, 10] (1 weighs every step the same)",
                cost.discount,
            ));
        }
        if cost.critic > 0.0 && !agent.critic.enabled {
            return Err(ConfigError::needs(
                "planning.cost.critic",
                "a critic cost needs [critic] enabled = true in the model",
            ));
        }
        // With `dynamics` the state model's members disagree (checked when it is loaded).
        if cost.disagreement > 0.0 && agent.level1.ensemble < 2 && self.dynamics.runs().is_empty() {
            return Err(ConfigError::needs(
                "planning.cost.disagreement",
                format!(
                    "weighs the disagreement of level-1 predictors: it needs [level1] ensemble >= 2 in the model, found {}",
                    agent.level1.ensemble
                ),
            ));
        }
        Ok(())
    }

    /// `planning.subgoal_critic`: a weight, for a hierarchical agent with a level-2 critic.
    fn check_subgoal_critic(&self, agent: &ModelConfig) -> Result<(), ConfigError> {
        non_negative("planning.subgoal_critic", self.subgoal_critic)?;
        if self.subgoal_critic > 0.0
            && (!self.hierarchical() || !agent.critic.enabled || !agent.critic.level2)
        {
            return Err(ConfigError::needs(
                "planning.subgoal_critic",
                "scores the lower level's states against the upper level's subgoal: it needs [planning.upper] or [planning.landmarks], and [critic] enabled = true, level2 = true in the model",
            ));
        }
        Ok(())
    }

    /// `[planning.landmarks]`: instead of `[planning.upper]`, on level 2 and its critic.
    fn check_landmarks(&self, agent: &ModelConfig) -> Result<(), ConfigError> {
        let Some(l) = &self.landmarks else {
            return Ok(());
        };
        l.validate()?;
        if self.upper.is_some() {
            return Err(ConfigError::needs(
                "planning.landmarks",
                "replaces the upper planner: give [planning.upper] or [planning.landmarks], not both",
            ));
        }
        if !(agent.level2.enabled && agent.critic.enabled && agent.critic.level2) {
            return Err(ConfigError::needs(
                "planning.landmarks",
                "landmarks are level-2 states joined by the level-2 critic: they need level2.enabled = true and [critic] enabled = true, level2 = true in the model",
            ));
        }
        Ok(())
    }

    /// Peers and state models: a committee plans flat.
    fn check_committee(&self) -> Result<(), ConfigError> {
        let peer_disagreement = self.cost.peer_disagreement;
        non_negative("planning.cost.peer_disagreement", peer_disagreement)?;
        if peer_disagreement > 0.0 && self.peers.is_empty() {
            return Err(ConfigError::needs(
                "planning.cost.peer_disagreement",
                "weighs the disagreement of a committee's models: it needs [planning] peers",
            ));
        }
        let flat_only = self.hierarchical() || self.offset_correction;
        if !self.peers.is_empty() && flat_only {
            return Err(ConfigError::needs(
                "planning.peers",
                "a committee of models plans flat: it cannot be combined with [planning.upper], [planning.landmarks] or offset_correction",
            ));
        }
        if !self.dynamics.runs().is_empty() && flat_only {
            return Err(ConfigError::needs(
                "planning.dynamics",
                "a state model predicts for the flat planner: it cannot be combined with [planning.upper], [planning.landmarks] or offset_correction",
            ));
        }
        Ok(())
    }

    /// `[planning.upper]`: a cem or mppi planner over level-2 jumps, and what hangs on it.
    fn check_upper(&self, agent: &ModelConfig) -> Result<(), ConfigError> {
        if self.upper_offset_correction && self.upper.is_none() {
            return Err(ConfigError::needs(
                "planning.upper_offset_correction",
                "corrects the upper level's predictions: it needs [planning.upper]",
            ));
        }
        let Some(u) = &self.upper else {
            return Ok(());
        };
        u.validate_with_jumps("planning.upper", agent.level2.k)?;
        if !(1..=u.horizon).contains(&self.subgoal_jump) {
            return Err(ConfigError::expected(
                "planning.subgoal_jump",
                format!("1..=planning.upper.horizon ({})", u.horizon),
                self.subgoal_jump,
            ));
        }
        if !agent.level2.enabled {
            return Err(ConfigError::needs(
                "planning.upper",
                "hierarchical planning needs level2.enabled = true",
            ));
        }
        if u.kind == PlannerKind::Gradient {
            return Err(ConfigError::needs(
                "planning.upper.kind",
                "the upper level plans with cem or mppi",
            ));
        }
        if self.cost.critic > 0.0 && !agent.critic.level2 {
            return Err(ConfigError::needs(
                "planning.cost.critic",
                "with [planning.upper] the critic scores the upper level's states: it needs [critic] level2 = true in the model",
            ));
        }
        Ok(())
    }

    /// Longest plans the model supports, checked against the scene once it is known: a
    /// plan may not reach past the end of an episode.
    pub fn check_horizons(
        &self,
        agent: &ModelConfig,
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

/// A cost weight: finite and >= 0.
fn non_negative(key: &str, weight: f64) -> Result<(), ConfigError> {
    if weight.is_finite() && weight >= 0.0 {
        Ok(())
    } else {
        Err(ConfigError::expected(key, "a weight >= 0", weight))
    }
}
