//! Scripted captures (`--frames N [--screenshot F]`): after N frames, save a screenshot and
//! a JSON sidecar saying where the sandbox put the agent and the goal and how world metres
//! map to pixels, then exit. (tests/viewer.rs checks the screenshot against the sandbox
//! itself, not against this sidecar.)

use std::path::PathBuf;

use bevy::diagnostic::FrameCount;
use bevy::prelude::*;
use bevy::render::view::screenshot::{save_to_disk, Screenshot, ScreenshotCaptured};

use super::{Live, Projection2d};

pub struct CapturePlugin;

impl Plugin for CapturePlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Last, capture);
    }
}

#[derive(Resource)]
pub struct CaptureConfig {
    pub frames: Option<u32>,
    pub screenshot: Option<PathBuf>,
}

/// The sidecar of a scripted screenshot.
fn sidecar(live: &Live, p: &Projection2d) -> serde_json::Value {
    let f = &live.latest;
    let world_to_px = |x: f32, y: f32| {
        [
            p.window.x / 2.0 + (x - p.center.x) * p.px_per_m,
            p.window.y / 2.0 - (y - p.center.y) * p.px_per_m,
        ]
    };
    serde_json::json!({
        "scene": f.view.scene,
        "step": f.step,
        "window": [p.window.x, p.window.y],
        "center": [p.center.x, p.center.y],
        "px_per_m": p.px_per_m,
        "agent": [f.agent.0, f.agent.1],
        "agent_px": world_to_px(f.agent.0, f.agent.1),
        "agent_color": f.view.agent.color,
        "agent_goal": [f.view.agent_goal.0, f.view.agent_goal.1],
        "agent_goal_px": world_to_px(f.view.agent_goal.0, f.view.agent_goal.1),
        "goal_color": f.view.goal_color,
        "wall_color": f.view.wall_color,
    })
}

fn capture(
    mut commands: Commands,
    frame: Res<FrameCount>,
    config: Res<CaptureConfig>,
    live: Res<Live>,
    projection: Res<Projection2d>,
    mut exit: MessageWriter<AppExit>,
) {
    let Some(n) = config.frames else { return };
    if frame.0 == n {
        match &config.screenshot {
            Some(path) => {
                let side = path.with_extension("json");
                let text = serde_json::to_string_pretty(&sidecar(&live, &projection))
                    .expect("JSON serialises");
                if let Err(e) = std::fs::write(&side, text) {
                    error!("{}: {e}", side.display());
                    exit.write(AppExit::error());
                    return;
                }
                commands
                    .spawn(Screenshot::primary_window())
                    .observe(save_to_disk(path.clone()))
                    .observe(
                        |_: On<ScreenshotCaptured>, mut exit: MessageWriter<AppExit>| {
                            exit.write(AppExit::Success);
                        },
                    );
            }
            None => {
                exit.write(AppExit::Success);
            }
        }
    }
    // The screenshot never came: give up rather than hang a test.
    if frame.0 > n + 600 {
        error!("no screenshot after 600 more frames");
        exit.write(AppExit::error());
    }
}
