//! `[level1] action_frame = "agent"`: a world model that reads a PD target as an offset from
//! the agent (DINO-WM's relative Push-T actions). Training data is converted from the
//! recorded targets, the agent turns planned offsets back into targets from its observed
//! position, and a scene without position targets is refused.
// Needs the world model (the default `torch` feature).
#![cfg(feature = "torch")]

mod common;

use std::path::{Path, PathBuf};

use hjepa::agent::AgentFile;
use hjepa::data::recording::Recording;
use hjepa::data::Dataset;
use hjepa::model::data::TrainingData;
use hjepa::plan::ActionBox;
use tch::Tensor;

/// A small push_t state agent in the agent frame, with a planner (tests only).
const AGENT: &str = r#"
scene = "push_t"

[perception]
observation = "state"
latent_dim = 8
hidden = 32

[level1]
hidden = 32
horizon = 2
action_frame = "agent"
anti_collapse = "vicreg"
[level1.loss]
prediction = 1.0
std = 16.0
cov = 1.0
time_sim = 1.0
idm = 1.0

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
idm = 1.0

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

fn agent_file(dir: &Path, frame: &str) -> PathBuf {
    let path = dir.join(format!("{frame}.toml"));
    let text = AGENT
        .replace(
            "action_frame = \"agent\"",
            &format!("action_frame = \"{frame}\""),
        )
        .replace(
            "CHECKPOINT",
            dir.join(format!("run_{frame}")).to_str().unwrap(),
        );
    std::fs::write(&path, text).unwrap();
    path
}

fn push_t_data(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    common::collect_random(&common::scene_path("push_t"), &data, 4);
    data
}

#[test]
fn training_actions_are_targets_minus_the_agents_position() {
    let dir = tempfile::tempdir().unwrap();
    let data = push_t_data(dir.path());
    let dataset = Dataset::open(&data).unwrap();
    let load = |frame: &str| {
        let path = agent_file(dir.path(), frame);
        TrainingData::load(&dataset, &AgentFile::load(&path).unwrap(), &path).unwrap()
    };
    let (world, agent) = (load("world"), load("agent"));
    // Each action row was taken at the observation row of its episode with the same step.
    let episodes = dataset.episodes_without_images().unwrap();
    let (mut row, mut checked) = (0i64, 0);
    for e in &episodes {
        for (t, (a, s)) in e.action.iter().zip(&e.state).enumerate() {
            let w = Vec::<f32>::try_from(world.actions.get(row)).unwrap();
            let r = Vec::<f32>::try_from(agent.actions.get(row)).unwrap();
            assert_eq!(w, a.to_vec(), "world frame row {row}: the recorded target");
            assert_eq!(r, vec![a[0] - s[0], a[1] - s[1]], "agent frame, step {t}");
            assert!(r != w);
            row += 1;
            checked += 1;
        }
    }
    assert_eq!(row, world.actions.size()[0]);
    assert!(checked > 100);
}

#[test]
fn offsets_become_targets_from_the_agent_clipped_to_the_space() {
    let scene = common::scene("push_t");
    let space = ActionBox::agent_offsets(&scene.agent.action);
    assert_eq!(space.center, vec![0.0, 0.0]);
    assert_eq!(space.scale, vec![2.56, 2.56]);
    let near = |got: Vec<f32>, want: [f32; 2]| {
        assert!(
            got.len() == 2 && got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-5),
            "{got:?} != {want:?}"
        )
    };
    near(space.to_scene(&[0.0, 0.0], [1.0, 2.0]), [1.0, 2.0]);
    near(space.to_scene(&[0.25, -0.5], [1.0, 2.0]), [1.64, 0.72]);
    // A target past the arena's edge is clipped to the action space.
    near(space.to_scene(&[1.0, -1.0], [4.0, 1.0]), [5.12, 0.0]);
    let world = ActionBox::of_space(&scene.agent.action);
    near(world.to_scene(&[0.25, -0.5], [1.0, 2.0]), [3.2, 1.28]);
    let x = Tensor::from_slice(&[2.0f32, -0.5]).view([1, 2]);
    assert_eq!(
        Vec::<f32>::try_from(space.project(&x).view([2])).unwrap(),
        vec![1.0, -0.5]
    );
}

#[test]
fn an_agent_frame_agent_trains_and_plays_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    let data = push_t_data(dir.path());
    let agent = agent_file(dir.path(), "agent");
    let out = common::train_cli(&agent, &data, &dir.path().join("run_agent"), &[]);
    common::assert_ok(&out);
    let eval = |name: &str| {
        let record = eval_recorded(dir.path(), &data, &agent, name, 1);
        Recording::load(&record)
            .unwrap()
            .episodes
            .into_iter()
            .map(|e| (e.seed, e.actions, e.success))
            .collect::<Vec<_>>()
    };
    let first = eval("a");
    assert_eq!(first.len(), 2);
    for (_, actions, _) in &first {
        // 4 env steps of 5 control steps, each a target inside the arena.
        assert_eq!(actions.len(), 4);
        for xy in actions {
            assert!(
                xy.iter().all(|v| (0.0..=5.12).contains(v)),
                "{xy:?} outside the space"
            );
        }
    }
    assert_eq!(first, eval("b"), "the same seed plays the same episodes");
}

#[test]
fn a_scene_without_position_targets_is_refused() {
    // two_rooms' agent takes velocities: an offset from its position means nothing there.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_agent.toml"),
    )
    .unwrap()
    .replace("horizon = 3", "horizon = 3\naction_frame = \"agent\"");
    let agent = dir.path().join("agent.toml");
    std::fs::write(&agent, text).unwrap();
    let data = dir.path().join("data");
    common::collect_random(&common::scene_path("two_rooms"), &data, 2);
    let out = common::train_cli(&agent, &data, &dir.path().join("run"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for m in ["agent.toml", "level1.action_frame", "PdTarget"] {
        assert!(
            stderr.contains(m),
            "stderr does not mention {m:?}:\n{stderr}"
        );
    }
}

#[test]
fn a_plan_of_zero_offsets_holds_the_agent_where_it_is() {
    // With a vanishing spread the planner keeps its initial mean, zero: in the agent frame
    // every target is the agent's observed position (in the world frame it would be the
    // arena's centre), so the play-time mapping is pinned down.
    let dir = tempfile::tempdir().unwrap();
    let data = push_t_data(dir.path());
    let agent = agent_file(dir.path(), "agent");
    let text = std::fs::read_to_string(&agent).unwrap() + "init_std = 1e-6\n";
    std::fs::write(&agent, text).unwrap();
    common::assert_ok(&common::train_cli(
        &agent,
        &data,
        &dir.path().join("run_agent"),
        &[],
    ));
    let record = eval_recorded(dir.path(), &data, &agent, "still", 2);
    for e in Recording::load(&record).unwrap().episodes {
        let start = e.start.expect("a window's start layout").agent_start;
        assert!(!e.actions.is_empty());
        for a in &e.actions {
            let off = ((a[0] - start.0).abs()).max((a[1] - start.1).abs());
            assert!(
                off < 1e-2,
                "target {a:?} is not the agent's start {start:?}"
            );
        }
        assert!((start.0 - 2.56).abs().max((start.1 - 2.56).abs()) > 0.05);
    }
}

/// `hjepa eval` of 2 recorded windows of `data`, 20 env steps each, under `seed`: the
/// recording's path (`<dir>/<name>.json`, episodes in `<name>.jsonl`).
fn eval_recorded(dir: &Path, data: &Path, agent: &Path, name: &str, seed: u64) -> PathBuf {
    let record = dir.join(format!("{name}.json"));
    let out = common::bin()
        .args(["eval", "--episodes", "2", "--max-steps", "20", "--seed"])
        .arg(seed.to_string())
        .args(["--no-random-floor", "--success", "tee_pose", "--goals-from"])
        .arg(data)
        .arg("--agent")
        .arg(agent)
        .arg("--out")
        .arg(dir.join(format!("{name}.jsonl")))
        .arg("--record")
        .arg(&record)
        .output()
        .unwrap();
    common::assert_ok(&out);
    record
}
