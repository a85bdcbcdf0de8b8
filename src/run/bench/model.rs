//! `hjepa bench model`: training throughput, encode latency, and level-1 / level-2 rollout
//! latency at planning batch sizes, for the shipped pixel (two_rooms) and state (push_t)
//! agents. Weights are freshly initialised: latency does not depend on training.

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use super::latency_ms;
use crate::agent::AgentFile;
use crate::data::{collect, CollectOptions, Dataset, PolicyKind};
use crate::model::data::TrainingData;
use crate::model::world_model::{Level2Nets, WorldModel};
use crate::model::Trainer;

/// Sequences per planning call that the table measures (DINO-WM's CEM uses 300 samples,
/// PLDM's MPPI up to 2000), and the planning horizon.
pub const PLAN_BATCHES: [i64; 2] = [300, 2000];
pub const PLAN_HORIZON: i64 = 16;

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// A small dataset of the agent's scene in a scratch folder, removed on drop.
struct ScratchData {
    dir: PathBuf,
}

impl Drop for ScratchData {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn scratch_dataset(scene: &str) -> anyhow::Result<ScratchData> {
    let dir = std::env::temp_dir().join(format!("hjepa-bench-{}-{scene}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    collect(&CollectOptions {
        scene_path: crate::sim::Scene::resolve_path(scene),
        out: dir.clone(),
        episodes: 12,
        policy: PolicyKind::SmoothWalk,
        noise: 0.3,
        seed: 0,
        shard_episodes: 12,
        threads: 1,
        progress: false,
        cancel: None,
    })?;
    Ok(ScratchData { dir })
}

/// One agent's rows.
fn agent_rows(
    agent_path: &Path,
    device: Device,
    seconds: f64,
    table: &mut String,
) -> anyhow::Result<()> {
    let agent = AgentFile::load(agent_path)?;
    let scratch = scratch_dataset(&agent.scene)?;
    let data = TrainingData::load(&Dataset::open(&scratch.dir)?, &agent, agent_path)?;
    let mut trainer = Trainer::new(agent.model.clone(), &data.shapes, device);
    trainer.set_input_statistics(&data);
    let mut rows = Rows {
        table,
        name: agent_path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("agent")
            .to_string(),
        obs_kind: format!("{:?}", agent.perception.observation).to_lowercase(),
        seconds,
    };
    train_row(&mut rows, &mut trainer, &data, agent.train.batch_size);
    let model = &trainer.model;
    encode_rows(&mut rows, model, &data, device);
    level1_rows(&mut rows, model, device);
    gradient_row(&mut rows, model, device);
    if let Some(l2) = &model.level2 {
        level2_rows(&mut rows, l2, device);
    }
    Ok(())
}

/// The rows of one agent being appended to the table, and how long each measures.
struct Rows<'t> {
    table: &'t mut String,
    /// The agent file's name and its observation kind, which label every row.
    name: String,
    obs_kind: String,
    seconds: f64,
}

impl Rows<'_> {
    /// Appends `what` on `batch` items: its median and p95 latency, and time per item.
    fn push(&mut self, what: String, batch: i64, (median, p95): (f64, f64)) {
        *self.table += &format!(
            "| {} ({}) | {what} | {batch} | {median:.2} | {p95:.2} | {:.1} |\n",
            self.name,
            self.obs_kind,
            median * 1e3 / batch as f64
        );
    }
}

/// One training step on the agent's batch size, with its throughput.
fn train_row(rows: &mut Rows, trainer: &mut Trainer, data: &TrainingData, batch: i64) {
    let (median, p95) = latency_ms(rows.seconds, || {
        trainer.train_step(data);
    });
    rows.push(
        format!("train step ({:.0} samples/s)", batch as f64 * 1e3 / median),
        batch,
        (median, p95),
    );
}

/// Encoding one observation, and a batch of 64.
fn encode_rows(rows: &mut Rows, model: &WorldModel, data: &TrainingData, device: Device) {
    for b in [1i64, 64] {
        let obs = data.obs.narrow(0, 0, b).to_device(device);
        let latency = latency_ms(rows.seconds, || {
            tch::no_grad(|| {
                let _ = model.encode(&obs);
                sync(device);
            })
        });
        rows.push("encode".into(), b, latency);
    }
}

/// Level-1 rollouts at the planning batch sizes; for an ensemble also its members as one
/// stacked net (what a GPU runs) and one member alone.
fn level1_rows(rows: &mut Rows, model: &WorldModel, device: Device) {
    let d = model.latent_dim;
    let k = model.members();
    for b in PLAN_BATCHES {
        let z0 = Tensor::randn([b, d], (Kind::Float, device));
        let a = Tensor::rand([b, PLAN_HORIZON, 2], (Kind::Float, device)) * 2.0 - 1.0;
        let what = match k {
            1 => format!("level-1 rollout, horizon {PLAN_HORIZON}"),
            k => format!("level-1 rollout, horizon {PLAN_HORIZON}: {k} predictors, their mean"),
        };
        let latency = latency_ms(rows.seconds, || {
            tch::no_grad(|| {
                let _ = model.rollout(&z0, &a);
                sync(device);
            })
        });
        rows.push(what, b, latency);
        if k > 1 {
            let latency = latency_ms(rows.seconds, || {
                tch::no_grad(|| {
                    let _ = model.rollout_members_stacked(&z0, &a).mean_dim(
                        [0i64].as_slice(),
                        false,
                        Kind::Float,
                    );
                    sync(device);
                })
            });
            rows.push(
                format!("level-1 rollout, horizon {PLAN_HORIZON}: {k} predictors stacked"),
                b,
                latency,
            );
            let latency = latency_ms(rows.seconds, || {
                tch::no_grad(|| {
                    let _ = model.rollout_member(0, &z0, &a);
                    sync(device);
                })
            });
            rows.push(
                format!("level-1 rollout, horizon {PLAN_HORIZON}: one predictor"),
                b,
                latency,
            );
        }
    }
}

/// A level-1 rollout with the gradient of a goal distance with respect to its actions
/// (the gradient planner's inner step), at the smaller planning batch.
fn gradient_row(rows: &mut Rows, model: &WorldModel, device: Device) {
    let d = model.latent_dim;
    let b = PLAN_BATCHES[0];
    let z0 = Tensor::randn([b, d], (Kind::Float, device));
    let goal = Tensor::randn([1, d], (Kind::Float, device));
    let latency = latency_ms(rows.seconds, || {
        let a = (Tensor::rand([b, PLAN_HORIZON, 2], (Kind::Float, device)) * 2.0 - 1.0)
            .set_requires_grad(true);
        let cost = (model.rollout(&z0, &a) - &goal)
            .pow_tensor_scalar(2)
            .sum(Kind::Float);
        cost.backward();
        let _ = a.grad();
        sync(device);
    });
    rows.push(
        format!("level-1 rollout + gradient wrt actions, horizon {PLAN_HORIZON}"),
        b,
        latency,
    );
}

/// Level-2 rollouts of `PLAN_HORIZON` jumps at the planning batch sizes.
fn level2_rows(rows: &mut Rows, l2: &Level2Nets, device: Device) {
    for b in PLAN_BATCHES {
        let h0 = Tensor::randn([b, l2.dim], (Kind::Float, device));
        let u = Tensor::rand([b, PLAN_HORIZON, l2.macro_dim], (Kind::Float, device)) * 2.0 - 1.0;
        let latency = latency_ms(rows.seconds, || {
            tch::no_grad(|| {
                let _ = l2.rollout(&h0, &u);
                sync(device);
            })
        });
        rows.push(
            format!("level-2 rollout, {PLAN_HORIZON} jumps of k = {}", l2.k),
            b,
            latency,
        );
    }
}

/// The `hjepa bench model` table for the shipped two_rooms (pixels) and push_t (state) agents.
pub fn model_table(seconds: f64, device: Option<crate::device::Device>) -> anyhow::Result<String> {
    let agents = [
        AgentFile::resolve_path("two_rooms"),
        AgentFile::resolve_path("push_t"),
    ];
    let first = AgentFile::load(&agents[0])?;
    let device = first.device(&agents[0], device)?;
    let mut t = format!(
        "hjepa bench model ({seconds:.1} s per row, device {device:?}, {} torch threads; weights freshly initialised)\n",
        tch::get_num_threads()
    );
    t += "| agent | measurement | batch | median ms | p95 ms | µs per item |\n|---|---|---|---|---|---|\n";
    for a in &agents {
        agent_rows(a, device, seconds, &mut t)?;
    }
    Ok(t)
}
