//! Start/goal pairs taken from recorded trajectories: DINO-WM's and stable-worldmodel's
//! evaluation protocol. Episode i starts from frame t of a held-out trajectory and aims at
//! the frame `offset` control steps later in the same trajectory (agent position and every
//! body's pose), so the goal is reachable in that time by the policy that recorded it.

use std::path::Path;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::dataset::Dataset;
use crate::data::episodes::episode_seed;
use crate::error::InputError;
use crate::sim::env::sample_layout;
use crate::sim::geometry::{wrap_angle, Pose2};
use crate::sim::scene::Criterion;
use crate::sim::world::Layout;
use crate::sim::{Env, Scene};

/// `--goal-offset`'s default: DINO-WM's 25 control steps.
pub const DEFAULT_GOAL_OFFSET: u32 = 25;

/// A body "moves" in a window when its pose changes by more than its pose criterion's
/// tolerances (so that leaving it where it is would fail), or, for bodies without one, by
/// more than this (metres, radians): such goals need pushing, the others only reaching.
pub const BODY_MOTION: f32 = 0.05;

/// Windows drawn per episode before giving up on one whose start is not already a success.
const MAX_TRIES: usize = 1000;

/// Where one evaluation episode comes from.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GoalWindow {
    /// Episode index in the dataset.
    pub episode: u64,
    /// Start frame (env step); the goal is `offset` control steps later.
    pub frame: u32,
    /// Whether some body moves between start and goal by more than its tolerance (see
    /// [`BODY_MOTION`]).
    pub body_moves: bool,
    #[serde(skip)]
    pub layout: Layout,
}

/// A recorded episode's index, seed and physical states, one per recorded frame.
type Recorded = (u64, u64, Vec<Vec<f32>>);

/// Draws `count` windows `offset` control steps long (`offset / frameskip` recorded frames,
/// so that DINO-WM's 25 steps mean the same time at any frameskip) from the dataset in
/// `dir`, window i from
/// `episode_seed(seed, i)` (uniform over episodes, then over start frames), skipping windows
/// whose start already meets the scene's success criterion. The dataset must have been
/// recorded on the same scene (by name and physical-state layout).
pub fn dataset_goals(
    scene: &Arc<Scene>,
    dir: &Path,
    offset_steps: u32,
    count: u64,
    seed: u64,
) -> Result<Vec<GoalWindow>, InputError> {
    let (dataset, mut env) = open_for_scene(scene, dir)?;
    let offset = frame_offset(scene, dir, offset_steps)?;
    let episodes = long_episodes(&dataset, dir, offset, offset_steps)?;
    let mut windows = Vec::with_capacity(count as usize);
    for i in 0..count {
        let mut rng = ChaCha8Rng::seed_from_u64(episode_seed(seed, i));
        let found =
            (0..MAX_TRIES).find_map(|_| draw_window(scene, &mut env, &episodes, offset, &mut rng));
        windows.push(found.ok_or_else(|| {
            InputError::new(
                dir,
                "episodes",
                format!(
                    "{MAX_TRIES} windows of {offset_steps} steps all start already at their goal: \
                     nothing to evaluate"
                ),
            )
        })?);
    }
    Ok(windows)
}

/// Opens the dataset in `dir` and an env of `scene`, refusing a dataset recorded on another
/// scene, at another env step or with another physical-state layout.
fn open_for_scene(scene: &Arc<Scene>, dir: &Path) -> Result<(Dataset, Env), InputError> {
    let dataset = Dataset::open(dir)?;
    let manifest_path = dir.join(super::dataset::MANIFEST);
    if dataset.manifest.scene != scene.name {
        return Err(InputError::new(
            &manifest_path,
            "scene",
            format!(
                "recorded on scene `{}`; goals for `{}` need a dataset of that scene",
                dataset.manifest.scene, scene.name
            ),
        ));
    }
    dataset.manifest.check_env_step(&manifest_path, scene)?;
    let env = Env::new(scene.clone());
    if dataset.manifest.state_names != env.physical_state_names() {
        return Err(InputError::new(
            &manifest_path,
            "state_names",
            format!(
                "expected the scene's physical state {:?}, found {:?}",
                env.physical_state_names(),
                dataset.manifest.state_names
            ),
        ));
    }
    Ok((dataset, env))
}

/// The goal offset in recorded frames: `offset_steps` must be a positive multiple of the
/// scene's frameskip.
fn frame_offset(scene: &Scene, dir: &Path, offset_steps: u32) -> Result<u32, InputError> {
    let frameskip = scene.physics.frameskip.max(1);
    if offset_steps == 0 || offset_steps % frameskip != 0 {
        return Err(InputError::new(
            dir,
            "goal offset",
            format!(
                "{offset_steps} control steps: expected a positive multiple of the scene's \
                 frameskip ({frameskip}), as recorded frames are {frameskip} control steps apart"
            ),
        ));
    }
    Ok(offset_steps / frameskip)
}

/// The dataset's episodes longer than `offset` frames; refused when there is none.
fn long_episodes(
    dataset: &Dataset,
    dir: &Path,
    offset: u32,
    offset_steps: u32,
) -> Result<Vec<Recorded>, InputError> {
    let episodes: Vec<_> = dataset
        .episodes_without_images()?
        .into_iter()
        .filter(|e| e.state.len() > offset as usize)
        .map(|e| (e.index, e.seed, e.state))
        .collect();
    if episodes.is_empty() {
        return Err(InputError::new(
            dir,
            "episodes",
            format!(
                "no episode is longer than the goal offset ({offset_steps} control steps, \
                 {offset} recorded frames)"
            ),
        ));
    }
    Ok(episodes)
}

/// One draw: an episode, then a start frame; the window, unless its start already succeeds.
fn draw_window(
    scene: &Scene,
    env: &mut Env,
    episodes: &[Recorded],
    offset: u32,
    rng: &mut ChaCha8Rng,
) -> Option<GoalWindow> {
    let (index, ep_seed, states) = &episodes[rng.random_range(0..episodes.len())];
    let frame = rng.random_range(0..states.len() - offset as usize);
    let (start, goal) = (&states[frame], &states[frame + offset as usize]);
    let layout = window_layout(scene, *ep_seed, start, goal);
    env.reset_to(layout.clone());
    if env.info().success {
        return None;
    }
    Some(GoalWindow {
        episode: *index,
        frame: frame as u32,
        body_moves: body_moves(scene, start, goal),
        layout,
    })
}

/// The recorded episode's layout (its doors) with the agent and every body placed as in
/// `start`, and the goals taken from `goal` (physical states: agent x, y, vx, vy, then per
/// body copy x, y, angle, vx, vy, omega).
fn window_layout(scene: &Scene, episode_seed: u64, start: &[f32], goal: &[f32]) -> Layout {
    let mut layout = sample_layout(scene, episode_seed);
    layout.agent_start = (start[0], start[1]);
    layout.agent_goal = (goal[0], goal[1]);
    layout.distance_bin = None;
    let pose = |s: &[f32], copy: usize| {
        let b = &s[4 + 6 * copy..];
        Pose2::new(b[0], b[1], b[2])
    };
    let mut copy = 0;
    for (def, body) in scene.bodies.iter().enumerate() {
        if layout.body_goals[def].is_some() {
            layout.body_goals[def] = Some(pose(goal, copy));
        }
        for _ in 0..body.count {
            layout.body_starts[copy] = pose(start, copy);
            copy += 1;
        }
    }
    layout
}

fn body_moves(scene: &Scene, start: &[f32], goal: &[f32]) -> bool {
    let tolerance = |name: &str| {
        scene
            .goal
            .success
            .iter()
            .find_map(|c| match c {
                Criterion::BodyPose {
                    body,
                    position_tol,
                    angle_tol,
                    ..
                } if body == name => Some((*position_tol, *angle_tol)),
                _ => None,
            })
            .unwrap_or((BODY_MOTION, BODY_MOTION))
    };
    let copies = scene
        .bodies
        .iter()
        .flat_map(|b| std::iter::repeat_n(b.name.as_str(), b.count as usize));
    copies
        .zip(start[4..].chunks(6).zip(goal[4..].chunks(6)))
        .any(|(name, (a, b))| {
            let (pos_tol, ang_tol) = tolerance(name);
            (a[0] - b[0]).hypot(a[1] - b[1]) > pos_tol || wrap_angle(a[2] - b[2]).abs() > ang_tol
        })
}
