//! `hjepa bench batch`: what the batch runner costs over playing the same episodes in a bare
//! loop. Both sides play the grid of a small experiment (the oracle with a small planner
//! budget and the random policy on two_rooms, two seeds); the runner adds expansion, the
//! database (one transaction per run, WAL, synchronous writes), the worker thread and the
//! progress plumbing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::run::batch::experiment::{expand_file, ActorKind, RunConfig};
use crate::run::batch::{batch, BatchOptions};
use crate::run::eval::EvalActor;
use crate::sim::Scene;

fn experiment_text(episodes: u64) -> String {
    format!(
        r#"name = "bench"
agents = ["two_rooms"]
actors = ["oracle", "random"]
seeds = [0, 1]
episodes = {episodes}
[overrides]
"planning.planner.samples" = [16]
"planning.planner.iterations" = [1]
"planning.planner.replan_every" = [5]
"#
    )
}

/// Plays every run of the grid in this thread, keeping the episodes in memory.
fn bare_loop(experiment: &std::path::Path) -> anyhow::Result<usize> {
    let grid = expand_file(experiment)?;
    let mut n = 0;
    for run in &grid.runs {
        let RunConfig::Eval {
            actor,
            oracle,
            seed,
            episodes,
            ..
        } = &run.config
        else {
            continue;
        };
        let scene = Arc::new(Scene::load(&run.scene_path)?);
        let mut a = match actor {
            ActorKind::Oracle => {
                let o = oracle.as_ref().expect("oracle runs carry a planner");
                EvalActor::Oracle(
                    crate::agent::OracleAgent::new(o.planner.clone(), o.reduce, &scene)
                        .map_err(|m| anyhow::anyhow!(m))?,
                )
            }
            ActorKind::Random => EvalActor::random(),
            ActorKind::Learned => anyhow::bail!("the bench grid has no learned runs"),
        };
        let mut out = Vec::new();
        a.play(&scene, *episodes, *seed, 1, |e| {
            out.push(e);
            Ok(())
        })?;
        n += out.len();
    }
    Ok(n)
}

pub fn batch_table(episodes: u64, repeats: usize) -> anyhow::Result<String> {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("hjepa-bench-batch-{}", std::process::id()));
    crate::error::create_dir_all(&dir)?;
    let experiment = dir.join("bench.toml");
    std::fs::write(&experiment, experiment_text(episodes))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (mut bare, mut runner) = (f64::MAX, f64::MAX);
    let mut played = 0;
    for rep in 0..repeats.max(1) {
        // Same torch threads as the runner gives one worker.
        tch::set_num_threads(cores as i32);
        let t = Instant::now();
        played = bare_loop(&experiment)?;
        bare = bare.min(t.elapsed().as_secs_f64());
        let db = dir.join(format!("bench-{rep}.sqlite"));
        let t = Instant::now();
        let s = batch(&BatchOptions {
            experiment: experiment.clone(),
            db: Some(db),
            jobs: Some(1),
            shard: None,
            progress: false,
            quiet: true,
        })?;
        runner = runner.min(t.elapsed().as_secs_f64());
        anyhow::ensure!(s.failed.is_empty(), "bench runs failed: {:?}", s.failed);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(format!(
        "| measurement | seconds (best of {}) |\n|---|---|\n| bare loop: 4 runs, {played} episodes (oracle 16x1 budget + random, two_rooms) | {bare:.2} |\n| hjepa batch --jobs 1, same grid, fresh database | {runner:.2} |\n| runner overhead | {:+.1} % |",
        repeats.max(1),
        100.0 * (runner / bare - 1.0)
    ))
}
