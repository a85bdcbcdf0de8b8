//! `hjepa collect --agent`: datasets of a planning agent's own episodes toward dataset goals,
//! and `hjepa train` on several datasets at once.
// Needs the world model (the default `torch` feature).
#![cfg(feature = "torch")]

mod common;

use std::path::{Path, PathBuf};

use hjepa::data::dataset::DataPolicy;
use hjepa::data::Dataset;

const PLANNING: &str = r#"
[planning]
checkpoint = "CHECKPOINT"
[planning.planner]
kind = "mppi"
samples = 32
elites = 4
iterations = 2
horizon = 4
replan_every = 2
"#;

/// A two_rooms dataset of 8 smooth-walk episodes, a tiny run trained 4 steps on it and an
/// agent file planning with it.
fn tiny_setup(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = common::tiny_run_of(dir, &tiny_agent());
    let agent = dir.join("agent.toml");
    let text = std::fs::read_to_string(tiny_agent()).unwrap()
        + &PLANNING.replace("CHECKPOINT", run.to_str().unwrap());
    std::fs::write(&agent, text).unwrap();
    (dir.join("data"), run, agent)
}

fn tiny_agent() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_agent.toml")
}

/// `hjepa train` of the tiny agent's model into `out` on `data`, with `extra` flags.
fn train(out: &Path, data: &[&Path], extra: &[&str]) -> std::process::Output {
    let mut cmd = common::bin();
    cmd.args(["train", "--agent"])
        .arg(tiny_agent())
        .arg("--out")
        .arg(out)
        .args(extra);
    for d in data {
        cmd.arg("--data").arg(d);
    }
    cmd.output().unwrap()
}

fn collect_agent(agent: &Path, goals: &Path, out: &Path) -> std::process::Output {
    common::bin()
        .args(["collect", "--episodes", "4", "--shard-episodes", "2"])
        .args(["--max-steps", "30", "--seed", "5", "--agent"])
        .arg(agent)
        .arg("--goals-from")
        .arg(goals)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn an_agents_episodes_become_a_dataset_that_resumes_and_trains_with_another() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run, agent) = tiny_setup(dir.path());
    let played = dir.path().join("played");
    common::assert_ok(&collect_agent(&agent, &data, &played));

    // Every episode runs the whole budget (past a success), starting at a recorded frame.
    let ds = Dataset::open(&played).unwrap();
    ds.verify().unwrap();
    let eps = ds.episodes().unwrap();
    assert_eq!(eps.len(), 4);
    let scripted = Dataset::open(&data).unwrap().episodes().unwrap();
    for e in &eps {
        assert_eq!(e.action.len(), 30, "episode {} stopped early", e.index);
        assert_eq!(e.obs_state.len(), 31);
        assert_eq!(e.obs_image.len(), 31, "the scene's images are kept");
        let start = &e.obs_state[0];
        assert!(
            scripted.iter().any(|s| s.obs_state.contains(start)),
            "episode {} does not start at a recorded frame",
            e.index
        );
    }
    match &ds.manifest.policy {
        DataPolicy::Agent { agent: source } => {
            assert_eq!(source.max_steps, 30);
            assert_eq!(source.goal_offset, 25);
            assert_eq!(source.checkpoint_step, 4);
            assert_eq!(source.goals_from, data);
        }
        other => panic!("expected the agent as the dataset's policy, got {other:?}"),
    }

    // Interrupted after its first shard: the rerun records only the missing one, identically.
    let shard1 = played.join("shard-00001.safetensors");
    let before = std::fs::read(&shard1).unwrap();
    std::fs::remove_file(&shard1).unwrap();
    let out = collect_agent(&agent, &data, &played);
    common::assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 recorded now"), "{stdout}");
    assert_eq!(
        std::fs::read(&shard1).unwrap(),
        before,
        "replayed shard differs"
    );

    // A retrained checkpoint is another policy: resuming into the same folder is refused.
    common::assert_ok(&train(&run, &[&data], &["--resume", "--steps", "6"]));
    let out = collect_agent(&agent, &data, &played);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("manifest.json") && stderr.contains("policy"),
        "{stderr}"
    );

    // Both datasets train one model; the checkpoint names both, and a resume on one alone
    // is refused as other data.
    let both = dir.path().join("both");
    common::assert_ok(&train(&both, &[&data, &played], &["--steps", "4"]));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(both.join("checkpoint/meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["dataset"], data.to_str().unwrap());
    assert_eq!(meta["more_datasets"][0], played.to_str().unwrap());
    let out = train(&both, &[&data], &["--resume", "--steps", "6"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("other data"), "{stderr}");
    common::assert_ok(&train(
        &both,
        &[&data, &played],
        &["--resume", "--steps", "6"],
    ));
}

#[test]
fn datasets_of_another_scene_are_not_trained_on_together() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("two_rooms");
    common::collect_random(&common::scene_path("two_rooms"), &data, 3);
    let wall = dir.path().join("wall");
    common::collect_random(&common::scene_path("wall"), &wall, 3);
    let out = train(&dir.path().join("run"), &[&data, &wall], &["--steps", "2"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("wall/manifest.json") && stderr.contains("scene"),
        "{stderr}"
    );
    assert!(!dir.path().join("run/checkpoint").exists());
}
