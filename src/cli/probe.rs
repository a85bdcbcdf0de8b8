//! `hjepa probe`: diagnose a trained run and plot its training curves.

use crate::device::Device;
use std::path::PathBuf;

// The flags of `hjepa probe` (its --help text is the doc comment on `Command::Probe`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run folder (holds checkpoint/).
    run: PathBuf,
    /// Dataset to probe on (default: the one the run was trained on).
    #[arg(long)]
    data: Option<PathBuf>,
    /// cpu, cuda or cuda:N (overrides the agent file).
    #[arg(long)]
    device: Option<Device>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Args { run, data, device } = args;
    let d = crate::model::train::probe(&run, data.as_deref(), device)?;
    println!("{}", d.summary());
    // The curves over training come from the run's metrics log, when it has one.
    if run.join("metrics.jsonl").exists() {
        let plots = crate::model::plots::write_run_plots(&run)?;
        let names: Vec<String> = plots.iter().map(|p| p.display().to_string()).collect();
        println!("plots: {}", names.join(", "));
    }
    Ok(())
}
