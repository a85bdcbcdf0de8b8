//! Experiment files (`experiments/*.toml`) and their deterministic expansion into runs.
//!
//! A grid is agents × scenes × variants × override values × seeds × actors. Each grid cell
//! resolves to a run whose id is a hash of what determines its outcome (the resolved agent
//! file, the scene file's text, the checkpoint's weights or the training run that makes them,
//! actor, seed, episodes), so cells that would play the same episodes — the random floor,
//! or the oracle under a model-only override — share one run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::agent::AgentFile;
use crate::data::PolicyKind;
use crate::device::Device;
use crate::error::InputError;
use crate::model::ModelConfig;

mod cells;
mod expand;
mod resolve;

pub use expand::expand;

/// An experiment file, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentFile {
    /// Names the results database; a database made for another name is refused.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Agent files (paths, or shipped agents' names).
    pub agents: Vec<String>,
    /// Scenes to evaluate in (default: each agent's own).
    #[serde(default)]
    pub scenes: Vec<String>,
    /// Who acts: `learned` (the planning agent), `oracle` (its planner on the sandbox),
    /// `random` (the floor).
    #[serde(default = "default_actors")]
    pub actors: Vec<ActorKind>,
    pub seeds: Vec<u64>,
    /// Episodes per run (one run = one cell × actor × seed).
    pub episodes: u64,
    /// Sandboxes one learned agent serves at once (`hjepa eval --parallel`).
    #[serde(default = "one")]
    pub parallel: usize,
    /// cpu, cuda or cuda:N for the learned agents and training (default: the agent files').
    #[serde(default)]
    pub device: Option<Device>,
    /// Axes of agent-file keys (dotted paths) and the values to try: the grid is their
    /// Cartesian product.
    #[serde(default)]
    pub overrides: BTreeMap<String, Vec<toml::Value>>,
    /// Named variants of every agent file (e.g. `flat` removes `planning.upper`).
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// Train the models first (collect, then `hjepa train`); the learned runs use these
    /// checkpoints instead of `planning.checkpoint`.
    #[serde(default)]
    pub train: Option<TrainStage>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    /// Agent-file keys to set.
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
    /// Agent-file keys (optional tables such as `planning.upper`) to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainStage {
    /// Episodes collected per scene for training.
    pub collect_episodes: u64,
    /// Per-scene exceptions to `collect_episodes`.
    #[serde(default)]
    pub collect_episodes_per_scene: BTreeMap<String, u64>,
    #[serde(default = "one_u64")]
    pub collect_seed: u64,
    #[serde(default = "smooth_walk")]
    pub policy: PolicyKind,
    #[serde(default = "default_noise")]
    pub noise: f32,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Learned,
    Oracle,
    Random,
}

impl ActorKind {
    pub fn name(self) -> &'static str {
        match self {
            ActorKind::Learned => "learned",
            ActorKind::Oracle => "oracle",
            ActorKind::Random => "random",
        }
    }
}

fn default_actors() -> Vec<ActorKind> {
    vec![ActorKind::Learned, ActorKind::Random]
}
fn one() -> usize {
    1
}
fn one_u64() -> u64 {
    1
}
fn smooth_walk() -> PolicyKind {
    PolicyKind::SmoothWalk
}
fn default_noise() -> f32 {
    0.3
}

/// Where a learned run's weights come from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// An existing run folder; `weights` is the SHA-256 of its `model.safetensors`.
    Checkpoint { run: PathBuf, weights: String },
    /// The experiment's training run with this id.
    Trained { run_id: String },
}

/// What a run does, resolved: everything that determines its outcome, plus where to find it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunConfig {
    /// Collect a dataset and train the world model of `agent` (its model part).
    Train {
        agent: ModelConfig,
        scene: String,
        scene_sha256: String,
        collect: CollectConfig,
        device: Option<Device>,
    },
    /// Closed-loop episodes of one actor.
    Eval {
        actor: ActorKind,
        scene: String,
        scene_sha256: String,
        /// The resolved agent file (learned runs).
        agent: Option<AgentFile>,
        /// The planner the oracle runs on the sandbox (oracle runs).
        oracle: Option<OracleConfig>,
        model: Option<ModelSource>,
        seed: u64,
        episodes: u64,
        parallel: usize,
        device: Option<Device>,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OracleConfig {
    pub planner: crate::plan::PlannerConfig,
    pub reduce: crate::cost::Reduce,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CollectConfig {
    pub episodes: u64,
    pub seed: u64,
    pub policy: PolicyKind,
    pub noise: f32,
}

/// One unique run of the grid.
#[derive(Clone, Debug)]
pub struct Run {
    /// First 16 hex digits of `config_hash`.
    pub id: String,
    pub config_hash: String,
    pub config: RunConfig,
    /// Position in the expansion (shards and the run order follow it).
    pub ordinal: usize,
    /// The label of the first cell that asked for it.
    pub label: CellLabel,
    /// Files the run reads, for error messages and relative paths (not hashed).
    pub agent_path: Option<PathBuf>,
    pub scene_path: PathBuf,
}

/// Where a run sits in the grid, as the report groups it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellLabel {
    pub scene: String,
    pub agent: String,
    pub variant: String,
    /// `key=value` pairs of the override axes, sorted by key.
    pub overrides: String,
}

/// A grid cell × actor × seed and the run that answers it.
#[derive(Clone, Debug, PartialEq)]
pub struct GridEntry {
    pub cell: usize,
    pub label: CellLabel,
    pub actor: ActorKind,
    pub seed: u64,
    pub episodes: u64,
    pub run_id: String,
}

/// An expanded experiment.
#[derive(Clone, Debug)]
pub struct Grid {
    pub name: String,
    pub description: String,
    /// Hash of the name and every grid entry: shards and resumed runs must agree on it.
    pub hash: String,
    /// Unique runs: training runs first, then evaluations in expansion order.
    pub runs: Vec<Run>,
    pub entries: Vec<GridEntry>,
    pub file_text: String,
    pub train: Option<TrainStage>,
}

/// `--shard i/n`: the runs whose position among the evaluations is i mod n, and the
/// training runs they need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("shard {s:?}: expected i/n with 0 <= i < n (e.g. 0/3, 1/3, 2/3)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<usize>().map_err(|_| bad())?,
            n.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl ExperimentFile {
    pub fn load(path: &Path) -> Result<(ExperimentFile, String), InputError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::new(path, "", format!("cannot read experiment file: {e}")))?;
        let file: ExperimentFile =
            toml::from_str(&text).map_err(|e| InputError::from_toml(path, &text, &e))?;
        Ok((file, text))
    }
}

/// Loads and expands an experiment file; every error names the file and the key.
pub fn expand_file(path: &Path) -> Result<Grid, InputError> {
    let (file, text) = ExperimentFile::load(path)?;
    expand(&file, &text, path)
}

/// The run's id (16 hex digits) and full hash: SHA-256 of its canonical JSON.
pub fn run_id(config: &RunConfig) -> (String, String) {
    // A checkpoint is identified by its weights; where it was found (relative to the working
    // directory or not) must not change the id.
    let mut keyed = config.clone();
    if let RunConfig::Eval {
        model: Some(ModelSource::Checkpoint { run, .. }),
        ..
    } = &mut keyed
    {
        *run = PathBuf::new();
    }
    let json = serde_json::to_string(&keyed).expect("run configs serialise");
    let hash = sha256_hex(json.as_bytes());
    (hash[..16].to_string(), hash)
}

impl Grid {
    /// The runs of a shard (all of them without one): evaluations at positions i mod n, and
    /// the training runs they need.
    pub fn shard_runs(&self, shard: Option<Shard>) -> Vec<&Run> {
        let evals: Vec<&Run> = self
            .runs
            .iter()
            .filter(|r| matches!(r.config, RunConfig::Eval { .. }))
            .enumerate()
            .filter(|(i, _)| shard.is_none_or(|s| i % s.count == s.index))
            .map(|(_, r)| r)
            .collect();
        let needed: Vec<&str> = evals
            .iter()
            .filter_map(|r| match &r.config {
                RunConfig::Eval {
                    model: Some(ModelSource::Trained { run_id }),
                    ..
                } => Some(run_id.as_str()),
                _ => None,
            })
            .collect();
        let mut out: Vec<&Run> = self
            .runs
            .iter()
            .filter(|r| {
                matches!(r.config, RunConfig::Train { .. }) && needed.contains(&r.id.as_str())
            })
            .collect();
        out.extend(evals);
        out
    }

    pub fn run(&self, id: &str) -> Option<&Run> {
        self.runs.iter().find(|r| r.id == id)
    }
}
