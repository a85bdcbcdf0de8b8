//! Experiment files (`experiments/*.toml`) and their deterministic expansion into runs.
//!
//! A grid is agents × scenes × variants × override values × seeds × actors. Each grid cell
//! resolves to a run whose id is a hash of what determines its outcome (the resolved agent
//! file, the scene file's text, the checkpoint's weights or the training run that makes them,
//! actor, seed, episodes), so cells that would play the same episodes — the random floor,
//! or the oracle under a model-only override — share one run.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::agent::AgentFile;
use crate::data::PolicyKind;
use crate::error::InputError;
use crate::model::ModelConfig;
use crate::sim::shipped;
use crate::sim::Scene;

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
    /// cpu or cuda for the learned agents and training (default: the agent files').
    #[serde(default)]
    pub device: Option<String>,
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
        device: Option<String>,
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
        device: Option<String>,
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

/// A dotted key (`planning.planner.samples`) split into its parts.
fn key_parts(key: &str) -> Vec<&str> {
    key.split('.').collect()
}

fn lookup<'a>(root: &'a toml::Value, key: &str) -> Option<&'a toml::Value> {
    key_parts(key)
        .iter()
        .try_fold(root, |v, part| v.as_table()?.get(*part))
}

/// Sets or removes `key` in `root`; the key must exist in `known` (the agent file with all
/// defaults filled in), so a typo is an error rather than a silently ignored setting.
fn apply(
    root: &mut toml::Value,
    known: &toml::Value,
    key: &str,
    value: Option<&toml::Value>,
) -> Result<(), String> {
    if lookup(known, key).is_none() {
        return Err(format!(
            "unknown agent-file key {key:?} (keys are dotted paths such as \"planning.planner.samples\"; an optional table must be in the agent file to be changed or removed)"
        ));
    }
    let parts = key_parts(key);
    let (last, parents) = parts.split_last().expect("split gives one part");
    let mut table = root;
    for p in parents {
        table = table
            .as_table_mut()
            .and_then(|t| t.get_mut(*p))
            .ok_or_else(|| format!("{key:?}: {p} is missing from the agent file"))?;
    }
    let t = table
        .as_table_mut()
        .ok_or_else(|| format!("{key:?}: not inside a table"))?;
    match value {
        Some(v) => {
            t.insert((*last).to_string(), v.clone());
        }
        None => {
            t.remove(*last);
        }
    }
    Ok(())
}

fn show_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Expands the grid deterministically (agents, scenes, variants, override combinations,
/// seeds, actors — in that nesting order).
pub fn expand(file: &ExperimentFile, text: &str, path: &Path) -> Result<Grid, InputError> {
    let bad = |key: &str, msg: String| InputError::new(path, key, msg);
    if file.name.trim().is_empty()
        || !file
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err(bad(
            "name",
            format!(
                "expected a non-empty name of letters, digits, '_', '-' or '.', got {:?}",
                file.name
            ),
        ));
    }
    let empty = |key: &str| {
        bad(
            key,
            "is empty, so the grid expands to zero runs".to_string(),
        )
    };
    if file.agents.is_empty() {
        return Err(empty("agents"));
    }
    if file.seeds.is_empty() {
        return Err(empty("seeds"));
    }
    if file.actors.is_empty() {
        return Err(empty("actors"));
    }
    let mut seen_seeds = std::collections::HashSet::new();
    if let Some(d) = file.seeds.iter().find(|s| !seen_seeds.insert(**s)) {
        return Err(bad("seeds", format!("seed {d} is listed twice")));
    }
    let mut seen_actors = std::collections::HashSet::new();
    if let Some(d) = file.actors.iter().find(|a| !seen_actors.insert(**a)) {
        return Err(bad(
            "actors",
            format!("actor {:?} is listed twice", d.name()),
        ));
    }
    if file.episodes == 0 {
        return Err(bad(
            "episodes",
            "expected at least 1 (0 episodes expands to zero runs)".into(),
        ));
    }
    if file.parallel == 0 {
        return Err(bad("parallel", "expected at least 1".into()));
    }
    for (k, vals) in &file.overrides {
        if vals.is_empty() {
            return Err(empty(&format!("overrides.\"{k}\"")));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for v in &file.variants {
        if !seen.insert(v.name.as_str()) {
            return Err(bad(
                "variants",
                format!("two variants are named {:?}", v.name),
            ));
        }
    }
    if let Some(dev) = &file.device {
        crate::model::config::parse_device(dev, path).map_err(|e| bad("device", e.message))?;
    }
    let variants: Vec<Variant> = if file.variants.is_empty() {
        vec![Variant {
            name: "default".into(),
            set: BTreeMap::new(),
            remove: Vec::new(),
        }]
    } else {
        file.variants.clone()
    };
    // The Cartesian product of the override axes, in key order.
    let mut combos: Vec<Vec<(&String, &toml::Value)>> = vec![Vec::new()];
    for (k, vals) in &file.overrides {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                vals.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((k, v));
                    c
                })
            })
            .collect();
    }

    let mut runs: Vec<Run> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut train_runs: Vec<Run> = Vec::new();
    let mut entries = Vec::new();
    let mut scene_cache: HashMap<String, (PathBuf, String, String)> = HashMap::new();
    let mut scene_info = |name: &str, key: &str| -> Result<(PathBuf, String, String), InputError> {
        if let Some(s) = scene_cache.get(name) {
            return Ok(s.clone());
        }
        let p = Scene::resolve_path(name);
        let scene_text = shipped::read(&p, shipped::Kind::Scene).map_err(|e| {
            bad(
                key,
                format!("scene {name:?}: cannot read {}: {e}", p.display()),
            )
        })?;
        let scene = Scene::parse(&scene_text, &p)?;
        let info = (p, scene.name.clone(), sha256_hex(scene_text.as_bytes()));
        scene_cache.insert(name.to_string(), info.clone());
        Ok(info)
    };
    let mut fingerprints: HashMap<PathBuf, String> = HashMap::new();
    let mut cell = 0usize;

    for (ai, agent_arg) in file.agents.iter().enumerate() {
        let agent_path = AgentFile::resolve_path(agent_arg);
        let agent_key = format!("agents[{ai}]");
        let base = AgentFile::load(&agent_path)
            .map_err(|e| bad(&agent_key, format!("agent {agent_arg:?}: {e}")))?;
        let agent_name = agent_path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(agent_arg)
            .to_string();
        let base_text = shipped::read(&agent_path, shipped::Kind::Agent)
            .map_err(|e| bad(&agent_key, format!("{}: {e}", agent_path.display())))?;
        let base_value: toml::Value = toml::from_str(&base_text)
            .map_err(|e| bad(&agent_key, format!("{}: {e}", agent_path.display())))?;
        let known = toml::Value::try_from(&base).expect("agent files serialise");
        let scenes: Vec<String> = if file.scenes.is_empty() {
            vec![base.scene.clone()]
        } else {
            file.scenes.clone()
        };
        for variant in &variants {
            for combo in &combos {
                // The agent file with this variant and override combination applied.
                let mut value = base_value.clone();
                let vkey = format!("variants[{:?}]", variant.name);
                for k in &variant.remove {
                    apply(&mut value, &known, k, None)
                        .map_err(|m| bad(&format!("{vkey}.remove"), m))?;
                }
                for (k, v) in &variant.set {
                    apply(&mut value, &known, k, Some(v))
                        .map_err(|m| bad(&format!("{vkey}.set.\"{k}\""), m))?;
                }
                for (k, v) in combo {
                    apply(&mut value, &known, k, Some(v))
                        .map_err(|m| bad(&format!("overrides.\"{k}\""), m))?;
                }
                let resolved_text = toml::to_string(&value).expect("a TOML table serialises");
                let what =
                    if combo.is_empty() && variant.set.is_empty() && variant.remove.is_empty() {
                        format!("agent {agent_arg:?}")
                    } else {
                        format!(
                            "agent {agent_arg:?}, variant {:?}{}",
                            variant.name,
                            combo
                                .iter()
                                .map(|(k, v)| format!(", {k} = {}", show_value(v)))
                                .collect::<String>()
                        )
                    };
                let agent = AgentFile::parse(&resolved_text, &agent_path)
                    .map_err(|e| bad(&vkey_or_overrides(variant, combo), format!("{what}: {e}")))?;
                // Axes with one value are settings, not axes: they stay out of the label.
                let overrides_label = combo
                    .iter()
                    .filter(|(k, _)| file.overrides[*k].len() > 1)
                    .map(|(k, v)| format!("{k}={}", show_value(v)))
                    .collect::<Vec<_>>()
                    .join(" ");
                // Where the learned runs' weights come from.
                let needs_model = file.actors.contains(&ActorKind::Learned);
                let needs_planning = file
                    .actors
                    .iter()
                    .any(|a| matches!(a, ActorKind::Learned | ActorKind::Oracle));
                let planning = agent.planning.as_ref();
                if needs_planning && planning.is_none() {
                    return Err(bad(
                        &agent_key,
                        format!("{what}: the agent file has no [planning] table, which the learned and oracle actors need"),
                    ));
                }
                let model = if !needs_model {
                    None
                } else if let Some(stage) = &file.train {
                    let (scene_path, scene_name, scene_sha) = scene_info(&agent.scene, &agent_key)?;
                    let collect = CollectConfig {
                        episodes: *stage
                            .collect_episodes_per_scene
                            .get(&scene_name)
                            .unwrap_or(&stage.collect_episodes),
                        seed: stage.collect_seed,
                        policy: stage.policy,
                        noise: stage.noise,
                    };
                    if collect.episodes == 0 {
                        return Err(bad("train.collect_episodes", "expected at least 1".into()));
                    }
                    let config = RunConfig::Train {
                        agent: agent.model.clone(),
                        scene: scene_name.clone(),
                        scene_sha256: scene_sha,
                        collect,
                        device: file.device.clone(),
                    };
                    let (id, hash) = run_id(&config);
                    if !train_runs.iter().any(|r| r.id == id) {
                        train_runs.push(Run {
                            id: id.clone(),
                            config_hash: hash,
                            config,
                            ordinal: 0,
                            label: CellLabel {
                                scene: scene_name,
                                agent: agent_name.clone(),
                                variant: variant.name.clone(),
                                overrides: overrides_label.clone(),
                            },
                            agent_path: Some(agent_path.clone()),
                            scene_path,
                        });
                    }
                    Some(ModelSource::Trained { run_id: id })
                } else {
                    // Without a training stage the learned runs use the agent's checkpoint,
                    // which an override of the model part would not match.
                    if agent.model != base.model {
                        return Err(bad(
                            &vkey_or_overrides(variant, combo),
                            format!("{what}: this changes the world model (not only [planning]), so the checkpoint in planning.checkpoint does not fit it; add a [train] stage to train one per model"),
                        ));
                    }
                    let cfg = planning.expect("checked above");
                    let run = crate::agent::resolve_run(&cfg.checkpoint, &agent_path);
                    let weights_file = run.join("checkpoint/model.safetensors");
                    let weights = match fingerprints.get(&run) {
                        Some(w) => w.clone(),
                        None => {
                            let bytes = std::fs::read(&weights_file).map_err(|e| {
                                bad(
                                    &agent_key,
                                    format!("{what}: planning.checkpoint: no trained model at {} ({e}); train it with `hjepa train --agent {} --out {}`, or add a [train] stage to the experiment", weights_file.display(), agent_path.display(), run.display()),
                                )
                            })?;
                            let w = sha256_hex(&bytes);
                            fingerprints.insert(run.clone(), w.clone());
                            w
                        }
                    };
                    Some(ModelSource::Checkpoint { run, weights })
                };
                for scene_arg in &scenes {
                    let (scene_path, scene_name, scene_sha) = scene_info(scene_arg, "scenes")?;
                    if needs_planning {
                        let scene = Scene::load(&scene_path)?;
                        planning
                            .expect("checked above")
                            .check_horizons(&agent, &scene, &agent_path)
                            .map_err(|e| {
                                bad(&vkey_or_overrides(variant, combo), format!("{what}: {e}"))
                            })?;
                    }
                    let label = CellLabel {
                        scene: scene_name.clone(),
                        agent: agent_name.clone(),
                        variant: variant.name.clone(),
                        overrides: overrides_label.clone(),
                    };
                    for &seed in &file.seeds {
                        for &actor in &file.actors {
                            let config = RunConfig::Eval {
                                actor,
                                scene: scene_name.clone(),
                                scene_sha256: scene_sha.clone(),
                                agent: (actor == ActorKind::Learned).then(|| agent.clone()),
                                oracle: (actor == ActorKind::Oracle)
                                    .then(|| oracle_part(&agent))
                                    .flatten(),
                                model: (actor == ActorKind::Learned)
                                    .then(|| model.clone())
                                    .flatten(),
                                seed,
                                episodes: file.episodes,
                                parallel: if actor == ActorKind::Learned {
                                    file.parallel
                                } else {
                                    1
                                },
                                device: (actor == ActorKind::Learned)
                                    .then(|| file.device.clone())
                                    .flatten(),
                            };
                            let (id, hash) = run_id(&config);
                            if !index.contains_key(&id) {
                                index.insert(id.clone(), runs.len());
                                runs.push(Run {
                                    id: id.clone(),
                                    config_hash: hash,
                                    config,
                                    ordinal: runs.len(),
                                    label: label.clone(),
                                    agent_path: (actor != ActorKind::Random)
                                        .then(|| agent_path.clone()),
                                    scene_path: scene_path.clone(),
                                });
                            }
                            entries.push(GridEntry {
                                cell,
                                label: label.clone(),
                                actor,
                                seed,
                                episodes: file.episodes,
                                run_id: id,
                            });
                        }
                    }
                    cell += 1;
                }
            }
        }
    }
    // Training runs come first; every run keeps its place for sharding.
    let train_count = train_runs.len();
    for (i, r) in train_runs.iter_mut().enumerate() {
        r.ordinal = i;
    }
    for r in runs.iter_mut() {
        r.ordinal += train_count;
    }
    let mut all = train_runs;
    all.extend(runs);
    let mut h = Sha256::new();
    h.update(file.name.as_bytes());
    for e in &entries {
        h.update(
            format!(
                "\n{}|{}|{}|{}|{}|{}|{}|{}",
                e.cell,
                e.label.scene,
                e.label.agent,
                e.label.variant,
                e.label.overrides,
                e.actor.name(),
                e.seed,
                e.run_id
            )
            .as_bytes(),
        );
    }
    for r in all
        .iter()
        .filter(|r| matches!(r.config, RunConfig::Train { .. }))
    {
        h.update(format!("\ntrain|{}", r.id).as_bytes());
    }
    Ok(Grid {
        name: file.name.clone(),
        description: file.description.clone(),
        hash: h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        runs: all,
        entries,
        file_text: text.to_string(),
        train: file.train.clone(),
    })
}

fn vkey_or_overrides(variant: &Variant, combo: &[(&String, &toml::Value)]) -> String {
    match combo.last() {
        Some((k, _)) => format!("overrides.\"{k}\""),
        None => format!("variants[{:?}]", variant.name),
    }
}

/// What of an agent file the oracle depends on: its planner and cost reduction (the model,
/// the upper level and the other cost terms do not enter).
fn oracle_part(agent: &AgentFile) -> Option<OracleConfig> {
    agent.planning.as_ref().map(|p| OracleConfig {
        planner: p.planner.clone(),
        reduce: p.cost.reduce,
    })
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
