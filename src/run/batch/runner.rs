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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use indicatif::MultiProgress;

use super::experiment::{expand_file, Run, RunConfig, Shard};
use super::store::{unix_now, Finished, Provenance, Store};
use crate::data::episodes::wilson_interval;
use crate::run::eval::EvalEpisode;

mod play;
mod workers;

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

/// Ctrl-C presses since a point in time: any stops the batch from starting more runs.
#[derive(Clone, Copy)]
struct Interrupt {
    presses: &'static AtomicUsize,
    seen: usize,
}

impl Interrupt {
    /// Installs the handler (once per process) and counts the presses from now on.
    fn since_now() -> Interrupt {
        let presses = interrupts();
        Interrupt {
            presses,
            seen: presses.load(Ordering::SeqCst),
        }
    }

    /// Whether Ctrl-C was pressed since.
    fn stopped(&self) -> bool {
        self.presses.load(Ordering::SeqCst) > self.seen
    }
}

/// What a finished run hands back.
struct Outcome {
    episodes: Vec<EvalEpisode>,
    model: Option<String>,
    model_errors: Option<String>,
}

/// What a worker tells the writer thread.
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

/// Runs an experiment's grid (or one shard of it), skipping the runs already done, and
/// commits each finished run.
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
    say(opts, &format!(
        "experiment {} (shard {shard_name}): {} runs, {already_done} already done, {} to run; {jobs} workers x {torch_threads} torch threads; results in {}",
        grid.name,
        slice.len(),
        pending.len(),
        db.display()
    ));
    let interrupt = Interrupt::since_now();
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
    let mut session = Session {
        opts,
        store: &mut store,
        prov: &prov,
        files: &files,
        slice_len: slice.len(),
        counter: already_done,
        summary: &mut summary,
        interrupt,
    };

    // Training runs first, one at a time with every core.
    let (trains, evals): (Vec<&Run>, Vec<&Run>) = pending
        .iter()
        .partition(|r| matches!(r.config, RunConfig::Train { .. }));
    tch::set_num_threads(cores as i32);
    session.run_trainings(&trains)?;

    // Evaluations on `jobs` workers; this thread owns the database and the progress bars.
    tch::set_num_threads(torch_threads as i32);
    workers::run_evaluations(&mut session, &evals, jobs)?;
    summary.interrupted = summary.finished + summary.failed.len() < total;
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// What the training and the evaluation phase share: the options, the store, the tally.
struct Session<'a> {
    opts: &'a BatchOptions,
    store: &'a mut Store,
    prov: &'a Provenance,
    /// Datasets and trained models (`files_dir`).
    files: &'a Path,
    /// Runs in this grid slice: the `n` of `[k/n]`.
    slice_len: usize,
    /// The `k` of `[k/n]`: runs done before, and those finished or failed since.
    counter: usize,
    summary: &'a mut BatchSummary,
    interrupt: Interrupt,
}

impl Session<'_> {
    /// Trains the models one at a time (the caller gives them every core) until done or
    /// Ctrl-C; a failed training is recorded and the batch goes on.
    fn run_trainings(&mut self, trains: &[&Run]) -> anyhow::Result<()> {
        let slice_len = self.slice_len;
        for &run in trains {
            if self.interrupt.stopped() {
                break;
            }
            self.counter += 1;
            let counter = self.counter;
            say(
                self.opts,
                &format!(
                    "[{counter}/{}] training {} on {} (run {})",
                    slice_len, run.label.agent, run.label.scene, run.id
                ),
            );
            let at = unix_now();
            self.store.start(run, self.prov, at)?;
            let t = Instant::now();
            match play::train_run(run, self.files, self.opts.progress) {
                Ok(o) => {
                    self.store.finish(&Finished {
                        run,
                        episodes: &[],
                        started_at: at,
                        seconds: t.elapsed().as_secs_f64(),
                        model: o.model,
                        model_errors: o.model_errors,
                    })?;
                    self.summary.finished += 1;
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    say(
                        self.opts,
                        &format!(
                            "[{counter}/{}] FAILED training run {}: {msg}",
                            slice_len, run.id
                        ),
                    );
                    self.store.fail(run, &msg)?;
                    self.summary
                        .failed
                        .push((run.id.clone(), label_of(run), msg));
                }
            }
        }
        Ok(())
    }
}

/// Prints a line on stdout, unless quiet.
fn say(opts: &BatchOptions, line: &str) {
    if !opts.quiet {
        println!("{line}");
    }
}

/// Prints a line above the progress bars (or on stdout without them), unless quiet.
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

/// Episodes an evaluation run plays (none for a training run).
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

/// The line printed for a finished evaluation: its success rate with the 95 % interval.
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
