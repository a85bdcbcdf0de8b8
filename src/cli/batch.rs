//! `hjepa batch`: run an experiment file's grid into a results database.

use std::path::{Path, PathBuf};

use crate::error::InputError;

// The flags of `hjepa batch` (its --help text is the doc comment on `Command::Batch`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Experiment file (experiments/*.toml).
    experiment: PathBuf,
    /// Results database (default: results/<name>/results.sqlite, or
    /// results/<name>/shard-<i>-of-<n>.sqlite with --shard).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Worker threads, each running one evaluation; torch gets max(1, cores / jobs)
    /// intra-op threads so the two never oversubscribe the cores (default: the cores).
    #[arg(long, value_parser = crate::limits::threads)]
    jobs: Option<usize>,
    /// Run the deterministic slice i of n (runs at positions i mod n), e.g. a Slurm array
    /// task: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT.
    #[arg(long)]
    shard: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        experiment,
        db,
        jobs,
        shard,
    } = args;
    let shard = shard
        .map(|s| {
            s.parse::<crate::run::batch::Shard>()
                .map_err(|m| InputError::new(Path::new("--shard"), "", m))
        })
        .transpose()?;
    if jobs == Some(0) {
        return Err(InputError::new(Path::new("--jobs"), "", "expected at least 1 worker").into());
    }
    let s = crate::run::batch::batch(&crate::run::batch::BatchOptions {
        experiment,
        db,
        jobs,
        shard,
        progress: true,
        quiet: false,
    })?;
    println!(
        "{}: {} runs finished now, {} were done already, {} failed; {:.1} s. Report: hjepa report {}",
        s.experiment,
        s.finished,
        s.already_done,
        s.failed.len(),
        s.seconds,
        s.db.display()
    );
    for (id, label, err) in &s.failed {
        eprintln!("failed run {id} ({label}): {err}");
    }
    if s.interrupted {
        eprintln!("interrupted: rerun the same command to finish the remaining runs");
        std::process::exit(130);
    }
    anyhow::ensure!(
        s.failed.is_empty(),
        "{} runs failed (they rerun next time)",
        s.failed.len()
    );
    Ok(())
}
