//! `hjepa eval`: closed-loop episodes on seeded start/goal pairs, success with a 95 %
//! Wilson interval, steps to success, planning time per replan (median, p95) and per
//! episode, the random-policy floor on the same pairs, and per-episode results as JSON lines.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

pub use super::actors::{choose_agent, oracle_actor, AgentChoice};
pub use super::episode::{
    run_episode, run_episode_observed, run_parallel, EvalActor, EvalEpisode, Starts,
};
use crate::agent::load_planning_agent;
use crate::agent::{AgentFile, Diagnostic, PlanningConfig};
use crate::data::dataset_goals;
use crate::data::episodes::wilson_interval;
use crate::data::recording::{ProtocolOverrides, RecordedEpisode, Recording};
use crate::error::InputError;
use crate::plan::PlannerKind;
use crate::sim::scene::eval_scene;
use crate::sim::Scene;

/// `hjepa eval`'s default episode count (default results names leave it out).
pub const DEFAULT_EPISODES: u64 = 100;
pub use crate::data::goals::DEFAULT_GOAL_OFFSET;

#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub agent_path: PathBuf,
    /// The scene to evaluate in (default: the agent file's).
    pub scene: Option<String>,
    pub episodes: u64,
    pub seed: u64,
    /// Who plans: the learned agent, the oracle, or the agent under a diagnostic.
    pub mode: EvalMode,
    /// Only these episodes of `0..episodes` (empty: all), e.g. the failures of an earlier run
    /// under a diagnostic; the default results file names them.
    pub only: Vec<u64>,
    /// Run folder to load instead of the agent file's `planning.checkpoint`.
    pub checkpoint: Option<PathBuf>,
    pub device: Option<crate::device::Device>,
    /// Per-episode results (JSON lines); default `<agent run>/eval-<scene>-<seed>.jsonl`
    /// (`eval-<agent>-on-<scene>-<seed>.jsonl` when the agent file is not named after the scene).
    pub out: Option<PathBuf>,
    /// Also run the random policy on the same pairs.
    pub random_floor: bool,
    /// Save the episodes (seeds and actions) for `hjepa replay`.
    pub record: Option<PathBuf>,
    /// Sandboxes served at once by one agent (observations batched through the encoder);
    /// the oracle always runs one.
    pub parallel: usize,
    pub progress: bool,
    /// Start/goal pairs from this dataset's trajectories instead of the scene's sampler
    /// (DINO-WM's protocol): start at frame t, aim `goal_offset` control steps later.
    pub goals_from: Option<PathBuf>,
    pub goal_offset: u32,
    /// Episode budget in control steps, like the scene's `episode_steps` (its default).
    pub max_steps: Option<u32>,
    /// The scene criterion (by its `info` name, e.g. `tee_pose`) that decides success
    /// (default: the scene's first).
    pub success: Option<String>,
    /// Factors of variation set over the scene's (`--vary KEY=VALUE`), drawn per episode.
    pub vary: Vec<(String, crate::sim::factors::Factor)>,
}

/// Who plans in `hjepa eval`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EvalMode {
    /// The agent file's learned agent.
    #[default]
    Learned,
    /// The same planner and budget with the sandbox itself as the model.
    Oracle,
    /// The learned agent with a part replaced by the sandbox's truth; one sandbox at a time.
    Diagnose(Diagnostic),
}

impl EvalMode {
    /// What plans instead of the plain learned agent, if anything: the mark on its results
    /// file and its label.
    fn variant(&self) -> Option<(&'static str, &'static str)> {
        match self {
            EvalMode::Learned | EvalMode::Diagnose(Diagnostic::None) => None,
            EvalMode::Oracle => Some(("-oracle", "oracle model")),
            EvalMode::Diagnose(Diagnostic::WaypointSubgoals) => {
                Some(("-waypoint-subgoals", "waypoint subgoals"))
            }
            EvalMode::Diagnose(Diagnostic::SandboxDynamics) => {
                Some(("-sandbox-dynamics", "sandbox dynamics"))
            }
        }
    }
}

/// What `hjepa eval` reports.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EvalSummary {
    pub scene: String,
    pub agent: String,
    pub oracle: bool,
    pub episodes: usize,
    pub successes: usize,
    pub success_ci95: (f64, f64),
    pub median_steps_to_success: Option<f64>,
    pub replan_ms_median: f64,
    pub replan_ms_p95: f64,
    pub planning_s_per_episode: f64,
    pub random_floor: Option<(usize, usize)>,
    /// Per start/goal distance bin (scenes with `CellDistanceBins`): (bin, successes, episodes,
    /// mean planning seconds per episode).
    pub by_distance_bin: Vec<(usize, usize, usize, f64)>,
    /// With `--goals-from`: (successes, episodes) on goals where a body moves, and on goals
    /// only the agent moves to.
    pub by_body_motion: Option<[(usize, usize); 2]>,
    /// The same split for the random policy.
    pub random_by_body_motion: Option<[(usize, usize); 2]>,
    pub results: PathBuf,
    pub seconds: f64,
}

impl EvalSummary {
    pub fn rate(&self) -> f64 {
        self.successes as f64 / self.episodes.max(1) as f64
    }

    pub fn report(&self) -> String {
        let mut s = format!(
            "{} on {}{}: success {}/{} = {:.1} % (95 % CI {:.1}-{:.1} %)",
            self.agent,
            self.scene,
            if self.oracle { " (oracle model)" } else { "" },
            self.successes,
            self.episodes,
            100.0 * self.rate(),
            100.0 * self.success_ci95.0,
            100.0 * self.success_ci95.1
        );
        if let Some(m) = self.median_steps_to_success {
            s += &format!(", median {m:.0} steps to success");
        }
        s += &format!(
            "\nplanning: {:.1} ms per replan (median; p95 {:.1}), {:.2} s per episode",
            self.replan_ms_median, self.replan_ms_p95, self.planning_s_per_episode
        );
        for (bin, k, n, plan_s) in &self.by_distance_bin {
            s += &format!(
                "\ndistance bin {bin}: {k}/{n} = {:.1} %, {plan_s:.2} s planning per episode",
                100.0 * *k as f64 / (*n).max(1) as f64
            );
        }
        if let Some(split) = self.by_body_motion {
            s += &format!("\n{}", body_motion_report(split));
        }
        if let Some((k, n)) = self.random_floor {
            s += &format!(
                "\nrandom policy on the same pairs: {k}/{n} = {:.1} %",
                100.0 * k as f64 / n.max(1) as f64
            );
            if let Some(split) = self.random_by_body_motion {
                s += &format!(" ({})", body_motion_report(split));
            }
        }
        s += &format!("\nper-episode results: {}", self.results.display());
        s
    }
}

fn body_motion_report([(km, nm), (ka, na)]: [(usize, usize); 2]) -> String {
    format!(
        "goals where a body moves: {km}/{nm} = {:.1} %; goals for the agent alone: {ka}/{na} = \
         {:.1} %",
        100.0 * km as f64 / nm.max(1) as f64,
        100.0 * ka as f64 / na.max(1) as f64
    )
}

/// (successes, episodes) on goals where a body moves and on the others; None without
/// dataset goals.
fn split_by_body_motion(episodes: &[EvalEpisode]) -> Option<[(usize, usize); 2]> {
    episodes.first()?.goal_window.as_ref()?;
    Some([true, false].map(|moves| {
        let of = episodes.iter().filter(|e| {
            e.goal_window
                .as_ref()
                .is_some_and(|w| w.body_moves == moves)
        });
        (of.clone().filter(|e| e.success).count(), of.count())
    }))
}

/// The q-quantile of sorted values (nearest rank); NaN when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// `hjepa eval`.
pub fn eval(opts: &EvalOptions) -> anyhow::Result<EvalSummary> {
    let agent_file = AgentFile::load(&opts.agent_path)?;
    let (scene_path, scene) = scene_to_play(opts, &agent_file)?;
    let windows = match &opts.goals_from {
        Some(dir) => Some(dataset_goals(
            &scene,
            dir,
            opts.goal_offset,
            opts.episodes,
            opts.seed,
        )?),
        None => None,
    };
    check_only(&opts.only, opts.episodes)?;
    let starts = Starts {
        count: opts.episodes,
        seed: opts.seed,
        windows: windows.as_deref(),
        only: (!opts.only.is_empty()).then_some(opts.only.as_slice()),
    };
    let Some(planning) = agent_file.planning.clone() else {
        return Err(InputError::new(
            &opts.agent_path,
            "planning",
            "the agent file has no [planning] table (checkpoint, cost, planner)",
        )
        .into());
    };
    let mut agent = eval_actor(opts, &agent_file, &planning, &scene)?;
    // Waypoints and snapshots come from each sandbox's true state, which the batched loop
    // does not hand the agent: one sandbox at a time.
    let parallel = match opts.mode {
        EvalMode::Diagnose(_) => 1,
        _ => opts.parallel,
    };
    let agent_name = opts
        .agent_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("agent")
        .to_string();
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| default_results_path(opts, &planning, &agent_name, &scene.name));
    let actor_name = match opts.mode.variant() {
        Some((_, label)) => format!("{agent_name} ({label})"),
        None => agent_name.clone(),
    };
    let start = Instant::now();
    let mut sink = EpisodeSink::open(opts, &out, &actor_name, &scene_path, starts.indices().len())?;
    agent.play_from(&scene, starts, parallel, |ep| sink.push(ep))?;
    let episodes = sink.finish()?;
    let seconds = start.elapsed().as_secs_f64();
    let random = if opts.random_floor {
        let mut random = Vec::new();
        EvalActor::random().play_from(&scene, starts, 1, |e| {
            random.push(e);
            Ok(())
        })?;
        Some(random)
    } else {
        None
    };
    let oracle = opts.mode == EvalMode::Oracle;
    Ok(summarise(
        &episodes,
        random.as_deref(),
        EvalSummary {
            scene: scene.name.clone(),
            // (The oracle's summary says so in its own field.)
            agent: if oracle { agent_name } else { actor_name },
            oracle,
            results: out,
            seconds,
            ..EvalSummary::default()
        },
    ))
}

/// The scene's path and the scene with the protocol's overrides (episode budget, success
/// criterion): `--scene`, or the agent file's.
fn scene_to_play(
    opts: &EvalOptions,
    agent_file: &AgentFile,
) -> Result<(PathBuf, Arc<Scene>), InputError> {
    let scene_arg = opts
        .scene
        .clone()
        .unwrap_or_else(|| agent_file.scene.clone());
    let scene_path = Scene::resolve_path(&scene_arg);
    let scene = eval_scene(
        Scene::load(&scene_path)?,
        &scene_path,
        opts.max_steps,
        opts.success.as_deref(),
    )?;
    let scene = crate::sim::factors::vary_scene(scene, &opts.vary)?;
    Ok((scene_path, Arc::new(scene)))
}

/// `--only`: each index once, and among the `episodes` played.
fn check_only(only: &[u64], episodes: u64) -> Result<(), InputError> {
    let mut listed = only.to_vec();
    listed.sort_unstable();
    if let Some(w) = listed.windows(2).find(|w| w[0] == w[1]) {
        return Err(InputError::new(
            Path::new("--only"),
            "",
            format!("episode {} is listed twice", w[0]),
        ));
    }
    if let Some(&i) = only.iter().find(|&&i| i >= episodes) {
        return Err(InputError::new(
            Path::new("--only"),
            "",
            format!(
                "episode {i} is not among the {episodes} episodes (--episodes; indices from 0)"
            ),
        ));
    }
    Ok(())
}

/// The actor `opts.mode` asks for. The oracle plans on the env itself and runs one sandbox;
/// the learned agent serves `parallel` sandboxes at once (one at a time when 1).
fn eval_actor(
    opts: &EvalOptions,
    agent_file: &AgentFile,
    planning: &PlanningConfig,
    scene: &Arc<Scene>,
) -> anyhow::Result<EvalActor> {
    let diagnostic = match opts.mode {
        EvalMode::Oracle => return oracle_actor(agent_file, &opts.agent_path, scene),
        EvalMode::Learned => Diagnostic::None,
        EvalMode::Diagnose(d) => d,
    };
    if diagnostic == Diagnostic::WaypointSubgoals && !planning.hierarchical() {
        return Err(InputError::new(
            &opts.agent_path,
            "planning.upper",
            "--waypoint-subgoals replaces the upper level of a hierarchical agent: the file has no [planning.upper] or [planning.landmarks]",
        )
        .into());
    }
    if diagnostic == Diagnostic::SandboxDynamics && planning.planner.kind == PlannerKind::Gradient {
        return Err(InputError::new(
            &opts.agent_path,
            "planning.planner.kind",
            "--sandbox-dynamics plans on the sandbox, which is not differentiable: plan it with cem, mppi or shooting",
        )
        .into());
    }
    let mut learned = load_planning_agent(
        &opts.agent_path,
        scene,
        opts.device,
        opts.checkpoint.as_deref(),
    )?;
    learned.diagnostic = diagnostic;
    Ok(EvalActor::Learned(learned))
}

/// Where results go by default: beside the checkpoint, named after everything that changes
/// which episodes are played, so a run with other goals or another count never overwrites
/// an earlier run's results.
fn default_results_path(
    opts: &EvalOptions,
    planning: &PlanningConfig,
    agent_name: &str,
    scene_name: &str,
) -> PathBuf {
    let dir = opts
        .checkpoint
        .clone()
        .unwrap_or_else(|| PathBuf::from(&planning.checkpoint));
    let dir = if dir.is_dir() {
        dir
    } else {
        PathBuf::from(".")
    };
    let protocol: String = [
        (opts.episodes != DEFAULT_EPISODES).then(|| format!("-n{}", opts.episodes)),
        opts.goals_from.as_ref().map(|data| {
            let name = data
                .file_name()
                .map_or("dataset".into(), |n| n.to_string_lossy());
            format!("-goals-{name}")
        }),
        (opts.goals_from.is_some() && opts.goal_offset != DEFAULT_GOAL_OFFSET)
            .then(|| format!("-offset{}", opts.goal_offset)),
        opts.max_steps.map(|n| format!("-max{n}")),
        opts.success.as_ref().map(|c| format!("-{c}")),
        (!opts.only.is_empty()).then(|| only_suffix(&opts.only)),
    ]
    .into_iter()
    .flatten()
    .collect();
    // The agent file's name is part of it (unless it is the scene's), so agents that
    // share a checkpoint do not overwrite each other's results.
    let who = if agent_name == scene_name {
        scene_name.to_string()
    } else {
        format!("{agent_name}-on-{scene_name}")
    };
    let actor = opts.mode.variant().map_or("", |(mark, _)| mark);
    dir.join(format!("eval-{who}-{}{protocol}{actor}.jsonl", opts.seed))
}

/// Where finished episodes go as they come: a JSON line each (flushed, so an interrupted
/// eval keeps what it played), the recording for `hjepa replay`, and the progress bar.
struct EpisodeSink<'a> {
    file: std::fs::File,
    recording: Option<(Recording, &'a Path)>,
    bar: ProgressBar,
    episodes: Vec<EvalEpisode>,
}

impl<'a> EpisodeSink<'a> {
    fn open(
        opts: &'a EvalOptions,
        out: &Path,
        actor_name: &str,
        scene_path: &Path,
        count: usize,
    ) -> anyhow::Result<EpisodeSink<'a>> {
        if let Some(parent) = out.parent() {
            crate::error::create_dir_all(parent)?;
        }
        let file =
            std::fs::File::create(out).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
        let bar = if opts.progress {
            ProgressBar::new(count as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("eval [{bar:25}] {pos}/{len} episodes eta {eta} {msg}")
                .expect("template")
                .progress_chars("=> "),
        );
        let recording = match &opts.record {
            Some(path) => Some((
                Recording::new(
                    actor_name,
                    scene_path,
                    ProtocolOverrides {
                        max_steps: opts.max_steps,
                        success: opts.success.clone(),
                        vary: opts.vary.iter().cloned().collect(),
                    },
                )?,
                path.as_path(),
            )),
            None => None,
        };
        Ok(EpisodeSink {
            file,
            recording,
            bar,
            episodes: Vec::new(),
        })
    }

    fn push(&mut self, ep: EvalEpisode) -> anyhow::Result<()> {
        writeln!(self.file, "{}", serde_json::to_string(&ep)?)?;
        self.file.flush()?;
        if let Some((r, path)) = &mut self.recording {
            r.episodes.push(RecordedEpisode::from(&ep));
            r.save(path)?;
        }
        self.episodes.push(ep);
        let k = self.episodes.iter().filter(|e| e.success).count();
        self.bar
            .set_message(format!("success {k}/{}", self.episodes.len()));
        self.bar.inc(1);
        Ok(())
    }

    /// The episodes in index order, once the results file is on disk.
    fn finish(mut self) -> anyhow::Result<Vec<EvalEpisode>> {
        self.episodes.sort_by_key(|e| e.index);
        self.file.sync_all()?;
        self.bar.finish_and_clear();
        Ok(self.episodes)
    }
}

/// `summary` (its names, results file and time) completed with the figures of `episodes`
/// and of the random policy's on the same pairs.
fn summarise(
    episodes: &[EvalEpisode],
    random: Option<&[EvalEpisode]>,
    summary: EvalSummary,
) -> EvalSummary {
    let successes = episodes.iter().filter(|e| e.success).count();
    let mut steps: Vec<f64> = episodes
        .iter()
        .filter(|e| e.success)
        .map(|e| e.steps as f64)
        .collect();
    steps.sort_by(f64::total_cmp);
    let mut replan: Vec<f64> = episodes
        .iter()
        .flat_map(|e| e.replan_ms.iter().copied())
        .collect();
    replan.sort_by(f64::total_cmp);
    EvalSummary {
        by_distance_bin: by_distance_bin(episodes),
        by_body_motion: split_by_body_motion(episodes),
        random_by_body_motion: random.and_then(split_by_body_motion),
        episodes: episodes.len(),
        successes,
        success_ci95: wilson_interval(successes, episodes.len()),
        median_steps_to_success: (!steps.is_empty()).then(|| percentile(&steps, 0.5)),
        replan_ms_median: percentile(&replan, 0.5),
        replan_ms_p95: percentile(&replan, 0.95),
        planning_s_per_episode: episodes.iter().map(|e| e.planning_s).sum::<f64>()
            / episodes.len().max(1) as f64,
        random_floor: random.map(|r| (r.iter().filter(|e| e.success).count(), r.len())),
        ..summary
    }
}

/// (bin, successes, episodes, mean planning seconds) per start/goal distance bin.
fn by_distance_bin(episodes: &[EvalEpisode]) -> Vec<(usize, usize, usize, f64)> {
    let mut bins: Vec<usize> = episodes.iter().filter_map(|e| e.distance_bin).collect();
    bins.sort_unstable();
    bins.dedup();
    bins.into_iter()
        .map(|b| {
            let in_bin: Vec<&EvalEpisode> = episodes
                .iter()
                .filter(|e| e.distance_bin == Some(b))
                .collect();
            let plan_s =
                in_bin.iter().map(|e| e.planning_s).sum::<f64>() / in_bin.len().max(1) as f64;
            (
                b,
                in_bin.iter().filter(|e| e.success).count(),
                in_bin.len(),
                plan_s,
            )
        })
        .collect()
}

/// The results file's mark for `--only`: the indices themselves, or for more than 8 their
/// count, first and last and a hash of the list (file names stay short).
fn only_suffix(only: &[u64]) -> String {
    if only.len() <= 8 {
        let listed: Vec<String> = only.iter().map(u64::to_string).collect();
        return format!("-episodes-{}", listed.join("-"));
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    only.hash(&mut h);
    format!(
        "-episodes-{}-from-{}-to-{}-{:08x}",
        only.len(),
        only[0],
        only[only.len() - 1],
        h.finish() as u32
    )
}

#[cfg(test)]
mod tests {
    use super::only_suffix;

    #[test]
    fn an_only_list_names_its_results_file_briefly() {
        assert_eq!(only_suffix(&[17, 41]), "-episodes-17-41");
        let many: Vec<u64> = (0..60).map(|i| i * 3).collect();
        let mut other = many.clone();
        other[30] += 1;
        let (a, b) = (only_suffix(&many), only_suffix(&other));
        assert!(a.starts_with("-episodes-60-from-0-to-177-"), "{a}");
        assert!(a.len() < 50, "{a}");
        assert_ne!(a, b, "different lists, different files");
    }
}
