//! `hjepa merge`: combine shard databases of one experiment into one.

use std::path::PathBuf;

// The flags of `hjepa merge` (its --help text is the doc comment on `Command::Merge`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The merged database.
    #[arg(long)]
    out: PathBuf,
    /// Shard databases.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Args { out, inputs } = args;
    let m = crate::run::batch::merge(&out, &inputs)?;
    println!(
        "{}: {} runs added, {} already there; {} runs done of {} evaluations in the grid (shards {})",
        out.display(),
        m.runs_added,
        m.duplicates,
        m.runs_done,
        m.eval_runs_in_grid,
        m.shards.join(", ")
    );
    Ok(())
}
