//! `hjepa train`: train an agent file's world model, or its whole committee.

use crate::device::Device;
use std::path::{Path, PathBuf};

// The flags of `hjepa train` (its --help text is the doc comment on `Command::Train`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Agent file (a path, or a shipped agent's name such as `push_t`).
    #[arg(long, default_value = "two_rooms")]
    agent: String,
    /// Dataset folder made by `hjepa collect`; repeat it to train on several as one
    /// (`--data data/push_t --data data/push_t_agent`: scripted data plus a planning
    /// agent's episodes), each split into training and held-out episodes by itself.
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// Each --data's share of every batch, in order (e.g. `--shares 0.7,0.3`; normalised
    /// to sum to 1). Default: every training window equally likely, so a dataset's share
    /// is its size.
    #[arg(long, value_delimiter = ',')]
    shares: Option<Vec<f64>>,
    /// Run folder for checkpoints and metrics.
    #[arg(
        long,
        required_unless_present = "committee",
        conflicts_with = "committee"
    )]
    out: Option<PathBuf>,
    /// Train the agent file's whole committee, one model after another, each into its own
    /// run folder: `planning.checkpoint` with the training seed (train.seed, or --seed),
    /// then each `planning.peers[i]` with that seed + i + 1.
    #[arg(long)]
    committee: bool,
    /// Continue the run in --out from its checkpoint (same agent file and dataset),
    /// bit-identically on CPU; with --committee, every member's run (finished ones train
    /// no further steps, ones not begun start).
    #[arg(long)]
    resume: bool,
    /// cpu, cuda or cuda:N (overrides the agent file).
    #[arg(long)]
    device: Option<Device>,
    /// Total steps to reach (default: the agent file's train.steps; a cosine learning-rate
    /// schedule still runs over train.steps, so --steps may not exceed it then).
    #[arg(long, value_parser = crate::limits::train_steps)]
    steps: Option<i64>,
    /// Training seed (overrides the agent file's train.seed; recorded in the checkpoint):
    /// another training of the same file, e.g. a committee's peer (`planning.peers`).
    #[arg(long)]
    seed: Option<u64>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        agent,
        data,
        shares,
        out,
        committee,
        resume,
        device,
        steps,
        seed,
    } = args;
    let agent_path = crate::agent::AgentFile::resolve_path(&agent);
    let model = crate::agent::AgentFile::load(&agent_path)?.model;
    // One run, or the committee's members one after another.
    let runs: Vec<(PathBuf, Option<u64>)> = match out {
        Some(out) => vec![(out, seed)],
        None => crate::agent::committee_members(&agent_path, seed)?
            .into_iter()
            .map(|m| (m.run, Some(m.seed)))
            .collect(),
    };
    let count = runs.len();
    for (i, (out, seed)) in runs.into_iter().enumerate() {
        if committee {
            println!(
                "committee member {}/{count}: {} (training seed {})",
                i + 1,
                out.display(),
                seed.expect("members have seeds")
            );
        }
        let opts = crate::model::TrainOptions {
            agent: model.clone(),
            agent_path: agent_path.clone(),
            data: data.clone(),
            shares: shares.clone(),
            out: out.clone(),
            resume,
            device,
            steps,
            seed,
            progress: true,
        };
        print_trained(&out, &crate::model::train(&opts)?);
    }
    Ok(())
}

/// The one-paragraph summary `hjepa train` prints for a finished run.
fn print_trained(out: &Path, s: &crate::model::train::TrainSummary) {
    let trained = if s.steps_this_run > 0 {
        format!(
            "{} steps trained, {:.0} training samples/s",
            s.steps_this_run, s.samples_per_second
        )
    } else {
        "no steps trained".to_string()
    };
    let critic = s.critic_fit.as_ref().map_or(String::new(), |f| {
        format!(
            "\ncritic fitted in {:.1} s: {} nodes, {} edges, final loss {:.5}",
            f.seconds, f.nodes, f.edges, f.final_loss
        )
    });
    println!(
        "{}: {} steps ({trained}), {:.1} s{critic}\n{}\nplots: {}/{{losses,probes,horizon,spread}}.png",
        out.display(),
        s.steps,
        s.seconds,
        s.diagnostics.summary(),
        out.display()
    );
}
