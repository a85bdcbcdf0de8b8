//! Agent files (`agents/*.toml`): the world model's configuration ([`ModelConfig`], the
//! part a checkpoint is bound to) and the `[planning]` table that says how the agent acts:
//! which checkpoint, which cost terms, which planner(s). Read once, checked whole; errors
//! name the file, the key and what was expected.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cost::CostConfig;
use crate::error::InputError;
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
            p.validate(&agent.model)
                .map_err(|(key, msg)| InputError::new(path, key, msg))?;
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
    pub fn validate(&self, agent: &ModelConfig) -> Result<(), (String, String)> {
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
