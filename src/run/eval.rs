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
use crate::agent::AgentFile;
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
    /// Plan with the sandbox as the model (same planner and budget).
    pub oracle: bool,
    /// Hierarchical agents: subgoals from the scene's waypoint expert instead of the upper
    /// level (see `PlanningAgent::waypoint_subgoals`); one sandbox at a time.
    pub waypoint_subgoals: bool,
    /// Level 1 plans on the sandbox's dynamics with the agent's cost (see
    /// `PlanningAgent::sandbox_dynamics`); one sandbox at a time.
    pub sandbox_dynamics: bool,
    /// Only these episodes of `0..episodes` (empty: all), e.g. the failures of an earlier run
    /// under a diagnostic; the default results file names them.
    pub only: Vec<u64>,
    /// Run folder to load instead of the agent file's `planning.checkpoint`.
    pub checkpoint: Option<PathBuf>,
    pub device: Option<String>,
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
}

impl EvalOptions {
    /// What plans instead of the plain learned agent, if anything: the mark on its results
    /// file and its label.
    fn variant(&self) -> Option<(&'static str, &'static str)> {
        if self.oracle {
            Some(("-oracle", "oracle model"))
        } else if self.waypoint_subgoals {
            Some(("-waypoint-subgoals", "waypoint subgoals"))
        } else if self.sandbox_dynamics {
            Some(("-sandbox-dynamics", "sandbox dynamics"))
        } else {
            None
        }
    }
}

/// What `hjepa eval` reports.
#[derive(Clone, Debug, Serialize)]
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
    let scene_arg = opts
        .scene
        .clone()
        .unwrap_or_else(|| agent_file.scene.clone());
    let scene_path = Scene::resolve_path(&scene_arg);
    let scene = Arc::new(eval_scene(
        Scene::load(&scene_path)?,
        &scene_path,
        opts.max_steps,
        opts.success.as_deref(),
    )?);
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
    let mut listed = opts.only.clone();
    listed.sort_unstable();
    if let Some(w) = listed.windows(2).find(|w| w[0] == w[1]) {
        return Err(InputError::new(
            Path::new("--only"),
            "",
            format!("episode {} is listed twice", w[0]),
        )
        .into());
    }
    if let Some(&i) = opts.only.iter().find(|&&i| i >= opts.episodes) {
        return Err(InputError::new(
            Path::new("--only"),
            "",
            format!(
                "episode {i} is not among the {} episodes (--episodes; indices from 0)",
                opts.episodes
            ),
        )
        .into());
    }
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
    // The oracle plans on the env itself and runs one sandbox; the learned agent serves
    // `parallel` sandboxes at once (one at a time when 1).
    let mut agent = if opts.oracle {
        oracle_actor(&agent_file, &opts.agent_path, &scene)?
    } else {
        let mut learned = load_planning_agent(
            &opts.agent_path,
            &scene,
            opts.device.as_deref(),
            opts.checkpoint.as_deref(),
        )?;
        if opts.waypoint_subgoals {
            if !planning.hierarchical() {
                return Err(InputError::new(
                    &opts.agent_path,
                    "planning.upper",
                    "--waypoint-subgoals replaces the upper level of a hierarchical agent: the file has no [planning.upper] or [planning.landmarks]",
                )
                .into());
            }
            learned.waypoint_subgoals = true;
        }
        if opts.sandbox_dynamics && planning.planner.kind == PlannerKind::Gradient {
            return Err(InputError::new(
                &opts.agent_path,
                "planning.planner.kind",
                "--sandbox-dynamics plans on the sandbox, which is not differentiable: plan it with cem, mppi or shooting",
            )
            .into());
        }
        learned.sandbox_dynamics = opts.sandbox_dynamics;
        EvalActor::Learned(learned)
    };
    // Waypoints and snapshots come from each sandbox's true state, which the batched loop
    // does not hand the agent: one sandbox at a time.
    let parallel = if opts.waypoint_subgoals || opts.sandbox_dynamics {
        1
    } else {
        opts.parallel
    };
    let agent_name = opts
        .agent_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("agent")
        .to_string();
    let out = opts.out.clone().unwrap_or_else(|| {
        let dir = opts
            .checkpoint
            .clone()
            .unwrap_or_else(|| PathBuf::from(&planning.checkpoint));
        let dir = if dir.is_dir() {
            dir
        } else {
            PathBuf::from(".")
        };
        // Everything that changes which episodes are played is in the name, so a run with
        // other goals or another count never overwrites an earlier run's results.
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
        let who = if agent_name == scene.name {
            scene.name.clone()
        } else {
            format!("{agent_name}-on-{}", scene.name)
        };
        let actor = opts.variant().map_or("", |(mark, _)| mark);
        dir.join(format!("eval-{who}-{}{protocol}{actor}.jsonl", opts.seed))
    });
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file =
        std::fs::File::create(&out).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    let bar = if opts.progress {
        ProgressBar::new(starts.indices().len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("eval [{bar:25}] {pos}/{len} episodes eta {eta} {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    let start = Instant::now();
    let mut episodes = Vec::new();
    let actor_name = match opts.variant() {
        Some((_, label)) => format!("{agent_name} ({label})"),
        None => agent_name.clone(),
    };
    let mut recording = match &opts.record {
        Some(_) => Some(Recording::new(
            &actor_name,
            &scene_path,
            ProtocolOverrides {
                max_steps: opts.max_steps,
                success: opts.success.clone(),
            },
        )?),
        None => None,
    };
    let mut finish = |ep: EvalEpisode| -> anyhow::Result<()> {
        writeln!(file, "{}", serde_json::to_string(&ep)?)?;
        file.flush()?;
        if let (Some(r), Some(path)) = (&mut recording, &opts.record) {
            r.episodes.push(RecordedEpisode::from(&ep));
            r.save(path)?;
        }
        episodes.push(ep);
        let k = episodes.iter().filter(|e| e.success).count();
        bar.set_message(format!("success {k}/{}", episodes.len()));
        bar.inc(1);
        Ok(())
    };
    agent.play_from(&scene, starts, parallel, &mut finish)?;
    drop(finish);
    episodes.sort_by_key(|e| e.index);
    file.sync_all()?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
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
    let random_floor = random
        .as_ref()
        .map(|r| (r.iter().filter(|e| e.success).count(), r.len()));
    let random_by_body_motion = random.as_deref().and_then(split_by_body_motion);
    let mut bins: Vec<usize> = episodes.iter().filter_map(|e| e.distance_bin).collect();
    bins.sort_unstable();
    bins.dedup();
    let by_distance_bin = bins
        .into_iter()
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
        .collect();
    Ok(EvalSummary {
        by_distance_bin,
        by_body_motion: split_by_body_motion(&episodes),
        random_by_body_motion,
        scene: scene.name.clone(),
        // (The oracle's summary says so in its own field.)
        agent: if opts.oracle { agent_name } else { actor_name },
        oracle: opts.oracle,
        episodes: episodes.len(),
        successes,
        success_ci95: wilson_interval(successes, episodes.len()),
        median_steps_to_success: (!steps.is_empty()).then(|| percentile(&steps, 0.5)),
        replan_ms_median: percentile(&replan, 0.5),
        replan_ms_p95: percentile(&replan, 0.95),
        planning_s_per_episode: episodes.iter().map(|e| e.planning_s).sum::<f64>()
            / episodes.len().max(1) as f64,
        random_floor,
        results: out,
        seconds,
    })
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
