//! `hjepa record`: play one episode headless and write it as an animated GIF.

use std::path::PathBuf;

use crate::data::PolicyKind;

// The flags of `hjepa record` (its --help text is the doc comment on `Command::Record`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Scene (default: the agent's, else two_rooms).
    #[arg(long)]
    scene: Option<String>,
    /// Agent file with a [planning] table (a path, or a shipped agent's name); without
    /// one, --policy acts.
    #[arg(long)]
    agent: Option<String>,
    #[arg(long, value_enum, default_value = "waypoint")]
    policy: PolicyKind,
    /// Plan with the sandbox as the model (with --agent).
    #[arg(long)]
    oracle: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Episode of the seeded sequence (the pairs `hjepa eval --seed` plays).
    #[arg(long, default_value_t = 0)]
    episode: u64,
    /// The GIF to write.
    #[arg(long)]
    out: PathBuf,
    /// Also write the frames as PNGs into this folder.
    #[arg(long)]
    frames: Option<PathBuf>,
    /// Also save the episode as a recording (for `hjepa replay` / `hjepa view --replay`).
    #[arg(long)]
    recording: Option<PathBuf>,
    /// Longest side of the frames, pixels.
    #[arg(long, default_value_t = 320)]
    size: u32,
    #[arg(long)]
    device: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let s = crate::run::record::record(&crate::run::record::RecordOptions {
        scene: args.scene,
        agent: args
            .agent
            .map(|a| crate::sim::shipped::resolve(&a, crate::sim::shipped::Kind::Agent)),
        policy: args.policy,
        oracle: args.oracle,
        seed: args.seed,
        episode: args.episode,
        gif: args.out.clone(),
        frames: args.frames,
        recording: args.recording,
        size: args.size,
        device: args.device,
    })?;
    println!(
        "{}: {} on {}, episode {} of seed {}: {} after {} steps; {} frames",
        args.out.display(),
        s.actor,
        s.scene,
        args.episode,
        args.seed,
        if s.success { "success" } else { "no success" },
        s.steps,
        s.frames
    );
    Ok(())
}
