//! What a live session streams to its viewer ([`crate::run::live`]): each step's frame, and
//! the static view of the episode it belongs to (shared by the episode's frames).

use std::sync::Arc;

use crate::sim::geometry::{goal_polygons, shape_polygons, wall_polygons, Pose2};
use crate::sim::scene::V2;
use crate::sim::Env;

/// A body as the viewer draws it: convex parts in the body's frame, and its colour.
#[derive(Clone, Debug)]
pub struct BodyShape {
    pub name: String,
    pub parts: Vec<Vec<V2>>,
    pub color: [u8; 3],
}

/// What stays fixed during an episode.
#[derive(Clone, Debug)]
pub struct EpisodeView {
    pub scene: String,
    /// Width and height of the arena (metres; origin at its lower-left corner).
    pub world_size: V2,
    pub episode: u64,
    /// The seed its start and goal were sampled from (None: a start recorded from a dataset).
    pub seed: Option<u64>,
    pub walls: Vec<Vec<V2>>,
    pub wall_color: [u8; 3],
    pub background: [u8; 3],
    pub goal: Vec<Vec<V2>>,
    pub goal_color: [u8; 3],
    pub agent_goal: V2,
    pub agent: BodyShape,
    /// One per body copy, in the order of `LiveFrame::bodies`.
    pub bodies: Vec<BodyShape>,
    /// Steps in the episode being replayed (replays only).
    pub replay_steps: Option<u32>,
}

/// One step of the session.
#[derive(Clone, Debug)]
pub struct LiveFrame {
    pub view: Arc<EpisodeView>,
    pub step: u32,
    pub agent: V2,
    pub bodies: Vec<Pose2>,
    /// Where the agent expects to go: its remaining plan replayed in a snapshot.
    pub plan: Vec<V2>,
    /// The hierarchical planner's level-2 subgoals (the abstract states its upper plan
    /// predicts), placed in the arena by a linear probe from h to the agent's position.
    pub subgoals: Vec<V2>,
    pub cost: f32,
    pub success: bool,
    pub done: bool,
    pub paused: bool,
    /// Simulation speed relative to real time.
    pub speed: f32,
    pub episodes_done: u64,
    pub successes: u64,
    pub actor: String,
    /// Why the session stopped (an agent's error, a refused action): it then holds this
    /// frame, paused, until the viewer quits, and `LiveHandle::stop` returns the error.
    pub error: Option<String>,
}

/// Builds the static view of the env's current episode.
pub(super) fn episode_view(
    env: &Env,
    episode: u64,
    seed: Option<u64>,
    replay_steps: Option<u32>,
) -> EpisodeView {
    // This episode's scene: its factors of variation change colours and sizes.
    let scene = env.episode_scene();
    let layout = env.layout();
    let style = scene
        .observation
        .image
        .clone()
        .unwrap_or_else(|| crate::sim::scene::ImageSpec::default_with_size(1, 1));
    let origin = Pose2::new(0.0, 0.0, 0.0);
    let world = env.world();
    let bodies = world
        .bodies()
        .iter()
        .map(|b| {
            let def = &scene.bodies[b.def];
            BodyShape {
                name: def.name.clone(),
                parts: shape_polygons(&def.shape, &origin),
                color: def.color,
            }
        })
        .collect();
    EpisodeView {
        scene: scene.name.clone(),
        world_size: scene.world.size,
        episode,
        seed,
        walls: wall_polygons(scene, &layout.doors),
        wall_color: style.obstacle_color,
        background: style.background,
        goal: goal_polygons(scene, layout),
        goal_color: style.goal_color,
        agent_goal: layout.agent_goal,
        agent: BodyShape {
            name: "agent".into(),
            parts: shape_polygons(&scene.agent.shape, &origin),
            color: scene.agent.color,
        },
        bodies,
        replay_steps,
    }
}
