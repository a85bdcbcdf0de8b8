//! `[perception] encoder = "identity"`: no trained encoder, z is the state's features
//! (angles as cos and sin) normalised by the training set, so the predictors model the state
//! itself. Checked: z is exactly that and stays so through training, decoding z gives the
//! state back, `[level1] prediction_units = "step"` measures each feature's prediction error
//! in its one-step change (refused with a learned encoder), such an agent trains and plays, a `latent_dim` that is not the feature count
//! or a pixel agent is refused; and `[planning] dynamics`, where such a state model predicts
//! for a learned encoder's cost: its unroll is the state model's own, encoded, an agent
//! with it plays (also joining the checkpoint's predictors, `dynamics_role = "join"`, last
//! in the committee's layout, and weighed more, `dynamics_weight`; and several state models
//! pooled, `dynamics = [..]`, or each its own model, `dynamics_separate`, scoring just its own
//! block of the unroll), and a run that is
//! not a state model, a missing one, `dynamics_seen_by`, `dynamics_weight` or
//! `dynamics_separate` without joining (the last also with one state model), or a weight of
//! zero is refused.
// Needs the world model (the default `torch` feature).
#![cfg(feature = "torch")]

mod common;

use std::path::{Path, PathBuf};

use hjepa::agent::AgentFile;
use hjepa::agent::{CommitteeUnroll, LatentUnroll, StateModelUnroll};
use hjepa::data::Dataset;
use hjepa::model::data::TrainingData;
use hjepa::model::encoder::{state_features, state_from_features};
use hjepa::model::Trainer;
use hjepa::plan::Unroll;
use tch::{Device, Kind, Tensor};

/// A small push_t state agent with the identity encoder (`common::IDENTITY_AGENT`).
const AGENT: &str = common::IDENTITY_AGENT;

fn agent_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("identity.toml");
    let text = text.replace("CHECKPOINT", dir.join("run").to_str().unwrap());
    std::fs::write(&path, text).unwrap();
    path
}

fn push_t_data(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    common::collect_random(&common::scene_path("push_t"), &data, 4);
    data
}

/// `hjepa eval` of `agent` on 2 windows of `data`, 20 steps each, results to `out`.
fn eval_two(data: &Path, agent: &Path, out: &Path) -> std::process::Output {
    common::bin()
        .args([
            "eval",
            "--episodes",
            "2",
            "--max-steps",
            "20",
            "--no-random-floor",
        ])
        .args(["--success", "tee_pose", "--goals-from"])
        .arg(data)
        .arg("--agent")
        .arg(agent)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn z_is_the_normalised_state_and_training_leaves_it_so() {
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let data = push_t_data(dir.path());
    let path = agent_file(dir.path(), AGENT);
    let agent = AgentFile::load(&path).unwrap();
    let td = TrainingData::load(&Dataset::open(&data).unwrap(), &agent, &path).unwrap();
    let mut trainer = Trainer::new(agent.model.clone(), &td.shapes, Device::Cpu);
    trainer.set_input_statistics(&td);
    assert_eq!(trainer.model.latent_dim, 8);
    let trainable: Vec<String> = trainer
        .vs
        .variables()
        .into_iter()
        .filter(|(n, t)| n.starts_with("encoder") && t.requires_grad())
        .map(|(n, _)| n)
        .collect();
    assert!(
        trainable.is_empty(),
        "trainable encoder weights {trainable:?}"
    );

    let rows = Tensor::from_slice(&td.train_frames);
    let states = td.obs.index_select(0, &rows);
    let encode = |t: &Trainer| tch::no_grad(|| t.model.encode(&states));
    let z = encode(&trainer);
    assert_eq!(z.size(), vec![td.train_frames.len() as i64, 8]);
    // Normalised by the training frames' own statistics: each column has mean 0 and std 1.
    let mean = Vec::<f32>::try_from(z.mean_dim(0i64, false, Kind::Float)).unwrap();
    let std = Vec::<f32>::try_from(z.std_dim(0i64, false, false)).unwrap();
    for (i, (m, s)) in mean.iter().zip(&std).enumerate() {
        assert!(m.abs() < 1e-4, "column {i}: mean {m}");
        assert!((s - 1.0).abs() < 1e-3, "column {i}: std {s}");
    }
    // Undone, the columns are the state's plain components, then cos and sin of the angle.
    let (mu, sigma) = td.input_statistics();
    let features = &z * &sigma + &mu;
    let plain = states.narrow(1, 0, 6);
    let err = (features.narrow(1, 0, 6) - &plain)
        .abs()
        .max()
        .double_value(&[]);
    assert!(err < 1e-3, "plain components off by {err}");
    let angle = states.select(1, 6);
    let trig = Tensor::stack(&[angle.cos(), angle.sin()], 1);
    let err = (features.narrow(1, 6, 2) - trig)
        .abs()
        .max()
        .double_value(&[]);
    assert!(err < 1e-3, "cos/sin off by {err}");

    // Training moves the predictor, never z.
    let before = trainer
        .vs
        .variables()
        .get("predictor1.fc0.weight")
        .unwrap()
        .copy();
    for _ in 0..3 {
        trainer.train_step(&td);
    }
    let moved = (trainer.vs.variables()["predictor1.fc0.weight"].copy() - before)
        .abs()
        .max()
        .double_value(&[]);
    assert!(moved > 0.0, "the predictor did not train");
    assert!(encode(&trainer).equal(&z), "training changed z");
}

#[test]
fn step_units_measure_each_features_error_in_its_one_step_change() {
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let data = push_t_data(dir.path());
    let trainer_with = |text: &str| {
        let path = agent_file(dir.path(), text);
        let agent = AgentFile::load(&path).unwrap();
        let td = TrainingData::load(&Dataset::open(&data).unwrap(), &agent, &path).unwrap();
        let mut t = Trainer::new(agent.model.clone(), &td.shapes, Device::Cpu);
        t.set_input_statistics(&td);
        t.set_prediction_units(&td);
        (t, td)
    };
    let (plain, td) = trainer_with(AGENT);
    assert!(plain.prediction_scale.is_none());
    let (step, _) =
        trainer_with(&AGENT.replace("[level1]\n", "[level1]\nprediction_units = \"step\"\n"));
    let unit = step
        .prediction_scale
        .as_ref()
        .expect("step units set a scale");

    // The unit is the std of z's change between consecutive frames of training episodes
    // (4 short episodes: every pair).
    let firsts: Vec<i64> = td
        .train_episodes
        .iter()
        .flat_map(|&(first, frames)| first..first + frames - 1)
        .collect();
    let rows = Tensor::from_slice(&firsts);
    let z = |rows: &Tensor| tch::no_grad(|| plain.model.encode(&td.obs.index_select(0, rows)));
    let expected = (z(&(&rows + 1)) - z(&rows))
        .std_dim(0i64, false, false)
        .clamp_min(1e-3);
    let err = (unit - &expected).abs().max().double_value(&[]);
    assert!(err < 1e-5, "unit off by {err}: {unit} vs {expected}");
    // The agent's velocity changes faster than the T's pose.
    let u = Vec::<f32>::try_from(unit).unwrap();
    assert!(u[2] > u[4] && u[3] > u[5], "{u:?}");

    // Same initial weights (same seed), same window: the step-units prediction term is the
    // members' squared error with each feature divided by its unit.
    let (obs, actions) = td.batch(&td.train_windows[..1], Device::Cpu);
    let zs = tch::no_grad(|| plain.model.encode(&obs.flatten(0, 1))).view([1, obs.size()[1], -1]);
    let a = plain.model.normalize_actions(&actions);
    let h = 2;
    let pred = tch::no_grad(|| {
        plain
            .model
            .rollout_members(&zs.select(1, 0), &a.narrow(1, 0, h))
    })
    .flatten(0, 1);
    let target = zs.narrow(1, 1, h);
    let by_hand = |unit: Option<&Tensor>| {
        let e = &pred - &target;
        let e = unit.map_or(e.shallow_clone(), |u| e / u);
        e.square().mean(Kind::Float).double_value(&[])
    };
    let in_state = plain.losses(&obs, &actions).1.level1.prediction;
    let in_steps = step.losses(&obs, &actions).1.level1.prediction;
    assert!(
        (in_state - by_hand(None)).abs() < 1e-6 * in_state.max(1.0),
        "{in_state}"
    );
    assert!(
        (in_steps - by_hand(Some(unit))).abs() < 1e-5 * in_steps.max(1.0),
        "{in_steps} vs {}",
        by_hand(Some(unit))
    );
    assert!(
        (in_steps / in_state - 1.0).abs() > 0.1,
        "{in_steps} vs {in_state}"
    );
}

#[test]
fn step_units_with_a_learned_encoder_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = AGENT
        .replace("encoder = \"identity\"\n", "")
        .replace("[level1]\n", "[level1]\nprediction_units = \"step\"\n");
    let err = AgentFile::load(&agent_file(dir.path(), &text)).unwrap_err();
    assert_eq!(err.location, "level1.prediction_units", "{err}");
}

#[test]
fn an_identity_agent_trains_and_plays() {
    let dir = tempfile::tempdir().unwrap();
    let data = push_t_data(dir.path());
    let agent = agent_file(dir.path(), AGENT);
    common::assert_ok(&common::train_cli(
        &agent,
        &data,
        &dir.path().join("run"),
        &[],
    ));
    let out = eval_two(&data, &agent, &dir.path().join("eval.jsonl"));
    common::assert_ok(&out);
    let lines = std::fs::read_to_string(dir.path().join("eval.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");
}

#[test]
fn a_latent_dim_other_than_the_feature_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = push_t_data(dir.path());
    let agent = agent_file(
        dir.path(),
        &AGENT.replace("latent_dim = 8", "latent_dim = 32"),
    );
    let out = common::train_cli(&agent, &data, &dir.path().join("run"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for m in [
        "identity.toml",
        "perception.latent_dim",
        "expected 8",
        "got 32",
    ] {
        assert!(
            stderr.contains(m),
            "stderr does not mention {m:?}:\n{stderr}"
        );
    }
    assert!(!dir.path().join("run").join("checkpoint").exists());
}

#[test]
fn a_pixel_agent_with_the_identity_encoder_is_refused() {
    let text = AGENT.replace("observation = \"state\"", "observation = \"pixels\"");
    let err = AgentFile::parse(&text, Path::new("pixels.toml")).unwrap_err();
    let msg = err.to_string();
    for m in ["pixels.toml", "perception.encoder", "learned"] {
        assert!(msg.contains(m), "error does not mention {m:?}: {msg}");
    }
}

#[test]
fn features_decode_back_to_the_state_across_the_angle_wrap() {
    // Columns: x, angle, y, angle: two angles among plain components, one near +-pi.
    let states = Tensor::from_slice(&[
        1.0f32, 3.1, -2.0, -3.1, //
        0.5, -0.2, 4.0, 1.5, //
        -1.0, 0.0, 0.25, -1.57,
    ])
    .view([3, 4]);
    let angles = [1i64, 3];
    let f = state_features(&states, &angles);
    assert_eq!(f.size(), vec![3, 6]);
    let back = state_from_features(&f, 4, &angles);
    let err = (&back - &states).abs().max().double_value(&[]);
    assert!(err < 1e-5, "decoded {back:?} from {states:?}");
    // Scaled (cos, sin), as a predictor may output, decode to the same angle.
    let scaled = Tensor::cat(&[f.narrow(1, 0, 2), f.narrow(1, 2, 4) * 0.7], 1);
    let err = (state_from_features(&scaled, 4, &angles)
        .narrow(1, 0, 2)
        .select(1, 1)
        - states.select(1, 1))
    .abs()
    .max()
    .double_value(&[]);
    assert!(err < 1e-5);
}

/// `AGENT` with `members` predictors and training seed `seed`, three training steps on `data`.
fn three_steps_of(dir: &Path, data: &Path, members: i64, seed: u64) -> (Trainer, TrainingData) {
    let text = AGENT
        .replace("[level1]", &format!("[level1]\nensemble = {members}"))
        .replace("seed = 3", &format!("seed = {seed}"));
    let path = agent_file(dir, &text);
    let agent = AgentFile::load(&path).unwrap();
    let td = TrainingData::load(&Dataset::open(data).unwrap(), &agent, &path).unwrap();
    let mut trainer = Trainer::new(agent.model.clone(), &td.shapes, Device::Cpu);
    trainer.set_input_statistics(&td);
    for _ in 0..3 {
        trainer.train_step(&td);
    }
    (trainer, td)
}

#[test]
fn the_state_models_unroll_encoded_by_itself_is_its_own_unroll() {
    // Encoded by the state model's own (identity) encoder, the unroll must stand for the
    // states of its latent unroll: what other encoders see is the predicted state (each
    // predicted (cos, sin) read as its angle).
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let data = push_t_data(dir.path());
    let (trainer, td) = three_steps_of(dir.path(), &data, 3, 3);
    let model = &trainer.model;
    let s0 = tch::no_grad(|| model.encode(&td.obs.narrow(0, 5, 1)));
    let actions = Tensor::rand([7, 4, 2], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    for each_member in [false, true] {
        let latent = LatentUnroll {
            model,
            z0: s0.shallow_clone(),
            offset: None,
            each_member,
        };
        let states = StateModelUnroll {
            dynamics: vec![model],
            s0: vec![s0.shallow_clone()],
            encoders: vec![model, model],
            each_member,
        };
        let (want, got) = tch::no_grad(|| (latent.unroll(&actions), states.unroll(&actions)));
        let rows = if each_member { 3 * 7 } else { 7 };
        assert_eq!(want.size(), vec![rows, 4, 8]);
        assert_eq!(got.size(), vec![2 * rows, 4, 8], "one block per encoder");
        let states = |z: &Tensor| model.decode_state(&z.flatten(0, 1)).unwrap();
        // Joining a committee, its block comes after the latent models' own.
        let committee = CommitteeUnroll {
            models: vec![LatentUnroll {
                model,
                z0: s0.shallow_clone(),
                offset: None,
                each_member,
            }],
            state_model: Some(StateModelUnroll {
                dynamics: vec![model],
                s0: vec![s0.shallow_clone()],
                encoders: vec![model],
                each_member,
            }),
        };
        let joined = tch::no_grad(|| committee.unroll(&actions));
        assert_eq!(joined.size(), vec![2 * rows, 4, 8]);
        assert!(
            joined.narrow(0, 0, rows).equal(&want),
            "the latent model's block first"
        );
        let err = (states(&joined.narrow(0, rows, rows)) - states(&want))
            .abs()
            .max()
            .double_value(&[]);
        assert!(err < 1e-4, "joined block, each_member {each_member}: {err}");
        // Two state models pool their members into one block per encoder, model-major.
        if each_member {
            let pooled = StateModelUnroll {
                dynamics: vec![model, model],
                s0: vec![s0.shallow_clone(), s0.shallow_clone()],
                encoders: vec![model],
                each_member,
            };
            assert_eq!(pooled.rows(), 6);
            let got = tch::no_grad(|| pooled.unroll(&actions));
            assert_eq!(got.size(), vec![2 * rows, 4, 8]);
            for half in 0..2 {
                let err = (states(&got.narrow(0, half * rows, rows)) - states(&want))
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(err < 1e-4, "pooled model {half}: {err}");
            }
        }
        for block in 0..2 {
            let err = (states(&got.narrow(0, block * rows, rows)) - states(&want))
                .abs()
                .max()
                .double_value(&[]);
            assert!(
                err < 1e-4,
                "block {block}, each_member {each_member}: {err}"
            );
        }
    }
}

#[test]
fn separate_state_models_each_score_their_own_block() {
    // `dynamics_separate`: the committee model made of each state model must be handed
    // exactly that model's predictions. Two state models of 3 and 2 members (trained from
    // different initialisations) share one unroll; its scorer blocks must cut it where
    // each model's own predictions lie, pooled as one block of all five otherwise.
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let data = push_t_data(dir.path());
    let (a, td) = three_steps_of(dir.path(), &data, 3, 0);
    let (b, _) = three_steps_of(dir.path(), &data, 2, 1);
    let (a, b) = (&a.model, &b.model);
    let s0 = |m: &hjepa::model::WorldModel| tch::no_grad(|| m.encode(&td.obs.narrow(0, 5, 1)));
    let actions = Tensor::rand([7, 4, 2], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let both = StateModelUnroll {
        dynamics: vec![a, b],
        s0: vec![s0(a), s0(b)],
        encoders: vec![a],
        each_member: true,
    };
    assert_eq!(both.scorer_blocks(true), vec![3, 2]);
    assert_eq!(both.scorer_blocks(false), vec![5]);
    let got = tch::no_grad(|| both.unroll(&actions));
    assert_eq!(got.size(), vec![5 * 7, 4, 8]);
    let states =
        |m: &hjepa::model::WorldModel, z: &Tensor| m.decode_state(&z.flatten(0, 1)).unwrap();
    // Each model's own unroll, member-major as the state model's block lays it out.
    let own: Vec<Tensor> = [a, b]
        .into_iter()
        .map(|model| {
            let unroll = LatentUnroll {
                model,
                z0: s0(model),
                offset: None,
                each_member: true,
            };
            states(model, &tch::no_grad(|| unroll.unroll(&actions)))
        })
        .collect();
    let mut start = 0;
    for (own, rows) in own.iter().zip(both.scorer_blocks(true)) {
        let block = got.narrow(0, start * 7, rows * 7);
        let err = (states(a, &block) - own).abs().max().double_value(&[]);
        assert!(err < 1e-4, "block at row {start} is not its model's: {err}");
        start += rows;
    }
    // The two models predict differently, so a block cut in the wrong place would show.
    let swapped = got.narrow(0, 2 * 7, 3 * 7);
    let diff = (states(a, &swapped) - &own[0])
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff > 1e-3, "the models should differ: {diff}");
}

/// A learned-encoder agent (the shipped push_t kind, small) whose `[planning] dynamics` is
/// the state model trained at `dynamics_run`.
fn agent_with_dynamics(dir: &Path, dynamics_run: &Path) -> PathBuf {
    let text = AGENT
        .replace(
            "latent_dim = 8\nencoder = \"identity\"",
            "latent_dim = 8\nhidden = 32",
        )
        .replace(
            "prediction = 1.0",
            "prediction = 1.0\nstd = 16.0\ncov = 1.0\ntime_sim = 1.0\nidm = 1.0",
        )
        .replace("CHECKPOINT", dir.join("learned").to_str().unwrap())
        .replace(
            "[planning.planner]",
            &format!(
                "dynamics = {:?}\n[planning.planner]",
                dynamics_run.to_str().unwrap()
            ),
        );
    let path = dir.join("learned.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn an_agent_with_a_state_model_for_dynamics_plays_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = push_t_data(dir.path());
    let state_agent = agent_file(dir.path(), AGENT);
    common::assert_ok(&common::train_cli(
        &state_agent,
        &data,
        &dir.path().join("run"),
        &[],
    ));
    let agent = agent_with_dynamics(dir.path(), &dir.path().join("run"));
    common::assert_ok(&common::train_cli(
        &agent,
        &data,
        &dir.path().join("learned"),
        &[],
    ));
    let eval = |agent: &Path| eval_two(&data, agent, &dir.path().join("eval.jsonl"));
    common::assert_ok(&eval(&agent));
    let joined = std::fs::read_to_string(&agent).unwrap().replace(
        "[planning.planner]",
        "dynamics_role = \"join\"\n[planning.planner]",
    );
    std::fs::write(&agent, &joined).unwrap();
    common::assert_ok(&eval(&agent));
    // The joined state model weighing three models' worth.
    let weighted = joined.replace(
        "dynamics_role = \"join\"",
        "dynamics_role = \"join\"\ndynamics_weight = 3.0",
    );
    std::fs::write(&agent, &weighted).unwrap();
    common::assert_ok(&eval(&agent));
    // Two state models pooled, seen by every encoder of the committee (here the
    // checkpoint's alone).
    let run = format!("{:?}", dir.path().join("run").to_str().unwrap());
    let one = format!("dynamics = {run}");
    let pooled = joined.replace(
        &one,
        &format!("dynamics = [{run}, {run}]\ndynamics_seen_by = \"every\""),
    );
    assert_ne!(pooled, joined);
    std::fs::write(&agent, &pooled).unwrap();
    common::assert_ok(&eval(&agent));
    let lines = std::fs::read_to_string(dir.path().join("eval.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");
    // The two joining as separate models of the committee, seen by every encoder.
    let separate = pooled.replace(
        "dynamics_seen_by = \"every\"",
        "dynamics_seen_by = \"every\"\ndynamics_separate = true",
    );
    assert_ne!(separate, pooled);
    std::fs::write(&agent, &separate).unwrap();
    common::assert_ok(&eval(&agent));
    // The list's missing entry is named by its index.
    let nowhere = format!("{:?}", dir.path().join("nowhere").to_str().unwrap());
    let bad = pooled.replace(&format!("[{run}, {run}]"), &format!("[{run}, {nowhere}]"));
    std::fs::write(&agent, bad).unwrap();
    let out = eval(&agent);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("planning.dynamics[1]"), "{stderr}");
    // Whose encoders see the state models is a question only when they join; a number is
    // not a run folder.
    for (text, says) in [
        (
            joined.replace("dynamics_role = \"join\"", "dynamics_seen_by = \"every\""),
            "planning.dynamics_seen_by",
        ),
        (
            joined.replace(&one, "dynamics = 3"),
            "a run folder or a list of run folders",
        ),
        (
            joined.replace("dynamics_role = \"join\"", "dynamics_weight = 2.0"),
            "planning.dynamics_weight",
        ),
        (weighted.replace("= 3.0", "= 0.0"), "expected a weight > 0"),
        // Separate needs several state models, joining.
        (
            joined.replace(
                "dynamics_role = \"join\"",
                "dynamics_role = \"join\"\ndynamics_separate = true",
            ),
            "planning.dynamics_separate",
        ),
        (
            separate.replace("dynamics_role = \"join\"", ""),
            "planning.dynamics_separate",
        ),
    ] {
        let err = AgentFile::parse(&text, Path::new("seen.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(says) && err.contains("seen.toml"), "{err}");
    }
    // "join" with no state model named.
    let text = AGENT.replace(
        "[planning.planner]",
        "dynamics_role = \"join\"\n[planning.planner]",
    );
    let err = AgentFile::parse(&text, Path::new("join.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("planning.dynamics_role") && err.contains("join.toml"),
        "{err}"
    );
    // A learned-encoder run named as the dynamics, and a missing one: exit 2, key named.
    for (run, says) in [
        (dir.path().join("learned"), "identity"),
        (dir.path().join("nowhere"), "no checkpoint"),
    ] {
        let bad = agent_with_dynamics(dir.path(), &run);
        let out = eval(&bad);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        for m in ["learned.toml", "planning.dynamics", says] {
            assert!(
                stderr.contains(m),
                "stderr does not mention {m:?}:\n{stderr}"
            );
        }
    }
}
