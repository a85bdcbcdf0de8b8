//! The evaluation phase: `jobs` worker threads play the runs, and the calling thread (the
//! writer) owns the database and the progress bars, hearing of every start, episode and end.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel::{unbounded, Receiver, Sender};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::play::eval_run;
use super::{
    episodes_of, finished_line, label_of, multi_println, BatchOptions, Event, Interrupt, Outcome,
    Session,
};
use crate::run::batch::experiment::Run;
use crate::run::batch::store::{unix_now, Finished};

/// Plays the evaluations on up to `jobs` worker threads while this thread commits them.
pub(super) fn run_evaluations(
    session: &mut Session,
    evals: &[&Run],
    jobs: usize,
) -> anyhow::Result<()> {
    let bars = Progress::new(session.opts, evals, jobs);
    let stop = AtomicBool::new(false);
    let (job_tx, job_rx) = unbounded::<usize>();
    for i in 0..evals.len() {
        job_tx.send(i).expect("receiver alive");
    }
    drop(job_tx);
    let (ev_tx, ev_rx) = unbounded::<Event>();
    let trained = session.store.done_ids()?;
    let shared = Shared {
        evals,
        files: session.files,
        trained: &trained,
        stop: &stop,
        interrupt: session.interrupt,
    };
    let result = std::thread::scope(|scope| {
        for w in 0..bars.workers.len() {
            let (rx, tx) = (job_rx.clone(), ev_tx.clone());
            let shared = &shared;
            scope.spawn(move || work(w, rx, tx, shared));
        }
        drop(ev_tx);
        let mut writer = Writer::new(session, evals, &bars, &stop);
        for ev in ev_rx.iter() {
            writer.handle(ev);
        }
        writer.result
    });
    result?;
    bars.finish();
    Ok(())
}

/// The progress display: episodes over all runs, and a line per worker.
struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
    workers: Vec<ProgressBar>,
}

impl Progress {
    /// Bars for `evals` on up to `jobs` workers (drawn only with `progress`).
    fn new(opts: &BatchOptions, evals: &[&Run], jobs: usize) -> Progress {
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
        Progress {
            multi,
            overall,
            workers,
        }
    }

    /// Clears the bars once the evaluations are over.
    fn finish(self) {
        for w in self.workers {
            w.finish_and_clear();
        }
        self.overall.finish_and_clear();
    }
}

/// What every worker reads.
struct Shared<'a> {
    evals: &'a [&'a Run],
    files: &'a Path,
    /// Runs done in the store: a learned run's training must be among them.
    trained: &'a HashSet<String>,
    /// Set by the writer (a store error, or Ctrl-C): take no more runs.
    stop: &'a AtomicBool,
    interrupt: Interrupt,
}

/// Worker `w`: plays the runs it takes off `rx` until none are left, Ctrl-C, or the writer
/// is gone, telling the writer on `tx`.
fn work(w: usize, rx: Receiver<usize>, tx: Sender<Event>, shared: &Shared) {
    // A Ctrl-C (seen directly, not only through the writer) or a store error
    // stops workers from taking more runs.
    while !shared.stop.load(Ordering::SeqCst) && !shared.interrupt.stopped() {
        let Ok(i) = rx.recv() else { break };
        // Ctrl-C may have landed during the recv: run `i` next time instead.
        if shared.stop.load(Ordering::SeqCst) || shared.interrupt.stopped() {
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
        let result = eval_run(shared.evals[i], shared.files, shared.trained, &tx, w);
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
}

/// The writer: commits what the workers report and keeps the bars current.
struct Writer<'s, 'a> {
    session: &'s mut Session<'a>,
    evals: &'s [&'s Run],
    bars: &'s Progress,
    stop: &'s AtomicBool,
    /// When each run started: its seconds count from here.
    started_at: Vec<Instant>,
    /// Episodes finished in each worker's current run.
    episodes_seen: Vec<u64>,
    runs_left: usize,
    /// A store error: it stops the workers and fails the batch.
    result: anyhow::Result<()>,
}

impl<'s, 'a> Writer<'s, 'a> {
    /// A writer for `evals`, none of them started yet.
    fn new(
        session: &'s mut Session<'a>,
        evals: &'s [&'s Run],
        bars: &'s Progress,
        stop: &'s AtomicBool,
    ) -> Writer<'s, 'a> {
        Writer {
            session,
            evals,
            bars,
            stop,
            started_at: vec![Instant::now(); evals.len()],
            episodes_seen: vec![0u64; bars.workers.len()],
            runs_left: evals.len(),
            result: Ok(()),
        }
    }

    /// Handles one event; a Ctrl-C seen here stops the workers after the runs in flight.
    fn handle(&mut self, ev: Event) {
        if self.session.interrupt.stopped() && !self.stop.swap(true, Ordering::SeqCst) {
            self.bars
                .overall
                .set_message("stopping after the runs in flight");
        }
        match ev {
            Event::Started { worker, run, at } => self.started(worker, run, at),
            Event::Episode { worker } => self.episode(worker),
            Event::Done {
                worker,
                run,
                at,
                result: r,
            } => self.done(worker, run, at, r),
        }
    }

    /// A run started: time it, show it on its worker's line, mark it running in the store.
    fn started(&mut self, worker: usize, run: usize, at: f64) {
        let evals = self.evals;
        self.started_at[run] = Instant::now();
        self.episodes_seen[worker] = 0;
        self.bars.workers[worker].set_message(format!(
            "{} (episode 0/{})",
            label_of(evals[run]),
            episodes_of(evals[run])
        ));
        if let Err(e) = self.session.store.start(evals[run], self.session.prov, at) {
            self.fail_batch(e);
        }
    }

    /// An episode finished: count it on the overall bar and the worker's line.
    fn episode(&mut self, worker: usize) {
        let workers = &self.bars.workers;
        self.episodes_seen[worker] += 1;
        self.bars.overall.inc(1);
        workers[worker].set_message(format!(
            "{} (episode {})",
            workers[worker]
                .message()
                .split(" (episode")
                .next()
                .unwrap_or(""),
            self.episodes_seen[worker]
        ));
    }

    /// A run ended: commit it, or record that it failed.
    fn done(&mut self, worker: usize, run: usize, at: f64, r: anyhow::Result<Outcome>) {
        self.runs_left -= 1;
        self.session.counter += 1;
        self.bars.workers[worker].set_message("idle");
        let r_run = self.evals[run];
        let seconds = self.started_at[run].elapsed().as_secs_f64();
        match r {
            Ok(o) => self.commit(r_run, o, at, seconds),
            Err(e) => self.record_failure(r_run, e),
        }
        let runs_left = self.runs_left;
        self.bars
            .overall
            .set_message(format!("{runs_left} runs left"));
    }

    /// Commits a finished run with its episodes and prints its line.
    fn commit(&mut self, r_run: &Run, o: Outcome, at: f64, seconds: f64) {
        let line = finished_line(r_run, &o.episodes, seconds);
        let committed = self.session.store.finish(&Finished {
            run: r_run,
            episodes: &o.episodes,
            started_at: at,
            seconds,
            model: o.model,
            model_errors: o.model_errors,
        });
        match committed {
            Ok(()) => {
                self.session.summary.finished += 1;
                let (counter, slice_len) = (self.session.counter, self.session.slice_len);
                multi_println(
                    &self.bars.multi,
                    self.session.opts,
                    &format!("[{counter}/{}] {line}", slice_len),
                );
            }
            Err(e) => self.fail_batch(e),
        }
    }

    /// Records a run that failed (it reruns next time); the batch goes on.
    fn record_failure(&mut self, r_run: &Run, e: anyhow::Error) {
        let msg = format!("{e:#}");
        let (counter, slice_len) = (self.session.counter, self.session.slice_len);
        multi_println(
            &self.bars.multi,
            self.session.opts,
            &format!(
                "[{counter}/{}] FAILED {}: {msg}",
                slice_len,
                label_of(r_run)
            ),
        );
        if let Err(e) = self.session.store.fail(r_run, &msg) {
            self.result = Err(e);
        }
        self.session
            .summary
            .failed
            .push((r_run.id.clone(), label_of(r_run), msg));
    }

    /// A store error: the batch fails with it once the workers have stopped.
    fn fail_batch(&mut self, e: anyhow::Error) {
        self.result = Err(e);
        self.stop.store(true, Ordering::SeqCst);
    }
}
