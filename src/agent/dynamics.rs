//! Which models predict a plan's candidates: the checkpoint's own predictors, or state models
//! (`planning.dynamics`) that replace them or join the committee. The file's five flat keys
//! are read into one [`Dynamics`].

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// The five `planning.dynamics*` keys as written.
pub(super) struct DynamicsKeys {
    pub(super) runs: Vec<String>,
    pub(super) role: DynamicsRole,
    pub(super) seen_by: SeenBy,
    pub(super) weight: f64,
    pub(super) separate: bool,
}

/// Which models predict the candidates (`planning.dynamics`, `dynamics_role`,
/// `dynamics_seen_by`, `dynamics_weight`, `dynamics_separate`).
#[derive(Clone, Debug, PartialEq)]
pub enum Dynamics {
    /// The checkpoint's own predictors (no `planning.dynamics`).
    Own,
    /// State models (`[perception] encoder = "identity"`) replace the predictors; their
    /// predicted states are encoded by every model of the committee. Several pool their
    /// predictors into one ensemble.
    Replace { runs: Vec<String> },
    /// The checkpoint (and peers) predict as usual and the state models join the committee.
    Join(JoinedDynamics),
}

/// State models that join the committee (`dynamics_role = "join"`).
#[derive(Clone, Debug, PartialEq)]
pub struct JoinedDynamics {
    pub runs: Vec<String>,
    /// Whose encoders score their predictions.
    pub seen_by: SeenBy,
    /// Their cost's weight in the committee's mean, where every other model weighs 1.
    pub weight: f64,
    /// Each (of at least two) a model of its own instead of one pooled ensemble.
    pub separate: bool,
}

impl Dynamics {
    /// The state models' run folders, in the file's order (empty: [`Dynamics::Own`]).
    pub fn runs(&self) -> &[String] {
        match self {
            Dynamics::Own => &[],
            Dynamics::Replace { runs } | Dynamics::Join(JoinedDynamics { runs, .. }) => runs,
        }
    }

    /// The joined state models, when they join the committee.
    pub fn joined(&self) -> Option<&JoinedDynamics> {
        match self {
            Dynamics::Join(j) => Some(j),
            _ => None,
        }
    }

    /// Reads the file's five keys into one choice; errors name the key that cannot be.
    pub(super) fn from_keys(t: &DynamicsKeys) -> Result<Dynamics, ConfigError> {
        let join = t.role == DynamicsRole::Join;
        if join && t.runs.is_empty() {
            return Err(ConfigError::needs(
                "planning.dynamics_role",
                "\"join\" adds the state model of planning.dynamics to the committee: name one there",
            ));
        }
        let weight = t.weight;
        if !(weight.is_finite() && weight > 0.0) {
            return Err(ConfigError::expected(
                "planning.dynamics_weight",
                "a weight > 0",
                weight,
            ));
        }
        if weight != 1.0 && !join {
            return Err(ConfigError::needs(
                "planning.dynamics_weight",
                "weighs the state models that join the committee: it needs dynamics_role = \"join\"",
            ));
        }
        if t.separate && (!join || t.runs.len() < 2) {
            return Err(ConfigError::needs(
                "planning.dynamics_separate",
                format!(
                    "makes each of several joined state models a model of the committee: it needs dynamics_role = \"join\" and at least two run folders in planning.dynamics, found {}",
                    t.runs.len()
                ),
            ));
        }
        if t.seen_by != SeenBy::Checkpoint && !join {
            return Err(ConfigError::needs(
                "planning.dynamics_seen_by",
                "chooses the encoders of state models that join the committee: it needs dynamics_role = \"join\" (replacing, they are seen by every encoder)",
            ));
        }
        let runs = t.runs.clone();
        Ok(match (join, runs.is_empty()) {
            (true, _) => Dynamics::Join(JoinedDynamics {
                runs,
                seen_by: t.seen_by,
                weight,
                separate: t.separate,
            }),
            (false, true) => Dynamics::Own,
            (false, false) => Dynamics::Replace { runs },
        })
    }
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
    pub(super) fn is_replace(&self) -> bool {
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
    pub(super) fn is_checkpoint(&self) -> bool {
        *self == SeenBy::Checkpoint
    }
}

/// `planning.dynamics`: one run folder, or a list of them (one is written back as a string,
/// so files and batch run ids from before lists read the same).
pub(super) mod one_or_many {
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

pub(super) fn unit_weight() -> f64 {
    1.0
}
pub(super) fn is_unit_weight(w: &f64) -> bool {
    *w == 1.0
}
