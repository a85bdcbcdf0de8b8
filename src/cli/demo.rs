//! `hjepa demo`: collect, train and evaluate the two_rooms agent in one go.

use std::path::PathBuf;

// The flags of `hjepa demo` (its --help text is the doc comment on `Command::Demo`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Agent file (a path, or a shipped agent's name).
    #[arg(long, default_value = "two_rooms")]
    agent: String,
    /// Episodes the shipped model (the agent file's `planning.model`) plays first, before
    /// anything is trained (0: skip it).
    #[arg(long, default_value_t = 20)]
    shipped_episodes: u64,
    /// Episodes to collect for training.
    #[arg(long, value_parser = crate::limits::episodes, default_value_t = 400)]
    collect_episodes: u64,
    /// Training steps (default: the agent file's).
    #[arg(long, value_parser = crate::limits::train_steps)]
    train_steps: Option<i64>,
    /// Evaluation episodes (learned agent, oracle, random floor).
    #[arg(long, value_parser = crate::limits::episodes, default_value_t = 100)]
    episodes: u64,
    /// Folder for the dataset (`data/`), the run (`run/`) and the results.
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        agent,
        shipped_episodes,
        collect_episodes,
        train_steps,
        episodes,
        out,
    } = args;
    let opts = crate::run::demo::DemoOptions {
        agent_path: crate::agent::AgentFile::resolve_path(&agent),
        shipped_episodes,
        collect_episodes,
        train_steps,
        episodes,
        out,
    };
    crate::run::demo::demo(&opts).map(|_| ())
}
