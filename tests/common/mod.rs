//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hjepa::sim::Scene;

pub const SCENES: [&str; 6] = [
    "two_rooms",
    "wall",
    "push_t",
    "point_maze_u",
    "point_maze_medium",
    "maze_large",
];

pub fn scene(name: &str) -> Arc<Scene> {
    Arc::new(Scene::load(&scene_path(name)).expect("shipped scene loads"))
}

pub fn scene_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenes")
        .join(format!("{name}.ron"))
}

pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_hjepa"))
}

/// A scene variant: the shipped file's text with one substring replaced.
pub fn scene_text_with(name: &str, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(scene_path(name)).unwrap();
    assert!(text.contains(from), "{name}.ron contains {from:?}");
    text.replacen(from, to, 1)
}

/// Asserts that a finished command succeeded, showing its stderr otherwise.
pub fn assert_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small uniform-random dataset of the scene file at `scene_path` (seed 11, one thread).
pub fn collect_random(scene_path: &Path, out: &Path, episodes: u64) {
    use hjepa::data::{collect, CollectOptions, PolicyKind};
    collect(&CollectOptions {
        scene_path: scene_path.to_path_buf(),
        out: out.to_path_buf(),
        episodes,
        policy: PolicyKind::Random,
        noise: 0.3,
        seed: 11,
        shard_episodes: 50,
        threads: 1,
        progress: false,
        cancel: None,
    })
    .unwrap();
}

/// `agent`'s model trained 4 steps on 8 smooth-walk two_rooms episodes in `dir/data`, as the
/// run `dir/run` (a few seconds).
pub fn tiny_run_of(dir: &Path, agent: &Path) -> PathBuf {
    let data = dir.join("data");
    let out = bin()
        .args([
            "collect",
            "--scene",
            "two_rooms",
            "--episodes",
            "8",
            "--threads",
            "1",
            "--out",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert_ok(&out);
    let run = dir.join("run");
    let out = bin()
        .args(["train", "--steps", "4", "--agent"])
        .arg(agent)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert_ok(&out);
    run
}

/// `hjepa train --agent agent --data data --out out` with `extra` flags.
pub fn train_cli(agent: &Path, data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    bin()
        .args(["train", "--agent"])
        .arg(agent)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// A small push_t state agent with the identity encoder (state: agent x, y, vx, vy; T x, y,
/// angle -> 8 features).
pub const IDENTITY_AGENT: &str = r#"
scene = "push_t"

[perception]
observation = "state"
latent_dim = 8
encoder = "identity"

[level1]
hidden = 32
horizon = 2
anti_collapse = "vicreg"
[level1.loss]
prediction = 1.0

[level2]
enabled = false
k = 2
dim = 4
macro_dim = 2
jumps = 1
hidden = 16
anti_collapse = "vicreg"
[level2.loss]
std = 16.0
cov = 1.0

[train]
steps = 4
batch_size = 8
learning_rate = 1e-3
seed = 3
validate_every = 2
validation_fraction = 0.5
threads = 1

[planning]
checkpoint = "CHECKPOINT"
[planning.planner]
kind = "mppi"
samples = 16
elites = 4
iterations = 1
horizon = 2
replan_every = 1
"#;

/// `hjepa collect --scene two_rooms --episodes N --seed S` into `dir/data`, checked.
pub fn collect_two_rooms(dir: &Path, episodes: u32, seed: u64) -> PathBuf {
    let out = dir.join("data");
    assert_ok(
        &bin()
            .args(["collect", "--scene", "two_rooms"])
            .args([
                "--episodes",
                &episodes.to_string(),
                "--seed",
                &seed.to_string(),
            ])
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap(),
    );
    out
}

/// A trained run's weights, sorted by name (to compare two runs tensor by tensor).
#[cfg(feature = "torch")]
pub fn weights(run: &Path) -> Vec<(String, tch::Tensor)> {
    let mut v = tch::Tensor::read_safetensors(run.join("checkpoint/model.safetensors")).unwrap();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A run's metrics log without its wall-clock fields.
pub fn metrics_without_clock(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if let Some(o) = v.as_object_mut() {
                o.remove("elapsed_s");
            }
            v
        })
        .collect()
}
