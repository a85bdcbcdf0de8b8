//! `hjepa replay`: re-simulate a recording, check it, and write an episode's frames.

use std::path::PathBuf;

// The flags of `hjepa replay` (its --help text is the doc comment on `Command::Replay`).
#[derive(clap::Args, Debug)]
pub struct Args {
    recording: PathBuf,
    /// Episode whose frames to write.
    #[arg(long, value_parser = crate::limits::episode_index, default_value_t = 0)]
    episode: u64,
    /// Folder for the frames as PNGs.
    #[arg(long)]
    frames: Option<PathBuf>,
    /// Animated GIF of the episode, at the scene's real-time rate.
    #[arg(long)]
    gif: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        recording,
        episode,
        frames,
        gif: gif_path,
    } = args;
    let out = crate::data::recording::FrameOutput {
        png_dir: frames.clone(),
        gif: gif_path.clone(),
    };
    let r = crate::data::recording::replay(&recording, Some(episode), &out)?;
    let matching = r.iter().filter(|e| e.matches).count();
    let wins = r.iter().filter(|e| e.success).count();
    println!(
        "{}: {} episodes replayed, {wins} successful, {matching}/{} identical to the recording",
        recording.display(),
        r.len(),
        r.len()
    );
    if let Some(dir) = frames {
        println!("frames of episode {episode}: {}", dir.display());
    }
    if let Some(g) = gif_path {
        println!("GIF of episode {episode}: {}", g.display());
    }
    let differing: Vec<String> = r
        .iter()
        .filter(|e| !e.matches)
        .map(|e| match e.first_difference {
            Some(t) => format!("episode {} from step {t}", e.index),
            None => format!("episode {} in its outcome", e.index),
        })
        .collect();
    anyhow::ensure!(
        differing.is_empty(),
        "{}: {} of {} replays differ from the recording: {}{} (was the simulator or the scene changed?)",
        recording.display(),
        differing.len(),
        r.len(),
        differing.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
        if differing.len() > 5 { ", ..." } else { "" }
    );
    Ok(())
}
