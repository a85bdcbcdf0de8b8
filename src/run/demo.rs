//! `hjepa demo`, the main job: collect -> train -> evaluate on the agent's scene (two_rooms
//! by default), then the oracle model and the random floor on the same start/goal pairs.
//! Every stage reuses finished work: the dataset resumes, training resumes from its
//! checkpoint, so a rerun goes straight to the evaluation.

use std::path::{Path, PathBuf};

use crate::agent::AgentFile;
use crate::data::{collect, CollectOptions, Dataset, PolicyKind};
use crate::model::{train, TrainOptions};
use crate::run::eval::{eval, EvalMode, EvalOptions, EvalSummary};
use crate::sim::Scene;

#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub agent_path: PathBuf,
    /// Episodes the shipped model (the agent file's `planning.model`) plays first.
    pub shipped_episodes: u64,
    pub collect_episodes: u64,
    pub train_steps: Option<i64>,
    pub episodes: u64,
    pub out: PathBuf,
}

/// What the demo measured.
pub struct DemoSummary {
    /// The shipped model's evaluation, when the agent file names one that is there.
    pub shipped: Option<EvalSummary>,
    pub learned: EvalSummary,
    pub oracle: EvalSummary,
}

pub fn demo(opts: &DemoOptions) -> anyhow::Result<DemoSummary> {
    let agent = AgentFile::load(&opts.agent_path)?;
    let scene_path = Scene::resolve_path(&agent.scene);
    let (data, run) = (opts.out.join("data"), opts.out.join("run"));
    let shipped = shipped_stage(opts, &agent)?;
    collect_stage(opts, &agent, scene_path, &data)?;
    train_stage(opts, &data, &run)?;
    println!(
        "== 3/4 closed-loop evaluation of the planning agent, {} episodes",
        opts.episodes
    );
    let learned = eval(&eval_options(opts, &run, false))?;
    println!("{}\n", learned.report());
    println!("== 4/4 the same planner with the sandbox as its model (oracle)");
    let oracle = eval(&eval_options(opts, &run, true))?;
    println!("{}\n", oracle.report());
    print_summary(opts, &learned, &oracle);
    if let Some(s) = &shipped {
        let fresh = first_successes(&opts.out.join("eval.jsonl"), s.episodes);
        println!(
            "on the {n} episodes the shipped model played first (the same seeds): shipped {}/{n}, freshly trained {fresh}/{n}",
            s.successes,
            n = s.episodes
        );
    }
    Ok(DemoSummary {
        shipped,
        learned,
        oracle,
    })
}

/// Stage 0: the shipped model plays first, so a result shows before any training.
fn shipped_stage(opts: &DemoOptions, agent: &AgentFile) -> anyhow::Result<Option<EvalSummary>> {
    let Some(name) = agent.planning.as_ref().and_then(|p| p.model.clone()) else {
        return Ok(None);
    };
    if opts.shipped_episodes == 0 {
        return Ok(None);
    }
    let dir = crate::model::shipped::model_dir(&name);
    if !dir.is_dir() {
        println!(
            "== 0/4 no shipped model {name:?} at {}: skipped\n",
            dir.display()
        );
        return Ok(None);
    }
    let m = crate::model::shipped::verify(&dir)?;
    println!(
        "== 0/4 the shipped model {} ({} steps, commit {}), {} episodes, before any training",
        dir.display(),
        m.steps,
        m.commit,
        opts.shipped_episodes
    );
    let mut o = eval_options(opts, &dir, false);
    o.episodes = opts.shipped_episodes;
    o.random_floor = false;
    o.record = None;
    o.out = Some(opts.out.join("eval-shipped.jsonl"));
    let s = eval(&o)?;
    println!("{}\n", s.report());
    Ok(Some(s))
}

/// Successes among the first `n` episodes of an eval's results file.
fn first_successes(rows: &Path, n: usize) -> usize {
    std::fs::read_to_string(rows)
        .unwrap_or_default()
        .lines()
        .take(n)
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["success"] == true)
        })
        .count()
}

/// Stage 1: the scripted dataset (resumed if partly there), verified.
fn collect_stage(
    opts: &DemoOptions,
    agent: &AgentFile,
    scene_path: PathBuf,
    data: &Path,
) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "== 1/4 collect: {} smooth-random-walk episodes of {} -> {}",
        opts.collect_episodes,
        agent.scene,
        data.display()
    );
    let c = collect(&CollectOptions {
        scene_path,
        out: data.to_path_buf(),
        episodes: opts.collect_episodes,
        policy: PolicyKind::SmoothWalk,
        noise: 0.3,
        seed: 1,
        shard_episodes: 50,
        threads,
        progress: true,
        cancel: None,
    })?;
    Dataset::open(data)?.verify()?;
    println!(
        "{} episodes ({} recorded now, {} steps) in {:.1} s, verified\n",
        c.episodes_total, c.episodes_recorded, c.steps_recorded, c.seconds
    );
    Ok(())
}

/// Stage 2: the world model, trained on the dataset (resumed from its checkpoint).
fn train_stage(opts: &DemoOptions, data: &Path, run: &Path) -> anyhow::Result<()> {
    println!(
        "== 2/4 train the world model ({}) -> {}",
        opts.agent_path.display(),
        run.display()
    );
    let t = train(&TrainOptions {
        agent: AgentFile::load(&opts.agent_path)?.model,
        agent_path: opts.agent_path.clone(),
        data: vec![data.to_path_buf()],
        shares: None,
        out: run.to_path_buf(),
        resume: true,
        device: None,
        steps: opts.train_steps,
        seed: None,
        progress: true,
    })?;
    println!(
        "{} steps; {:.1} s this time\n{}\n",
        t.steps,
        t.seconds,
        t.diagnostics.summary()
    );
    Ok(())
}

/// Stages 3 and 4: the evaluation of the trained checkpoint in `run`, with the learned
/// model (and the random floor) or with the sandbox as the model (`oracle`).
fn eval_options(opts: &DemoOptions, run: &Path, oracle: bool) -> EvalOptions {
    EvalOptions {
        agent_path: opts.agent_path.clone(),
        scene: None,
        episodes: opts.episodes,
        seed: 0,
        mode: if oracle {
            EvalMode::Oracle
        } else {
            EvalMode::Learned
        },
        only: Vec::new(),
        checkpoint: Some(run.to_path_buf()),
        device: None,
        out: Some(opts.out.join(if oracle {
            "eval-oracle.jsonl"
        } else {
            "eval.jsonl"
        })),
        random_floor: !oracle,
        record: Some(opts.out.join(if oracle {
            "episodes-oracle.json"
        } else {
            "episodes.json"
        })),
        parallel: 1,
        progress: true,
        goals_from: None,
        goal_offset: 0,
        max_steps: None,
        success: None,
        vary: Vec::new(),
    }
}

/// The closing line: the learned model's success rate beside the random floor's and the
/// oracle's.
fn print_summary(opts: &DemoOptions, learned: &EvalSummary, oracle: &EvalSummary) {
    let (k, n) = learned.random_floor.unwrap_or((0, 0));
    println!(
        "summary on {}: learned world model {:.1} % | random floor {:.1} % | oracle model {:.1} %  ({} episodes each; per-episode results in {})",
        learned.scene,
        100.0 * learned.rate(),
        100.0 * k as f64 / n.max(1) as f64,
        100.0 * oracle.rate(),
        opts.episodes,
        opts.out.display()
    );
}
