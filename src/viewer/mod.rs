//! `hjepa view` (cargo feature `viewer`): a Bevy window onto a live session
//! ([`crate::run::live`]). The sandbox and its agent run in their own thread; the viewer only
//! reads the frames they stream and sends controls back, so the sandbox never depends on
//! Bevy. Each module is one plugin:
//!
//! - `world_view`: the arena, walls, goal and bodies as filled meshes, moved every frame;
//! - `overlay`: gizmos for the plan (the path the agent expects), the cost plot and the
//!   replay timeline;
//! - `hud`: status text and the help overlay (an unscaled camera on its own render layer);
//! - `controls`: keyboard and mouse (pause, step, reset, new seed, speed, drag, drive,
//!   scrub, screenshot, quit);
//! - `capture`: `--frames N --screenshot F`, for tests and scripted captures.

mod capture;
mod controls;
mod hud;
mod overlay;
mod world_view;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use bevy::prelude::*;
use bevy::window::WindowResolution;

use crate::run::live::{spawn, Control, LiveFrame, LiveHandle, LiveOptions};

pub use crate::run::view::ViewOptions;

/// The session's channels and the newest frame.
#[derive(Resource)]
pub struct Live {
    frames: crossbeam_channel::Receiver<LiveFrame>,
    controls: crossbeam_channel::Sender<Control>,
    pub latest: LiveFrame,
    /// Cost per step of the current episode, for the plot.
    pub costs: Vec<f32>,
    /// Controls the session's queue had no room for yet (it is busy planning).
    pending: VecDeque<Control>,
}

impl Live {
    /// Queues a control for the session without blocking the frame; none is lost. A drag
    /// target or manual action replaces one of its kind still waiting at the end of the queue.
    pub fn send(&mut self, c: Control) {
        let continuous = |q: &Control| {
            matches!(
                (q, &c),
                (Control::Drag(Some(_)), Control::Drag(Some(_)))
                    | (Control::Manual(_), Control::Manual(_))
            )
        };
        match self.pending.back_mut() {
            Some(last) if continuous(last) => *last = c,
            _ => self.pending.push_back(c),
        }
        self.flush();
    }

    /// Hands waiting controls to the session while its queue has room.
    fn flush(&mut self) {
        while let Some(c) = self.pending.pop_front() {
            match self.controls.try_send(c) {
                Ok(()) => {}
                Err(crossbeam_channel::TrySendError::Full(c)) => {
                    self.pending.push_front(c);
                    return;
                }
                // The session has ended: nothing will read them.
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                    self.pending.clear();
                    return;
                }
            }
        }
    }
}

/// How world metres map to window pixels: the arena (and the plot strip under it) fitted
/// to the window. Kept current by `world_view`; the capture writes it beside screenshots.
#[derive(Resource, Clone, Copy, Debug, Default)]
pub struct Projection2d {
    pub center: Vec2,
    pub px_per_m: f32,
    pub window: Vec2,
}

/// Where the cost plot and the timeline sit, below the arena, in world units.
pub fn plot_strip(world: Vec2) -> (Rect, Rect) {
    let h = world.y;
    let plot = Rect::new(0.0, -0.22 * h, world.x, -0.06 * h);
    let timeline = Rect::new(0.0, -0.30 * h, world.x, -0.26 * h);
    (plot, timeline)
}

/// Drains the session's frames into `Live` every frame, and hands it waiting controls.
fn receive(mut live: ResMut<Live>) {
    live.flush();
    let frames: Vec<LiveFrame> = live.frames.try_iter().collect();
    for f in frames {
        let same_episode = Arc::ptr_eq(&f.view, &live.latest.view);
        if !same_episode || f.step == 0 {
            live.costs.clear();
        }
        if f.step as usize > live.costs.len() {
            live.costs.push(f.cost);
        } else {
            live.costs.truncate(f.step as usize);
            if f.step > 0 {
                live.costs.push(f.cost);
            }
        }
        live.latest = f;
    }
}

use std::sync::Arc;

/// Opens the window and runs until it is closed (or `--frames` are done).
pub fn run(opts: &ViewOptions, live_opts: LiveOptions) -> anyhow::Result<()> {
    // winit panics deep inside Bevy without a display: check first.
    match std::env::var_os("DISPLAY") {
        Some(d) if !d.is_empty() => {}
        _ => anyhow::bail!(
            "no display: DISPLAY is not set (this viewer talks to X11). Run it in a desktop session, or under a virtual X server: xvfb-run -a hjepa view ..."
        ),
    }
    let handle: LiveHandle = spawn(live_opts)?;
    let first = handle
        .frames
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| anyhow::anyhow!("the sandbox thread sent no frame"))?;
    let live = Live {
        frames: handle.frames.clone(),
        controls: handle.controls.clone(),
        latest: first,
        costs: Vec::new(),
        pending: VecDeque::new(),
    };
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: Some(Window {
                    title: format!("hjepa view: {}", live.latest.view.scene),
                    resolution: WindowResolution::new(opts.width, opts.height),
                    ..default()
                }),
                ..default()
            })
            // hjepa already installed its tracing subscriber.
            .disable::<bevy::log::LogPlugin>(),
    )
    // Keep drawing when the window is not focused (a virtual X server never focuses it).
    .insert_resource(bevy::winit::WinitSettings::continuous())
    .insert_resource(live)
    .insert_resource(Projection2d::default())
    .insert_resource(capture::CaptureConfig {
        frames: opts.frames,
        screenshot: opts.screenshot.clone(),
    })
    .add_systems(PreUpdate, receive)
    .add_plugins((
        world_view::WorldViewPlugin,
        overlay::OverlayPlugin,
        hud::HudPlugin,
        controls::ControlsPlugin,
        capture::CapturePlugin,
    ));
    let exit = app.run();
    let session = handle.stop();
    if let AppExit::Error(code) = exit {
        anyhow::bail!("the viewer stopped with an error (code {code})");
    }
    session
}

/// Screenshots taken with the P key go here.
pub fn screenshot_path(n: u32) -> PathBuf {
    PathBuf::from(format!("hjepa-screenshot-{n:03}.png"))
}
