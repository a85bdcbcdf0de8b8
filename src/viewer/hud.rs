//! Status text and the help overlay, drawn by a second, unscaled camera on render layer 1
//! (pixel-sized text whatever the world's scale).

use bevy::camera::visibility::RenderLayers;
use bevy::prelude::*;
use bevy::sprite::Anchor;

use super::Live;

pub struct HudPlugin;

impl Plugin for HudPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(HelpShown(false))
            .add_systems(Startup, spawn_hud)
            .add_systems(Update, (update_status, update_help));
    }
}

/// Whether the key list is on screen (H or F1).
#[derive(Resource)]
pub struct HelpShown(pub bool);

#[derive(Component)]
struct Status;

#[derive(Component)]
struct Help;

pub const KEYS: &str = "\
Space      pause / play
Right      single step (Left: step back, replays)
Backspace  reset the episode
N          next seed
+ / -      simulation speed x2 / /2
drag       left mouse on a body: pull it
W A S D    drive the agent (no agent file); right mouse: toward the cursor
click      on the timeline: seek (replays)
P          screenshot (hjepa-screenshot-NNN.png)
H or F1    this help
Esc or Q   quit
orange: the path the agent's plan expects; purple: level-2 subgoals
(hierarchical agents; placed by a linear probe from h to position)";

fn hud_layer() -> RenderLayers {
    RenderLayers::layer(1)
}

fn spawn_hud(mut commands: Commands) {
    commands.spawn((
        Camera2d,
        Camera {
            order: 1,
            clear_color: ClearColorConfig::None,
            ..default()
        },
        // The camera's position is the window's top-left corner.
        Projection::Orthographic(OrthographicProjection {
            viewport_origin: Vec2::new(0.0, 1.0),
            ..OrthographicProjection::default_2d()
        }),
        hud_layer(),
    ));
    commands.spawn((
        Text2d::new(""),
        Status,
        hud_layer(),
        TextFont {
            font_size: FontSize::Px(15.0),
            ..default()
        },
        TextColor(Color::srgb(0.08, 0.08, 0.1)),
        Anchor::TOP_LEFT,
        Transform::from_xyz(10.0, -8.0, 0.0),
    ));
    commands.spawn((
        Text2d::new(KEYS),
        Help,
        hud_layer(),
        TextFont {
            font_size: FontSize::Px(15.0),
            ..default()
        },
        TextColor(Color::srgb(0.1, 0.1, 0.45)),
        Anchor::TOP_LEFT,
        Transform::from_xyz(10.0, -70.0, 10.0),
        Visibility::Hidden,
    ));
}

fn update_status(live: Res<Live>, mut text: Single<&mut Text2d, With<Status>>) {
    let f = &live.latest;
    let mut line = format!(
        "{} | {} | step {}{} | cost {:.3}",
        f.view.scene,
        f.actor,
        f.step,
        f.view
            .replay_steps
            .map_or(String::new(), |t| format!("/{t}")),
        f.cost,
    );
    if f.success {
        line += " | SUCCESS";
    }
    let start = match f.view.seed {
        Some(seed) => format!("seed {seed}"),
        None => "start from a dataset".to_string(),
    };
    line += &format!(
        "\nepisode {} ({start}) | done {}, successes {} | speed {}x{} | H: help",
        f.view.episode,
        f.episodes_done,
        f.successes,
        f.speed,
        if f.paused { " | PAUSED" } else { "" }
    );
    if let Some(e) = &f.error {
        line += &format!("\nSTOPPED: {e} (Q or Esc to quit)");
    }
    if text.0 != line {
        text.0 = line;
    }
}

fn update_help(shown: Res<HelpShown>, mut help: Single<&mut Visibility, With<Help>>) {
    let want = if shown.0 {
        Visibility::Visible
    } else {
        Visibility::Hidden
    };
    if **help != want {
        **help = want;
    }
}
