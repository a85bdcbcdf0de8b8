//! Checkpoints: a run folder's `checkpoint/` holds the weights (`model.safetensors`, and
//! `target.safetensors` for an EMA target), the optimizer's moments, the model
//! configuration it was trained with (`agent.toml`) and `meta.json`. Planning loads the
//! inference parts alone ([`TrainedModel`]); resuming a training loads everything
//! (`Trainer::load_to_resume`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

use super::config::{ModelConfig, ObservationKind};
use super::critic::CriticFit;
use super::probe::Diagnostics;
use super::world_model::{ModelShapes, WorldModel};
use crate::data::dataset::sha256_hex;
use crate::data::Dataset;
use crate::error::InputError;
use crate::sim::scene::EnvStep;
use crate::sim::{Env, Scene};

pub const CHECKPOINT_FORMAT: &str = "hjepa-checkpoint/1";

/// What a checkpoint says about itself (`meta.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckpointMeta {
    pub format: String,
    pub step: i64,
    pub seed: u64,
    pub dataset: PathBuf,
    /// Datasets trained on together with `dataset` (`hjepa train --data A --data B`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_datasets: Vec<PathBuf>,
    /// Each dataset's share of the batches (`hjepa train --shares`), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<Vec<f64>>,
    /// SHA-256 over the dataset's shard hashes (with several datasets, over their digests in
    /// order): the exact data trained on.
    pub dataset_digest: String,
    pub shapes: ModelShapes,
    pub diagnostics: Option<Diagnostics>,
    /// The critic's fitting stage, once done (it runs after the last training step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critic: Option<CriticFit>,
    /// The scene's env step the model learned (absent in checkpoints from before it was
    /// recorded): planning in a scene stepped otherwise is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_step: Option<EnvStep>,
}

pub fn dataset_digest(ds: &Dataset) -> String {
    let joined: String = ds
        .manifest
        .shards
        .iter()
        .map(|s| s.sha256.as_str())
        .collect::<Vec<_>>()
        .join(",");
    sha256_hex(joined.as_bytes())
}

/// [`dataset_digest`] of one dataset; of several, the digest of their digests in order.
pub fn datasets_digest(datasets: &[Dataset]) -> String {
    match datasets {
        [one] => dataset_digest(one),
        many => sha256_hex(
            many.iter()
                .map(dataset_digest)
                .collect::<Vec<_>>()
                .join(",")
                .as_bytes(),
        ),
    }
}

impl CheckpointMeta {
    /// Every dataset the run was trained on, in order.
    pub fn datasets(&self) -> Vec<PathBuf> {
        [vec![self.dataset.clone()], self.more_datasets.clone()].concat()
    }
}

pub fn checkpoint_dir(run: &Path) -> Result<PathBuf, InputError> {
    for name in ["checkpoint", "checkpoint.old"] {
        let d = run.join(name);
        if d.join("meta.json").exists() {
            return Ok(d);
        }
    }
    Err(InputError::new(
        run,
        "",
        "no checkpoint in this run folder (expected checkpoint/meta.json)",
    ))
}

/// The first top-level key where two agent configs differ, for error messages.
fn first_difference(a: &ModelConfig, b: &ModelConfig) -> String {
    let (ta, tb) = (toml::Value::try_from(a).ok(), toml::Value::try_from(b).ok());
    fn walk(prefix: &str, a: &toml::Value, b: &toml::Value) -> Option<String> {
        match (a, b) {
            (toml::Value::Table(x), toml::Value::Table(y)) => {
                for (k, va) in x {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    match y.get(k) {
                        Some(vb) => {
                            if let Some(d) = walk(&key, va, vb) {
                                return Some(d);
                            }
                        }
                        None => return Some(key),
                    }
                }
                None
            }
            _ if a != b => Some(format!("{prefix} (checkpoint: {b}, given: {a})")),
            _ => None,
        }
    }
    match (ta, tb) {
        (Some(x), Some(y)) => walk("", &x, &y).unwrap_or_default(),
        _ => String::new(),
    }
}

/// Loads weights, refusing any missing, extra or differently shaped tensor (tch's own load
/// would broadcast a [1] tensor into a [64] variable without a word). Variables under `skip`
/// (a name prefix) keep their fresh values and the checkpoint's may differ or be absent.
pub(super) fn load_exact(
    vs: &mut nn::VarStore,
    path: &Path,
    skip: Option<&str>,
) -> Result<(), InputError> {
    let saved: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(|e| InputError::new(path, "", format!("corrupt or truncated weights: {e}")))?
        .into_iter()
        .collect();
    let skipped = |name: &str| skip.is_some_and(|p| name.starts_with(p));
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    for (name, var) in vars.iter().filter(|(n, _)| !skipped(n)) {
        match saved.get(name) {
            None => {
                return Err(InputError::new(
                    path,
                    name,
                    "tensor missing from the checkpoint",
                ))
            }
            Some(s) if s.size() != var.size() => {
                return Err(InputError::new(
                    path,
                    name,
                    format!(
                        "shape {:?} in the checkpoint, {:?} in the model",
                        s.size(),
                        var.size()
                    ),
                ))
            }
            Some(s) => {
                tch::no_grad(|| var.shallow_clone().copy_(s));
            }
        }
    }
    if let Some(extra) = saved.keys().find(|k| !vars.contains_key(*k) && !skipped(k)) {
        return Err(InputError::new(
            path,
            extra,
            "tensor in the checkpoint that the model does not have",
        ));
    }
    Ok(())
}

/// A checkpoint's metadata and configuration, checked against the configuration given.
pub(super) struct Saved {
    pub dir: PathBuf,
    pub meta: CheckpointMeta,
    /// The configuration to build the model from: the checkpoint's, with a `[critic]` table
    /// given anew where that is allowed.
    pub config: ModelConfig,
    /// The given `[critic]` differs from the fitted one: refit it.
    pub refit_critic: bool,
    /// Variables (by name prefix) whose saved values are not loaded.
    pub skip: Option<&'static str>,
}

impl Saved {
    /// Reads `run`'s checkpoint (or the previous one if a crash hit between the renames).
    /// With `agent`, its configuration must be the checkpoint's (but for the training seed,
    /// and with `allow_critic_change`, the `[critic]` table).
    pub fn read(
        run: &Path,
        agent: Option<&ModelConfig>,
        allow_critic_change: bool,
    ) -> Result<Saved, InputError> {
        let dir = checkpoint_dir(run)?;
        let meta_path = dir.join("meta.json");
        let meta = read_meta(&meta_path)?;
        let agent_path = dir.join("agent.toml");
        let mut saved = ModelConfig::load(&agent_path)?;
        saved
            .check_shapes(&meta.shapes)
            .map_err(|(key, why)| InputError::new(&meta_path, key, why))?;
        // What the fit did, not the defaults of fields newer than the checkpoint's file.
        if let Some(fit) = &meta.critic {
            saved.critic.predicted = fit.predicted;
            if fit.predicted_steps > 0 {
                saved.critic.predicted_steps = fit.predicted_steps;
            }
        }
        // A changed [critic] table alone is allowed: the critic is fitted after training on
        // the frozen encoder, so it is refitted without retraining the world model.
        let mut refit_critic = false;
        if let Some(a) = agent {
            let without_critic = |x: &ModelConfig| ModelConfig {
                critic: if allow_critic_change {
                    Default::default()
                } else {
                    x.critic.clone()
                },
                ..x.clone()
            };
            let (mut a_wo, saved_wo) = (without_critic(a), without_critic(&saved));
            // Planning with a checkpoint trained with `--seed` (a committee's peer, or one
            // training of several) needs no agent file per seed; resuming keeps the seed.
            if !allow_critic_change {
                a_wo.train.seed = saved_wo.train.seed;
            }
            if a_wo != saved_wo {
                let field = first_difference(&a_wo, &saved_wo);
                let why = if field.starts_with("critic.") {
                    "the checkpoint's critic was fitted with different [critic] settings than the ones given (`hjepa train --resume` refits it without retraining the model)"
                } else {
                    "the checkpoint was trained with a different agent configuration than the one given"
                };
                return Err(InputError::new(&agent_path, field, why));
            }
            if a.critic != saved.critic {
                refit_critic = true;
                saved.critic = a.critic.clone();
            }
        }
        // An unfitted critic (training stopped before the fitting stage) has nothing to keep.
        // The prefix covers both critics (`critic.`, `critic2.`).
        let skip =
            (refit_critic || (allow_critic_change && meta.critic.is_none())).then_some("critic");
        Ok(Saved {
            dir,
            meta,
            config: saved,
            refit_critic,
            skip,
        })
    }
}

/// A trained world model for inference: the weights of a checkpoint, without optimizer
/// state or EMA target. What planning, probing and the benches load.
pub struct TrainedModel {
    pub config: ModelConfig,
    pub device: Device,
    pub vs: nn::VarStore,
    pub model: WorldModel,
    pub meta: CheckpointMeta,
}

impl TrainedModel {
    /// Loads `run`'s inference weights; with `agent`, its configuration must be the
    /// checkpoint's (the training seed aside: a committee's peers share one agent file).
    pub fn load(
        run: &Path,
        agent: Option<&ModelConfig>,
        device: Device,
    ) -> Result<TrainedModel, InputError> {
        let Saved {
            dir,
            meta,
            config,
            skip,
            ..
        } = Saved::read(run, agent, false)?;
        // Built as a training would be (same seed, same variable order), then overwritten.
        tch::manual_seed(config.train.seed as i64);
        let mut vs = nn::VarStore::new(device);
        let model = WorldModel::new(&vs.root(), &config, &meta.shapes);
        load_exact(&mut vs, &dir.join("model.safetensors"), skip)?;
        Ok(TrainedModel {
            config,
            device,
            vs,
            model,
            meta,
        })
    }
}

/// The scene must produce the observations the checkpoint was trained on, at its env step.
pub fn check_scene_matches(
    scene: &Scene,
    agent: &ModelConfig,
    checkpoint: &CheckpointMeta,
    run: &Path,
) -> Result<(), InputError> {
    let meta = run.join("checkpoint/meta.json");
    let shapes = &checkpoint.shapes;
    let (scene_shape, what): (Vec<i64>, &str) = match agent.perception.observation {
        ObservationKind::Pixels => match &scene.observation.image {
            Some(i) => (vec![i.height as i64, i.width as i64, 3], "image"),
            None => {
                return Err(InputError::new(
                    &meta,
                    "shapes.observation",
                    format!(
                        "the checkpoint reads pixels but scene {} renders no images",
                        scene.name
                    ),
                ))
            }
        },
        ObservationKind::State => {
            let env = Env::new(std::sync::Arc::new(scene.clone()));
            (
                vec![env.observation_state_names().len() as i64],
                "state vector",
            )
        }
    };
    if scene_shape != shapes.observation {
        return Err(InputError::new(
            &meta,
            "shapes.observation",
            format!("the checkpoint was trained on {what} observations of shape {:?}; scene {} gives {:?}", shapes.observation, scene.name, scene_shape),
        ));
    }
    if let Some((field, trained, now)) = checkpoint
        .env_step
        .as_ref()
        .and_then(|e| e.first_difference(&scene.physics.env_step()))
    {
        return Err(InputError::new(
            &meta,
            format!("env_step.{field}"),
            format!(
                "the checkpoint was trained with {field} {trained}; scene {} now steps with {now}: recollect its dataset and retrain",
                scene.name
            ),
        ));
    }
    Ok(())
}

/// A checkpoint's `meta.json`, refused (naming the file) when it is not JSON of this
/// version's format.
fn read_meta(meta_path: &Path) -> Result<CheckpointMeta, InputError> {
    let text = std::fs::read_to_string(meta_path)
        .map_err(|e| InputError::new(meta_path, "", format!("cannot read: {e}")))?;
    let meta: CheckpointMeta = serde_json::from_str(&text).map_err(|e| {
        InputError::new(
            meta_path,
            format!("line {}, column {}", e.line(), e.column()),
            e.to_string(),
        )
    })?;
    if meta.format != CHECKPOINT_FORMAT {
        return Err(InputError::new(
            meta_path,
            "format",
            format!(
                "expected {CHECKPOINT_FORMAT:?}, got {:?} (a checkpoint of another hjepa version: retrain it, or use the version that wrote it)",
                meta.format
            ),
        ));
    }
    Ok(meta)
}
