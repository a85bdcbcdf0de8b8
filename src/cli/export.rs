//! `hjepa export`: a trained run's inference weights as a shipped model (`models/NAME`).

use std::path::PathBuf;

use crate::model::shipped::{export, ExportOptions, Regression};

// The flags of `hjepa export` (its --help text is the doc comment on `Command::Export`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run folder (holds checkpoint/).
    run: PathBuf,
    /// The agent file it was trained with, as the manifest should name it (e.g. `two_rooms`).
    #[arg(long)]
    agent: String,
    /// The model's name (default: the agent's); agent files name it as `planning.model`.
    #[arg(long)]
    name: Option<String>,
    /// Folder to write (default: models/NAME).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The command that collected the training data, for the manifest.
    #[arg(long)]
    data_command: String,
    /// Episodes of the planning-quality check `make test` runs on the model (with --seed
    /// and --min-successes).
    #[arg(long, requires_all = ["check_seed", "min_successes", "why"], value_parser = crate::limits::episodes)]
    check_episodes: Option<u64>,
    #[arg(long)]
    check_seed: Option<u64>,
    #[arg(long)]
    min_successes: Option<u64>,
    /// Where the threshold comes from (the measured success and its interval).
    #[arg(long)]
    why: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let name = args.name.unwrap_or_else(|| args.agent.clone());
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("models").join(&name));
    let regression = match (
        args.check_episodes,
        args.check_seed,
        args.min_successes,
        args.why,
    ) {
        (Some(episodes), Some(seed), Some(min_successes), Some(why)) => {
            anyhow::ensure!(
                min_successes <= episodes,
                "--min-successes {min_successes} exceeds --check-episodes {episodes}"
            );
            Some(Regression {
                episodes,
                seed,
                min_successes,
                why,
            })
        }
        _ => None,
    };
    // An agent that plans with landmarks gets them placed now, from the run's training data,
    // so the shipped model needs no dataset.
    let agent_path = crate::agent::AgentFile::resolve_path(&args.agent);
    let extra_files = match crate::agent::stored_landmarks(&agent_path, &args.run)? {
        Some(bytes) => vec![(crate::agent::LANDMARKS_FILE.to_string(), bytes)],
        None => Vec::new(),
    };
    let m = export(&ExportOptions {
        run: &args.run,
        out: &out,
        name: &name,
        agent: &args.agent,
        data_command: &args.data_command,
        regression,
        extra_files,
    })?;
    let bytes: u64 = m
        .files
        .keys()
        .filter_map(|f| std::fs::metadata(out.join("checkpoint").join(f)).ok())
        .map(|md| md.len())
        .sum();
    println!(
        "exported {} (step {}, seed {}) to {} ({:.1} MB)",
        args.run.display(),
        m.steps,
        m.seed,
        out.display(),
        bytes as f64 / 1e6
    );
    Ok(())
}
