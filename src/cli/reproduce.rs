//! `hjepa reproduce`: the results file's rows checked again (src/run/reproduce.rs).

use std::path::PathBuf;

use crate::run::reproduce::{reproduce, ReproduceOptions};

// The flags of `hjepa reproduce` (its --help text is the doc comment on `Command::Reproduce`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Rows to check, by their reproduce id (e.g. two_rooms); default: every row with a
    /// shipped model.
    rows: Vec<String>,
    /// Episodes per seed instead of the row's (fewer: quicker, with a wider interval).
    #[arg(long, value_parser = crate::limits::episodes)]
    episodes: Option<u64>,
    /// Collect the row's data and retrain its agent file first (a batch experiment in
    /// OUT/ROW/, resumable, shardable on Slurm), then compare with the row's headline.
    #[arg(long)]
    from_scratch: bool,
    /// Results file (default: docs/results/table.toml as this binary was built).
    #[arg(long)]
    table: Option<PathBuf>,
    /// Folder for the evaluations and experiments.
    #[arg(long, default_value = "results/reproduce")]
    out: PathBuf,
    /// cpu, cuda or cuda:N (overrides the agent files).
    #[arg(long)]
    device: Option<crate::device::Device>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let report = reproduce(&ReproduceOptions {
        rows: args.rows,
        episodes: args.episodes,
        from_scratch: args.from_scratch,
        table: args.table,
        out: args.out,
        device: args.device,
    })?;
    println!("{}", report.table());
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| !c.overlap)
        .map(|c| c.id.as_str())
        .collect();
    anyhow::ensure!(
        failed.is_empty(),
        "not reproduced: today's 95 % interval misses the file's for {}",
        failed.join(", ")
    );
    Ok(())
}
