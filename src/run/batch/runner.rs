//! `hjepa batch`: runs an experiment's grid (or one shard of it) on worker threads and
//! commits each finished run to the results store.
//!
//! Threads: `jobs` workers each run one evaluation at a time, in their own thread (the
//! sandbox steps inline, so it adds no thread), and torch's intra-op pool is set to
//! `max(1, cores / jobs)` threads, so workers × torch threads never exceed the cores.
//! Training runs go first, one at a time, with all cores.
//!
//! Ctrl-C: the first finishes the runs in flight and starts no more; the second abandons
//! them (exit 130) — they rerun next time, everything committed stays.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crossbeam_channel::{unbounded, Sender};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::experiment::{expand_file, ActorKind, ModelSource, Run, RunConfig, Shard};
use super::store::{unix_now, Finished, Provenance, Store};
use crate::agent::{assemble_planning_agent, OracleAgent};
use crate::data::episodes::wilson_interval;
use crate::data::{collect, CollectOptions};
use crate::model::{train, TrainOptions};
use crate::run::eval::{EvalActor, EvalEpisode};
use crate::sim::Scene;

#[derive(Clone, Debug)]
pub struct BatchOptions {
    pub experiment: PathBuf,
    /// Results database (default: `results/<name>/results.sqlite`, or
    /// `results/<name>/shard-<i>-of-<n>.sqlite` for a shard).
    pub db: Option<PathBuf>,
    /// Worker threads (default: the number of cores).
    pub jobs: Option<usize>,
    pub shard: Option<Shard>,
    pub progress: bool,
    /// No lines on stdout (benchmarks).
    pub quiet: bool,
}

#[derive(Debug)]
pub struct BatchSummary {
    pub db: PathBuf,
    pub experiment: String,
    /// Runs in this grid slice.
    pub runs: usize,
    /// Done before this invocation (skipped).
    pub already_done: usize,
    /// Finished and committed now.
    pub finished: usize,
    /// (run id, label, error) of runs that failed; they rerun next time.
    pub failed: Vec<(String, String, String)>,
    /// Stopped by Ctrl-C before the slice was done.
    pub interrupted: bool,
    pub jobs: usize,
    pub torch_threads: usize,
    pub seconds: f64,
}

/// The default database of an experiment or shard.
pub fn default_db(name: &str, shard: Option<Shard>) -> PathBuf {
    let dir = Path::new("results").join(name);
    match shard {
        Some(s) => dir.join(format!("shard-{}-of-{}.sqlite", s.index, s.count)),
        None => dir.join("results.sqlite"),
    }
}

/// Datasets and trained models of a database live beside it, in `<db stem>.files/`.
pub fn files_dir(db: &Path) -> PathBuf {
    db.with_extension("files")
}

/// Ctrl-C presses since the handler was installed (once per process).
fn interrupts() -> &'static AtomicUsize {
    static PRESSES: OnceLock<&'static AtomicUsize> = OnceLock::new();
    PRESSES.get_or_init(|| {
        let presses: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
        let installed = ctrlc::set_handler(move || {
            if presses.fetch_add(1, Ordering::SeqCst) >= 1 {
                eprintln!("\ninterrupted again: abandoning the runs in flight (they rerun next time; finished runs are committed)");
                std::process::exit(130);
            }
            eprintln!("\ninterrupted: finishing the runs in flight, starting no more (Ctrl-C again to abandon them)");
        });
        if let Err(e) = installed {
            tracing::warn!("no Ctrl-C handler: {e}");
        }
        presses
    })
}

/// What a finished run hands back.
struct Outcome {
    episodes: Vec<EvalEpisode>,
    model: Option<String>,
    model_errors: Option<String>,
}

enum Event {
    Started {
        worker: usize,
        run: usize,
        at: f64,
    },
    Episode {
        worker: usize,
    },
    Done {
        worker: usize,
        run: usize,
        at: f64,
        result: anyhow::Result<Outcome>,
    },
}

pub fn batch(opts: &BatchOptions) -> anyhow::Result<BatchSummary> {
    let start = Instant::now();
    let grid = expand_file(&opts.experiment)?;
    let db = opts
        .db
        .clone()
        .unwrap_or_else(|| default_db(&grid.name, opts.shard));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = opts.jobs.unwrap_or(cores).max(1);
    let torch_threads = (cores / jobs).max(1);
    let mut store = Store::open(&db, &grid)?;
    let shard_name = opts.shard.map_or("all".to_string(), |s| s.to_string());
    store.set_meta("shard", &shard_name)?;
    let prov = Provenance::here(shard_name.clone());
    let files = files_dir(&db);
    let slice = grid.shard_runs(opts.shard);
    let done = store.done_ids()?;
    let pending: Vec<&Run> = slice
        .iter()
        .copied()
        .filter(|r| !done.contains(&r.id))
        .collect();
    let already_done = slice.len() - pending.len();
    let say = |line: &str| {
        if !opts.quiet {
            println!("{line}");
        }
    };
    say(&format!(
        "experiment {} (shard {shard_name}): {} runs, {already_done} already done, {} to run; {jobs} workers x {torch_threads} torch threads; results in {}",
        grid.name,
        slice.len(),
        pending.len(),
        db.display()
    ));
    let presses = interrupts();
    let stop_seen = presses.load(Ordering::SeqCst);
    let stopped = || presses.load(Ordering::SeqCst) > stop_seen;
    let mut summary = BatchSummary {
        db: db.clone(),
        experiment: grid.name.clone(),
        runs: slice.len(),
        already_done,
        finished: 0,
        failed: Vec::new(),
        interrupted: false,
        jobs,
        torch_threads,
        seconds: 0.0,
    };
    let total = pending.len();
    let mut counter = already_done;

    // Training runs first, one at a time with every core.
    let (trains, evals): (Vec<&Run>, Vec<&Run>) = pending
        .iter()
        .partition(|r| matches!(r.config, RunConfig::Train { .. }));
    tch::set_num_threads(cores as i32);
    for run in trains {
        if stopped() {
            break;
        }
        counter += 1;
        say(&format!(
            "[{counter}/{}] training {} on {} (run {})",
            slice.len(),
            run.label.agent,
            run.label.scene,
            run.id
        ));
        let at = unix_now();
        store.start(run, &prov, at)?;
        let t = Instant::now();
        match train_run(run, &files, opts.progress) {
            Ok(o) => {
                store.finish(&Finished {
                    run,
                    episodes: &[],
                    started_at: at,
                    seconds: t.elapsed().as_secs_f64(),
                    model: o.model,
                    model_errors: o.model_errors,
                })?;
                summary.finished += 1;
            }
            Err(e) => {
                let msg = format!("{e:#}");
                say(&format!(
                    "[{counter}/{}] FAILED training run {}: {msg}",
                    slice.len(),
                    run.id
                ));
                store.fail(run, &msg)?;
                summary.failed.push((run.id.clone(), label_of(run), msg));
            }
        }
    }

    // Evaluations on `jobs` workers; this thread owns the database and the progress bars.
    tch::set_num_threads(torch_threads as i32);
    let multi = MultiProgress::with_draw_target(if opts.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let total_episodes: u64 = evals.iter().map(|r| episodes_of(r)).sum();
    let overall = multi.add(ProgressBar::new(total_episodes));
    overall.set_style(
        ProgressStyle::with_template(
            "batch [{bar:30}] {pos}/{len} episodes, {msg}, {elapsed} elapsed, eta {eta}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    let workers: Vec<ProgressBar> = (0..jobs.min(evals.len()))
        .map(|w| {
            let b = multi.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template("  worker {prefix}: {msg}").expect("template"),
            );
            b.set_prefix(w.to_string());
            b.set_message("idle");
            b
        })
        .collect();
    let stop = AtomicBool::new(false);
    let (job_tx, job_rx) = unbounded::<usize>();
    for i in 0..evals.len() {
        job_tx.send(i).expect("receiver alive");
    }
    drop(job_tx);
    let (ev_tx, ev_rx) = unbounded::<Event>();
    let files_ref = &files;
    let trained = store.done_ids()?;
    let trained_ref = &trained;
    let evals_ref = &evals;
    let stop_ref = &stop;
    let mut episodes_seen = vec![0u64; workers.len()];
    let mut runs_left = evals.len();
    let mut result: anyhow::Result<()> = Ok(());
    std::thread::scope(|scope| {
        for w in 0..workers.len() {
            let (rx, tx) = (job_rx.clone(), ev_tx.clone());
            scope.spawn(move || {
                // A Ctrl-C (seen directly, not only through the writer) or a store error
                // stops workers from taking more runs.
                while !stop_ref.load(Ordering::SeqCst) && !stopped() {
                    let Ok(i) = rx.recv() else { break };
                    // Ctrl-C may have landed during the recv: run `i` next time instead.
                    if stop_ref.load(Ordering::SeqCst) || stopped() {
                        break;
                    }
                    let at = unix_now();
                    if tx
                        .send(Event::Started {
                            worker: w,
                            run: i,
                            at,
                        })
                        .is_err()
                    {
                        break;
                    }
                    let result = eval_run(evals_ref[i], files_ref, trained_ref, &tx, w);
                    if tx
                        .send(Event::Done {
                            worker: w,
                            run: i,
                            at,
                            result,
                        })
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
        drop(ev_tx);
        let mut started_at = vec![Instant::now(); evals.len()];
        for ev in ev_rx.iter() {
            if stopped() && !stop.swap(true, Ordering::SeqCst) {
                overall.set_message("stopping after the runs in flight");
            }
            match ev {
                Event::Started { worker, run, at } => {
                    started_at[run] = Instant::now();
                    episodes_seen[worker] = 0;
                    workers[worker].set_message(format!(
                        "{} (episode 0/{})",
                        label_of(evals[run]),
                        episodes_of(evals[run])
                    ));
                    if let Err(e) = store.start(evals[run], &prov, at) {
                        result = Err(e);
                        stop.store(true, Ordering::SeqCst);
                    }
                }
                Event::Episode { worker } => {
                    episodes_seen[worker] += 1;
                    overall.inc(1);
                    workers[worker].set_message(format!(
                        "{} (episode {})",
                        workers[worker]
                            .message()
                            .split(" (episode")
                            .next()
                            .unwrap_or(""),
                        episodes_seen[worker]
                    ));
                }
                Event::Done {
                    worker,
                    run,
                    at,
                    result: r,
                } => {
                    runs_left -= 1;
                    counter += 1;
                    workers[worker].set_message("idle");
                    let r_run = evals[run];
                    let seconds = started_at[run].elapsed().as_secs_f64();
                    match r {
                        Ok(o) => {
                            let line = finished_line(r_run, &o.episodes, seconds);
                            let committed = store.finish(&Finished {
                                run: r_run,
                                episodes: &o.episodes,
                                started_at: at,
                                seconds,
                                model: o.model,
                                model_errors: o.model_errors,
                            });
                            match committed {
                                Ok(()) => {
                                    summary.finished += 1;
                                    multi_println(
                                        &multi,
                                        opts,
                                        &format!("[{counter}/{}] {line}", slice.len()),
                                    );
                                }
                                Err(e) => {
                                    result = Err(e);
                                    stop.store(true, Ordering::SeqCst);
                                }
                            }
                        }
                        Err(e) => {
                            let msg = format!("{e:#}");
                            multi_println(
                                &multi,
                                opts,
                                &format!(
                                    "[{counter}/{}] FAILED {}: {msg}",
                                    slice.len(),
                                    label_of(r_run)
                                ),
                            );
                            if let Err(e) = store.fail(r_run, &msg) {
                                result = Err(e);
                            }
                            summary
                                .failed
                                .push((r_run.id.clone(), label_of(r_run), msg));
                        }
                    }
                    overall.set_message(format!("{runs_left} runs left"));
                }
            }
        }
    });
    result?;
    for w in workers {
        w.finish_and_clear();
    }
    overall.finish_and_clear();
    summary.interrupted = summary.finished + summary.failed.len() < total;
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

fn multi_println(multi: &MultiProgress, opts: &BatchOptions, line: &str) {
    if opts.quiet {
        return;
    }
    if opts.progress && !multi.is_hidden() {
        let _ = multi.println(line);
    } else {
        println!("{line}");
    }
}

fn episodes_of(run: &Run) -> u64 {
    match &run.config {
        RunConfig::Eval { episodes, .. } => *episodes,
        RunConfig::Train { .. } => 0,
    }
}

/// `scene / agent / variant / overrides · actor · seed`.
pub fn label_of(run: &Run) -> String {
    let l = &run.label;
    let mut s = format!("{} / {}", l.scene, l.agent);
    if l.variant != "default" {
        s += &format!(" / {}", l.variant);
    }
    if !l.overrides.is_empty() {
        s += &format!(" / {}", l.overrides);
    }
    match &run.config {
        RunConfig::Eval { actor, seed, .. } => s + &format!(" · {} · seed {seed}", actor.name()),
        RunConfig::Train { .. } => s + " · training",
    }
}

fn finished_line(run: &Run, episodes: &[EvalEpisode], seconds: f64) -> String {
    let k = episodes.iter().filter(|e| e.success).count();
    let n = episodes.len();
    let (lo, hi) = wilson_interval(k, n);
    let plan: f64 = episodes.iter().map(|e| e.planning_s).sum::<f64>() / n.max(1) as f64;
    format!(
        "{}: {k}/{n} = {:.1} % (95 % CI {:.1}-{:.1} %), {plan:.2} s planning per episode, {seconds:.1} s",
        label_of(run),
        100.0 * k as f64 / n.max(1) as f64,
        100.0 * lo,
        100.0 * hi
    )
}

/// The run folder of a trained model: an existing checkpoint, or the experiment's own.
fn model_dir(source: &ModelSource, files: &Path) -> PathBuf {
    match source {
        ModelSource::Checkpoint { run, .. } => run.clone(),
        ModelSource::Trained { run_id } => files.join("models").join(run_id),
    }
}

/// The prediction error per horizon recorded with a checkpoint (its last validation).
fn model_errors(run_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(run_dir.join("checkpoint/meta.json")).ok()?;
    let meta: serde_json::Value = serde_json::from_str(&text).ok()?;
    let d = meta.get("diagnostics")?;
    Some(
        serde_json::json!({
            "step": meta.get("step"),
            "level1": d.get("level1_error"),
            "level2": d.get("level2_error"),
            "level2_k": d.get("level2_k"),
        })
        .to_string(),
    )
}

/// Plays one evaluation run; `tx` hears of each finished episode.
fn eval_run(
    run: &Run,
    files: &Path,
    trained_ok: &std::collections::HashSet<String>,
    tx: &Sender<Event>,
    worker: usize,
) -> anyhow::Result<Outcome> {
    let RunConfig::Eval {
        actor,
        agent,
        oracle,
        model,
        seed,
        episodes,
        parallel,
        device,
        ..
    } = &run.config
    else {
        unreachable!("training runs are not evaluations")
    };
    if let Some(ModelSource::Trained { run_id }) = model {
        // A model whose training failed (or never ran) would be scored half-trained.
        anyhow::ensure!(
            trained_ok.contains(run_id),
            "its model (training run {run_id}) is not trained: that run failed or did not finish"
        );
    }
    let scene = Arc::new(Scene::load(&run.scene_path)?);
    let agent_path = run.agent_path.clone().unwrap_or_default();
    let mut model_name = None;
    let mut errors = None;
    let mut actor = match actor {
        ActorKind::Learned => {
            let source = model.as_ref().expect("learned runs name their model");
            let dir = model_dir(source, files);
            model_name = Some(dir.display().to_string());
            errors = model_errors(&dir);
            EvalActor::Learned(assemble_planning_agent(
                agent.clone().expect("learned runs carry their agent file"),
                &agent_path,
                &scene,
                device.as_deref(),
                Some(&dir),
            )?)
        }
        ActorKind::Oracle => {
            let o = oracle.as_ref().expect("oracle runs carry their planner");
            EvalActor::Oracle(
                OracleAgent::new(o.planner.clone(), o.reduce, &scene).map_err(|m| {
                    anyhow::anyhow!("{}: planning.planner.kind: {m}", agent_path.display())
                })?,
            )
        }
        ActorKind::Random => EvalActor::random(),
    };
    let mut out = Vec::with_capacity(*episodes as usize);
    actor.play(&scene, *episodes, *seed, *parallel, |ep| {
        out.push(ep);
        let _ = tx.send(Event::Episode { worker });
        Ok(())
    })?;
    out.sort_by_key(|e| e.index);
    Ok(Outcome {
        episodes: out,
        model: model_name,
        model_errors: errors,
    })
}

/// Collects the dataset (resumable) and trains the model (resuming its checkpoint).
fn train_run(run: &Run, files: &Path, progress: bool) -> anyhow::Result<Outcome> {
    let RunConfig::Train {
        agent,
        scene_sha256,
        collect: c,
        device,
        ..
    } = &run.config
    else {
        unreachable!("evaluations are not training runs")
    };
    let data_key =
        super::experiment::sha256_hex(serde_json::to_string(&(scene_sha256, c))?.as_bytes());
    let data = files
        .join("data")
        .join(format!("{}-{}", run.label.scene, &data_key[..12]));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    collect(&CollectOptions {
        scene_path: run.scene_path.clone(),
        out: data.clone(),
        episodes: c.episodes,
        policy: c.policy,
        noise: c.noise,
        seed: c.seed,
        shard_episodes: 50,
        threads,
        progress,
    })?;
    let models = files.join("models");
    std::fs::create_dir_all(&models)?;
    // The model part of the resolved agent file, as `hjepa train` reads it.
    let agent_file = models.join(format!("{}.toml", run.id));
    crate::data::dataset::write_atomic(&agent_file, toml::to_string(agent)?.as_bytes())?;
    let out = models.join(&run.id);
    train(&TrainOptions {
        agent: agent.clone(),
        agent_path: agent_file,
        data: vec![data],
        shares: None,
        out: out.clone(),
        resume: true,
        device: device.clone(),
        steps: None,
        seed: None,
        progress,
    })?;
    Ok(Outcome {
        episodes: Vec::new(),
        model: Some(out.display().to_string()),
        model_errors: model_errors(&out),
    })
}
