//! `hjepa view`'s session: assembles it (an agent file's planning agent, its planner on
//! the sandbox, the keyboard, or a recording) for the Bevy viewer to open. Bad input is
//! found here, before any window opens.

use std::path::PathBuf;
use std::time::Duration;

use crate::data::recording::Recording;
use crate::run::actors::{choose_agent, ActorSpec};
use crate::run::live::{LiveActor, LiveOptions};

#[derive(Clone, Debug)]
pub struct ViewOptions {
    /// Scene (default: the agent's or the recording's, else two_rooms).
    /// Scene, agent file (without one, you drive), oracle, device.
    pub actor: ActorSpec,
    /// Play a recording (from `hjepa eval --record`, `hjepa record --recording`).
    pub replay: Option<PathBuf>,
    pub seed: u64,
    pub paused: bool,
    /// Simulation speed relative to real time.
    pub speed: f32,
    /// Exit after this many frames (with `screenshot`: save it first).
    pub frames: Option<u32>,
    pub screenshot: Option<PathBuf>,
    pub width: u32,
    pub height: u32,
}

/// The live session `opts` asks for; every file is read and checked here.
pub fn live_options(opts: &ViewOptions) -> anyhow::Result<LiveOptions> {
    anyhow::ensure!(
        !(opts.replay.is_some() && opts.actor.agent.is_some()),
        "--replay plays a recording; it takes no --agent"
    );
    if let Some(path) = &opts.replay {
        let recording = Recording::load(path)?;
        anyhow::ensure!(
            !recording.episodes.is_empty(),
            "{}: the recording holds no episodes",
            path.display()
        );
        let scene = recording.scene(path)?;
        return Ok(LiveOptions {
            scene,
            actor_name: format!("replay of {}", recording.actor),
            actor: LiveActor::Replay(recording),
            seed: opts.seed,
            paused: opts.paused,
            speed: opts.speed,
            episode_pause: Duration::from_millis(800),
        });
    }
    let choice = choose_agent(&opts.actor)?;
    let scene = choice.scene;
    let (actor, name) = match choice.actor {
        Some((a, name)) => (LiveActor::Agent(a), name),
        None => (
            LiveActor::Manual,
            "manual (W A S D, right mouse)".to_string(),
        ),
    };
    Ok(LiveOptions {
        scene,
        actor,
        actor_name: name,
        seed: opts.seed,
        paused: opts.paused,
        speed: opts.speed,
        episode_pause: Duration::from_millis(800),
    })
}
