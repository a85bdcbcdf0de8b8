//! `hjepa collect --agent`: a dataset of a planning agent's own closed-loop episodes, toward
//! start/goal windows drawn from a dataset's trajectories (as `hjepa eval --goals-from`).
//! A planner seeks out what its world model gets wrong (it picks the actions whose predicted
//! outcome looks best, and the model's errors look best too), so a model trained on scripted
//! data is weakest exactly where its agent goes. Training on these episodes as well
//! (`hjepa train --data A --data B`) is the usual model-based remedy (PETS, MBPO, TD-MPC
//! collect their own data). Same format as a scripted dataset, written shard by shard and
//! resumable: rerunning the command records only the missing shards, the same episodes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use indicatif::ProgressBar;

use crate::agent::{load_planning_agent, planning_run};
use crate::agent::{AgentFile, PlanningConfig};
use crate::data::collect::{
    check_counts, collect_bar, fresh_manifest, list_shard, missing_shards, open_manifest,
    write_shard,
};
use crate::data::dataset::{sha256_hex, AgentSource, DataPolicy, Manifest};
use crate::data::{dataset_goals, CollectSummary, Dataset, EpisodeRecord, GoalWindow};
use crate::error::InputError;
use crate::model::checkpoint::{checkpoint_dir, dataset_digest, CheckpointMeta};
use crate::run::eval::{EvalActor, EvalEpisode, Starts};
use crate::sim::scene::eval_scene;
use crate::sim::{shipped, Env, Scene};

/// Options of `hjepa collect --agent`.
#[derive(Clone, Debug)]
pub struct AgentCollectOptions {
    pub agent_path: PathBuf,
    /// Dataset whose trajectories give the start/goal windows (the agent's training data,
    /// not the held-out data it is evaluated on).
    pub goals_from: PathBuf,
    /// Control steps from a window's start to its goal.
    pub goal_offset: u32,
    /// Every episode's length in control steps; episodes do not stop at a success, so that
    /// each is long enough for training windows.
    pub max_steps: u32,
    /// The criterion that decides success (default: the scene's first).
    pub success: Option<String>,
    pub out: PathBuf,
    pub episodes: u64,
    pub seed: u64,
    pub shard_episodes: u64,
    /// Sandboxes one agent serves at once (see `hjepa eval --parallel`).
    pub parallel: usize,
    pub device: Option<crate::device::Device>,
    pub progress: bool,
}

/// Plays the agent on windows `0..episodes` (window i and the planner's seeds from
/// `episode_seed(seed, i)`) and records each episode into `opts.out`.
pub fn collect_with_agent(opts: &AgentCollectOptions) -> anyhow::Result<CollectSummary> {
    check_counts(&opts.out, opts.episodes, opts.shard_episodes)?;
    let agent_text = shipped::read(&opts.agent_path, shipped::Kind::Agent).map_err(|e| {
        InputError::new(&opts.agent_path, "", format!("cannot read agent file: {e}"))
    })?;
    let agent_file = AgentFile::load(&opts.agent_path)?;
    let EvalScene { source, scene } = load_eval_scene(opts, &agent_file)?;
    let windows = dataset_goals(
        &scene,
        &opts.goals_from,
        opts.goal_offset,
        opts.episodes,
        opts.seed,
    )?;
    let Some(planning) = &agent_file.planning else {
        return Err(InputError::new(
            &opts.agent_path,
            "planning",
            "the agent file has no [planning] table (checkpoint, cost, planner)",
        )
        .into());
    };
    let agent = load_planning_agent(&opts.agent_path, &scene, opts.device, None)?;
    let source_of_play = agent_source(opts, &agent_text, planning, &scene)?;
    let fresh = fresh_manifest(
        &scene,
        &source,
        DataPolicy::Agent {
            agent: source_of_play,
        },
        0.0,
        opts.seed,
        opts.episodes,
        opts.shard_episodes,
    );
    let mut manifest = open_manifest(&opts.out, fresh)?;
    let todo = missing_shards(&manifest);

    let bar = collect_bar(
        opts.progress,
        &manifest,
        format!("collect {} with its agent", scene.name),
    );
    let start = Instant::now();
    let play = ShardPlay {
        opts,
        scene: &scene,
        windows: &windows,
        bar: &bar,
    };
    let recorded = play.record(EvalActor::Learned(agent), &todo, &mut manifest)?;
    bar.finish_and_clear();
    Ok(CollectSummary {
        episodes_total: manifest.episodes,
        episodes_recorded: recorded.episodes,
        shards_written: todo.len() as u64,
        steps_recorded: recorded.steps,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The agent's scene as evaluation plays it, and the scene file's text (the manifest
/// keeps it).
struct EvalScene {
    source: String,
    scene: Arc<Scene>,
}

/// Reads the agent's scene with the run's episode length and success criterion; episodes
/// go on after a success, so that each is long enough for training windows.
fn load_eval_scene(
    opts: &AgentCollectOptions,
    agent_file: &AgentFile,
) -> anyhow::Result<EvalScene> {
    let scene_path = Scene::resolve_path(&agent_file.scene);
    let source = shipped::read(&scene_path, shipped::Kind::Scene)
        .map_err(|e| InputError::new(&scene_path, "", format!("cannot read scene file: {e}")))?;
    let mut scene = eval_scene(
        Scene::parse(&source, &scene_path)?,
        &scene_path,
        Some(opts.max_steps),
        opts.success.as_deref(),
    )?;
    scene.goal.terminate_on_success = false;
    Ok(EvalScene {
        source,
        scene: Arc::new(scene),
    })
}

/// Who plays the dataset's episodes, for its manifest: the agent file and checkpoint
/// (with digests of both), and where the start/goal windows come from.
fn agent_source(
    opts: &AgentCollectOptions,
    agent_text: &str,
    planning: &PlanningConfig,
    scene: &Scene,
) -> anyhow::Result<AgentSource> {
    let run = planning_run(planning, &opts.agent_path)?;
    let ckpt = checkpoint_dir(&run)?;
    let meta_path = ckpt.join("meta.json");
    let meta: CheckpointMeta = std::fs::read_to_string(&meta_path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        .map_err(|e| {
            InputError::new(&meta_path, "", format!("cannot read checkpoint meta: {e}"))
        })?;
    let weights = std::fs::read(ckpt.join("model.safetensors"))
        .map_err(|e| anyhow::anyhow!("{}: {e}", ckpt.join("model.safetensors").display()))?;
    Ok(AgentSource {
        file: opts.agent_path.clone(),
        file_sha256: sha256_hex(agent_text.as_bytes()),
        checkpoint: run.clone(),
        checkpoint_step: meta.step,
        weights_sha256: sha256_hex(&weights),
        goals_from: opts.goals_from.clone(),
        goals_digest: dataset_digest(&Dataset::open(&opts.goals_from)?),
        goal_offset: opts.goal_offset,
        max_steps: opts.max_steps,
        success: scene.goal.success[0].name(),
    })
}

/// What a run fixes for every shard it plays: the options, the scene, the start/goal
/// windows and the progress bar.
struct ShardPlay<'a> {
    opts: &'a AgentCollectOptions,
    scene: &'a Arc<Scene>,
    windows: &'a [GoalWindow],
    bar: &'a ProgressBar,
}

/// What this run recorded.
struct Recorded {
    episodes: u64,
    steps: u64,
}

impl ShardPlay<'_> {
    /// Plays and writes the shards `todo` in order, listing each in the manifest as soon
    /// as it is written (so an interrupted run resumes after it).
    fn record(
        &self,
        mut actor: EvalActor,
        todo: &[u64],
        manifest: &mut Manifest,
    ) -> anyhow::Result<Recorded> {
        let mut env = Env::new(self.scene.clone());
        let (mut recorded, mut steps_recorded, mut reached) = (0, 0, 0);
        for k in todo.iter().copied() {
            let eps = self.play_shard(&mut actor, &mut env, manifest.shard_range(k))?;
            reached += eps.iter().filter(|e| e.success).count();
            recorded += eps.len() as u64;
            self.bar
                .set_message(format!("goal reached {reached}/{recorded}"));
            let entry = write_shard(&self.opts.out, k, &eps, manifest)?;
            steps_recorded += entry.steps;
            list_shard(manifest, &self.opts.out, entry)?;
        }
        Ok(Recorded {
            episodes: recorded,
            steps: steps_recorded,
        })
    }

    /// Plays the episodes `first..end` and replays each into a dataset episode, in index
    /// order.
    fn play_shard(
        &self,
        actor: &mut EvalActor,
        env: &mut Env,
        (first, end): (u64, u64),
    ) -> anyhow::Result<Vec<EpisodeRecord>> {
        let only: Vec<u64> = (first..end).collect();
        let starts = Starts {
            count: self.opts.episodes,
            seed: self.opts.seed,
            windows: Some(self.windows),
            only: Some(&only),
        };
        let mut played = Vec::new();
        actor.play_from(self.scene, starts, self.opts.parallel, |ep| {
            played.push(ep);
            self.bar.inc(1);
            Ok(())
        })?;
        played.sort_by_key(|e| e.index);
        played
            .iter()
            .map(|ep| record_played(env, &self.windows[ep.index as usize], ep))
            .collect::<anyhow::Result<Vec<_>>>()
    }
}

/// The played episode `ep` as a dataset episode: its actions replayed from its window's
/// start (the sandbox is deterministic, so this is the episode the agent played, which is
/// checked), with every observation, physical state and cost. `success`: the goal was met
/// at some step.
fn record_played(
    env: &mut Env,
    window: &GoalWindow,
    ep: &EvalEpisode,
) -> anyhow::Result<EpisodeRecord> {
    let mut rec = EpisodeRecord {
        index: ep.index,
        seed: ep.seed,
        ..Default::default()
    };
    let mut obs = env.reset_to(window.layout.clone());
    let mut last_distance = f32::NAN;
    for (t, a) in ep.actions.iter().enumerate() {
        rec.obs_state.push(obs.state);
        if let Some(img) = obs.image {
            rec.obs_image.push(img.rgb);
        }
        rec.state.push(env.physical_state());
        let step = env.step(a).map_err(|e| {
            anyhow::anyhow!(
                "episode {}, step {t}: replay refused the action: {e}",
                ep.index
            )
        })?;
        rec.action.push(*a);
        rec.cost.push(step.cost);
        rec.success |= step.info.success;
        last_distance = step.info.goal_distance;
        obs = step.observation;
    }
    rec.obs_state.push(obs.state);
    if let Some(img) = obs.image {
        rec.obs_image.push(img.rgb);
    }
    rec.state.push(env.physical_state());
    if last_distance.to_bits() != ep.final_goal_distance.to_bits() {
        anyhow::bail!(
            "episode {} (seed {}): replaying its actions ended {last_distance} m from the goal, the played episode {} m: the sandbox did not repeat itself, nothing of this shard was written",
            ep.index,
            ep.seed,
            ep.final_goal_distance
        );
    }
    Ok(rec)
}
