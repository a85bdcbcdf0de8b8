//! Datasets of episodes: safetensors shards plus a JSON manifest.
//!
//! Layout of a dataset folder:
//! - `manifest.json`: what was collected (scene file text and hash, policy, seed, counts,
//!   field names) and the finished shards with their SHA-256.
//! - `shard-00000.safetensors`, ...: shard k holds episodes `[k * shard_episodes, ...)`.
//!
//! Tensors in a shard (episode e has T_e actions and T_e + 1 observations):
//! - `obs_state` f32 `[sum(T_e + 1), D]`, `obs_image` u8 `[sum(T_e + 1), H, W, 3]` (if images),
//!   `state` f32 `[sum(T_e + 1), S]` (full physical state, for probes);
//! - `action` f32 `[sum(T_e), 2]`, `cost` f32 `[sum(T_e)]`;
//! - `obs_offsets`, `action_offsets` i64 `[E + 1]`: episode e's rows are
//!   `offsets[e]..offsets[e + 1]`;
//! - `episode_index` i64 `[E]`, `episode_seed` u64 `[E]`, `success` u8 `[E]`.
//!
//! Python: `safetensors.numpy.load_file("shard-00000.safetensors")` gives these as arrays.
//!
//! Crash safety: a shard is written to a temporary file, synced and renamed into place, and
//! only then listed in the manifest (itself replaced atomically). A kill at any moment leaves
//! every listed shard complete; rerunning `collect` redoes only the missing shards, and since
//! episode i is seeded by `episode_seed(seed, i)` the result is the same as an uninterrupted run.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::policy::PolicyKind;
use crate::error::InputError;
use crate::sim::Scene;

// Shards are encoded and decoded in `shard`; their old paths here keep working.
pub use super::shard::{encode_shard, read_shard, read_shard_with, shard_file_name};

pub const FORMAT: &str = "hjepa-dataset/1";
pub const MANIFEST: &str = "manifest.json";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub scene: String,
    /// The scene file's text, so the dataset says exactly what produced it.
    pub scene_source: String,
    pub scene_sha256: String,
    pub policy: DataPolicy,
    pub noise: f32,
    pub seed: u64,
    /// Episodes asked for (the dataset is complete when the shards cover them all).
    pub episodes: u64,
    pub shard_episodes: u64,
    pub obs_state_names: Vec<String>,
    /// `[height, width, 3]` when observations include images.
    pub image_shape: Option<[usize; 3]>,
    pub state_names: Vec<String>,
    pub action_low: [f32; 2],
    pub action_high: [f32; 2],
    pub shards: Vec<ShardEntry>,
}

/// Who acted in a dataset's episodes: a scripted policy (`hjepa collect --policy`, written
/// as its name) or a planning agent (`hjepa collect --agent`, written as `{"agent": …}`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DataPolicy {
    Scripted(PolicyKind),
    Agent { agent: AgentSource },
}

impl From<PolicyKind> for DataPolicy {
    fn from(kind: PolicyKind) -> DataPolicy {
        DataPolicy::Scripted(kind)
    }
}

/// What a planning agent's episodes were played with, so the dataset says exactly which
/// model made its choices and toward which goals.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentSource {
    /// The agent file as given, and the SHA-256 of its text.
    pub file: PathBuf,
    pub file_sha256: String,
    /// The run folder whose checkpoint planned, its training step and the SHA-256 of its
    /// weights (`model.safetensors`).
    pub checkpoint: PathBuf,
    pub checkpoint_step: i64,
    pub weights_sha256: String,
    /// Start/goal windows drawn from this dataset (digest over its shard hashes), the goal
    /// `goal_offset` control steps after the start.
    pub goals_from: PathBuf,
    pub goals_digest: String,
    pub goal_offset: u32,
    /// Every episode's length in control steps: episodes run to it, past a success.
    pub max_steps: u32,
    /// The criterion that decided success (each episode's `success`: reached at some step).
    pub success: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShardEntry {
    pub index: u64,
    pub file: String,
    pub first_episode: u64,
    pub episodes: u64,
    pub steps: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// One recorded episode.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpisodeRecord {
    pub index: u64,
    pub seed: u64,
    pub success: bool,
    /// T + 1 rows each.
    pub obs_state: Vec<Vec<f32>>,
    pub obs_image: Vec<Vec<u8>>,
    pub state: Vec<Vec<f32>>,
    /// T rows each.
    pub action: Vec<[f32; 2]>,
    pub cost: Vec<f32>,
    /// The values the scene's factors of variation took (empty without factors).
    pub factors: crate::sim::factors::Drawn,
}

impl Manifest {
    pub fn shard_count(&self) -> u64 {
        self.episodes.div_ceil(self.shard_episodes)
    }

    /// Episodes shard `k` must hold for this manifest's episode count.
    pub fn shard_range(&self, k: u64) -> (u64, u64) {
        let first = k * self.shard_episodes;
        (first, (first + self.shard_episodes).min(self.episodes))
    }

    /// Refuses a dataset recorded with another env step than `scene` has now (time step,
    /// substeps or frameskip, read from the scene text the manifest keeps): its transitions
    /// would teach a model, or give goals for, dynamics the scene no longer steps.
    pub fn check_env_step(&self, manifest_path: &Path, scene: &Scene) -> Result<(), InputError> {
        let recorded = Scene::parse(&self.scene_source, manifest_path)
            .map_err(|e| InputError::new(manifest_path, "scene_source", e.message))?;
        if let Some((field, was, now)) = recorded
            .physics
            .env_step()
            .first_difference(&scene.physics.env_step())
        {
            return Err(InputError::new(
                manifest_path,
                format!("scene_source.physics.{field}"),
                format!(
                    "recorded with {field} {was}, scene {} now has {now}: recollect the dataset",
                    scene.name
                ),
            ));
        }
        Ok(())
    }

    pub fn load(dir: &Path) -> Result<Manifest, InputError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            InputError::new(&path, "", format!("cannot read dataset manifest: {e}"))
        })?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| {
            InputError::new(
                &path,
                format!("line {}, column {}", e.line(), e.column()),
                e.to_string(),
            )
        })?;
        if m.format != FORMAT {
            return Err(InputError::new(
                &path,
                "format",
                format!("expected {FORMAT:?}, got {:?}", m.format),
            ));
        }
        m.check()
            .map_err(|(field, why)| InputError::new(&path, field, why))?;
        Ok(m)
    }

    /// The numbers a reader relies on: an action box, counts in range, and shards that
    /// follow one another (index, first episode) within the shard size.
    fn check(&self) -> Result<(), (String, String)> {
        let bad = |field: &str, why: String| Err((field.to_string(), why));
        let (lo, hi) = (self.action_low, self.action_high);
        if (0..2).any(|i| !(lo[i].is_finite() && hi[i].is_finite() && lo[i] < hi[i])) {
            return bad(
                "action_low",
                format!("expected finite bounds below action_high {hi:?}, got {lo:?}"),
            );
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return bad(
                "noise",
                format!("expected a number >= 0, got {}", self.noise),
            );
        }
        let max = crate::limits::MAX_EPISODES;
        if !(1..=max).contains(&self.episodes) || !(1..=max).contains(&self.shard_episodes) {
            return bad(
                "episodes",
                format!(
                    "expected episodes and shard_episodes from 1 to {max}, got {} and {}",
                    self.episodes, self.shard_episodes
                ),
            );
        }
        if let Some(shape) = self.image_shape {
            let side = crate::limits::MAX_IMAGE_SIDE as usize;
            if shape[2] != 3 || !(1..=side).contains(&shape[0]) || !(1..=side).contains(&shape[1]) {
                return bad(
                    "image_shape",
                    format!(
                        "expected [height, width, 3] with sides from 1 to {side}, got {shape:?}"
                    ),
                );
            }
        }
        let mut shards = self.shards.clone();
        shards.sort_by_key(|s| s.index);
        for (k, s) in shards.iter().enumerate() {
            let (first, end) = self.shard_range(k as u64);
            if s.index != k as u64 || s.first_episode != first || s.episodes != end - first {
                return bad(
                    &format!("shards[{k}]"),
                    format!(
                        "expected shard {k} to hold episodes {first}..{end}, the manifest says index {}, episodes {}..{}",
                        s.index,
                        s.first_episode,
                        s.first_episode.saturating_add(s.episodes)
                    ),
                );
            }
        }
        Ok(())
    }

    /// Writes the manifest atomically (temporary file, sync, rename).
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        write_atomic(&dir.join(MANIFEST), text.as_bytes())
    }

    /// Episodes held by the listed shards.
    pub fn episodes_done(&self) -> u64 {
        self.shards.iter().map(|s| s.episodes).sum()
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes a file so that readers see either nothing or the complete content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    {
        let mut f = File::create(&tmp)
            .map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
        .map_err(|e| anyhow::anyhow!("{}: cannot rename into place: {e}", path.display()))?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// An opened dataset: its manifest and folder.
pub struct Dataset {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Dataset {
    /// Opens a dataset and checks that every listed shard is present with its recorded size.
    pub fn open(dir: &Path) -> Result<Dataset, InputError> {
        let manifest = Manifest::load(dir)?;
        for s in &manifest.shards {
            let p = dir.join(&s.file);
            let len = std::fs::metadata(&p)
                .map_err(|e| {
                    InputError::new(
                        &p,
                        "",
                        format!("shard listed in the manifest is missing: {e}"),
                    )
                })?
                .len();
            if len != s.bytes {
                return Err(InputError::new(
                    &p,
                    "",
                    format!(
                        "truncated shard: {len} bytes, the manifest says {}",
                        s.bytes
                    ),
                ));
            }
        }
        Ok(Dataset {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// All episodes, shard by shard, in episode order.
    pub fn episodes(&self) -> Result<Vec<EpisodeRecord>, InputError> {
        self.read_episodes(true)
    }

    /// All episodes without their images (`obs_image` empty): what state-observation
    /// training and dataset goals need.
    pub fn episodes_without_images(&self) -> Result<Vec<EpisodeRecord>, InputError> {
        self.read_episodes(false)
    }

    fn read_episodes(&self, images: bool) -> Result<Vec<EpisodeRecord>, InputError> {
        let mut shards = self.manifest.shards.clone();
        shards.sort_by_key(|s| s.index);
        let mut out = Vec::new();
        for s in shards {
            let path = self.dir.join(&s.file);
            let episodes = read_shard_with(&path, &self.manifest, images)?;
            let steps: u64 = episodes.iter().map(|e| e.action.len() as u64).sum();
            if episodes.len() as u64 != s.episodes || steps != s.steps {
                return Err(InputError::new(
                    &path,
                    "",
                    format!(
                        "holds {} episodes of {steps} steps, the manifest says {} of {}",
                        episodes.len(),
                        s.episodes,
                        s.steps
                    ),
                ));
            }
            out.extend(episodes);
        }
        Ok(out)
    }

    /// Re-hashes every shard against the manifest.
    pub fn verify(&self) -> Result<(), InputError> {
        for s in &self.manifest.shards {
            let p = self.dir.join(&s.file);
            let bytes = std::fs::read(&p)
                .map_err(|e| InputError::new(&p, "", format!("cannot read shard: {e}")))?;
            if sha256_hex(&bytes) != s.sha256 {
                return Err(InputError::new(
                    &p,
                    "",
                    "SHA-256 differs from the manifest: the shard is corrupt",
                ));
            }
        }
        Ok(())
    }
}
