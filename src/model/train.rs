//! `hjepa train`: a flat training loop with periodic validation, atomic checkpoints, a
//! metrics log that survives a kill, and bit-identical resume on CPU.
//!
//! Resume is exact because nothing hides state: batches are drawn from an RNG seeded by
//! (seed, step), SIGReg's directions from torch's generator seeded the same way, and the
//! optimiser is a plain AdamW whose moments live in the checkpoint.
//!
//! This file holds the [`Trainer`] and one step; its submodules the losses (`objective`),
//! the AdamW and EMA updates (`optimizer`), checkpoints (`checkpointing`) and the `hjepa
//! train` / `hjepa probe` runs (`run`).

mod checkpointing;
mod objective;
mod optimizer;
mod run;

pub use run::{probe, train, TrainOptions, TrainSummary};

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

use super::config::{AntiCollapse, ModelConfig, PredictionUnits};
use super::critic::CriticFit;
use super::data::TrainingData;
use super::losses::LossTerms;
use super::world_model::{ModelShapes, WorldModel};

/// The model, its EMA target (when a level asks for one) and the optimiser state.
pub struct Trainer {
    pub agent: ModelConfig,
    pub device: Device,
    pub vs: nn::VarStore,
    pub model: WorldModel,
    target_vs: Option<nn::VarStore>,
    target: Option<WorldModel>,
    /// AdamW moments, by variable name.
    moments: BTreeMap<String, (Tensor, Tensor)>,
    pub step: i64,
    /// Set once the critic's fitting stage has run on the final weights.
    pub critic_fit: Option<CriticFit>,
    /// `[D]`: each feature's typical one-step change, the unit of the level-1 prediction
    /// error under `[level1] prediction_units = "step"`.
    pub prediction_scale: Option<Tensor>,
}

/// Losses of one training step, per level.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StepLosses {
    pub level1: LossTerms,
    pub level2: Option<LossTerms>,
    pub total: f64,
}

/// The seed of a step's random draws: a function of (seed, step) alone, so resume is exact.
fn step_seed(seed: u64, step: i64) -> u64 {
    crate::data::episodes::episode_seed(seed, step as u64)
}

impl Trainer {
    pub fn new(agent: ModelConfig, shapes: &ModelShapes, device: Device) -> Trainer {
        tch::manual_seed(agent.train.seed as i64);
        let vs = nn::VarStore::new(device);
        let model = WorldModel::new(&vs.root(), &agent, shapes);
        let uses_ema = agent.level1.anti_collapse == AntiCollapse::Ema
            || (agent.level2.enabled && agent.level2.anti_collapse == AntiCollapse::Ema);
        let (target_vs, target) = if uses_ema {
            let mut tvs = nn::VarStore::new(device);
            let t = WorldModel::new(&tvs.root(), &agent, shapes);
            tvs.copy(&vs).expect("same architecture");
            tvs.freeze();
            (Some(tvs), Some(t))
        } else {
            (None, None)
        };
        Trainer {
            agent,
            device,
            vs,
            model,
            target_vs,
            target,
            moments: BTreeMap::new(),
            step: 0,
            critic_fit: None,
            prediction_scale: None,
        }
    }

    /// Under `[level1] prediction_units = "step"`, sets each feature's unit of prediction
    /// error to the std of its change over one env step, over (up to 8192 evenly spaced)
    /// consecutive pairs of training frames. The identity encoder's statistics must be set.
    pub fn set_prediction_units(&mut self, data: &TrainingData) {
        if self.agent.level1.prediction_units != PredictionUnits::Step {
            self.prediction_scale = None;
            return;
        }
        let firsts: Vec<i64> = data
            .train_episodes
            .iter()
            .flat_map(|&(first, frames)| first..first + frames - 1)
            .collect();
        let stride = (firsts.len() / 8192).max(1);
        let rows: Vec<i64> = firsts.iter().step_by(stride).copied().collect();
        let rows = Tensor::from_slice(&rows);
        let z = |rows: &Tensor| {
            let obs = data.obs.index_select(0, rows).to_device(self.device);
            tch::no_grad(|| self.model.encode(&obs))
        };
        let change = z(&(&rows + 1)) - z(&rows);
        // A feature that never changes would turn any error into a huge one.
        self.prediction_scale = Some(change.std_dim(0i64, false, false).clamp_min(1e-3));
    }

    /// Sets the encoder's input normalisation from the training data.
    pub fn set_input_statistics(&mut self, data: &TrainingData) {
        let (mean, std) = data.input_statistics();
        for vs in std::iter::once(&self.vs).chain(self.target_vs.as_ref()) {
            let vars = vs.variables();
            tch::no_grad(|| {
                vars["encoder.input_mean"].shallow_clone().copy_(&mean);
                vars["encoder.input_std"].shallow_clone().copy_(&std);
            });
        }
    }

    /// Draws this step's batch: deterministic in (seed, step).
    pub fn batch_windows(&self, data: &TrainingData) -> Vec<(i64, i64)> {
        let mut rng = ChaCha8Rng::seed_from_u64(step_seed(self.agent.train.seed, self.step));
        (0..self.agent.train.batch_size)
            .map(|_| match &data.shares {
                None => data.train_windows[rng.random_range(0..data.train_windows.len())],
                Some(shares) => {
                    let u: f64 = rng.random();
                    let mut acc = 0.0;
                    let group = shares
                        .iter()
                        .position(|s| {
                            acc += s;
                            u < acc
                        })
                        .unwrap_or(shares.len() - 1);
                    let range = data.train_window_groups[group].clone();
                    data.train_windows[rng.random_range(range)]
                }
            })
            .collect()
    }

    /// One optimisation step. Returns the losses; a non-finite loss leaves the weights alone.
    pub fn train_step(&mut self, data: &TrainingData) -> StepLosses {
        tch::manual_seed(step_seed(self.agent.train.seed ^ 0x5EED, self.step) as i64);
        let (obs, actions) = data.batch(&self.batch_windows(data), self.device);
        let (loss, terms) = self.losses(&obs, &actions);
        if !terms.total.is_finite() {
            return terms;
        }
        self.zero_grad();
        loss.backward();
        self.adamw();
        self.update_target();
        self.step += 1;
        terms
    }
}
