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

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::policy::PolicyKind;
use crate::error::InputError;
use crate::sim::Scene;

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
        Ok(m)
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

fn f32_bytes(v: impl IntoIterator<Item = f32>) -> Vec<u8> {
    v.into_iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i64_bytes(v: impl IntoIterator<Item = i64>) -> Vec<u8> {
    v.into_iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn shard_file_name(k: u64) -> String {
    format!("shard-{k:05}.safetensors")
}

/// Serialises episodes into one shard's bytes.
pub fn encode_shard(
    episodes: &[EpisodeRecord],
    image_shape: Option<[usize; 3]>,
    metadata: HashMap<String, String>,
) -> anyhow::Result<Vec<u8>> {
    let n_obs: usize = episodes.iter().map(|e| e.obs_state.len()).sum();
    let n_act: usize = episodes.iter().map(|e| e.action.len()).sum();
    let d = episodes.first().map_or(0, |e| e.obs_state[0].len());
    let s = episodes.first().map_or(0, |e| e.state[0].len());
    let mut obs_off = vec![0i64];
    let mut act_off = vec![0i64];
    for e in episodes {
        anyhow::ensure!(
            e.obs_state.len() == e.action.len() + 1,
            "episode {} has {} observations for {} actions",
            e.index,
            e.obs_state.len(),
            e.action.len()
        );
        obs_off.push(obs_off.last().unwrap() + e.obs_state.len() as i64);
        act_off.push(act_off.last().unwrap() + e.action.len() as i64);
    }
    let mut buffers: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        (
            "obs_state",
            Dtype::F32,
            vec![n_obs, d],
            f32_bytes(
                episodes
                    .iter()
                    .flat_map(|e| e.obs_state.iter().flatten().copied()),
            ),
        ),
        (
            "state",
            Dtype::F32,
            vec![n_obs, s],
            f32_bytes(
                episodes
                    .iter()
                    .flat_map(|e| e.state.iter().flatten().copied()),
            ),
        ),
        (
            "action",
            Dtype::F32,
            vec![n_act, 2],
            f32_bytes(
                episodes
                    .iter()
                    .flat_map(|e| e.action.iter().flatten().copied()),
            ),
        ),
        (
            "cost",
            Dtype::F32,
            vec![n_act],
            f32_bytes(episodes.iter().flat_map(|e| e.cost.iter().copied())),
        ),
        (
            "obs_offsets",
            Dtype::I64,
            vec![episodes.len() + 1],
            i64_bytes(obs_off),
        ),
        (
            "action_offsets",
            Dtype::I64,
            vec![episodes.len() + 1],
            i64_bytes(act_off),
        ),
        (
            "episode_index",
            Dtype::I64,
            vec![episodes.len()],
            i64_bytes(episodes.iter().map(|e| e.index as i64)),
        ),
        (
            "episode_seed",
            Dtype::U64,
            vec![episodes.len()],
            episodes.iter().flat_map(|e| e.seed.to_le_bytes()).collect(),
        ),
        (
            "success",
            Dtype::U8,
            vec![episodes.len()],
            episodes.iter().map(|e| e.success as u8).collect(),
        ),
    ];
    if let Some([h, w, c]) = image_shape {
        let bytes: Vec<u8> = episodes
            .iter()
            .flat_map(|e| e.obs_image.iter().flatten().copied())
            .collect();
        anyhow::ensure!(
            bytes.len() == n_obs * h * w * c,
            "image bytes do not match {n_obs} x {h} x {w} x {c}"
        );
        buffers.push(("obs_image", Dtype::U8, vec![n_obs, h, w, c], bytes));
    }
    let views: Vec<(&str, TensorView)> = buffers
        .iter()
        .map(|(name, dt, shape, bytes)| Ok((*name, TensorView::new(*dt, shape.clone(), bytes)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    Ok(safetensors::serialize(views, Some(metadata))?)
}

/// A shard read back into episodes, with every shape checked.
pub fn read_shard(path: &Path, manifest: &Manifest) -> Result<Vec<EpisodeRecord>, InputError> {
    read_shard_with(path, manifest, true)
}

/// [`read_shard`]; without `images` the frames are checked but not copied (`obs_image`
/// stays empty): state-observation training on 3000 Push-T episodes otherwise needs 24 GB.
pub fn read_shard_with(
    path: &Path,
    manifest: &Manifest,
    images: bool,
) -> Result<Vec<EpisodeRecord>, InputError> {
    let bytes = std::fs::read(path)
        .map_err(|e| InputError::new(path, "", format!("cannot read shard: {e}")))?;
    let bad = |field: &str, msg: String| InputError::new(path, field, msg);
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| bad("", format!("corrupt or truncated shard: {e}")))?;
    let get = |name: &str, dtype: Dtype| -> Result<TensorView, InputError> {
        let t = st
            .tensor(name)
            .map_err(|_| bad(name, "tensor missing".into()))?;
        if t.dtype() != dtype {
            return Err(bad(
                name,
                format!("expected dtype {dtype:?}, got {:?}", t.dtype()),
            ));
        }
        Ok(t)
    };
    let f32s = |t: &TensorView| -> Vec<f32> {
        t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let i64s = |t: &TensorView| -> Vec<i64> {
        t.data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let obs_off = i64s(&get("obs_offsets", Dtype::I64)?);
    let act_off = i64s(&get("action_offsets", Dtype::I64)?);
    let index = i64s(&get("episode_index", Dtype::I64)?);
    let seeds: Vec<u64> = get("episode_seed", Dtype::U64)?
        .data()
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let success = get("success", Dtype::U8)?.data().to_vec();
    let obs_state_t = get("obs_state", Dtype::F32)?;
    let state_t = get("state", Dtype::F32)?;
    let d = manifest.obs_state_names.len();
    let s = manifest.state_names.len();
    let n_obs = *obs_off.last().unwrap_or(&0) as usize;
    let n_act = *act_off.last().unwrap_or(&0) as usize;
    if obs_state_t.shape() != [n_obs, d] {
        return Err(bad(
            "obs_state",
            format!(
                "expected shape [{n_obs}, {d}] from the manifest, got {:?}",
                obs_state_t.shape()
            ),
        ));
    }
    if state_t.shape() != [n_obs, s] {
        return Err(bad(
            "state",
            format!("expected shape [{n_obs}, {s}], got {:?}", state_t.shape()),
        ));
    }
    let action_t = get("action", Dtype::F32)?;
    if action_t.shape() != [n_act, 2] {
        return Err(bad(
            "action",
            format!("expected shape [{n_act}, 2], got {:?}", action_t.shape()),
        ));
    }
    let cost = f32s(&get("cost", Dtype::F32)?);
    let image_t = match manifest.image_shape {
        Some([h, w, c]) => {
            let t = get("obs_image", Dtype::U8)?;
            if t.shape() != [n_obs, h, w, c] {
                return Err(bad(
                    "obs_image",
                    format!(
                        "expected shape [{n_obs}, {h}, {w}, {c}], got {:?}",
                        t.shape()
                    ),
                ));
            }
            Some(t)
        }
        None => None,
    };
    let e = index.len();
    if obs_off.len() != e + 1
        || act_off.len() != e + 1
        || seeds.len() != e
        || success.len() != e
        || cost.len() != n_act
    {
        return Err(bad(
            "",
            "per-episode tensors disagree on the number of episodes".into(),
        ));
    }
    let (obs_state, state, action) = (f32s(&obs_state_t), f32s(&state_t), f32s(&action_t));
    let px = manifest.image_shape.map_or(0, |[h, w, c]| h * w * c);
    let mut out = Vec::with_capacity(e);
    for i in 0..e {
        let (o0, o1, a0, a1) = (
            obs_off[i] as usize,
            obs_off[i + 1] as usize,
            act_off[i] as usize,
            act_off[i + 1] as usize,
        );
        if o1 < o0 || a1 < a0 || o1 - o0 != a1 - a0 + 1 || o1 > n_obs || a1 > n_act {
            return Err(bad(
                "obs_offsets",
                format!("episode {i} has inconsistent offsets"),
            ));
        }
        out.push(EpisodeRecord {
            index: index[i] as u64,
            seed: seeds[i],
            success: success[i] != 0,
            obs_state: (o0..o1)
                .map(|r| obs_state[r * d..(r + 1) * d].to_vec())
                .collect(),
            obs_image: image_t.as_ref().filter(|_| images).map_or(Vec::new(), |t| {
                (o0..o1)
                    .map(|r| t.data()[r * px..(r + 1) * px].to_vec())
                    .collect()
            }),
            state: (o0..o1)
                .map(|r| state[r * s..(r + 1) * s].to_vec())
                .collect(),
            action: (a0..a1)
                .map(|r| [action[2 * r], action[2 * r + 1]])
                .collect(),
            cost: cost[a0..a1].to_vec(),
        });
    }
    Ok(out)
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
            out.extend(read_shard_with(
                &self.dir.join(&s.file),
                &self.manifest,
                images,
            )?);
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
