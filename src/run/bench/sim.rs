//! `hjepa bench sim`: sandbox throughput. The gym-pusht figures are the anchors measured on
//! this machine kind (shared/ANCHORS.md), not re-measured here.

use std::sync::Arc;

use super::rate;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::sim::world::World;
use crate::sim::{Env, Scene, VecEnv};

/// gym-pusht 0.1.8 on this machine kind, random actions (shared/ANCHORS.md).
pub const GYM_PUSHT_STATE_STEPS_PER_S: f64 = 1350.0;
pub const GYM_PUSHT_PIXEL_STEPS_PER_S: f64 = 290.0;

fn random_action(rng: &mut ChaCha8Rng, scene: &Scene) -> [f32; 2] {
    let a = &scene.agent.action;
    [
        rng.random_range(a.low.0..=a.high.0),
        rng.random_range(a.low.1..=a.high.1),
    ]
}

/// Control steps/s of the bare rapier world (no observation, goal or info work).
pub fn bare_loop_rate(scene: &Arc<Scene>, seconds: f64) -> f64 {
    let layout = crate::sim::env::sample_layout(scene, 0);
    let mut world = World::build(scene, &layout);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut t = 0u32;
    rate(seconds, || {
        world.control_step(random_action(&mut rng, scene));
        t += 1;
        if t % scene.episode_steps == 0 {
            world = World::build(scene, &layout);
        }
        1
    })
}

/// Env steps/s with random actions on one thread (resets counted as part of the cost).
pub fn env_rate(scene: &Arc<Scene>, seconds: f64) -> f64 {
    let mut env = Env::new(scene.clone());
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut episode = 0;
    rate(seconds, || {
        let s = env
            .step(&random_action(&mut rng, scene))
            .expect("finite action");
        if s.terminated || s.truncated {
            episode += 1;
            env.reset(episode);
        }
        1
    })
}

/// Env steps/s of a vector env of `n` envs on `threads` threads.
pub fn vec_env_rate(scene: &Arc<Scene>, n: usize, threads: usize, seconds: f64) -> f64 {
    let mut venv = VecEnv::new(scene.clone(), n, threads);
    venv.reset(&(0..n as u64).collect::<Vec<_>>());
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut next_seed = n as u64;
    rate(seconds, || {
        let actions: Vec<[f32; 2]> = (0..n).map(|_| random_action(&mut rng, scene)).collect();
        let steps = venv.step(&actions);
        let done: Vec<(usize, u64)> = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.as_ref()
                    .map(|s| s.terminated || s.truncated)
                    .unwrap_or(true)
            })
            .map(|(i, _)| {
                next_seed += 1;
                (i, next_seed)
            })
            .collect();
        if !done.is_empty() {
            venv.reset_some(&done);
        }
        n as u64
    })
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Resident memory added per env, measured over `n` envs.
pub fn memory_per_env(scene: &Arc<Scene>, n: usize) -> Option<f64> {
    let before = rss_bytes()?;
    let envs: Vec<Env> = (0..n).map(|_| Env::new(scene.clone())).collect();
    let after = rss_bytes()?;
    drop(envs);
    Some((after.saturating_sub(before)) as f64 / n as f64)
}

fn without_image(scene: &Arc<Scene>) -> Arc<Scene> {
    let mut s = (**scene).clone();
    s.observation.image = None;
    Arc::new(s)
}

/// The scene stepping one control step per env step: gym-pusht's `step` is one 10 Hz control
/// step, while push_t's agents plan at frameskip 5.
fn one_control_step(scene: &Arc<Scene>) -> Arc<Scene> {
    let mut s = (**scene).clone();
    s.physics.frameskip = 1;
    Arc::new(s)
}

pub fn sim_table(seconds: f64) -> anyhow::Result<String> {
    let push_t = one_control_step(&Scene::load_arg("push_t")?);
    let push_t_state = without_image(&push_t);
    let two_rooms = Scene::load_arg("two_rooms")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let bare = bare_loop_rate(&push_t, seconds);
    let state = env_rate(&push_t_state, seconds);
    let pixels = env_rate(&push_t, seconds);
    let rooms = env_rate(&two_rooms, seconds);
    let vec_state = vec_env_rate(&push_t_state, 8 * cores, cores, seconds);
    let vec_pixels = vec_env_rate(&push_t, 8 * cores, cores, seconds);
    let mem_state = memory_per_env(&push_t_state, 200);
    let mem_pixels = memory_per_env(&push_t, 200);

    let mut t = String::new();
    t += &format!("hjepa bench sim ({seconds:.1} s per row, random actions, {cores} cores)\n");
    t += "| row | threads | env steps/s | vs bare rapier loop | vs gym-pusht 0.1.8 (anchor) |\n";
    t += "|---|---|---|---|---|\n";
    t += &format!("| bare rapier loop, Push-T world, 10 substeps, no observation | 1 | {bare:.0} | 1.00x | |\n");
    t += &format!(
        "| push_t, state observation | 1 | {state:.0} | {:.2}x (bare / env = {:.2}) | {:.1}x of {GYM_PUSHT_STATE_STEPS_PER_S:.0} |\n",
        state / bare,
        bare / state,
        state / GYM_PUSHT_STATE_STEPS_PER_S
    );
    t += &format!(
        "| push_t, 96x96 RGB pixels | 1 | {pixels:.0} | {:.2}x | {:.1}x of {GYM_PUSHT_PIXEL_STEPS_PER_S:.0} |\n",
        pixels / bare,
        pixels / GYM_PUSHT_PIXEL_STEPS_PER_S
    );
    t += &format!("| two_rooms, 64x64 RGB pixels | 1 | {rooms:.0} | | |\n");
    t += &format!(
        "| vector env, {} x push_t state | {cores} | {vec_state:.0} | {:.2}x | {:.1}x of {GYM_PUSHT_STATE_STEPS_PER_S:.0} |\n",
        8 * cores,
        vec_state / bare,
        vec_state / GYM_PUSHT_STATE_STEPS_PER_S
    );
    t += &format!(
        "| vector env, {} x push_t 96x96 pixels | {cores} | {vec_pixels:.0} | {:.2}x | {:.1}x of {GYM_PUSHT_PIXEL_STEPS_PER_S:.0} |\n",
        8 * cores,
        vec_pixels / bare,
        vec_pixels / GYM_PUSHT_PIXEL_STEPS_PER_S
    );
    let kib = |m: Option<f64>| m.map_or("n/a".to_string(), |b| format!("{:.0} KiB", b / 1024.0));
    t += &format!(
        "memory per env (resident, over 200 envs): push_t state {}, push_t 96x96 pixels {}\n",
        kib(mem_state),
        kib(mem_pixels)
    );
    Ok(t)
}
