//! `hjepa train` and `hjepa probe`: the flat training run (open the data, build or resume
//! the trainer, step, validate and checkpoint, fit the critic, report) and its metrics log.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tch::Device;

use super::{StepLosses, Trainer};
use crate::data::dataset::write_atomic;
use crate::data::Dataset;
use crate::error::InputError;
use crate::model::checkpoint::{
    checkpoint_dir, datasets_digest, CheckpointMeta, CHECKPOINT_FORMAT,
};
use crate::model::config::{LrSchedule, ModelConfig};
use crate::model::critic::{fit_critic, CriticFit};
use crate::model::data::TrainingData;
use crate::model::probe::{diagnose, Diagnostics};

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
    pub device: Option<crate::device::Device>,
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
    let device = agent.device(&opts.agent_path, opts.device)?;
    if agent.train.threads > 0 {
        tch::set_num_threads(agent.train.threads);
    }
    let run = Run::open(opts, &agent, device)?;
    let mut trainer = run.start_trainer()?;
    let total = run.total_steps()?;
    let bar = progress_bar(
        opts.progress,
        total as u64,
        "train [{bar:25}] {pos}/{len} steps {per_sec} eta {eta} {msg}",
    );
    bar.set_position(trainer.step as u64);
    let start = Instant::now();
    let first_step = trainer.step;
    if trainer.step < total {
        // Training moves the encoder, so a critic fitted before (a finished run resumed to
        // more steps) no longer matches it: refit it at the end.
        trainer.critic_fit = None;
    }
    let step_loop = StepLoop {
        run: &run,
        bar: &bar,
        start,
        total,
        metrics_path: opts.out.join("metrics.jsonl"),
    };
    let mut diagnostics = step_loop.step_until_total(&mut trainer)?;
    bar.finish_and_clear();
    let mut seconds = start.elapsed().as_secs_f64();
    let steps = trainer.step - first_step;
    if steps == 0 {
        diagnostics = run.validate(&trainer);
    }
    let mut critic_fit = None;
    // The critic is fitted on the final encoder, so it runs once training is complete (and
    // again on resume if a kill interrupted it: it is deterministic and short).
    if agent.critic.enabled && trainer.step >= agent.train.steps && trainer.critic_fit.is_none() {
        let (fit, fitted_diagnostics) = run.fit_final_critic(&mut trainer)?;
        seconds += fit.seconds;
        critic_fit = Some(fit);
        diagnostics = fitted_diagnostics;
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

/// A progress bar drawn with `template`, or a hidden one without `--progress`.
fn progress_bar(show: bool, len: u64, template: &str) -> ProgressBar {
    let bar = if show {
        ProgressBar::new(len)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("template")
            .progress_chars("=> "),
    );
    bar
}

/// What every stage of one `train` call reads: the options, the data and its digest.
struct Run<'a> {
    opts: &'a TrainOptions,
    /// The agent file's configuration with `--seed` applied.
    agent: &'a ModelConfig,
    device: Device,
    /// The first `--data` folder, which errors about the data name.
    first_data: &'a PathBuf,
    data: TrainingData,
    digest: String,
}

impl<'a> Run<'a> {
    /// Opens the `--data` folders as one training set (with `--shares`) and the run folder.
    fn open(
        opts: &'a TrainOptions,
        agent: &'a ModelConfig,
        device: Device,
    ) -> anyhow::Result<Run<'a>> {
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
        let mut data = TrainingData::load_many(&datasets, agent, &opts.agent_path)?;
        agent
            .check_shapes(&data.shapes)
            .map_err(|(key, why)| InputError::new(&opts.agent_path, key, why))?;
        if let Some(shares) = &opts.shares {
            data.set_shares(shares, first_data)?;
        }
        let digest = datasets_digest(&datasets);
        crate::error::create_dir_all(&opts.out)?;
        Ok(Run {
            opts,
            agent,
            device,
            first_data,
            data,
            digest,
        })
    }

    /// The trainer to go on with: the run's checkpoint under `--resume` (when it has one),
    /// else a new model; either way with its prediction units set from the data.
    fn start_trainer(&self) -> anyhow::Result<Trainer> {
        let opts = self.opts;
        let mut trainer = if opts.resume
            && (opts.out.join("checkpoint").exists() || opts.out.join("checkpoint.old").exists())
        {
            let (t, meta) = Trainer::load_to_resume(&opts.out, self.agent, self.device)?;
            self.check_resumed(&meta)?;
            truncate_metrics(&opts.out.join("metrics.jsonl"), t.step)?;
            t
        } else {
            if !opts.resume && opts.out.join("checkpoint").exists() {
                return Err(InputError::new(&opts.out, "", "this run folder already has a checkpoint: pass --resume to continue it, or choose another --out").into());
            }
            // A run killed before its first checkpoint may have logged steps already: they
            // are trained again, so their lines go.
            truncate_metrics(&opts.out.join("metrics.jsonl"), 0)?;
            let mut t = Trainer::new(self.agent.clone(), &self.data.shapes, self.device);
            t.set_input_statistics(&self.data);
            t
        };
        trainer.set_prediction_units(&self.data);
        if let Some(unit) = &trainer.prediction_scale {
            tracing::info!(
                "prediction error in units of one step's change per feature: {:?}",
                Vec::<f32>::try_from(unit.to_device(Device::Cpu)).unwrap_or_default()
            );
        }
        Ok(trainer)
    }

    /// A resumed run must go on with the data, shares and shapes it was trained on.
    fn check_resumed(&self, meta: &CheckpointMeta) -> anyhow::Result<()> {
        let (opts, data, first_data) = (self.opts, &self.data, self.first_data);
        if meta.dataset_digest != self.digest {
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
        Ok(())
    }

    /// The step to stop at (`--steps`, else `train.steps`); a cosine schedule ends at
    /// `train.steps`, where its learning rate is 0.
    fn total_steps(&self) -> anyhow::Result<i64> {
        let agent = self.agent;
        let total = self.opts.steps.unwrap_or(agent.train.steps);
        if agent.train.lr_schedule == LrSchedule::Cosine && total > agent.train.steps {
            return Err(InputError::new(
                &self.opts.agent_path,
                "train.steps",
                format!(
                    "--steps {total} goes past train.steps = {} under lr_schedule = \"cosine\", where the learning rate is 0: raise train.steps instead",
                    agent.train.steps
                ),
            )
            .into());
        }
        Ok(total)
    }

    /// The diagnostics of a validation (held-out subsets of 256 windows, 4000 frames).
    fn validate(&self, t: &Trainer) -> Diagnostics {
        diagnose(&t.model, &self.data, self.device, 256, 4000)
    }

    /// Saves `t` with its diagnostics into the run folder.
    fn checkpoint(&self, t: &Trainer, diagnostics: &Diagnostics) -> anyhow::Result<()> {
        t.save(&self.opts.out, &self.meta(t, Some(diagnostics.clone())))
    }

    /// The checkpoint's metadata at `t`'s step.
    fn meta(&self, t: &Trainer, d: Option<Diagnostics>) -> CheckpointMeta {
        let (opts, data) = (self.opts, &self.data);
        CheckpointMeta {
            format: CHECKPOINT_FORMAT.into(),
            step: t.step,
            seed: t.agent.train.seed,
            dataset: self.first_data.clone(),
            more_datasets: opts.data[1..].to_vec(),
            shares: data.shares.clone(),
            dataset_digest: self.digest.clone(),
            shapes: data.shapes.clone(),
            diagnostics: d,
            critic: t.critic_fit.clone(),
            env_step: Some(data.env_step.clone()),
        }
    }

    /// Fits the critic on the final encoder, then checkpoints it with fresh diagnostics.
    fn fit_final_critic(&self, trainer: &mut Trainer) -> anyhow::Result<(CriticFit, Diagnostics)> {
        let agent = self.agent;
        let cbar = progress_bar(
            self.opts.progress,
            agent.critic.steps as u64,
            "critic [{bar:25}] {pos}/{len} steps eta {eta} {msg}",
        );
        let fit = fit_critic(
            &trainer.model,
            &trainer.vs,
            &self.data,
            &agent.critic,
            agent.train.seed,
            &cbar,
        )?;
        cbar.finish_and_clear();
        trainer.critic_fit = Some(fit.clone());
        let diagnostics = self.validate(trainer);
        self.checkpoint(trainer, &diagnostics)?;
        Ok((fit, diagnostics))
    }
}

/// The step loop's own state: the progress bar, the clock and the step to stop at.
struct StepLoop<'a> {
    run: &'a Run<'a>,
    bar: &'a ProgressBar,
    start: Instant,
    total: i64,
    metrics_path: PathBuf,
}

impl StepLoop<'_> {
    /// Steps to `total`, validating and checkpointing every `validate_every` steps and at
    /// the end; returns the last validation's diagnostics (the default when none ran).
    fn step_until_total(&self, trainer: &mut Trainer) -> anyhow::Result<Diagnostics> {
        let mut diagnostics = Diagnostics::default();
        while trainer.step < self.total {
            let losses = trainer.train_step(&self.run.data);
            if !losses.total.is_finite() {
                self.bar.abandon();
                anyhow::bail!(
                    "loss became {} at step {} (level 1 {:?}); training stopped, the last good checkpoint in {} is kept",
                    losses.total,
                    trainer.step,
                    losses.level1,
                    self.run.opts.out.display()
                );
            }
            let last = losses;
            self.show_progress(trainer.step, &last);
            let validate = trainer.step % self.run.agent.train.validate_every == 0
                || trainer.step == self.total;
            if validate {
                diagnostics = self.validate(trainer, &last)?;
            } else if trainer.step % 10 == 0 {
                self.log(trainer.step, &last, None)?;
            }
        }
        Ok(diagnostics)
    }

    /// The bar's position and the last step's losses.
    fn show_progress(&self, step: i64, last: &StepLosses) {
        self.bar.set_position(step as u64);
        self.bar.set_message(format!(
            "loss {:.4} (pred {:.4}{})",
            last.total,
            last.level1.prediction,
            last.level2
                .as_ref()
                .map_or(String::new(), |l| format!(", L2 pred {:.4}", l.prediction))
        ));
    }

    /// A validation: diagnostics (stopping on diverged weights), the metrics line, the
    /// checkpoint and the plots.
    fn validate(&self, trainer: &Trainer, last: &StepLosses) -> anyhow::Result<Diagnostics> {
        let diagnostics = self.run.validate(trainer);
        if !diagnostics.finite() {
            self.bar.abandon();
            anyhow::bail!(
                "representations became non-finite at step {} (the weights diverged); training stopped, the last good checkpoint in {} is kept",
                trainer.step,
                self.run.opts.out.display()
            );
        }
        for a in diagnostics.alarms() {
            self.bar.println(a);
        }
        self.log(trainer.step, last, Some(&diagnostics))?;
        self.run.checkpoint(trainer, &diagnostics)?;
        if let Err(e) = crate::model::plots::write_run_plots(&self.run.opts.out) {
            self.bar
                .println(format!("warning: plots not written: {e:#}"));
        }
        Ok(diagnostics)
    }

    /// Appends the line of `step` to `metrics.jsonl`.
    fn log(
        &self,
        step: i64,
        losses: &StepLosses,
        validation: Option<&Diagnostics>,
    ) -> anyhow::Result<()> {
        append_metrics(
            &self.metrics_path,
            &MetricsLine {
                step,
                elapsed_s: self.start.elapsed().as_secs_f64(),
                losses,
                validation,
            },
        )
    }
}

/// `hjepa probe`: the diagnostics of a run's checkpoint on its dataset (or another one).
pub fn probe(
    run: &Path,
    data: Option<&Path>,
    device: Option<crate::device::Device>,
) -> anyhow::Result<Diagnostics> {
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
    match crate::model::checkpoint::check_scene_matches(&scene, &agent, &meta, run) {
        Ok(()) => {
            d.critic_map = crate::model::critic_map::critic_map(
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
