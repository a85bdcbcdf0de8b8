//! The world model: training lowers the loss, the collapse alarm tells a collapsed encoder
//! from a trained one, checkpoints round-trip exactly, resume equals an uninterrupted run,
//! a trained encoder carries the agent's position, and bad input is refused with exit 2.
// Needs the world model (the default `torch` feature).
#![cfg(feature = "torch")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hjepa::agent::AgentFile;
use hjepa::data::collect::{collect, CollectOptions};
use hjepa::data::policy::PolicyKind;
use hjepa::data::Dataset;
use hjepa::model::checkpoint::CheckpointMeta;
use hjepa::model::data::TrainingData;
use hjepa::model::probe::diagnose;
use hjepa::model::{Diagnostics, TrainOptions, TrainedModel, Trainer};
use tch::{Device, Tensor};

/// A small pixel agent for two_rooms: trains in seconds on two cores.
const TINY_AGENT: &str = include_str!("data/tiny_agent.toml");

struct Fixture {
    _dir: tempfile::TempDir,
    data: PathBuf,
    agent: PathBuf,
}

/// One smooth-walk two_rooms dataset and the tiny agent file, shared by the tests.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        collect(&CollectOptions {
            scene_path: common::scene_path("two_rooms"),
            out: data.clone(),
            episodes: 40,
            policy: PolicyKind::SmoothWalk,
            noise: 0.3,
            seed: 11,
            shard_episodes: 20,
            threads: 1,
            progress: false,
            cancel: None,
        })
        .unwrap();
        let agent = dir.path().join("tiny.toml");
        std::fs::write(&agent, TINY_AGENT).unwrap();
        Fixture {
            _dir: dir,
            data,
            agent,
        }
    })
}

fn agent_with(edit: impl FnOnce(&mut AgentFile)) -> AgentFile {
    let mut a = AgentFile::parse(TINY_AGENT, Path::new("tiny.toml")).unwrap();
    edit(&mut a);
    a
}

fn load_data(agent: &AgentFile) -> TrainingData {
    let f = fixture();
    TrainingData::load(&Dataset::open(&f.data).unwrap(), agent, &f.agent).unwrap()
}

fn new_trainer(agent: AgentFile, data: &TrainingData) -> Trainer {
    tch::set_num_threads(1);
    let mut t = Trainer::new(agent.model.clone(), &data.shapes, Device::Cpu);
    t.set_input_statistics(data);
    t
}

fn level1_probe(d: &Diagnostics) -> f64 {
    d.probes
        .iter()
        .find(|p| p.level == 1 && p.target == "agent position")
        .expect("agent position probe")
        .r2
}

#[test]
fn loss_decreases_on_a_tiny_dataset() {
    let agent = agent_with(|_| {});
    let data = load_data(&agent);
    let mut t = new_trainer(agent, &data);
    let totals: Vec<f64> = (0..80).map(|_| t.train_step(&data).total).collect();
    let first = totals[..5].iter().sum::<f64>() / 5.0;
    let last = totals[75..].iter().sum::<f64>() / 5.0;
    assert!(totals.iter().all(|x| x.is_finite()));
    assert!(last < 0.6 * first, "loss went from {first:.3} to {last:.3}");
}

/// `[level1] layer_norm = true`: the predictors' hidden layers get LayerNorm (named `ln{i}`,
/// trained) and Mish, and the ensemble's stacked rollout (what a GPU runs) is each member's
/// own net.
#[test]
fn a_normed_ensemble_trains_its_norms_and_batches_them_exactly() {
    let agent = agent_with(|a| {
        a.level1.ensemble = 2;
        a.level1.layer_norm = true;
    });
    let data = load_data(&agent);
    let mut t = new_trainer(agent, &data);
    let gain = |t: &Trainer| t.vs.variables()["predictor1_1.ln0.weight"].copy();
    let before = gain(&t);
    for _ in 0..5 {
        t.train_step(&data);
    }
    assert!(
        gain(&t).dist(&before).double_value(&[]) > 0.0,
        "ln0 did not train"
    );
    let z0 = Tensor::randn([4, t.model.latent_dim], (tch::Kind::Float, Device::Cpu));
    let a = Tensor::rand([4, 3, 2], (tch::Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let members = tch::no_grad(|| t.model.rollout_members_stacked(&z0, &a));
    for member in 0..2 {
        let mut z = z0.shallow_clone();
        for step in 0..3 {
            z = tch::no_grad(|| {
                let input = Tensor::cat(&[&z, &a.select(1, step)], -1);
                &z + t.model.predictors1[member].forward(&input)
            });
            let gap = (&z - members.get(member as i64).select(1, step))
                .abs()
                .max()
                .double_value(&[]);
            assert!(gap < 1e-5, "member {member}, step {step}: {gap}");
        }
    }
}

/// `[level1] ensemble = 3`: three predictors under stable names, started apart; training
/// moves each of them, and the model's rollout is the mean of its members' rollouts.
#[test]
fn an_ensemble_trains_every_member_and_predicts_their_mean() {
    let agent = agent_with(|a| a.level1.ensemble = 3);
    let data = load_data(&agent);
    let mut t = new_trainer(agent, &data);
    let weights = |t: &Trainer, name: &str| t.vs.variables()[name].copy();
    let names = ["predictor1", "predictor1_1", "predictor1_2"];
    let before: Vec<Tensor> = names
        .iter()
        .map(|n| weights(&t, &format!("{n}.fc0.weight")))
        .collect();
    assert!(before[0].dist(&before[1]).double_value(&[]) > 0.1);
    for _ in 0..5 {
        t.train_step(&data);
    }
    for (n, w0) in names.iter().zip(&before) {
        let moved = weights(&t, &format!("{n}.fc0.weight")).dist(w0);
        assert!(moved.double_value(&[]) > 0.0, "{n} did not train");
    }
    let z0 = Tensor::randn([4, t.model.latent_dim], (tch::Kind::Float, Device::Cpu));
    let a = Tensor::rand([4, 3, 2], (tch::Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let members = tch::no_grad(|| t.model.rollout_members(&z0, &a));
    assert_eq!(members.size(), [3, 4, 3, t.model.latent_dim]);
    let mean = tch::no_grad(|| t.model.rollout(&z0, &a));
    let gap = (mean - members.mean_dim([0i64].as_slice(), false, tch::Kind::Float))
        .abs()
        .max()
        .double_value(&[]);
    assert!(gap < 1e-6, "rollout is not the members' mean: {gap}");
    // Members disagree off the data, so the disagreement cost has something to measure.
    let spread = members
        .std_dim([0i64].as_slice(), false, false)
        .mean(tch::Kind::Float);
    assert!(spread.double_value(&[]) > 1e-3);
    // Member 1's rollout, stepped by hand through its own net.
    let mut z = z0.shallow_clone();
    for step in 0..3 {
        z = tch::no_grad(|| {
            &z + t.model.predictors1[1].forward(&Tensor::cat(&[&z, &a.select(1, step)], -1))
        });
        let gap = (&z - members.get(1).select(1, step))
            .abs()
            .max()
            .double_value(&[]);
        assert!(gap < 1e-5, "member 1, step {step}: {gap}");
    }

    // The planner's view: every member's states, member-major, and a cost per candidate that
    // is the members' mean plus the weighted spread.
    use hjepa::agent::LatentUnroll;
    use hjepa::cost::{CostConfig, EnsembleCost, GoalCost};
    use hjepa::plan::{Objective, Unroll};
    let each = LatentUnroll {
        model: &t.model,
        z0: z0.narrow(0, 0, 1),
        offset: None,
        each_member: true,
    };
    let states = tch::no_grad(|| each.unroll(&a));
    assert_eq!(states.size(), [12, 3, t.model.latent_dim]);
    let goal = Tensor::randn([1, t.model.latent_dim], (tch::Kind::Float, Device::Cpu));
    let goal_cost = || GoalCost {
        cfg: CostConfig::default(),
        goal: goal.shallow_clone(),
        abstraction: None,
        critic: None,
    };
    let ensemble_cost = |disagreement| {
        tch::no_grad(|| {
            EnsembleCost {
                inner: Box::new(goal_cost()),
                members: 3,
                disagreement,
            }
            .cost(&states, &a)
        })
    };
    let per_member = tch::no_grad(|| goal_cost().cost(&states, &a.repeat([3, 1, 1]))).view([3, 4]);
    let expected = per_member.mean_dim([0i64].as_slice(), false, tch::Kind::Float);
    let plain = ensemble_cost(0.0);
    assert_eq!(plain.size(), [4]);
    assert!((&plain - expected).abs().max().double_value(&[]) < 1e-5);
    let penalised = ensemble_cost(1.0);
    assert!(
        (penalised - plain).min().double_value(&[]) > 1e-3,
        "the disagreement added nothing"
    );
}

#[test]
fn collapse_alarm_fires_on_collapsed_encoders_and_not_on_a_trained_one() {
    let agent = agent_with(|_| {});
    let data = load_data(&agent);
    let mut t = new_trainer(agent.clone(), &data);
    for _ in 0..150 {
        t.train_step(&data);
    }
    let trained = diagnose(&t.model, &data, Device::Cpu, 64, 600);
    assert!(
        trained.alarms().is_empty(),
        "a trained model raised {:?}",
        trained.alarms()
    );

    // Constant encoder: every weight of the encoder set to zero.
    let zeroed = new_trainer(agent.clone(), &data);
    tch::no_grad(|| {
        for (name, mut v) in zeroed.vs.variables() {
            if name.starts_with("encoder.") && v.requires_grad() {
                let _ = v.zero_();
            }
        }
    });
    let d = diagnose(&zeroed.model, &data, Device::Cpu, 64, 600);
    assert!(
        d.alarms().iter().any(|a| a.contains("level 1")),
        "no alarm for a constant encoder: {}",
        d.summary()
    );

    // Dimensional collapse: every output of the encoder is the same feature.
    let rank_one = new_trainer(agent, &data);
    tch::no_grad(|| {
        let vars = rank_one.vs.variables();
        let mut w = vars["encoder.head.weight"].shallow_clone();
        let row = w.get(0).copy();
        let _ = w.copy_(&row.unsqueeze(0).expand_as(&w));
    });
    let d = diagnose(&rank_one.model, &data, Device::Cpu, 64, 600);
    assert!(
        d.alarms().iter().any(|a| a.contains("effective rank")),
        "no alarm for a rank-one encoder: {}",
        d.summary()
    );
}

#[test]
fn save_then_load_gives_identical_outputs() {
    let agent = agent_with(|_| {});
    let data = load_data(&agent);
    let mut t = new_trainer(agent.clone(), &data);
    for _ in 0..5 {
        t.train_step(&data);
    }
    let run = tempfile::tempdir().unwrap();
    let meta = CheckpointMeta {
        format: hjepa::model::checkpoint::CHECKPOINT_FORMAT.into(),
        step: t.step,
        seed: 3,
        dataset: fixture().data.clone(),
        more_datasets: Vec::new(),
        shares: None,
        dataset_digest: "test".into(),
        shapes: data.shapes.clone(),
        diagnostics: None,
        critic: None,
        env_step: Some(data.env_step.clone()),
    };
    t.save(run.path(), &meta).unwrap();
    let (loaded, loaded_meta) = Trainer::load(run.path(), Some(&agent), Device::Cpu).unwrap();
    assert_eq!(loaded_meta, meta);
    assert_eq!(loaded.step, t.step);
    let (obs, actions) = data.batch(&data.val_windows[..4], Device::Cpu);
    let outputs = |m: &hjepa::model::WorldModel| {
        tch::no_grad(|| {
            let z = m.encode(&obs.select(1, 0));
            let pred = m.rollout(&z, &m.normalize_actions(&actions));
            let l2 = m.level2.as_ref().unwrap();
            (
                z,
                pred.shallow_clone(),
                l2.abstract_state(&pred.select(1, 0)),
            )
        })
    };
    let (a, b) = (outputs(&t.model), outputs(&loaded.model));
    assert!(
        a.0.equal(&b.0) && a.1.equal(&b.1) && a.2.equal(&b.2),
        "outputs differ after save -> load"
    );
    // The weights alone (no optimizer state) load for planning, not for resuming.
    std::fs::remove_file(run.path().join("checkpoint/optimizer.safetensors")).unwrap();
    let weights_only = TrainedModel::load(run.path(), Some(&agent), Device::Cpu).unwrap();
    assert_eq!(weights_only.meta, meta);
    let c = outputs(&weights_only.model);
    assert!(
        a.0.equal(&c.0) && a.1.equal(&c.1),
        "outputs differ without the optimizer state"
    );
    let resume = Trainer::load_to_resume(run.path(), &agent, Device::Cpu);
    assert!(resume.is_err(), "resuming needs the optimizer state");
}

fn read_weights(run: &Path) -> Vec<(String, Tensor)> {
    let mut v = Tensor::read_safetensors(run.join("checkpoint/model.safetensors")).unwrap();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn metrics_steps(run: &Path) -> Vec<i64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

/// Training `agent` on the fixture's data into `out` up to `steps`, quietly.
fn train_options(agent: &Path, out: &Path, steps: i64, resume: bool) -> TrainOptions {
    TrainOptions {
        agent: AgentFile::load(agent).unwrap().model,
        agent_path: agent.to_path_buf(),
        data: vec![fixture().data.clone()],
        shares: None,
        out: out.to_path_buf(),
        resume,
        device: None,
        steps: Some(steps),
        seed: None,
        progress: false,
    }
}

#[test]
fn resume_equals_an_uninterrupted_run() {
    let f = fixture();
    let (whole, split) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let opts = |out: &Path, steps: i64, resume: bool| train_options(&f.agent, out, steps, resume);
    tch::set_num_threads(1);
    hjepa::model::train(&opts(whole.path(), 40, false)).unwrap();
    hjepa::model::train(&opts(split.path(), 20, false)).unwrap();
    // A line written after the checkpoint (as a kill between the two would leave) is dropped.
    let log = split.path().join("metrics.jsonl");
    let extra = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .replace("\"step\":20", "\"step\":25");
    std::fs::write(&log, std::fs::read_to_string(&log).unwrap() + &extra + "\n").unwrap();
    hjepa::model::train(&opts(split.path(), 40, true)).unwrap();
    let (a, b) = (read_weights(whole.path()), read_weights(split.path()));
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(
            ta.equal(tb),
            "{na} differs between the resumed and the uninterrupted run"
        );
    }
    assert_eq!(metrics_steps(whole.path()), metrics_steps(split.path()));
    for plot in ["losses.png", "probes.png", "horizon.png", "spread.png"] {
        let p = split.path().join(plot);
        assert!(
            std::fs::metadata(&p)
                .map(|m| m.len() > 1000)
                .unwrap_or(false),
            "{} missing",
            p.display()
        );
    }
}

/// A finished run (critic fitted) resumed to more steps refits its critic on the moved
/// encoder: the result equals a run trained to the larger count in one go, both critics
/// (level 1 and `level2 = true`'s critic on level-2 states) included.
#[test]
fn resuming_a_finished_run_to_more_steps_refits_its_critic() {
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("critic.toml");
    std::fs::write(
        &agent,
        TINY_AGENT.replace("steps = 40", "steps = 20")
            + "\n[critic]\nenabled = true\nlevel2 = true\nhidden = 32\nsources = 16\nsteps = 200\nbatch_size = 64\n",
    )
    .unwrap();
    let (whole, split) = (dir.path().join("whole"), dir.path().join("split"));
    let opts = |out: &Path, steps: i64, resume: bool| train_options(&agent, out, steps, resume);
    tch::set_num_threads(1);
    hjepa::model::train(&opts(&whole, 40, false)).unwrap();
    let first = hjepa::model::train(&opts(&split, 20, false)).unwrap();
    assert!(
        first.critic_fit.is_some(),
        "20 steps finish the run: critic fitted"
    );
    let resumed = hjepa::model::train(&opts(&split, 40, true)).unwrap();
    let refit = resumed
        .critic_fit
        .expect("the resumed run refits the critic");
    let upper = refit.level2.expect("and the level-2 critic");
    assert!(upper.nodes > 0 && upper.connected > 0.0, "{upper:?}");
    let (a, b) = (read_weights(&whole), read_weights(&split));
    assert!(a.iter().any(|(n, _)| n.starts_with("critic.")));
    assert!(a.iter().any(|(n, _)| n.starts_with("critic2.")));
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs from the run trained in one go");
    }
}

/// A finished run resumed with a changed `[critic]` table (same step count) refits only the
/// critic: the world model's weights stay as they were, the critic's equal those of a run
/// trained with the new table in one go.
#[test]
fn a_changed_critic_table_refits_only_the_critic_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let critic = |steps: u32| {
        TINY_AGENT.replace("steps = 40", "steps = 20")
            + &format!("\n[critic]\nenabled = true\nhidden = 32\nsources = 16\nsteps = {steps}\nbatch_size = 64\n")
    };
    let (old_agent, new_agent) = (dir.path().join("old.toml"), dir.path().join("new.toml"));
    std::fs::write(&old_agent, critic(100)).unwrap();
    std::fs::write(&new_agent, critic(300)).unwrap();
    let (whole, split) = (dir.path().join("whole"), dir.path().join("split"));
    tch::set_num_threads(1);
    hjepa::model::train(&train_options(&new_agent, &whole, 20, false)).unwrap();
    hjepa::model::train(&train_options(&old_agent, &split, 20, false)).unwrap();
    let before = read_weights(&split);
    let resumed = hjepa::model::train(&train_options(&new_agent, &split, 20, true)).unwrap();
    assert!(
        resumed.critic_fit.is_some(),
        "the changed [critic] was refitted"
    );
    let (after, wanted) = (read_weights(&split), read_weights(&whole));
    let mut critic_changed = false;
    for (((name, b), (_, a)), (_, w)) in before.iter().zip(&after).zip(&wanted) {
        assert!(
            a.equal(w),
            "{name} differs from the run trained with the new table"
        );
        if name.starts_with("critic.") {
            critic_changed |= !a.equal(b);
        } else {
            assert!(a.equal(b), "{name} changed although only [critic] did");
        }
    }
    assert!(critic_changed, "the critic's weights are the old table's");
}

#[test]
fn a_trained_encoder_carries_the_agent_position_far_better_than_an_untrained_one() {
    let agent = agent_with(|a| a.train.seed = 5);
    let data = load_data(&agent);
    let mut t = new_trainer(agent.clone(), &data);
    let untrained = level1_probe(&diagnose(&t.model, &data, Device::Cpu, 64, 1500));
    for _ in 0..400 {
        t.train_step(&data);
    }
    let d = diagnose(&t.model, &data, Device::Cpu, 64, 1500);
    let trained = level1_probe(&d);
    eprintln!(
        "agent-position probe R^2: untrained {untrained:.3}, trained {trained:.3}\n{}",
        d.summary()
    );
    assert!(
        trained > untrained + 0.25,
        "trained R^2 {trained:.3} vs untrained {untrained:.3}"
    );
}

// ---- bad input, through the binary: exit code 2 and a message naming the file ----

fn assert_input_error(out: &std::process::Output, mentions: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2, got {:?}; stderr:\n{stderr}",
        out.status.code()
    );
    assert!(!stderr.contains("panicked"), "panic:\n{stderr}");
    for m in mentions {
        assert!(
            stderr.contains(m),
            "stderr does not mention {m:?}:\n{stderr}"
        );
    }
}

#[test]
fn a_dataset_from_another_scene_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("wall");
    common::collect_random(&common::scene_path("wall"), &data, 3);
    let out = common::train_cli(&fixture().agent, &data, &dir.path().join("run"), &[]);
    assert_input_error(&out, &["manifest.json", "scene", "wall"]);
}

#[test]
fn a_dataset_recorded_at_another_frameskip_is_refused() {
    // Same scene name and observations, but each recorded transition spans 5 control steps.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(common::scene_path("two_rooms")).unwrap();
    assert!(text.contains("frameskip: 1)"));
    let scene = dir.path().join("two_rooms.ron");
    std::fs::write(&scene, text.replace("frameskip: 1)", "frameskip: 5)")).unwrap();
    let data = dir.path().join("data");
    common::collect_random(&scene, &data, 2);
    let out = common::train_cli(&fixture().agent, &data, &dir.path().join("run"), &[]);
    assert_input_error(
        &out,
        &[
            "manifest.json",
            "scene_source.physics.frameskip",
            "recollect",
        ],
    );
}

#[test]
fn a_truncated_shard_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for entry in std::fs::read_dir(&fixture().data).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, data.join(p.file_name().unwrap())).unwrap();
    }
    let shard = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .min()
        .unwrap();
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    let out = common::train_cli(&fixture().agent, &data, &dir.path().join("run"), &[]);
    assert_input_error(&out, &[shard.file_name().unwrap().to_str().unwrap()]);
}

#[test]
fn agent_files_with_unknown_keys_or_bad_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, mentions) in [
        (
            "unknown.toml",
            TINY_AGENT.replace("latent_dim = 16", "latent_dim = 16\nlatent_size = 3"),
            vec!["unknown.toml", "latent_size"],
        ),
        (
            "zero.toml",
            TINY_AGENT.replace("latent_dim = 16", "latent_dim = 0"),
            vec!["zero.toml", "latent_dim"],
        ),
        (
            "kind.toml",
            TINY_AGENT.replace("\"vicreg\"", "\"barlow\""),
            vec!["kind.toml", "barlow"],
        ),
        (
            "device.toml",
            TINY_AGENT.replace("threads = 1", "threads = 1\ndevice = \"tpu\""),
            vec!["device.toml", "tpu"],
        ),
        (
            "layers.toml",
            TINY_AGENT.replace("horizon = 3", "horizon = 3\npredictor_layers = 0"),
            vec!["layers.toml", "level1.predictor_layers", "got 0"],
        ),
        (
            "ensemble.toml",
            TINY_AGENT.replace("horizon = 3", "horizon = 3\nensemble = 0"),
            vec!["ensemble.toml", "level1.ensemble", "got 0"],
        ),
        (
            "metric.toml",
            format!("{TINY_AGENT}\n[critic]\nenabled = true\nmetric_dim = -4\n"),
            vec!["metric.toml", "critic.metric_dim", "-4"],
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = common::train_cli(&path, &fixture().data, &dir.path().join("run"), &[]);
        assert_input_error(&out, &mentions);
    }
    // A cosine schedule ends at train.steps: --steps past it would train at rate 0.
    let cosine = dir.path().join("cosine.toml");
    std::fs::write(
        &cosine,
        TINY_AGENT.replace(
            "learning_rate = 1e-3",
            "learning_rate = 1e-3\nlr_schedule = \"cosine\"",
        ),
    )
    .unwrap();
    let out = common::train_cli(
        &cosine,
        &fixture().data,
        &dir.path().join("run"),
        &["--steps", "41"],
    );
    assert_input_error(
        &out,
        &["cosine.toml", "train.steps", "--steps 41", "cosine"],
    );
}

#[test]
fn a_checkpoint_that_differs_from_the_agent_file_is_refused() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = common::train_cli(&f.agent, &f.data, &run, &["--steps", "2"]);
    common::assert_ok(&out);

    // Resuming with another configuration names the key that differs.
    let other = dir.path().join("other.toml");
    std::fs::write(
        &other,
        TINY_AGENT.replace("latent_dim = 16", "latent_dim = 12"),
    )
    .unwrap();
    let out = common::train_cli(&other, &f.data, &run, &["--resume", "--steps", "4"]);
    assert_input_error(&out, &["agent.toml", "latent_dim"]);

    // Weights whose shapes do not fit the saved configuration name the tensor.
    let saved = run.join("checkpoint/agent.toml");
    std::fs::write(
        &saved,
        std::fs::read_to_string(&saved)
            .unwrap()
            .replace("latent_dim = 16", "latent_dim = 12"),
    )
    .unwrap();
    let out = common::bin().arg("probe").arg(&run).output().unwrap();
    assert_input_error(
        &out,
        &[
            "model.safetensors",
            "encoder.head.bias: shape [16] in the checkpoint, [12] in the model",
        ],
    );

    // Truncated weights.
    std::fs::write(&saved, TINY_AGENT).unwrap();
    let weights = run.join("checkpoint/model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 3]).unwrap();
    let out = common::bin().arg("probe").arg(&run).output().unwrap();
    assert_input_error(&out, &["model.safetensors"]);
}

#[test]
fn a_diverging_run_stops_and_keeps_its_last_good_checkpoint() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = common::train_cli(&f.agent, &f.data, &run, &["--steps", "20"]);
    common::assert_ok(&out);
    let good = std::fs::read(run.join("checkpoint/model.safetensors")).unwrap();

    // Poison Adam's second moments (negative variance: the next update is NaN), as a
    // diverging optimiser would, then continue the run.
    let opt = run.join("checkpoint/optimizer.safetensors");
    let moments: Vec<(String, Tensor)> = Tensor::read_safetensors(&opt)
        .unwrap()
        .into_iter()
        .map(|(n, t)| {
            if n.ends_with(".v") {
                (n, t.full_like(-1.0))
            } else {
                (n, t)
            }
        })
        .collect();
    Tensor::write_safetensors(&moments, &opt).unwrap();
    let out = common::train_cli(&f.agent, &f.data, &run, &["--resume"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("NaN") && stderr.contains("last good checkpoint"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint/meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["step"].as_i64(), Some(20));
    assert_eq!(
        std::fs::read(run.join("checkpoint/model.safetensors")).unwrap(),
        good,
        "the good checkpoint was overwritten"
    );
}

#[test]
fn every_shipped_scene_has_an_agent_file_that_loads() {
    let agents = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("agents");
    for name in common::SCENES {
        assert!(
            agents.join(format!("{name}.toml")).exists(),
            "no agent for {name}"
        );
    }
    // Every shipped file, variants such as maze_large_hwm included.
    for entry in std::fs::read_dir(&agents).unwrap() {
        let path = entry.unwrap().path();
        let agent = AgentFile::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = agent.scene.as_str();
        assert!(
            common::SCENES.contains(&name),
            "{}: scene {name} is not shipped",
            path.display()
        );
        let scene = common::scene(name);
        if agent.perception.observation == hjepa::model::config::ObservationKind::Pixels {
            assert!(
                scene.observation.image.is_some(),
                "{name}: pixel agent for a scene without images"
            );
        }
        assert!(
            agent.window() <= scene.episode_steps as i64,
            "{name}: training window longer than an episode"
        );
    }
}

/// The level-2 critic's queries: frame f predicted over j jumps from frame f - j k, over the
/// macro-actions of the data's own action chunks; frames fewer than j k into their episode
/// keep their own level-2 state.
#[test]
fn level2_predictions_of_the_frames_start_j_jumps_earlier() {
    use hjepa::model::critic::{encode_all, predict_frames_level2};
    let agent = agent_with(|_| {});
    let data = load_data(&agent);
    let t = new_trainer(agent, &data);
    let (model, l2) = (&t.model, t.model.level2.as_ref().unwrap());
    let z = encode_all(model, &data.obs, Device::Cpu);
    let pred = predict_frames_level2(model, &z, &data, 2);
    let h = tch::no_grad(|| l2.abstract_state(&z));
    assert_eq!(pred.size(), [z.size()[0], 2, l2.dim]);
    let (start, a0) = (data.train_episodes[1].0, data.train_episode_actions[1]);
    let k = l2.k;
    let close = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]) < 1e-5;
    // Too early for one jump: the frame's own state.
    assert!(close(
        &pred.get(start + k - 1).get(0),
        &h.get(start + k - 1)
    ));
    // One and two jumps, by hand.
    let f = start + 2 * k + 1;
    let chunk = |from: i64| {
        model.normalize_actions(&data.actions.narrow(0, a0 + from - start, k).unsqueeze(0))
    };
    let one =
        tch::no_grad(|| l2.predict(&h.get(f - k).unsqueeze(0), &l2.encode_macro(&chunk(f - k))));
    assert!(close(&pred.get(f).get(0), &one.squeeze_dim(0)));
    let two = tch::no_grad(|| {
        let mid = l2.predict(
            &h.get(f - 2 * k).unsqueeze(0),
            &l2.encode_macro(&chunk(f - 2 * k)),
        );
        l2.predict(&mid, &l2.encode_macro(&chunk(f - k)))
    });
    assert!(close(&pred.get(f).get(1), &two.squeeze_dim(0)));
}

/// `hjepa train --shares`: each dataset's part of the batches follows its share, not its
/// size; a share per dataset is required.
#[test]
fn batches_follow_the_datasets_shares() {
    let f = fixture();
    let agent = agent_with(|_| {});
    let both = [
        Dataset::open(&f.data).unwrap(),
        Dataset::open(&f.data).unwrap(),
    ];
    let mut data = TrainingData::load_many(&both, &agent, &f.agent).unwrap();
    let groups = data.train_window_groups.clone();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].len(), groups[1].len());
    let second: std::collections::HashSet<(i64, i64)> = data.train_windows[groups[1].clone()]
        .iter()
        .copied()
        .collect();
    let share_of_second = |data: &TrainingData| {
        let mut t = new_trainer(agent.clone(), data);
        let (mut hits, mut n) = (0, 0);
        for step in 0..200 {
            t.step = step;
            let w = t.batch_windows(data);
            hits += w.iter().filter(|w| second.contains(w)).count();
            n += w.len();
        }
        hits as f64 / n as f64
    };
    let even = share_of_second(&data);
    assert!((even - 0.5).abs() < 0.05, "by size: {even}");
    data.set_shares(&[9.0, 1.0], &f.data).unwrap();
    let tenth = share_of_second(&data);
    assert!((tenth - 0.1).abs() < 0.03, "shares 9:1: {tenth}");
    let err = data.set_shares(&[1.0], &f.data).unwrap_err();
    assert!(err.to_string().contains("--shares"), "{err}");
    let err = data.set_shares(&[1.0, 0.0], &f.data).unwrap_err();
    assert!(err.to_string().contains("positive"), "{err}");
}

/// Checkpoints saved before the agent file was split into its model and planning parts hold
/// the whole agent file, `[planning]` included: they still load, to the same model
/// configuration, and a table the model does not know is still refused.
#[test]
fn a_checkpoint_config_with_a_planning_table_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("agents/wall.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("[planning]"));
    let model = hjepa::model::ModelConfig::parse(&text, &path).unwrap();
    assert_eq!(model, AgentFile::load(&path).unwrap().model);
    let err = hjepa::model::ModelConfig::parse(&format!("{text}\n[nonsense]\nx = 1\n"), &path)
        .unwrap_err();
    assert!(err.message.contains("nonsense"), "{err}");
}
