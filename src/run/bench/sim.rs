//! `hjepa bench sim`: sandbox throughput, with gym-pusht 0.1.8 measured in the same run as the
//! peer when the project venv's Python has it (see [`measure_gym_pusht`]).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use super::rate;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::sim::world::World;
use crate::sim::{Env, Scene, VecEnv};

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

/// gym-pusht's side, run by the peer's Python: steps/s of one `gym_pusht/PushT-v0` env made
/// with `gymnasium.make`, uniform random actions drawn beforehand, resets counted, for the
/// state and the 96x96 pixel observation. Prints one JSON line.
const GYM_PUSHT_SCRIPT: &str = r#"
import json, sys, time
try:
    import gymnasium as gym, numpy as np, gym_pusht
    from importlib.metadata import version
except Exception as e:
    print(json.dumps({"missing": f"{type(e).__name__}: {e}"}))
    sys.exit(0)
seconds = float(sys.argv[1])
out = {"version": version("gym-pusht")}
for obs in ("state", "pixels"):
    env = gym.make("gym_pusht/PushT-v0", obs_type=obs, observation_width=96, observation_height=96)
    env.reset(seed=0)
    sp = env.action_space
    acts = np.random.default_rng(0).uniform(sp.low, sp.high, (4096,) + sp.shape).astype(sp.dtype)
    n, i, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(16):
            _, _, term, trunc, _ = env.step(acts[i])
            i = (i + 1) % len(acts)
            if term or trunc:
                env.reset()
        n += 16
    out[obs] = n / (time.perf_counter() - t0)
print(json.dumps(out))
"#;

/// gym-pusht measured in this run: its version and steps/s (state, 96x96 pixels).
pub struct GymPusht {
    pub python: PathBuf,
    pub version: String,
    pub state: f64,
    pub pixels: f64,
}

/// The project venv's Python: `$HJEPA_PYTHON`, else `$VENV/bin/python` (the Makefile's and
/// CI's venv), else `.venv/bin/python` in the current folder or in the crate's source folder.
pub fn venv_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HJEPA_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    if let Some(v) = std::env::var_os("VENV") {
        candidates.push(PathBuf::from(v).join("bin/python"));
    }
    candidates.push(PathBuf::from(".venv/bin/python"));
    candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    candidates.into_iter().find(|p| p.is_file())
}

/// Runs gym-pusht for `seconds` per observation mode with the venv's Python, or says why
/// not (`HJEPA_BENCH_NO_PEER` set, no venv, gym-pusht not installed, the script failed).
pub fn measure_gym_pusht(seconds: f64) -> Result<GymPusht, String> {
    if std::env::var_os("HJEPA_BENCH_NO_PEER").is_some() {
        return Err("not run: HJEPA_BENCH_NO_PEER is set".into());
    }
    let python = venv_python().ok_or(
        "not run: no project venv (set HJEPA_PYTHON or VENV, or run `make bench`)".to_string(),
    )?;
    let shown = python.display();
    let out = Command::new(&python)
        .args(["-c", GYM_PUSHT_SCRIPT, &seconds.to_string()])
        .output()
        .map_err(|e| format!("not run: cannot start {shown}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let json: serde_json::Value = match (out.status.success(), serde_json::from_str(line)) {
        (true, Ok(v)) => v,
        _ => {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().last().unwrap_or("no output");
            return Err(format!("not run: gym-pusht failed under {shown}: {last}"));
        }
    };
    if let Some(why) = json["missing"].as_str() {
        return Err(format!(
            "not installed in {shown} ({why}): `{shown} -m pip install gym-pusht==0.1.8`"
        ));
    }
    let num = |k: &str| {
        json[k]
            .as_f64()
            .ok_or(format!("gym-pusht script: no {k} in {line}"))
    };
    Ok(GymPusht {
        python: python.clone(),
        version: json["version"].as_str().unwrap_or("?").to_string(),
        state: num("state")?,
        pixels: num("pixels")?,
    })
}

pub fn sim_table(seconds: f64) -> anyhow::Result<String> {
    let push_t = one_control_step(&Scene::load_arg("push_t")?);
    let push_t_state = without_image(&push_t);
    let two_rooms = Scene::load_arg("two_rooms")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let bare = bare_loop_rate(&push_t, seconds);
    let state = env_rate(&push_t_state, seconds);
    let pixels = env_rate(&push_t, seconds);
    // The peer right after the single-thread rows it is compared with (not concurrently).
    let peer = measure_gym_pusht(seconds);
    let rooms = env_rate(&two_rooms, seconds);
    let vec_state = vec_env_rate(&push_t_state, 8 * cores, cores, seconds);
    let vec_pixels = vec_env_rate(&push_t, 8 * cores, cores, seconds);
    // The same vector env on one thread: what the worker threads add.
    let vec_one = (cores > 1).then(|| vec_env_rate(&push_t_state, 8 * cores, 1, seconds));
    let mem_state = memory_per_env(&push_t_state, 200);
    let mem_pixels = memory_per_env(&push_t, 200);

    let (peer_state, peer_pixels) = match &peer {
        Ok(p) => (Some(p.state), Some(p.pixels)),
        Err(_) => (None, None),
    };
    let vs = |x: f64, p: Option<f64>| p.map_or("n/a".to_string(), |p| format!("{:.1}x", x / p));
    let n = 8 * cores;
    let mut t = String::new();
    t += &format!("hjepa bench sim ({seconds:.1} s per row, random actions, {cores} cores)\n");
    t += "| row | threads | env steps/s | vs bare rapier loop | vs gym-pusht (one process, this run) |\n";
    t += "|---|---|---|---|---|\n";
    t += &format!("| bare rapier loop, Push-T world, 10 substeps, no observation | 1 | {bare:.0} | 1.00x | |\n");
    t += &format!(
        "| push_t, state observation | 1 | {state:.0} | {:.2}x (bare / env = {:.2}) | {} |\n",
        state / bare,
        bare / state,
        vs(state, peer_state)
    );
    t += &format!(
        "| push_t, 96x96 RGB pixels | 1 | {pixels:.0} | {:.2}x | {} |\n",
        pixels / bare,
        vs(pixels, peer_pixels)
    );
    t += &peer_rows(&peer, bare);
    t += &format!("| two_rooms, 64x64 RGB pixels | 1 | {rooms:.0} | | |\n");
    t += &format!(
        "| vector env, {n} x push_t state | {cores} | {vec_state:.0} | {:.2}x | {} |\n",
        vec_state / bare,
        vs(vec_state, peer_state)
    );
    t += &format!(
        "| vector env, {n} x push_t 96x96 pixels | {cores} | {vec_pixels:.0} | {:.2}x | {} |\n",
        vec_pixels / bare,
        vs(vec_pixels, peer_pixels)
    );
    if let Some(one) = vec_one {
        t += &format!(
            "| vector env, {n} x push_t state, one thread ({cores} threads: {:.2}x this) | 1 | {one:.0} | {:.2}x | {} |\n",
            vec_state / one,
            one / bare,
            vs(one, peer_state)
        );
    }
    t += &trailer(&peer, mem_state, mem_pixels);
    Ok(t)
}

/// gym-pusht's rows of the table (none when it could not be measured).
fn peer_rows(peer: &Result<GymPusht, String>, bare: f64) -> String {
    let Ok(p) = peer else {
        return String::new();
    };
    format!(
        "| gym-pusht {}, state (Python, gymnasium.make) | 1 | {:.0} | {:.2}x | 1.0x |\n| gym-pusht {}, 96x96 pixels | 1 | {:.0} | {:.2}x | 1.0x |\n",
        p.version,
        p.state,
        p.state / bare,
        p.version,
        p.pixels,
        p.pixels / bare
    )
}

/// The lines under the table: how gym-pusht was measured (or why not), memory per env.
fn trailer(
    peer: &Result<GymPusht, String>,
    mem_state: Option<f64>,
    mem_pixels: Option<f64>,
) -> String {
    let mut t = match peer {
        Ok(p) => format!(
            "gym-pusht {} measured in this run with {}\n",
            p.version,
            p.python.display()
        ),
        Err(why) => format!("gym-pusht: {why}\n"),
    };
    let kib = |m: Option<f64>| m.map_or("n/a".to_string(), |b| format!("{:.0} KiB", b / 1024.0));
    t += &format!(
        "memory per env (resident, over 200 envs): push_t state {}, push_t 96x96 pixels {}\n",
        kib(mem_state),
        kib(mem_pixels)
    );
    t
}
