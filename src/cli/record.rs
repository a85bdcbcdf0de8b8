//! `hjepa record`: play one episode headless and write it as an animated GIF.

use std::path::PathBuf;

use crate::data::PolicyKind;

// The flags of `hjepa record` (its --help text is the doc comment on `Command::Record`).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    actor: super::ActorArgs,
    #[arg(long, value_enum, default_value = "waypoint")]
    policy: PolicyKind,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Episode of the seeded sequence (the pairs `hjepa eval --seed` plays).
    #[arg(long, value_parser = crate::limits::episode_index, default_value_t = 0)]
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
    #[arg(long, value_parser = crate::limits::image_side, default_value_t = 320)]
    size: u32,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let s = crate::run::record::record(&crate::run::record::RecordOptions {
        actor: args.actor.into(),
        policy: args.policy,
        seed: args.seed,
        episode: args.episode,
        gif: args.out.clone(),
        frames: args.frames,
        recording: args.recording,
        size: args.size,
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
