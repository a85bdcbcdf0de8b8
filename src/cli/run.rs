//! `hjepa run`: play a scene with a scripted policy and print a report.

use std::path::PathBuf;

use crate::data::PolicyKind;
use crate::sim::Scene;

// The flags of `hjepa run` (its --help text is the doc comment on `Command::Run`).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value = "two_rooms")]
    scene: String,
    #[arg(long, value_enum, default_value = "waypoint")]
    policy: PolicyKind,
    #[arg(long, value_parser = crate::limits::episodes, default_value_t = 20)]
    episodes: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Heading noise of the scripted policies (radians, std).
    #[arg(long, value_parser = crate::limits::noise, default_value_t = 0.3)]
    noise: f32,
    /// Also write the first episode's frames as PNGs into this folder.
    #[arg(long)]
    frames: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        scene,
        policy,
        episodes,
        seed,
        noise,
        frames,
    } = args;
    let scene = Scene::load_arg(&scene)?;
    if let Some(dir) = frames {
        crate::data::episodes::write_frames(scene.clone(), policy, noise, seed, &dir)?;
        println!("frames of the first episode written to {}", dir.display());
    }
    let report = crate::data::episodes::run_episodes(scene, policy, noise, episodes, seed);
    println!("{}", report.summary());
    Ok(())
}
