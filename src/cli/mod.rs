//! The `hjepa` command line: clap-derive subcommands whose doc comments are their `--help`.
//! The library does the work; each subcommand's module holds its flags and runs it, and this
//! file parses, dispatches and maps errors to exit codes (2 for bad input, 1 for anything else).

#[cfg(feature = "torch")]
pub mod batch;
pub mod bench;
pub mod check;
pub mod collect;
#[cfg(feature = "torch")]
pub mod demo;
#[cfg(feature = "torch")]
pub mod eval;
#[cfg(feature = "torch")]
pub mod export;
mod guard;
#[cfg(feature = "torch")]
pub mod info;
pub mod inspect;
#[cfg(feature = "torch")]
pub mod merge;
#[cfg(feature = "torch")]
pub mod probe;
pub mod record;
pub mod replay;
#[cfg(feature = "torch")]
pub mod report;
#[cfg(feature = "torch")]
pub mod reproduce;
pub mod run;
#[cfg(feature = "torch")]
pub mod train;
pub mod view;

pub use view::view;

/// Who acts in `hjepa record` and `hjepa view` (flattened into their flags).
#[derive(clap::Args, Debug)]
pub struct ActorArgs {
    /// Scene (default: the agent's, else two_rooms).
    #[arg(long)]
    scene: Option<String>,
    /// Agent file with a [planning] table (a path, or a shipped agent's name); without
    /// one, a scripted --policy acts (record) or you drive (view).
    #[arg(long)]
    agent: Option<String>,
    /// Plan with the sandbox itself as the model (with --agent).
    #[arg(long)]
    oracle: bool,
    /// cpu, cuda or cuda:N (overrides the agent file).
    #[arg(long)]
    device: Option<crate::device::Device>,
}

impl From<ActorArgs> for crate::run::actors::ActorSpec {
    fn from(a: ActorArgs) -> Self {
        crate::run::actors::ActorSpec {
            scene: a.scene,
            agent: a
                .agent
                .map(|a| crate::sim::shipped::resolve(&a, crate::sim::shipped::Kind::Agent)),
            oracle: a.oracle,
            device: a.device,
        }
    }
}

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::InputError;

#[derive(Parser, Debug)]
#[command(
    name = "hjepa",
    version,
    about = "A 2-D physics sandbox for H-JEPA world models and planners"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    #[cfg(feature = "torch")]
    /// The main job, no flags needed: collect a two_rooms dataset, train the agent's world
    /// model, evaluate the planning agent closed loop, and print its success rate beside the
    /// random-policy floor and the oracle model's rate (~10 min on 2 cores; a rerun reuses
    /// the dataset and the finished training run)
    Demo(demo::Args),
    /// Validate a scene file and print a summary of what it declares.
    Check(check::Args),
    /// Run a scene with a scripted policy and print a report (success rate with a 95% CI,
    /// steps to success, final distance, speed).
    Run(run::Args),
    /// Record episodes of a scripted policy into a dataset folder: safetensors shards plus a
    /// JSON manifest (Python: `safetensors.numpy.load_file`). Shards are written atomically;
    /// rerunning the same command after an interruption records only what is missing.
    /// With `--agent` a planning agent plays instead, toward start/goal windows of
    /// `--goals-from`'s trajectories, each episode `--max-steps` long (past a success): data
    /// where the agent's own plans take it, to train its world model on as well.
    Collect(collect::Args),
    /// Verify a dataset: manifest, shard sizes and SHA-256, shapes; print a summary.
    Inspect(inspect::Args),
    #[cfg(feature = "torch")]
    /// Train the H-JEPA world model of an agent file on a dataset: progress bar with live
    /// losses, validation and an atomic checkpoint every `validate_every` steps, metrics in
    /// `<out>/metrics.jsonl`. `--resume` continues a run exactly where it stopped.
    Train(train::Args),
    #[cfg(feature = "torch")]
    /// Diagnose a trained run: prediction error per horizon (both levels), embedding spread
    /// and collapse alarms, linear probes to the true state (R^2 on held-out episodes); on
    /// maze scenes, the critics mapped over the cells (correlation with the corridor
    /// distance, greedy descent).
    Probe(probe::Args),
    #[cfg(feature = "torch")]
    /// Copy a trained run's inference weights (no optimizer state) into a shipped model
    /// folder, models/NAME, with a manifest: the commands that made it, the data's digest,
    /// the commit, the measured metrics and each file's SHA-256 (checked on every load).
    /// Agent files name it as `planning.model`; a trained run at `planning.checkpoint` wins.
    Export(export::Args),
    #[cfg(feature = "torch")]
    /// Print versions and what libtorch sees (threads, CUDA devices): checks that the binary
    /// finds the torch venv's libtorch without LD_LIBRARY_PATH.
    Info,
    #[cfg(feature = "torch")]
    /// Closed-loop evaluation of a planning agent: success rate with a 95 % CI on seeded
    /// start/goal pairs, steps to success, planning time per replan and per episode, the
    /// random-policy floor on the same pairs; per-episode results as JSON lines
    Eval(eval::Args),
    /// Replay a recording made by `hjepa eval --record`: re-simulates every episode from its
    /// seed and actions, checks that the outcome matches, and writes one episode's frames as
    /// PNGs
    Replay(replay::Args),
    #[cfg(feature = "torch")]
    /// Run an experiment file's grid (scenes x agents x overrides x seeds x actors) on worker
    /// threads; each finished run is committed to an SQLite database in one transaction.
    /// Rerunning the same command resumes: finished runs are skipped, interrupted ones rerun.
    /// Ctrl-C finishes the runs in flight; a second Ctrl-C abandons them. Exits 1 when a run
    /// failed (its error is in the database), 130 when interrupted
    Batch(batch::Args),
    #[cfg(feature = "torch")]
    /// Combine shard databases of one experiment into one (created, or an existing database
    /// of the same experiment); databases of another experiment or grid are refused
    Merge(merge::Args),
    #[cfg(feature = "torch")]
    /// Summarise a results database: report.md, CSV tables (success with 95 % CI per cell
    /// and actor, per distance bin, model errors) and PNG plots (success vs planning budget,
    /// per distance bin, planning-time distributions, prediction error vs horizon)
    Report(report::Args),
    #[cfg(feature = "torch")]
    /// Check the README's results again: evaluate each row's shipped model on the row's seeds
    /// and print the results file's figure, today's, and whether their 95 % intervals
    /// overlap (exit 1 when a row's do not). `--from-scratch` collects and retrains first.
    Reproduce(reproduce::Args),
    /// Play one episode headless and write it as an animated GIF (software rasteriser at a
    /// viewing size, goal drawn; no window or GPU), optionally PNG frames and a recording
    Record(record::Args),
    /// Watch a scene live in a window (build with `--features viewer`): the bodies, the goal,
    /// the path the agent's plan expects, cost over time, counters. Space pause, Right step,
    /// Backspace reset, N new seed, +/- speed, drag bodies with the mouse, W A S D drive
    /// (no agent), P screenshot, H help. `--replay FILE` plays a recording with a timeline
    View(view::Args),
    /// Benchmarks that print a table.
    Bench(bench::Args),
}

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HJEPA_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match guard::guarded(|| dispatch(cli.command)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Err(panic) => {
            eprintln!("error: internal error, hjepa panicked: {panic}");
            eprintln!("This is a bug in hjepa or in libtorch; please report it with the command line (RUST_BACKTRACE=1 shows the whole trace).");
            ExitCode::from(INTERNAL_ERROR)
        }
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            if is_input_error(&e) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// The exit code of a panic caught at the boundary (BSD's EX_SOFTWARE): 0 is success, 1 a
/// failed command, 2 bad input, 130 an interrupt.
pub const INTERNAL_ERROR: u8 = 70;

/// Whether the error (or any cause) is bad input the user can fix.
pub fn is_input_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<InputError>())
}

/// Runs the parsed subcommand.
fn dispatch(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        #[cfg(feature = "torch")]
        Command::Demo(args) => demo::run(args),
        Command::Check(args) => check::run(args),
        Command::Run(args) => run::run(args),
        Command::Collect(args) => collect::run(args),
        Command::Inspect(args) => inspect::run(args),
        #[cfg(feature = "torch")]
        Command::Train(args) => train::run(args),
        #[cfg(feature = "torch")]
        Command::Probe(args) => probe::run(args),
        #[cfg(feature = "torch")]
        Command::Export(args) => export::run(args),
        #[cfg(feature = "torch")]
        Command::Info => info::run(),
        #[cfg(feature = "torch")]
        Command::Eval(args) => eval::run(args),
        Command::Replay(args) => replay::run(args),
        #[cfg(feature = "torch")]
        Command::Batch(args) => batch::run(args),
        #[cfg(feature = "torch")]
        Command::Merge(args) => merge::run(args),
        #[cfg(feature = "torch")]
        Command::Report(args) => report::run(args),
        #[cfg(feature = "torch")]
        Command::Reproduce(args) => reproduce::run(args),
        Command::Record(args) => record::run(args),
        Command::View(args) => view::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
