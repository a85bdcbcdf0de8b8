//! One shard of a dataset: episodes serialised into safetensors bytes, and read back with
//! every shape checked (the tensors are listed in `dataset`'s documentation).

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use super::dataset::{EpisodeRecord, Manifest};
use crate::error::InputError;

/// One tensor to write: name, dtype, shape and little-endian bytes.
type Buffer = (&'static str, Dtype, Vec<usize>, Vec<u8>);

pub fn shard_file_name(k: u64) -> String {
    format!("shard-{k:05}.safetensors")
}

/// Row counts (observations, actions) and row widths (observation state, physical state)
/// of a shard's tensors.
#[derive(Clone, Copy)]
struct Rows {
    n_obs: usize,
    n_act: usize,
    d: usize,
    s: usize,
}

impl Rows {
    /// The rows of `episodes`, widths taken from the first one.
    fn of(episodes: &[EpisodeRecord]) -> Rows {
        Rows {
            n_obs: episodes.iter().map(|e| e.obs_state.len()).sum(),
            n_act: episodes.iter().map(|e| e.action.len()).sum(),
            d: episodes.first().map_or(0, |e| e.obs_state[0].len()),
            s: episodes.first().map_or(0, |e| e.state[0].len()),
        }
    }
}

/// Serialises episodes into one shard's bytes.
pub fn encode_shard(
    episodes: &[EpisodeRecord],
    image_shape: Option<[usize; 3]>,
    metadata: HashMap<String, String>,
) -> anyhow::Result<Vec<u8>> {
    let rows = Rows::of(episodes);
    let (obs_off, act_off) = episode_offsets(episodes)?;
    // The tensors in their historical order, so a shard's bytes (and hash) never change.
    let mut buffers = row_buffers(episodes, rows);
    buffers.extend(episode_buffers(episodes, obs_off, act_off));
    if let Some(shape) = image_shape {
        buffers.push(image_buffer(episodes, rows.n_obs, shape)?);
    }
    let views: Vec<(&str, TensorView)> = buffers
        .iter()
        .map(|(name, dt, shape, bytes)| Ok((*name, TensorView::new(*dt, shape.clone(), bytes)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    Ok(safetensors::serialize(views, Some(metadata))?)
}

/// Each episode's first observation and action row (and one past the last), refusing an
/// episode without one more observation than actions.
fn episode_offsets(episodes: &[EpisodeRecord]) -> anyhow::Result<(Vec<i64>, Vec<i64>)> {
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
    Ok((obs_off, act_off))
}

/// The per-row tensors: observation state, physical state, action and cost.
fn row_buffers(episodes: &[EpisodeRecord], rows: Rows) -> Vec<Buffer> {
    let Rows { n_obs, n_act, d, s } = rows;
    vec![
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
    ]
}

/// The per-episode tensors: row offsets, indices, seeds and success flags.
fn episode_buffers(
    episodes: &[EpisodeRecord],
    obs_off: Vec<i64>,
    act_off: Vec<i64>,
) -> Vec<Buffer> {
    vec![
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
    ]
}

/// The frames of every observation row, refused unless they fill `[n_obs, h, w, c]`.
fn image_buffer(
    episodes: &[EpisodeRecord],
    n_obs: usize,
    [h, w, c]: [usize; 3],
) -> anyhow::Result<Buffer> {
    let bytes: Vec<u8> = episodes
        .iter()
        .flat_map(|e| e.obs_image.iter().flatten().copied())
        .collect();
    anyhow::ensure!(
        bytes.len() == n_obs * h * w * c,
        "image bytes do not match {n_obs} x {h} x {w} x {c}"
    );
    Ok(("obs_image", Dtype::U8, vec![n_obs, h, w, c], bytes))
}

fn f32_bytes(v: impl IntoIterator<Item = f32>) -> Vec<u8> {
    v.into_iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i64_bytes(v: impl IntoIterator<Item = i64>) -> Vec<u8> {
    v.into_iter().flat_map(|x| x.to_le_bytes()).collect()
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
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| InputError::new(path, "", format!("corrupt or truncated shard: {e}")))?;
    let shard = ShardFile { path, st };
    // Checks run in this order; the first failure is the one reported.
    let index = shard.episode_index()?;
    let columns = shard.columns(manifest, &index)?;
    shard.check_episode_count(&index, &columns)?;
    shard.check_finite(&index, &columns, manifest)?;
    let mut episodes = shard.episodes(&index, &columns, manifest, images)?;
    if let Some(factors) = shard_factors(&bytes, path, episodes.len())? {
        for (ep, f) in episodes.iter_mut().zip(factors) {
            ep.factors = f;
        }
    }
    Ok(episodes)
}

/// Each episode's values of the scene's factors of variation, from the shard's metadata
/// (None when the scene has none).
fn shard_factors(
    bytes: &[u8],
    path: &Path,
    episodes: usize,
) -> Result<Option<Vec<crate::sim::factors::Drawn>>, InputError> {
    let bad = |msg: String| InputError::new(path, "__metadata__.hjepa.factors", msg);
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| InputError::new(path, "", format!("corrupt or truncated shard: {e}")))?;
    let Some(text) = header.metadata().as_ref().and_then(|m| m.get("hjepa")) else {
        return Ok(None);
    };
    let meta: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Some(f) = meta.get("factors") else {
        return Ok(None);
    };
    let factors: Vec<crate::sim::factors::Drawn> = serde_json::from_value(f.clone())
        .map_err(|e| bad(format!("expected one map of values per episode: {e}")))?;
    if factors.len() != episodes {
        return Err(bad(format!(
            "{} entries for {episodes} episodes",
            factors.len()
        )));
    }
    Ok(Some(factors))
}

/// A deserialised shard and the file it came from, which every refusal names.
struct ShardFile<'a> {
    path: &'a Path,
    st: SafeTensors<'a>,
}

/// The per-episode tensors of a shard.
struct EpisodeIndex {
    obs_off: Vec<i64>,
    act_off: Vec<i64>,
    index: Vec<i64>,
    seeds: Vec<u64>,
    success: Vec<u8>,
}

/// The per-row tensors of a shard, shapes checked, and their row counts and widths.
struct Columns<'a> {
    obs_state: TensorView<'a>,
    state: TensorView<'a>,
    action: TensorView<'a>,
    cost: Vec<f32>,
    image: Option<TensorView<'a>>,
    rows: Rows,
}

impl<'a> ShardFile<'a> {
    /// A refusal naming this shard's file and `field`.
    fn bad(&self, field: &str, msg: String) -> InputError {
        InputError::new(self.path, field, msg)
    }

    /// A tensor by name, refused when missing or of another dtype.
    fn get(&self, name: &str, dtype: Dtype) -> Result<TensorView<'a>, InputError> {
        let t = self
            .st
            .tensor(name)
            .map_err(|_| self.bad(name, "tensor missing".into()))?;
        if t.dtype() != dtype {
            return Err(self.bad(
                name,
                format!("expected dtype {dtype:?}, got {:?}", t.dtype()),
            ));
        }
        Ok(t)
    }

    /// The per-episode tensors, read in file-format order.
    fn episode_index(&self) -> Result<EpisodeIndex, InputError> {
        Ok(EpisodeIndex {
            obs_off: i64s(&self.get("obs_offsets", Dtype::I64)?),
            act_off: i64s(&self.get("action_offsets", Dtype::I64)?),
            index: i64s(&self.get("episode_index", Dtype::I64)?),
            seeds: self
                .get("episode_seed", Dtype::U64)?
                .data()
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            success: self.get("success", Dtype::U8)?.data().to_vec(),
        })
    }

    /// The per-row tensors, their shapes checked against the manifest and the offsets.
    fn columns(&self, manifest: &Manifest, ix: &EpisodeIndex) -> Result<Columns<'a>, InputError> {
        let obs_state = self.get("obs_state", Dtype::F32)?;
        let state = self.get("state", Dtype::F32)?;
        let d = manifest.obs_state_names.len();
        let s = manifest.state_names.len();
        let n_obs = *ix.obs_off.last().unwrap_or(&0) as usize;
        let n_act = *ix.act_off.last().unwrap_or(&0) as usize;
        if obs_state.shape() != [n_obs, d] {
            return Err(self.bad(
                "obs_state",
                format!(
                    "expected shape [{n_obs}, {d}] from the manifest, got {:?}",
                    obs_state.shape()
                ),
            ));
        }
        if state.shape() != [n_obs, s] {
            return Err(self.bad(
                "state",
                format!("expected shape [{n_obs}, {s}], got {:?}", state.shape()),
            ));
        }
        let action = self.get("action", Dtype::F32)?;
        if action.shape() != [n_act, 2] {
            return Err(self.bad(
                "action",
                format!("expected shape [{n_act}, 2], got {:?}", action.shape()),
            ));
        }
        let cost = f32s(&self.get("cost", Dtype::F32)?);
        let image = self.image_column(manifest, n_obs)?;
        Ok(Columns {
            obs_state,
            state,
            action,
            cost,
            image,
            rows: Rows { n_obs, n_act, d, s },
        })
    }

    /// Refuses a NaN or infinity in a float column, naming the column's field, the episode
    /// and the step, so a damaged dataset stops `inspect` and `train` before a NaN loss.
    fn check_finite(
        &self,
        ix: &EpisodeIndex,
        c: &Columns,
        manifest: &Manifest,
    ) -> Result<(), InputError> {
        let action_names = ["action.x".to_string(), "action.y".to_string()];
        let columns = [
            (
                "obs_state",
                f32s(&c.obs_state),
                &manifest.obs_state_names[..],
                &ix.obs_off,
            ),
            (
                "state",
                f32s(&c.state),
                &manifest.state_names[..],
                &ix.obs_off,
            ),
            ("action", f32s(&c.action), &action_names[..], &ix.act_off),
            ("cost", c.cost.clone(), &[][..], &ix.act_off),
        ];
        for (tensor, values, names, offsets) in columns {
            let Some(i) = values.iter().position(|v| !v.is_finite()) else {
                continue;
            };
            let width = names.len().max(1);
            let row = (i / width) as i64;
            // offsets[e]..offsets[e + 1] are episode e's rows.
            let e = offsets.partition_point(|&o| o <= row).saturating_sub(1);
            let episode = ix.index.get(e).copied().unwrap_or(e as i64);
            let step = row - offsets.get(e).copied().unwrap_or(0);
            let field = names
                .get(i % width)
                .map_or(tensor.to_string(), |n| format!("{tensor}.{n}"));
            return Err(self.bad(
                &field,
                format!(
                    "episode {episode}, step {step}: {} is not a finite number (the dataset is damaged: collect it again)",
                    values[i]
                ),
            ));
        }
        Ok(())
    }

    /// The frames, where the manifest has images, their shape checked.
    fn image_column(
        &self,
        manifest: &Manifest,
        n_obs: usize,
    ) -> Result<Option<TensorView<'a>>, InputError> {
        match manifest.image_shape {
            Some([h, w, c]) => {
                let t = self.get("obs_image", Dtype::U8)?;
                if t.shape() != [n_obs, h, w, c] {
                    return Err(self.bad(
                        "obs_image",
                        format!(
                            "expected shape [{n_obs}, {h}, {w}, {c}], got {:?}",
                            t.shape()
                        ),
                    ));
                }
                Ok(Some(t))
            }
            None => Ok(None),
        }
    }

    /// Every per-episode tensor must count the same episodes, and the costs the actions.
    fn check_episode_count(&self, ix: &EpisodeIndex, cols: &Columns) -> Result<(), InputError> {
        let e = ix.index.len();
        if ix.obs_off.len() != e + 1
            || ix.act_off.len() != e + 1
            || ix.seeds.len() != e
            || ix.success.len() != e
            || cols.cost.len() != cols.rows.n_act
        {
            return Err(self.bad(
                "",
                "per-episode tensors disagree on the number of episodes".into(),
            ));
        }
        Ok(())
    }

    /// The rows split into episodes by the offsets, which must fit the rows; frames are
    /// copied only with `images`.
    fn episodes(
        &self,
        ix: &EpisodeIndex,
        cols: &Columns,
        manifest: &Manifest,
        images: bool,
    ) -> Result<Vec<EpisodeRecord>, InputError> {
        let e = ix.index.len();
        let Rows { n_obs, n_act, d, s } = cols.rows;
        let (obs_state, state, action) =
            (f32s(&cols.obs_state), f32s(&cols.state), f32s(&cols.action));
        let px = manifest.image_shape.map_or(0, |[h, w, c]| h * w * c);
        let mut out = Vec::with_capacity(e);
        for i in 0..e {
            let (o0, o1, a0, a1) = (
                ix.obs_off[i] as usize,
                ix.obs_off[i + 1] as usize,
                ix.act_off[i] as usize,
                ix.act_off[i + 1] as usize,
            );
            if o1 < o0 || a1 < a0 || o1 - o0 != a1 - a0 + 1 || o1 > n_obs || a1 > n_act {
                return Err(self.bad(
                    "obs_offsets",
                    format!("episode {i} has inconsistent offsets"),
                ));
            }
            out.push(EpisodeRecord {
                index: ix.index[i] as u64,
                seed: ix.seeds[i],
                success: ix.success[i] != 0,
                obs_state: (o0..o1)
                    .map(|r| obs_state[r * d..(r + 1) * d].to_vec())
                    .collect(),
                obs_image: cols
                    .image
                    .as_ref()
                    .filter(|_| images)
                    .map_or(Vec::new(), |t| {
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
                cost: cols.cost[a0..a1].to_vec(),
                factors: Default::default(),
            });
        }
        Ok(out)
    }
}

/// A tensor's little-endian bytes as f32s.
fn f32s(t: &TensorView) -> Vec<f32> {
    t.data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// A tensor's little-endian bytes as i64s.
fn i64s(t: &TensorView) -> Vec<i64> {
    t.data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}
