//! `hjepa bench sim|plan|batch|model`: benchmarks that print a table.

// The flags of `hjepa bench` (its --help text is the doc comment on `Command::Bench`).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Env steps/s on one core (push_t state and 96x96 pixels, two_rooms 64x64 pixels), the
    /// vector env on all cores, a bare rapier loop for comparison, and memory per env; beside
    /// them gym-pusht 0.1.8 measured in the same run when the venv's Python has it
    /// (HJEPA_PYTHON, else $VENV/bin/python, else .venv/bin/python; `make bench` installs
    /// it; HJEPA_BENCH_NO_PEER=1 skips it).
    Sim {
        /// Seconds to run each row.
        #[arg(long, value_parser = crate::limits::seconds, default_value_t = 2.0)]
        seconds: f64,
    },
    /// Milliseconds per replan for CEM, MPPI, gradient descent, the hierarchical planner and
    /// the oracle model, at the shipped two_rooms agent's budget.
    #[cfg(feature = "torch")]
    Plan {
        /// Seconds to run each row.
        #[arg(long, value_parser = crate::limits::seconds, default_value_t = 2.0)]
        seconds: f64,
    },
    /// The batch runner's overhead: the same episodes (oracle and random actors on
    /// two_rooms) through `hjepa batch` with one worker, and in a bare loop.
    #[cfg(feature = "torch")]
    Batch {
        /// Episodes per run (4 runs).
        #[arg(long, value_parser = crate::limits::episodes, default_value_t = 20)]
        episodes: u64,
        /// Repetitions of each side; the fastest is kept.
        #[arg(long, value_parser = crate::limits::repeats, default_value_t = 3)]
        repeats: usize,
    },
    /// World-model speed for the shipped two_rooms (pixels) and push_t (state) agents:
    /// training samples/s, encode latency, and level-1 / level-2 rollout latency at planning
    /// batch sizes (300 and 2000 sequences x horizon 16).
    #[cfg(feature = "torch")]
    Model {
        /// Seconds to run each row.
        #[arg(long, value_parser = crate::limits::seconds, default_value_t = 2.0)]
        seconds: f64,
        /// cpu, cuda or cuda:N (default: the agent file's).
        #[arg(long)]
        device: Option<crate::device::Device>,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        #[cfg(feature = "torch")]
        BenchCommand::Batch { episodes, repeats } => {
            println!("{}", crate::run::bench::batch_table(episodes, repeats)?);
        }
        BenchCommand::Sim { seconds } => {
            println!("{}", crate::run::bench::sim_table(seconds)?);
        }
        #[cfg(feature = "torch")]
        BenchCommand::Plan { seconds } => {
            println!("{}", crate::run::bench::plan_table(seconds)?);
        }
        #[cfg(feature = "torch")]
        BenchCommand::Model { seconds, device } => {
            println!("{}", crate::run::bench::model_table(seconds, device)?);
        }
    }
    Ok(())
}
