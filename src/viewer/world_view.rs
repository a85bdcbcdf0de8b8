//! The arena as filled meshes: walls and goal rebuilt when an episode starts, bodies and
//! the agent moved to the streamed poses every frame; the camera keeps the arena (and the
//! plot strip under it) fitted to the window.

use std::sync::Arc;

use bevy::asset::RenderAssetUsages;
use bevy::mesh::{Indices, PrimitiveTopology};
use bevy::prelude::*;
use bevy::window::PrimaryWindow;

use super::{plot_strip, Live, Projection2d};
use crate::run::live::{BodyShape, EpisodeView};

pub struct WorldViewPlugin;

impl Plugin for WorldViewPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Shown>()
            .add_systems(Startup, spawn_camera)
            .add_systems(Update, (rebuild_episode, move_bodies, fit_camera).chain());
    }
}

/// The camera that draws the world (metres); the HUD has its own.
#[derive(Component)]
pub struct WorldCamera;

/// Everything spawned for one episode (despawned when the next starts).
#[derive(Component)]
struct EpisodeEntity;

/// A body's root entity: index into the frame's bodies, or the agent.
#[derive(Component)]
struct BodyIndex(Option<usize>);

/// The episode whose geometry is on screen.
#[derive(Resource, Default)]
struct Shown(Option<Arc<EpisodeView>>);

pub fn rgb(c: [u8; 3]) -> Color {
    Color::srgb_u8(c[0], c[1], c[2])
}

fn spawn_camera(mut commands: Commands) {
    commands.spawn((Camera2d, WorldCamera));
}

/// A convex polygon as a triangle fan (the 2D pipeline does not cull, so winding is free).
fn polygon_mesh(points: &[(f32, f32)]) -> Mesh {
    let positions: Vec<[f32; 3]> = points.iter().map(|p| [p.0, p.1, 0.0]).collect();
    let mut indices = Vec::new();
    for i in 1..points.len().saturating_sub(1) as u32 {
        indices.extend([0, i, i + 1]);
    }
    Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    )
    .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, positions)
    .with_inserted_indices(Indices::U32(indices))
}

fn rebuild_episode(
    mut commands: Commands,
    live: Res<Live>,
    mut shown: ResMut<Shown>,
    old: Query<Entity, With<EpisodeEntity>>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<ColorMaterial>>,
    mut clear: ResMut<ClearColor>,
) {
    let view = &live.latest.view;
    if shown.0.as_ref().is_some_and(|v| Arc::ptr_eq(v, view)) {
        return;
    }
    for e in &old {
        commands.entity(e).despawn();
    }
    clear.0 = Color::srgb_u8(200, 200, 205);
    // The arena's floor, then walls and goal (z orders them), then bodies.
    let (w, h) = view.world_size;
    let floor = polygon_mesh(&[(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]);
    commands.spawn((
        Mesh2d(meshes.add(floor)),
        MeshMaterial2d(materials.add(rgb(view.background))),
        Transform::from_xyz(0.0, 0.0, 0.0),
        EpisodeEntity,
    ));
    let wall = materials.add(rgb(view.wall_color));
    for p in &view.walls {
        commands.spawn((
            Mesh2d(meshes.add(polygon_mesh(p))),
            MeshMaterial2d(wall.clone()),
            Transform::from_xyz(0.0, 0.0, 1.0),
            EpisodeEntity,
        ));
    }
    let goal = materials.add(rgb(view.goal_color));
    for p in &view.goal {
        commands.spawn((
            Mesh2d(meshes.add(polygon_mesh(p))),
            MeshMaterial2d(goal.clone()),
            Transform::from_xyz(0.0, 0.0, 2.0),
            EpisodeEntity,
        ));
    }
    let mut spawn_body = |shape: &BodyShape, index: Option<usize>, z: f32| {
        let material = materials.add(rgb(shape.color));
        commands
            .spawn((
                Transform::from_xyz(0.0, 0.0, z),
                Visibility::default(),
                BodyIndex(index),
                EpisodeEntity,
            ))
            .with_children(|parent| {
                for part in &shape.parts {
                    parent.spawn((
                        Mesh2d(meshes.add(polygon_mesh(part))),
                        MeshMaterial2d(material.clone()),
                        Transform::default(),
                    ));
                }
            });
    };
    for (i, b) in view.bodies.iter().enumerate() {
        spawn_body(b, Some(i), 3.0);
    }
    spawn_body(&view.agent, None, 4.0);
    shown.0 = Some(view.clone());
}

fn move_bodies(live: Res<Live>, mut bodies: Query<(&BodyIndex, &mut Transform)>) {
    let f = &live.latest;
    for (index, mut t) in &mut bodies {
        match index.0 {
            None => {
                t.translation.x = f.agent.0;
                t.translation.y = f.agent.1;
            }
            Some(i) => {
                if let Some(p) = f.bodies.get(i) {
                    t.translation.x = p.x;
                    t.translation.y = p.y;
                    t.rotation = Quat::from_rotation_z(p.angle);
                }
            }
        }
    }
}

/// Fits the arena and the plot strip below it into the window, with a margin; the HUD's
/// text sits in the top band.
fn fit_camera(
    live: Res<Live>,
    window: Single<&Window, With<PrimaryWindow>>,
    mut camera: Single<(&mut Transform, &mut Projection), With<WorldCamera>>,
    mut projection: ResMut<Projection2d>,
) {
    let (w, h) = live.latest.view.world_size;
    let (_, timeline) = plot_strip(Vec2::new(w, h));
    let (min, max) = (Vec2::new(0.0, timeline.min.y), Vec2::new(w, h));
    let size = max - min;
    let win = Vec2::new(window.width(), window.height());
    // Leave 60 px at the top for the status text and a 4 % margin elsewhere.
    let usable = Vec2::new(win.x * 0.96, (win.y - 60.0) * 0.96).max(Vec2::splat(1.0));
    let px_per_m = (usable.x / size.x).min(usable.y / size.y);
    // Centre the world box in the usable area (shifted down by half the text band).
    let center = (min + max) / 2.0 + Vec2::new(0.0, 30.0 / px_per_m);
    let (transform, proj) = &mut *camera;
    transform.translation.x = center.x;
    transform.translation.y = center.y;
    if let Projection::Orthographic(o) = &mut **proj {
        o.scale = 1.0 / px_per_m;
    }
    *projection = Projection2d {
        center,
        px_per_m,
        window: win,
    };
}
