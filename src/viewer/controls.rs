//! Keyboard and mouse, in the spirit of MuJoCo's viewer: every input becomes a
//! [`Control`] for the session thread, except screenshots, help and quitting.

use bevy::prelude::*;
use bevy::render::view::screenshot::{save_to_disk, Screenshot};
use bevy::window::PrimaryWindow;

use super::hud::HelpShown;
use super::world_view::WorldCamera;
use super::{plot_strip, screenshot_path, Live};
use crate::run::live::Control;

pub struct ControlsPlugin;

impl Plugin for ControlsPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Pointer>()
            .add_systems(Update, (keys, mouse));
    }
}

/// Mouse state between frames.
#[derive(Resource, Default)]
struct Pointer {
    dragging: Option<Vec2>,
    /// The last drag target sent (a held button sends only moves).
    drag_sent: Option<Vec2>,
    driving: bool,
    /// The last manual action sent, by keys or the right button.
    manual_sent: [f32; 2],
    screenshots: u32,
}

fn keys(
    keys: Res<ButtonInput<KeyCode>>,
    mut live: ResMut<Live>,
    mut help: ResMut<HelpShown>,
    mut pointer: ResMut<Pointer>,
    mut commands: Commands,
    mut exit: MessageWriter<AppExit>,
) {
    let pressed = |k: KeyCode| keys.just_pressed(k);
    if pressed(KeyCode::Space) {
        live.send(Control::TogglePause);
    }
    if pressed(KeyCode::ArrowRight) {
        live.send(Control::Step);
    }
    if pressed(KeyCode::ArrowLeft) && live.latest.view.replay_steps.is_some() {
        let back = live.latest.step.saturating_sub(1);
        live.send(Control::Seek(back));
    }
    if pressed(KeyCode::Backspace) {
        live.send(Control::Reset);
    }
    if pressed(KeyCode::KeyN) {
        live.send(Control::NewSeed);
    }
    if keys.any_just_pressed([KeyCode::Equal, KeyCode::NumpadAdd]) {
        live.send(Control::Speed(2.0));
    }
    if keys.any_just_pressed([KeyCode::Minus, KeyCode::NumpadSubtract]) {
        live.send(Control::Speed(0.5));
    }
    if keys.any_just_pressed([KeyCode::KeyH, KeyCode::F1]) {
        help.0 = !help.0;
    }
    if pressed(KeyCode::KeyP) {
        pointer.screenshots += 1;
        let path = screenshot_path(pointer.screenshots);
        info!("screenshot: {}", path.display());
        commands
            .spawn(Screenshot::primary_window())
            .observe(save_to_disk(path));
    }
    if keys.any_just_pressed([KeyCode::Escape, KeyCode::KeyQ]) {
        exit.write(AppExit::Success);
    }
    // Manual driving (sessions without an agent ignore nothing; agents ignore it).
    let axis = |neg: KeyCode, pos: KeyCode| {
        keys.pressed(pos) as i32 as f32 - keys.pressed(neg) as i32 as f32
    };
    let (x, y) = (
        axis(KeyCode::KeyA, KeyCode::KeyD),
        axis(KeyCode::KeyS, KeyCode::KeyW),
    );
    let any = keys.any_pressed([KeyCode::KeyA, KeyCode::KeyD, KeyCode::KeyS, KeyCode::KeyW]);
    let released =
        keys.any_just_released([KeyCode::KeyA, KeyCode::KeyD, KeyCode::KeyS, KeyCode::KeyW]);
    // Only changes are sent: the sandbox holds the last one.
    if (any || released) && !pointer.driving && pointer.manual_sent != [x, y] {
        pointer.manual_sent = [x, y];
        live.send(Control::Manual([x, y]));
    }
}

fn mouse(
    buttons: Res<ButtonInput<MouseButton>>,
    window: Single<&Window, With<PrimaryWindow>>,
    camera: Single<(&Camera, &GlobalTransform), With<WorldCamera>>,
    mut live: ResMut<Live>,
    mut pointer: ResMut<Pointer>,
) {
    let (camera, at) = *camera;
    let cursor = window
        .cursor_position()
        .and_then(|p| camera.viewport_to_world_2d(at, p).ok());
    let Some(world) = cursor else {
        return;
    };
    let (w, h) = live.latest.view.world_size;
    // Left button: a click on a replay's timeline seeks; elsewhere it drags the nearest body.
    if buttons.just_pressed(MouseButton::Left) {
        let (_, bar) = plot_strip(Vec2::new(w, h));
        if let (Some(total), true) = (
            live.latest.view.replay_steps,
            bar.inflate(0.02 * h).contains(world),
        ) {
            let t = ((world.x - bar.min.x) / bar.width()).clamp(0.0, 1.0);
            live.send(Control::Seek((t * total as f32).round() as u32));
        } else {
            pointer.dragging = Some(world);
        }
    }
    if let Some(from) = pointer.dragging {
        if buttons.pressed(MouseButton::Left) {
            if pointer.drag_sent != Some(world) {
                pointer.drag_sent = Some(world);
                live.send(Control::Drag(Some(((from.x, from.y), (world.x, world.y)))));
            }
        } else {
            pointer.dragging = None;
            pointer.drag_sent = None;
            live.send(Control::Drag(None));
        }
    }
    // Right button: drive the agent toward the cursor (manual sessions).
    if buttons.pressed(MouseButton::Right) {
        let d = world - Vec2::new(live.latest.agent.0, live.latest.agent.1);
        let scale = 0.1 * w.max(h);
        let a = (d / scale).clamp(Vec2::splat(-1.0), Vec2::splat(1.0));
        pointer.driving = true;
        // Only changes are sent, as for the keys.
        if pointer.manual_sent != [a.x, a.y] {
            pointer.manual_sent = [a.x, a.y];
            live.send(Control::Manual([a.x, a.y]));
        }
    } else if pointer.driving {
        pointer.driving = false;
        pointer.manual_sent = [0.0, 0.0];
        live.send(Control::Manual([0.0, 0.0]));
    }
}
