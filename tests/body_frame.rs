//! `[level1] state_frame = "body"`: a state model whose predictors see the agent in the
//! pushed body's frame. Checked: a predictor that outputs nothing keeps the state as it is,
//! the prediction of a predictor with random weights is equivariant (rotating and shifting
//! the whole arena, actions included, rotates and shifts the predicted states the same
//! way), such a model trains and plays,
//! and a learned encoder, agent-frame actions or a scene with another state layout are
//! refused.
// Needs the world model (the default `torch` feature).
#![cfg(feature = "torch")]

mod common;

use std::path::{Path, PathBuf};

use hjepa::agent::AgentFile;
use hjepa::data::Dataset;
use hjepa::model::data::TrainingData;
use hjepa::model::Trainer;
use tch::{Device, Kind, Tensor};

/// `common::IDENTITY_AGENT` (a small push_t state model) in the T's frame.
fn agent_text() -> String {
    common::IDENTITY_AGENT.replace("[level1]\n", "[level1]\nstate_frame = \"body\"\n")
}

fn setup(dir: &Path, text: &str) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    common::collect_random(&common::scene_path("push_t"), &data, 4);
    let path = dir.join("body.toml");
    std::fs::write(&path, text).unwrap();
    (data, path)
}

fn trainer(dir: &Path) -> (Trainer, TrainingData) {
    tch::set_num_threads(1);
    let (data, path) = setup(dir, &agent_text());
    let agent = AgentFile::load(&path).unwrap();
    let td = TrainingData::load(&Dataset::open(&data).unwrap(), &agent, &path).unwrap();
    let mut t = Trainer::new(agent.model.clone(), &td.shapes, Device::Cpu);
    t.set_input_statistics(&td);
    (t, td)
}

/// Some recorded states `[N, 7]` (agent x, y, vx, vy; T x, y, angle) and actions `[N, 1, 2]`.
fn states_and_actions(td: &TrainingData) -> (Tensor, Tensor) {
    let rows = Tensor::from_slice(&td.train_frames[..16]);
    let states = td.obs.index_select(0, &rows).to_kind(Kind::Float);
    let actions = Tensor::from_slice(&[2.0f32, 3.0, 1.0, 4.0])
        .view([2, 1, 2])
        .repeat([8, 1, 1]);
    (states, actions)
}

fn predict(t: &Trainer, states: &Tensor, actions: &Tensor) -> Tensor {
    tch::no_grad(|| {
        let z = t.model.encode(states);
        let next = t
            .model
            .rollout(&z, &t.model.normalize_actions(actions))
            .select(1, 0);
        t.model.decode_state(&next).unwrap()
    })
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

#[test]
fn a_predictor_that_outputs_nothing_keeps_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let (t, td) = trainer(dir.path());
    tch::no_grad(|| {
        for (name, mut v) in t.vs.variables() {
            if name.starts_with("predictor1") && name.contains("fc2") {
                let _ = v.zero_();
            }
        }
    });
    let (states, actions) = states_and_actions(&td);
    let next = predict(&t, &states, &actions);
    let angle_wrap = |x: Tensor| (x.sin(), x.cos());
    let (ds, dc) = angle_wrap(next.narrow(1, 6, 1) - states.narrow(1, 6, 1));
    assert!(max_abs(&(next.narrow(1, 0, 6) - states.narrow(1, 0, 6))) < 1e-4);
    assert!(max_abs(&ds) < 1e-4 && max_abs(&(dc - 1.0)) < 1e-4);
}

#[test]
fn predictions_turn_and_shift_with_the_arena() {
    let dir = tempfile::tempdir().unwrap();
    let (t, td) = trainer(dir.path());
    // A predictor with random weights throughout: a fresh one's output layer starts at zero,
    // whose identity prediction would be equivariant whatever the frame code did.
    tch::manual_seed(3);
    tch::no_grad(|| {
        for (name, mut v) in t.vs.variables() {
            if name.starts_with("predictor1") {
                let _ = v.copy_(&(Tensor::randn_like(&v) * 0.3));
            }
        }
    });
    let (states, actions) = states_and_actions(&td);
    let moved = predict(&t, &states, &actions) - &states;
    assert!(
        max_abs(&moved.narrow(1, 0, 6)) > 0.05,
        "the predictor must move the state for the check below to mean anything"
    );
    // Rotate the arena by 0.7 rad about (1.0, 2.0) and shift it by (0.3, -0.2).
    let (phi, centre, shift) = (0.7f64, [1.0f64, 2.0], [0.3f64, -0.2]);
    let (c, s) = (phi.cos(), phi.sin());
    let point = |x: &Tensor, y: &Tensor| {
        let (x, y) = (x - centre[0], y - centre[1]);
        (
            &x * c - &y * s + centre[0] + shift[0],
            &x * s + &y * c + centre[1] + shift[1],
        )
    };
    let turn = |st: &Tensor| {
        let col = |i| st.narrow(1, i, 1);
        let (ax, ay) = point(&col(0), &col(1));
        let (vx, vy) = (col(2) * c - col(3) * s, col(2) * s + col(3) * c);
        let (bx, by) = point(&col(4), &col(5));
        Tensor::cat(&[ax, ay, vx, vy, bx, by, col(6) + phi], 1)
    };
    let flat = actions.view([-1, 2]);
    let (tx, ty) = point(&flat.narrow(1, 0, 1), &flat.narrow(1, 1, 1));
    let turned_actions = Tensor::cat(&[tx, ty], 1).view([-1, 1, 2]);
    let a = turn(&predict(&t, &states, &actions));
    let b = predict(&t, &turn(&states), &turned_actions);
    assert!(max_abs(&(a.narrow(1, 0, 6) - b.narrow(1, 0, 6))) < 1e-3);
    let da = a.narrow(1, 6, 1) - b.narrow(1, 6, 1);
    assert!(max_abs(&da.sin()) < 1e-3 && max_abs(&(da.cos() - 1.0)) < 1e-3);
}

fn refusal(agent_text: &str, scene: &hjepa::sim::Scene) -> String {
    let agent = AgentFile::parse(agent_text, Path::new("body.toml")).unwrap();
    let err = agent
        .level1
        .state_frame
        .check_scene(&agent, scene, Path::new("body.toml"))
        .expect_err("refused");
    assert_eq!(err.location, "level1.state_frame", "{err}");
    err.to_string()
}

#[test]
fn a_learned_encoder_agent_frame_actions_or_another_state_layout_are_refused() {
    let push_t = common::scene("push_t");
    let learned = agent_text().replace("encoder = \"identity\"\n", "");
    assert!(refusal(&learned, &push_t).contains("identity"));
    let offsets = agent_text().replace(
        "state_frame = \"body\"",
        "state_frame = \"body\"\naction_frame = \"agent\"",
    );
    assert!(refusal(&offsets, &push_t).contains("action_frame"));
    let text = common::scene_text_with(
        "push_t",
        "state: [AgentPosition, AgentVelocity, BodyPose(\"tee\")]",
        "state: [AgentPosition, BodyPose(\"tee\")]",
    );
    let no_velocity = hjepa::sim::Scene::parse(&text, Path::new("push_t.ron")).unwrap();
    assert!(refusal(&agent_text(), &no_velocity).contains("AgentVelocity"));
    // The shipped push_t scene is accepted.
    let agent = AgentFile::parse(&agent_text(), Path::new("body.toml")).unwrap();
    agent
        .level1
        .state_frame
        .check_scene(&agent, &push_t, Path::new("body.toml"))
        .unwrap();
}

#[test]
fn a_body_frame_state_model_trains_and_plays() {
    let dir = tempfile::tempdir().unwrap();
    let text = agent_text().replace("CHECKPOINT", dir.path().join("run").to_str().unwrap());
    let (data, agent) = setup(dir.path(), &text);
    common::assert_ok(&common::train_cli(
        &agent,
        &data,
        &dir.path().join("run"),
        &[],
    ));
    let results = dir.path().join("eval.jsonl");
    let out = common::bin()
        .args(["eval", "--episodes", "2", "--max-steps", "20"])
        .args(["--no-random-floor", "--success", "tee_pose", "--goals-from"])
        .arg(&data)
        .arg("--agent")
        .arg(&agent)
        .arg("--out")
        .arg(&results)
        .output()
        .unwrap();
    common::assert_ok(&out);
    let lines = std::fs::read_to_string(results).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");
}
