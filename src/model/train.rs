//! `hjepa train`: a flat training loop with periodic validation, atomic checkpoints, a
//! metrics log that survives a kill, and bit-identical resume on CPU.
//!
//! Resume is exact because nothing hides state: batches are drawn from an RNG seeded by
//! (seed, step), SIGReg's directions from torch's generator seeded the same way, and the
//! optimiser is a plain AdamW whose moments live in the checkpoint.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

use super::checkpoint::{
    checkpoint_dir, datasets_digest, load_exact, CheckpointMeta, Saved, CHECKPOINT_FORMAT,
};
use super::config::{AntiCollapse, LrSchedule, ModelConfig, PredictionUnits};
use super::critic::{fit_critic, CriticFit};
use super::data::TrainingData;
use super::losses::{level_loss, LevelOutputs, LossTerms};
use super::probe::{diagnose, Diagnostics};
use super::world_model::{ModelShapes, WorldModel};
use crate::data::dataset::write_atomic;
use crate::data::Dataset;
use crate::error::InputError;

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

    /// Losses on one batch (differentiable total, and the numbers).
    pub fn losses(&self, obs: &Tensor, actions: &Tensor) -> (Tensor, StepLosses) {
        let m = &self.model;
        let (b, l) = (obs.size()[0], obs.size()[1]);
        let z = m.encode(&obs.flatten(0, 1)).view([b, l, -1]);
        let tz = self
            .target
            .as_ref()
            .map(|t| tch::no_grad(|| t.encode(&obs.flatten(0, 1)).view([b, l, -1])));
        let a = m.normalize_actions(actions);
        let l1 = &self.agent.level1;
        let h1 = l1.horizon;
        // Every ensemble member against the same targets: `[K * B, T, D]`, so the prediction
        // term is the members' mean.
        let members = m.members();
        let pred = m
            .rollout_members(&z.select(1, 0), &a.narrow(1, 0, h1))
            .flatten(0, 1);
        let targets = match (&tz, l1.anti_collapse) {
            (Some(t), AntiCollapse::Ema) => t.narrow(1, 1, h1),
            _ => z.narrow(1, 1, h1),
        }
        .repeat([members, 1, 1]);
        let (pred, targets) = match &self.prediction_scale {
            Some(unit) => (pred / unit, targets / unit),
            None => (pred, targets),
        };
        let idm = (l1.anti_collapse == AntiCollapse::Vicreg && l1.loss.idm > 0.0).then(|| {
            let pair = Tensor::cat(&[z.narrow(1, 0, l - 1), z.narrow(1, 1, l - 1)], -1);
            (m.idm1.forward(&pair), a.shallow_clone())
        });
        let (total1, terms1) = level_loss(
            LevelOutputs {
                predicted: &pred,
                targets: &targets,
                all: &z,
                idm,
            },
            l1.anti_collapse,
            &l1.loss,
        );
        let mut total = total1;
        let mut level2 = None;
        if let Some(n2) = &m.level2 {
            let c = &self.agent.level2;
            let jumps = c.jumps;
            let idx = Tensor::from_slice(&(0..=jumps).map(|j| j * c.k).collect::<Vec<i64>>())
                .to_device(self.device);
            let h = n2.abstract_state(&z.index_select(1, &idx));
            let chunks = a.narrow(1, 0, jumps * c.k).reshape([b * jumps, c.k, 2]);
            let u = n2.encode_macro(&chunks).view([b, jumps, -1]);
            let hp = n2.rollout(&h.select(1, 0), &u);
            let target_h = match (&tz, &self.target, c.anti_collapse) {
                (Some(t), Some(tm), AntiCollapse::Ema) => tch::no_grad(|| {
                    tm.level2
                        .as_ref()
                        .expect("same architecture")
                        .abstract_state(&t.index_select(1, &idx))
                        .narrow(1, 1, jumps)
                }),
                _ => h.narrow(1, 1, jumps),
            };
            let idm2 = (c.anti_collapse == AntiCollapse::Vicreg && c.loss.idm > 0.0).then(|| {
                let pair = Tensor::cat(&[h.narrow(1, 0, jumps), h.narrow(1, 1, jumps)], -1);
                (n2.idm2.forward(&pair), u.detach())
            });
            let (t2, terms2) = level_loss(
                LevelOutputs {
                    predicted: &hp,
                    targets: &target_h,
                    all: &h,
                    idm: idm2,
                },
                c.anti_collapse,
                &c.loss,
            );
            total = total + t2;
            level2 = Some(terms2);
        }
        let losses = StepLosses {
            total: total.double_value(&[]),
            level1: terms1,
            level2,
        };
        (total, losses)
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

    fn named_trainable(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn zero_grad(&self) {
        for (_, p) in self.named_trainable() {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// AdamW (beta 0.9 / 0.999, eps 1e-8, decoupled weight decay).
    fn adamw(&mut self) {
        let (lr, wd) = (
            self.agent.train.learning_rate_at(self.step),
            self.agent.train.weight_decay,
        );
        let (b1, b2, eps) = (0.9, 0.999, 1e-8);
        let t = (self.step + 1) as i32;
        let (c1, c2) = (1.0 - f64::powi(b1, t), 1.0 - f64::powi(b2, t));
        let vars = self.named_trainable();
        tch::no_grad(|| {
            for (name, p) in vars {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let (m, v) = self
                    .moments
                    .entry(name)
                    .or_insert_with(|| (p.zeros_like(), p.zeros_like()));
                *m = &*m * b1 + &g * (1.0 - b1);
                *v = &*v * b2 + (&g * &g) * (1.0 - b2);
                let update = (&*m / c1) / ((&*v / c2).sqrt() + eps) * lr + &p * (lr * wd);
                let mut p = p;
                let _ = p.f_sub_(&update);
            }
        });
    }

    fn update_target(&mut self) {
        let Some(tvs) = &self.target_vs else { return };
        let decay = match self.agent.level1.anti_collapse {
            AntiCollapse::Ema => self.agent.level1.loss.ema_decay,
            _ => self.agent.level2.loss.ema_decay,
        };
        let online = self.vs.variables();
        tch::no_grad(|| {
            for (name, mut t) in tvs.variables() {
                let o = &online[&name];
                let _ = t.copy_(&(&t * decay + o * (1.0 - decay)));
            }
        });
    }

    /// Writes the checkpoint folder atomically: `checkpoint.tmp/` is filled, then swapped in.
    pub fn save(&self, run: &Path, meta: &CheckpointMeta) -> anyhow::Result<()> {
        let tmp = run.join("checkpoint.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        self.vs.save(tmp.join("model.safetensors"))?;
        if let Some(t) = &self.target_vs {
            t.save(tmp.join("target.safetensors"))?;
        }
        let moments: Vec<(String, Tensor)> = self
            .moments
            .iter()
            .flat_map(|(n, (m, v))| {
                [
                    (format!("{n}.m"), m.shallow_clone()),
                    (format!("{n}.v"), v.shallow_clone()),
                ]
            })
            .collect();
        Tensor::write_safetensors(&moments, tmp.join("optimizer.safetensors"))?;
        std::fs::write(tmp.join("agent.toml"), toml::to_string_pretty(&self.agent)?)?;
        write_atomic(
            &tmp.join("meta.json"),
            serde_json::to_string_pretty(meta)?.as_bytes(),
        )?;
        for f in std::fs::read_dir(&tmp)? {
            std::fs::File::open(f?.path())?.sync_all()?;
        }
        let (cur, old) = (run.join("checkpoint"), run.join("checkpoint.old"));
        let _ = std::fs::remove_dir_all(&old);
        if cur.exists() {
            std::fs::rename(&cur, &old)?;
        }
        std::fs::rename(&tmp, &cur)?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// Loads a run's checkpoint (or the previous one if a crash hit between the renames).
    /// Shapes and names must match the agent file exactly.
    pub fn load(
        run: &Path,
        agent: Option<&ModelConfig>,
        device: Device,
    ) -> Result<(Trainer, CheckpointMeta), InputError> {
        Trainer::load_with(run, agent, device, false)
    }

    /// Loads a run to continue training it. Unlike [`Trainer::load`], the `[critic]` table
    /// may differ from the checkpoint's: the critic is then refitted (it is fitted after
    /// training on the frozen encoder), without retraining the world model.
    pub fn load_to_resume(
        run: &Path,
        agent: &ModelConfig,
        device: Device,
    ) -> Result<(Trainer, CheckpointMeta), InputError> {
        Trainer::load_with(run, Some(agent), device, true)
    }

    fn load_with(
        run: &Path,
        agent: Option<&ModelConfig>,
        device: Device,
        allow_critic_change: bool,
    ) -> Result<(Trainer, CheckpointMeta), InputError> {
        let Saved {
            dir,
            meta,
            config: saved,
            refit_critic,
            skip,
        } = Saved::read(run, agent, allow_critic_change)?;
        let mut t = Trainer::new(saved, &meta.shapes, device);
        load_exact(&mut t.vs, &dir.join("model.safetensors"), skip)?;
        if let Some(tvs) = &mut t.target_vs {
            load_exact(tvs, &dir.join("target.safetensors"), skip)?;
        }
        let opt_path = dir.join("optimizer.safetensors");
        // Planning and probing need no Adam moments: a run shipped as its weights alone
        // (model.safetensors, meta.json, agent.toml) loads; resuming still needs them.
        let saved_moments: BTreeMap<String, Tensor> = if !allow_critic_change && !opt_path.exists()
        {
            BTreeMap::new()
        } else {
            Tensor::read_safetensors(&opt_path)
                .map_err(|e| {
                    InputError::new(&opt_path, "", format!("corrupt optimizer state: {e}"))
                })?
                .into_iter()
                .collect()
        };
        for (name, p) in t.named_trainable() {
            if skip.is_some_and(|prefix| name.starts_with(prefix)) {
                continue;
            }
            if let (Some(m), Some(v)) = (
                saved_moments.get(&format!("{name}.m")),
                saved_moments.get(&format!("{name}.v")),
            ) {
                if m.size() != p.size() || v.size() != p.size() {
                    return Err(InputError::new(
                        &opt_path,
                        &name,
                        format!(
                            "moment shape {:?} differs from the weight's {:?}",
                            m.size(),
                            p.size()
                        ),
                    ));
                }
                t.moments
                    .insert(name, (m.to_device(device), v.to_device(device)));
            }
        }
        t.step = meta.step;
        t.critic_fit = if refit_critic {
            None
        } else {
            meta.critic.clone()
        };
        Ok((t, meta))
    }
}

/// Options of `hjepa train`.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The agent file's model configuration, and where it was read (for messages).
    pub agent: ModelConfig,
    pub agent_path: PathBuf,
    /// One dataset or several trained on as one (at least one).
    pub data: Vec<PathBuf>,
    /// Each dataset's share of the batches (default: in proportion to its windows).
    pub shares: Option<Vec<f64>>,
    pub out: PathBuf,
    pub resume: bool,
    pub device: Option<String>,
    /// Stop after this many steps in total (default: the agent file's `train.steps`).
    pub steps: Option<i64>,
    /// Overrides the agent file's `train.seed` (recorded in the checkpoint's agent.toml):
    /// another training of the same file, e.g. a peer for `planning.peers`.
    pub seed: Option<u64>,
    pub progress: bool,
}

#[derive(Clone, Debug)]
pub struct TrainSummary {
    /// The run's step count, and the steps this call trained (0 when it only refitted the critic).
    pub steps: i64,
    pub steps_this_run: i64,
    pub seconds: f64,
    /// Of the steps this call trained (0 when none).
    pub samples_per_second: f64,
    pub diagnostics: Diagnostics,
    /// The critic's fitting stage, when this call ran it.
    pub critic_fit: Option<CriticFit>,
}

/// One line of `metrics.jsonl`.
#[derive(Serialize)]
struct MetricsLine<'a> {
    step: i64,
    elapsed_s: f64,
    losses: &'a StepLosses,
    #[serde(skip_serializing_if = "Option::is_none")]
    validation: Option<&'a Diagnostics>,
}

fn append_metrics(path: &Path, line: &MetricsLine) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{}", serde_json::to_string(line)?)?;
    f.sync_data()?;
    Ok(())
}

/// Drops metrics lines past `step` (written after the checkpoint a resume starts from), so
/// the log of a resumed run reads like that of an uninterrupted one.
fn truncate_metrics(path: &Path, step: i64) -> anyhow::Result<()> {
    #[derive(Deserialize)]
    struct StepOnly {
        step: i64,
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| serde_json::from_str::<StepOnly>(l).is_ok_and(|r| r.step <= step))
        .map(|l| format!("{l}\n"))
        .collect();
    if kept.len() != text.len() {
        write_atomic(path, kept.as_bytes())?;
    }
    Ok(())
}

/// The flat training loop: load, (resume,) step, validate and checkpoint every
/// `validate_every` steps and at the end.
pub fn train(opts: &TrainOptions) -> anyhow::Result<TrainSummary> {
    let mut agent = opts.agent.clone();
    if let Some(seed) = opts.seed {
        agent.train.seed = seed;
    }
    let device = agent.device(&opts.agent_path, opts.device.as_deref())?;
    if agent.train.threads > 0 {
        tch::set_num_threads(agent.train.threads);
    }
    let Some(first_data) = opts.data.first() else {
        return Err(
            InputError::new(&opts.agent_path, "--data", "expected a dataset folder").into(),
        );
    };
    let datasets = opts
        .data
        .iter()
        .map(|d| Dataset::open(d))
        .collect::<Result<Vec<_>, _>>()?;
    let mut data = TrainingData::load_many(&datasets, &agent, &opts.agent_path)?;
    if let Some(shares) = &opts.shares {
        data.set_shares(shares, first_data)?;
    }
    let digest = datasets_digest(&datasets);
    std::fs::create_dir_all(&opts.out)?;
    let mut trainer = if opts.resume
        && (opts.out.join("checkpoint").exists() || opts.out.join("checkpoint.old").exists())
    {
        let (t, meta) = Trainer::load_to_resume(&opts.out, &agent, device)?;
        if meta.dataset_digest != digest {
            return Err(InputError::new(
                first_data,
                "",
                format!(
                    "the run {} was trained on other data (digest {})",
                    opts.out.display(),
                    meta.dataset_digest
                ),
            )
            .into());
        }
        if meta.shares != data.shares {
            return Err(InputError::new(
                first_data,
                "--shares",
                format!(
                    "the run {} was trained with shares {:?}, this call asks for {:?}",
                    opts.out.display(),
                    meta.shares,
                    data.shares
                ),
            )
            .into());
        }
        if meta.shapes != data.shapes {
            return Err(InputError::new(
                first_data,
                "",
                format!(
                    "observation/action shapes {:?} differ from the checkpoint's {:?}",
                    data.shapes, meta.shapes
                ),
            )
            .into());
        }
        truncate_metrics(&opts.out.join("metrics.jsonl"), t.step)?;
        t
    } else {
        if !opts.resume && opts.out.join("checkpoint").exists() {
            return Err(InputError::new(&opts.out, "", "this run folder already has a checkpoint: pass --resume to continue it, or choose another --out").into());
        }
        let mut t = Trainer::new(agent.clone(), &data.shapes, device);
        t.set_input_statistics(&data);
        t
    };
    trainer.set_prediction_units(&data);
    if let Some(unit) = &trainer.prediction_scale {
        tracing::info!(
            "prediction error in units of one step's change per feature: {:?}",
            Vec::<f32>::try_from(unit.to_device(Device::Cpu)).unwrap_or_default()
        );
    }
    let total = opts.steps.unwrap_or(agent.train.steps);
    if agent.train.lr_schedule == LrSchedule::Cosine && total > agent.train.steps {
        return Err(InputError::new(
            &opts.agent_path,
            "train.steps",
            format!(
                "--steps {total} goes past train.steps = {} under lr_schedule = \"cosine\", where the learning rate is 0: raise train.steps instead",
                agent.train.steps
            ),
        )
        .into());
    }
    let metrics_path = opts.out.join("metrics.jsonl");
    let bar = if opts.progress {
        ProgressBar::new(total as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "train [{bar:25}] {pos}/{len} steps {per_sec} eta {eta} {msg}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    bar.set_position(trainer.step as u64);
    let start = Instant::now();
    let first_step = trainer.step;
    let mut diagnostics = Diagnostics::default();
    let meta_for = |t: &Trainer, d: Option<Diagnostics>| CheckpointMeta {
        format: CHECKPOINT_FORMAT.into(),
        step: t.step,
        seed: t.agent.train.seed,
        dataset: first_data.clone(),
        more_datasets: opts.data[1..].to_vec(),
        shares: data.shares.clone(),
        dataset_digest: digest.clone(),
        shapes: data.shapes.clone(),
        diagnostics: d,
        critic: t.critic_fit.clone(),
        env_step: Some(data.env_step.clone()),
    };
    if trainer.step < total {
        // Training moves the encoder, so a critic fitted before (a finished run resumed to
        // more steps) no longer matches it: refit it at the end.
        trainer.critic_fit = None;
    }
    while trainer.step < total {
        let losses = trainer.train_step(&data);
        if !losses.total.is_finite() {
            bar.abandon();
            anyhow::bail!(
                "loss became {} at step {} (level 1 {:?}); training stopped, the last good checkpoint in {} is kept",
                losses.total,
                trainer.step,
                losses.level1,
                opts.out.display()
            );
        }
        let last = losses;
        bar.set_position(trainer.step as u64);
        bar.set_message(format!(
            "loss {:.4} (pred {:.4}{})",
            last.total,
            last.level1.prediction,
            last.level2
                .as_ref()
                .map_or(String::new(), |l| format!(", L2 pred {:.4}", l.prediction))
        ));
        let validate = trainer.step % agent.train.validate_every == 0 || trainer.step == total;
        if validate {
            diagnostics = diagnose(&trainer.model, &data, device, 256, 4000);
            if !diagnostics.finite() {
                bar.abandon();
                anyhow::bail!(
                    "representations became non-finite at step {} (the weights diverged); training stopped, the last good checkpoint in {} is kept",
                    trainer.step,
                    opts.out.display()
                );
            }
            for a in diagnostics.alarms() {
                bar.println(a);
            }
            let line = MetricsLine {
                step: trainer.step,
                elapsed_s: start.elapsed().as_secs_f64(),
                losses: &last,
                validation: Some(&diagnostics),
            };
            append_metrics(&metrics_path, &line)?;
            trainer.save(&opts.out, &meta_for(&trainer, Some(diagnostics.clone())))?;
            if let Err(e) = super::plots::write_run_plots(&opts.out) {
                bar.println(format!("warning: plots not written: {e:#}"));
            }
        } else if trainer.step % 10 == 0 {
            append_metrics(
                &metrics_path,
                &MetricsLine {
                    step: trainer.step,
                    elapsed_s: start.elapsed().as_secs_f64(),
                    losses: &last,
                    validation: None,
                },
            )?;
        }
    }
    bar.finish_and_clear();
    let mut seconds = start.elapsed().as_secs_f64();
    let steps = trainer.step - first_step;
    if steps == 0 {
        diagnostics = diagnose(&trainer.model, &data, device, 256, 4000);
    }
    let mut critic_fit = None;
    // The critic is fitted on the final encoder, so it runs once training is complete (and
    // again on resume if a kill interrupted it: it is deterministic and short).
    if agent.critic.enabled && trainer.step >= agent.train.steps && trainer.critic_fit.is_none() {
        let cbar = if opts.progress {
            ProgressBar::new(agent.critic.steps as u64)
        } else {
            ProgressBar::hidden()
        };
        cbar.set_style(
            ProgressStyle::with_template("critic [{bar:25}] {pos}/{len} steps eta {eta} {msg}")
                .expect("template")
                .progress_chars("=> "),
        );
        let fit = fit_critic(
            &trainer.model,
            &trainer.vs,
            &data,
            &agent.critic,
            agent.train.seed,
            &cbar,
        )?;
        cbar.finish_and_clear();
        seconds += fit.seconds;
        critic_fit = Some(fit.clone());
        trainer.critic_fit = Some(fit);
        diagnostics = diagnose(&trainer.model, &data, device, 256, 4000);
        trainer.save(&opts.out, &meta_for(&trainer, Some(diagnostics.clone())))?;
    }
    let training_seconds = seconds - critic_fit.as_ref().map_or(0.0, |f| f.seconds);
    Ok(TrainSummary {
        steps: trainer.step,
        steps_this_run: steps,
        seconds,
        samples_per_second: (steps * agent.train.batch_size) as f64 / training_seconds.max(1e-9),
        diagnostics,
        critic_fit,
    })
}

/// `hjepa probe`: the diagnostics of a run's checkpoint on its dataset (or another one).
pub fn probe(run: &Path, data: Option<&Path>, device: Option<&str>) -> anyhow::Result<Diagnostics> {
    let dir = checkpoint_dir(run)?;
    let agent_path = dir.join("agent.toml");
    let agent = ModelConfig::load(&agent_path)?;
    let device = agent.device(&agent_path, device)?;
    let (trainer, meta) = Trainer::load(run, None, device)?;
    let dirs = match data {
        Some(d) => vec![d.to_path_buf()],
        None => meta.datasets(),
    };
    let datasets = dirs
        .iter()
        .map(|d| Dataset::open(d))
        .collect::<Result<Vec<_>, _>>()?;
    let data = TrainingData::load_many(&datasets, &agent, &agent_path)?;
    if data.shapes != meta.shapes {
        return Err(InputError::new(
            &dirs[0],
            "",
            format!(
                "observation/action shapes {:?} differ from the checkpoint's {:?}",
                data.shapes, meta.shapes
            ),
        )
        .into());
    }
    let mut d = diagnose(&trainer.model, &data, device, 512, 8000);
    // The critic map encodes the scene's own observations: only when it still gives what
    // the checkpoint was trained on (a scene edited since is reported, not a crash).
    let scene = crate::sim::Scene::load(&crate::sim::Scene::resolve_path(&agent.scene))?;
    match super::checkpoint::check_scene_matches(&scene, &agent, &meta, run) {
        Ok(()) => {
            d.critic_map = super::critic_map::critic_map(
                &trainer.model,
                &std::sync::Arc::new(scene),
                agent.perception.observation,
                device,
            )
        }
        Err(e) => eprintln!("no critic map: {e}"),
    }
    Ok(d)
}
