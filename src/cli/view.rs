//! `hjepa view`: watch a scene live in a window (the Bevy viewer, `--features viewer`).

use std::path::PathBuf;

// The flags of `hjepa view` (its --help text is the doc comment on `Command::View`).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    actor: super::ActorArgs,
    /// A recording to play (hjepa eval --record, hjepa record --recording).
    #[arg(long)]
    replay: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Start paused.
    #[arg(long)]
    paused: bool,
    /// Simulation speed relative to real time (0.125 to 16; + and - change it).
    #[arg(long, value_parser = crate::limits::speed, default_value_t = 1.0)]
    speed: f32,
    /// Exit after this many frames (scripted captures, tests).
    #[arg(long, value_parser = crate::limits::steps)]
    frames: Option<u32>,
    /// With --frames: save a screenshot (PNG) and a JSON sidecar with the projection.
    #[arg(long)]
    screenshot: Option<PathBuf>,
    #[arg(long, value_parser = crate::limits::image_side, default_value_t = 960)]
    width: u32,
    #[arg(long, value_parser = crate::limits::image_side, default_value_t = 720)]
    height: u32,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.screenshot.is_none() || args.frames.is_some(),
        "--screenshot needs --frames N (the frame to capture)"
    );
    view(&crate::run::view::ViewOptions {
        actor: args.actor.into(),
        replay: args.replay,
        seed: args.seed,
        paused: args.paused,
        speed: args.speed,
        frames: args.frames,
        screenshot: args.screenshot,
        width: args.width,
        height: args.height,
    })
}

/// `hjepa view`.
pub fn view(opts: &crate::run::view::ViewOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        opts.width >= 200 && opts.height >= 150,
        "--width/--height: expected at least 200 x 150 pixels"
    );
    anyhow::ensure!(
        opts.speed.is_finite() && opts.speed > 0.0,
        "--speed: expected a positive number, got {}",
        opts.speed
    );
    let live = crate::run::view::live_options(opts)?;
    #[cfg(feature = "viewer")]
    {
        crate::viewer::run(opts, live)
    }
    #[cfg(not(feature = "viewer"))]
    {
        drop(live);
        anyhow::bail!(
            "this hjepa was built without the viewer: build it with `cargo build --release --features viewer` (Bevy; about 10 minutes the first time on 2 cores)"
        )
    }
}
