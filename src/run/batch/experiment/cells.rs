//! The grid's runs and entries, added one resolved agent at a time: where its weights come
//! from, then each scene's seeds × actors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::resolve::ResolvedAgent;
use super::{
    run_id, sha256_hex, ActorKind, CollectConfig, ExperimentFile, Grid, GridEntry, ModelSource,
    OracleConfig, Run, RunConfig, TrainStage,
};
use crate::agent::AgentFile;
use crate::error::InputError;
use crate::sim::shipped;
use crate::sim::Scene;

/// A scene as the grid uses it.
#[derive(Clone)]
struct SceneInfo {
    path: PathBuf,
    /// The name inside the scene file.
    name: String,
    /// SHA-256 of the scene file's text.
    sha256: String,
}

/// The runs and entries made so far, with what the expansion caches along the way.
pub(super) struct GridBuilder<'f> {
    file: &'f ExperimentFile,
    path: &'f Path,
    /// Evaluation runs in expansion order, and each one's position by id.
    runs: Vec<Run>,
    index: HashMap<String, usize>,
    train_runs: Vec<Run>,
    entries: Vec<GridEntry>,
    /// Scenes read so far, by the name they were asked for.
    scene_cache: HashMap<String, SceneInfo>,
    /// Weights hashes of the checkpoints read so far, by run folder.
    fingerprints: HashMap<PathBuf, String>,
    /// The next cell's number.
    cell: usize,
}

impl<'f> GridBuilder<'f> {
    /// An empty grid for `file` (read from `path`).
    pub(super) fn new(file: &'f ExperimentFile, path: &'f Path) -> GridBuilder<'f> {
        GridBuilder {
            file,
            path,
            runs: Vec::new(),
            index: HashMap::new(),
            train_runs: Vec::new(),
            entries: Vec::new(),
            scene_cache: HashMap::new(),
            fingerprints: HashMap::new(),
            cell: 0,
        }
    }

    /// Reads a scene (once per name); an error names `key` of the experiment file.
    fn scene_info(&mut self, name: &str, key: &str) -> Result<SceneInfo, InputError> {
        if let Some(s) = self.scene_cache.get(name) {
            return Ok(s.clone());
        }
        let p = Scene::resolve_path(name);
        let scene_text = shipped::read(&p, shipped::Kind::Scene).map_err(|e| {
            InputError::new(
                self.path,
                key,
                format!("scene {name:?}: cannot read {}: {e}", p.display()),
            )
        })?;
        let scene = Scene::parse(&scene_text, &p)?;
        let info = SceneInfo {
            path: p,
            name: scene.name.clone(),
            sha256: sha256_hex(scene_text.as_bytes()),
        };
        self.scene_cache.insert(name.to_string(), info.clone());
        Ok(info)
    }

    /// Adds the cells of one resolved agent: where its weights come from, then each scene.
    pub(super) fn add_agent_cells(&mut self, a: &ResolvedAgent) -> Result<(), InputError> {
        let (file, path) = (self.file, self.path);
        let bad = |key: &str, msg: String| InputError::new(path, key, msg);
        let what = &a.what;
        // Where the learned runs' weights come from.
        let needs_model = file.actors.contains(&ActorKind::Learned);
        let needs_planning = file
            .actors
            .iter()
            .any(|actor| matches!(actor, ActorKind::Learned | ActorKind::Oracle));
        if needs_planning && a.agent.planning.is_none() {
            return Err(bad(
                &a.base.key,
                format!("{what}: the agent file has no [planning] table, which the learned and oracle actors need"),
            ));
        }
        let model = if !needs_model {
            None
        } else if let Some(stage) = &file.train {
            Some(self.trained_model(a, stage)?)
        } else {
            Some(self.checkpoint_model(a)?)
        };
        for scene_arg in &a.base.scenes {
            self.add_scene_cell(a, scene_arg, needs_planning, &model)?;
        }
        Ok(())
    }

    /// The training run (added once) whose model the learned runs of `a` use.
    fn trained_model(
        &mut self,
        a: &ResolvedAgent,
        stage: &TrainStage,
    ) -> Result<ModelSource, InputError> {
        let (file, path) = (self.file, self.path);
        let bad = |key: &str, msg: String| InputError::new(path, key, msg);
        let scene = self.scene_info(&a.agent.scene, &a.base.key)?;
        let collect = CollectConfig {
            episodes: *stage
                .collect_episodes_per_scene
                .get(&scene.name)
                .unwrap_or(&stage.collect_episodes),
            seed: stage.collect_seed,
            policy: stage.policy,
            noise: stage.noise,
        };
        if collect.episodes == 0 {
            return Err(bad("train.collect_episodes", "expected at least 1".into()));
        }
        let config = RunConfig::Train {
            agent: a.agent.model.clone(),
            scene: scene.name.clone(),
            scene_sha256: scene.sha256,
            collect,
            device: file.device,
        };
        let (id, hash) = run_id(&config);
        if !self.train_runs.iter().any(|r| r.id == id) {
            self.train_runs.push(Run {
                id: id.clone(),
                config_hash: hash,
                config,
                ordinal: 0,
                label: a.label(scene.name),
                agent_path: Some(a.base.path.clone()),
                scene_path: scene.path,
            });
        }
        Ok(ModelSource::Trained { run_id: id })
    }

    /// The agent's own checkpoint, identified by the hash of its weights (read once per run
    /// folder).
    fn checkpoint_model(&mut self, a: &ResolvedAgent) -> Result<ModelSource, InputError> {
        let path = self.path;
        let bad = |key: &str, msg: String| InputError::new(path, key, msg);
        let (what, agent_path) = (&a.what, &a.base.path);
        // Without a training stage the learned runs use the agent's checkpoint,
        // which an override of the model part would not match.
        if a.agent.model != a.base.file.model {
            return Err(bad(
                &a.changes_key(),
                format!("{what}: this changes the world model (not only [planning]), so the checkpoint in planning.checkpoint does not fit it; add a [train] stage to train one per model"),
            ));
        }
        let cfg = a.agent.planning.as_ref().expect("checked above");
        let run = crate::agent::resolve_run(&cfg.checkpoint, agent_path);
        let weights_file = run.join("checkpoint/model.safetensors");
        let weights = match self.fingerprints.get(&run) {
            Some(w) => w.clone(),
            None => {
                let bytes = std::fs::read(&weights_file).map_err(|e| {
                    bad(
                        &a.base.key,
                        format!("{what}: planning.checkpoint: no trained model at {} ({e}); train it with `hjepa train --agent {} --out {}`, or add a [train] stage to the experiment", weights_file.display(), agent_path.display(), run.display()),
                    )
                })?;
                let w = sha256_hex(&bytes);
                self.fingerprints.insert(run.clone(), w.clone());
                w
            }
        };
        Ok(ModelSource::Checkpoint { run, weights })
    }

    /// Adds the cell of `a` in one scene: an entry per seed × actor, each answered by a new
    /// run or one an earlier cell made.
    fn add_scene_cell(
        &mut self,
        a: &ResolvedAgent,
        scene_arg: &str,
        needs_planning: bool,
        model: &Option<ModelSource>,
    ) -> Result<(), InputError> {
        let (file, path) = (self.file, self.path);
        let bad = |key: &str, msg: String| InputError::new(path, key, msg);
        let what = &a.what;
        let scene_info = self.scene_info(scene_arg, "scenes")?;
        if needs_planning {
            let scene = Scene::load(&scene_info.path)?;
            a.agent
                .planning
                .as_ref()
                .expect("checked above")
                .check_horizons(&a.agent, &scene, &a.base.path)
                .map_err(|e| bad(&a.changes_key(), format!("{what}: {e}")))?;
        }
        let label = a.label(scene_info.name.clone());
        for &seed in &file.seeds {
            for &actor in &file.actors {
                let config = eval_config(file, &a.agent, &scene_info, model, actor, seed);
                let (id, hash) = run_id(&config);
                if !self.index.contains_key(&id) {
                    self.index.insert(id.clone(), self.runs.len());
                    self.runs.push(Run {
                        id: id.clone(),
                        config_hash: hash,
                        config,
                        ordinal: self.runs.len(),
                        label: label.clone(),
                        agent_path: (actor != ActorKind::Random).then(|| a.base.path.clone()),
                        scene_path: scene_info.path.clone(),
                    });
                }
                self.entries.push(GridEntry {
                    cell: self.cell,
                    label: label.clone(),
                    actor,
                    seed,
                    episodes: file.episodes,
                    run_id: id,
                });
            }
        }
        self.cell += 1;
        Ok(())
    }

    /// Puts the training runs first, numbers every run, and hashes the grid.
    pub(super) fn finish(self, text: &str) -> Grid {
        let file = self.file;
        let (mut train_runs, mut runs, entries) = (self.train_runs, self.runs, self.entries);
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
        let hash = grid_hash(&file.name, &entries, &all);
        Grid {
            name: file.name.clone(),
            description: file.description.clone(),
            hash,
            runs: all,
            entries,
            file_text: text.to_string(),
            train: file.train.clone(),
        }
    }
}

/// The evaluation run of one actor and seed in a cell: only a learned run carries the agent
/// file, its model and the device, so the other actors' runs are shared between cells.
fn eval_config(
    file: &ExperimentFile,
    agent: &AgentFile,
    scene: &SceneInfo,
    model: &Option<ModelSource>,
    actor: ActorKind,
    seed: u64,
) -> RunConfig {
    RunConfig::Eval {
        actor,
        scene: scene.name.clone(),
        scene_sha256: scene.sha256.clone(),
        agent: (actor == ActorKind::Learned).then(|| agent.clone()),
        oracle: (actor == ActorKind::Oracle)
            .then(|| oracle_part(agent))
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
            .then_some(file.device)
            .flatten(),
    }
}

/// SHA-256 of the name, every grid entry and the training runs: shards and resumed runs
/// must agree on it.
fn grid_hash(name: &str, entries: &[GridEntry], runs: &[Run]) -> String {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    for e in entries {
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
    for r in runs
        .iter()
        .filter(|r| matches!(r.config, RunConfig::Train { .. }))
    {
        h.update(format!("\ntrain|{}", r.id).as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What of an agent file the oracle depends on: its planner and cost reduction (the model,
/// the upper level and the other cost terms do not enter).
fn oracle_part(agent: &AgentFile) -> Option<OracleConfig> {
    agent.planning.as_ref().map(|p| OracleConfig {
        planner: p.planner.clone(),
        reduce: p.cost.reduce,
    })
}
