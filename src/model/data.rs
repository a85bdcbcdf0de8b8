//! Training data: the episodes of one dataset or several as tensors, split by episode into
//! training and held-out sets, cut into fixed-length windows.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::config::{ActionFrame, EncoderKind, ModelConfig, ObservationKind};
use super::world_model::ModelShapes;
use crate::data::{Dataset, EpisodeRecord, Manifest};
use crate::error::InputError;
use crate::sim::scene::EnvStep;

pub struct TrainingData {
    /// `[N, H, W, 3]` u8 or `[N, D]` f32, every observation of every episode.
    pub obs: Tensor,
    /// `[M, 2]` f32.
    pub actions: Tensor,
    /// `[N, S]` f32 physical states (probe targets).
    pub states: Tensor,
    pub state_names: Vec<String>,
    /// Window starts `(first observation row, first action row)` in training episodes.
    pub train_windows: Vec<(i64, i64)>,
    /// The indices into `train_windows` of each dataset's windows, in `--data` order.
    pub train_window_groups: Vec<std::ops::Range<usize>>,
    /// Each dataset's share of a batch's windows (`hjepa train --shares`); `None`: every
    /// window as likely as any other.
    pub shares: Option<Vec<f64>>,
    pub val_windows: Vec<(i64, i64)>,
    /// Observation rows of training and held-out episodes.
    pub train_frames: Vec<i64>,
    pub val_frames: Vec<i64>,
    /// `(first observation row, frames)` of each training and held-out episode.
    pub train_episodes: Vec<(i64, i64)>,
    pub val_episodes: Vec<(i64, i64)>,
    /// First action row of each training episode (its frame `t` took action row `+ t`).
    pub train_episode_actions: Vec<i64>,
    pub shapes: ModelShapes,
    /// The scene's env step, which the dataset was checked to be recorded with.
    pub env_step: EnvStep,
    pub window: i64,
}

impl TrainingData {
    /// Loads a dataset for an agent; the dataset must carry what the agent observes.
    pub fn load(
        dataset: &Dataset,
        agent: &ModelConfig,
        agent_path: &Path,
    ) -> Result<TrainingData, InputError> {
        TrainingData::load_many(std::slice::from_ref(dataset), agent, agent_path)
    }

    /// Loads several datasets of one scene as one (at least one; e.g. scripted data plus a
    /// planning agent's episodes from `hjepa collect --agent`): each is split into training
    /// and held-out episodes by itself, so every one is represented in both.
    pub fn load_many(
        datasets: &[Dataset],
        agent: &ModelConfig,
        agent_path: &Path,
    ) -> Result<TrainingData, InputError> {
        let first = datasets.first().expect("at least one dataset");
        let m = &first.manifest;
        let kind = agent.perception.observation;
        let window = agent.window();
        // A dataset recorded before the scene changed (push_t gained the agent's velocity,
        // then frameskip 5) would train a model the scene can no longer feed or step.
        let scene = crate::sim::Scene::load(&crate::sim::Scene::resolve_path(&agent.scene))?;
        let env_step = scene.physics.env_step();
        let names =
            crate::sim::Env::new(std::sync::Arc::new(scene.clone())).observation_state_names();
        let mut rows = Stacked::default();
        agent.level1.action_frame.check_scene(&scene, agent_path)?;
        agent
            .level1
            .state_frame
            .check_scene(agent, &scene, agent_path)?;
        let agent_xy = agent_position_columns(&m.state_names);
        if agent_xy.is_none() && agent.level1.action_frame == ActionFrame::Agent {
            return Err(InputError::new(
                &first.dir.join(crate::data::dataset::MANIFEST),
                "state_names",
                "expected agent.x and agent.y among the recorded physical states (level1.action_frame = \"agent\" reads them)",
            ));
        }
        for dataset in datasets {
            check_dataset(dataset, agent, agent_path, &scene, &names)?;
            check_same_fields(dataset, first, kind)?;
            rows.push_dataset(dataset, agent, window, agent_xy)?;
        }
        let manifest_path = first.dir.join(crate::data::dataset::MANIFEST);
        if rows.train_windows.is_empty() || rows.val_windows.is_empty() {
            return Err(InputError::new(
                &manifest_path,
                "episodes",
                format!("no episode is long enough for a {window}-frame window in the training or held-out split"),
            ));
        }
        let (obs, obs_shape) = rows.observations(kind, m);
        let angle_inputs = angle_inputs(kind, m);
        check_identity_width(agent, agent_path, &obs_shape, &angle_inputs)?;
        let shapes = ModelShapes {
            observation: obs_shape,
            angle_inputs,
            action_low: m.action_low,
            action_high: m.action_high,
        };
        Ok(rows.into_training_data(obs, shapes, m, env_step, window))
    }

    /// Draws each batch window from dataset i with probability `shares[i]` (normalised to sum
    /// to 1), e.g. to give a small dataset of an agent's own episodes a fixed part of every
    /// batch. `origin` names the option in errors.
    pub fn set_shares(&mut self, shares: &[f64], origin: &Path) -> Result<(), InputError> {
        if shares.len() != self.train_window_groups.len() {
            return Err(InputError::new(
                origin,
                "--shares",
                format!(
                    "expected one share per dataset ({}), got {}",
                    self.train_window_groups.len(),
                    shares.len()
                ),
            ));
        }
        if let Some(bad) = shares.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(InputError::new(
                origin,
                "--shares",
                format!("expected positive shares, got {bad}"),
            ));
        }
        if let Some(i) = self.train_window_groups.iter().position(|g| g.is_empty()) {
            return Err(InputError::new(
                origin,
                "--shares",
                format!(
                    "dataset {} has no training window to draw its share from",
                    i + 1
                ),
            ));
        }
        let sum: f64 = shares.iter().sum();
        self.shares = Some(shares.iter().map(|s| s / sum).collect());
        Ok(())
    }

    /// A batch of windows: observations `[B, L, ...]` and actions `[B, L-1, 2]` on `device`.
    pub fn batch(&self, windows: &[(i64, i64)], device: Device) -> (Tensor, Tensor) {
        let l = self.window;
        let obs_idx: Vec<i64> = windows.iter().flat_map(|(o, _)| *o..*o + l).collect();
        let act_idx: Vec<i64> = windows.iter().flat_map(|(_, a)| *a..*a + l - 1).collect();
        let b = windows.len() as i64;
        let obs = self.obs.index_select(0, &Tensor::from_slice(&obs_idx));
        let mut shape = vec![b, l];
        shape.extend(&obs.size()[1..]);
        let obs = obs.view(shape.as_slice()).to_device(device);
        let actions = self
            .actions
            .index_select(0, &Tensor::from_slice(&act_idx))
            .view([b, l - 1, 2])
            .to_device(device);
        (obs, actions)
    }

    /// Mean and std of the observations over (up to 4096 evenly spaced) training frames,
    /// per state component or per pixel and channel (in [0, 1] units). The std is floored:
    /// a pixel that never changes would otherwise turn an unseen value into a huge input.
    pub fn input_statistics(&self) -> (Tensor, Tensor) {
        let stride = (self.train_frames.len() / 4096).max(1);
        let rows: Vec<i64> = self.train_frames.iter().step_by(stride).copied().collect();
        let x = self
            .obs
            .index_select(0, &Tensor::from_slice(&rows))
            .to_kind(Kind::Float);
        let (x, floor) = if self.obs.kind() == Kind::Uint8 {
            (x / 255.0, PIXEL_STD_FLOOR)
        } else {
            (
                super::encoder::state_features(&x, &self.shapes.angle_inputs),
                1e-3,
            )
        };
        (
            x.mean_dim(0i64, false, Kind::Float),
            x.std_dim(0i64, false, false).clamp_min(floor),
        )
    }
}

/// What every dataset trained on must satisfy: the agent's scene, what the agent observes,
/// and the scene's env step and observation fields as they are now.
fn check_dataset(
    dataset: &Dataset,
    agent: &ModelConfig,
    agent_path: &Path,
    scene: &crate::sim::Scene,
    names: &[String],
) -> Result<(), InputError> {
    let m = &dataset.manifest;
    let manifest_path = dataset.dir.join(crate::data::dataset::MANIFEST);
    let scene_name = Path::new(&agent.scene)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(&agent.scene);
    if m.scene != scene_name {
        return Err(InputError::new(
            &manifest_path,
            "scene",
            format!(
                "the dataset is from scene {:?}, the agent file {} is for {:?}",
                m.scene,
                agent_path.display(),
                agent.scene
            ),
        ));
    }
    let kind = agent.perception.observation;
    if kind == ObservationKind::Pixels && m.image_shape.is_none() {
        return Err(InputError::new(
            &manifest_path,
            "image_shape",
            "the agent observes pixels but the dataset has no images",
        ));
    }
    if kind == ObservationKind::State && m.obs_state_names.is_empty() {
        return Err(InputError::new(
            &manifest_path,
            "obs_state_names",
            "the agent observes states but the dataset has none",
        ));
    }
    m.check_env_step(&manifest_path, scene)?;
    if kind == ObservationKind::State && m.obs_state_names != names {
        return Err(InputError::new(
            &manifest_path,
            "obs_state_names",
            format!(
                "the dataset observes {:?}, scene {} now observes {names:?}: recollect it",
                m.obs_state_names, agent.scene
            ),
        ));
    }
    Ok(())
}

/// Smallest per-pixel std used to normalise images: at most a 10x gain on rare pixels.
pub const PIXEL_STD_FLOOR: f64 = 0.1;

/// The columns of `agent.x` and `agent.y` among a dataset's physical state names.
fn agent_position_columns(state_names: &[String]) -> Option<(usize, usize)> {
    let column = |name: &str| state_names.iter().position(|n| n == name);
    Some((column("agent.x")?, column("agent.y")?))
}

/// Later datasets must be shaped like the first, to be stacked with it.
fn check_same_fields(
    dataset: &Dataset,
    first: &Dataset,
    kind: ObservationKind,
) -> Result<(), InputError> {
    let manifest_path = dataset.dir.join(crate::data::dataset::MANIFEST);
    let (dm, m) = (&dataset.manifest, &first.manifest);
    let same = [
        ("obs_state_names", dm.obs_state_names == m.obs_state_names),
        ("state_names", dm.state_names == m.state_names),
        ("action_low", dm.action_low == m.action_low),
        ("action_high", dm.action_high == m.action_high),
        (
            "image_shape",
            kind == ObservationKind::State || dm.image_shape == m.image_shape,
        ),
    ];
    if let Some((field, _)) = same.iter().find(|(_, same)| !same) {
        return Err(InputError::new(
            &manifest_path,
            *field,
            format!(
                "differs from the first dataset's ({}): datasets trained on together must record the same fields",
                first.dir.display()
            ),
        ));
    }
    Ok(())
}

/// The state components that are angles (none for pixels).
fn angle_inputs(kind: ObservationKind, m: &Manifest) -> Vec<i64> {
    match kind {
        ObservationKind::Pixels => Vec::new(),
        ObservationKind::State => m
            .obs_state_names
            .iter()
            .enumerate()
            .filter(|(_, n)| n.ends_with(".angle"))
            .map(|(i, _)| i as i64)
            .collect(),
    }
}

/// The identity encoder's z is the state's features: `latent_dim` must be their number.
fn check_identity_width(
    agent: &ModelConfig,
    agent_path: &Path,
    obs_shape: &[i64],
    angle_inputs: &[i64],
) -> Result<(), InputError> {
    if agent.perception.encoder == EncoderKind::Identity {
        let features = obs_shape[0] + angle_inputs.len() as i64;
        if agent.perception.latent_dim != features {
            return Err(InputError::new(
                agent_path,
                "perception.latent_dim",
                format!(
                    "expected {features} with encoder = \"identity\" (z is the state's {} components with each angle as cos and sin), got {}",
                    obs_shape[0], agent.perception.latent_dim
                ),
            ));
        }
    }
    Ok(())
}

/// Every episode's rows as they are read, stacked (the tensors are built at the end).
#[derive(Default)]
struct Stacked {
    obs_u8: Vec<u8>,
    obs_f32: Vec<f32>,
    actions: Vec<f32>,
    states: Vec<f32>,
    train_windows: Vec<(i64, i64)>,
    val_windows: Vec<(i64, i64)>,
    train_frames: Vec<i64>,
    val_frames: Vec<i64>,
    train_episodes: Vec<(i64, i64)>,
    val_episodes: Vec<(i64, i64)>,
    train_episode_actions: Vec<i64>,
    train_window_groups: Vec<std::ops::Range<usize>>,
    /// The next observation row and action row.
    o: i64,
    a: i64,
}

impl Stacked {
    /// Stacks one dataset's episodes, its last `validation_fraction` (at least one) held out.
    fn push_dataset(
        &mut self,
        dataset: &Dataset,
        agent: &ModelConfig,
        window: i64,
        agent_xy: Option<(usize, usize)>,
    ) -> Result<(), InputError> {
        let group_start = self.train_windows.len();
        let manifest_path = dataset.dir.join(crate::data::dataset::MANIFEST);
        let episodes = match agent.perception.observation {
            ObservationKind::Pixels => dataset.episodes()?,
            ObservationKind::State => dataset.episodes_without_images()?,
        };
        let n_val =
            ((episodes.len() as f64 * agent.train.validation_fraction).ceil() as usize).max(1);
        if episodes.len() < n_val + 1 {
            return Err(InputError::new(
                &manifest_path,
                "episodes",
                format!(
                    "need at least 2 episodes (training + held out), found {}",
                    episodes.len()
                ),
            ));
        }
        let split = episodes.len() - n_val;
        for (i, e) in episodes.iter().enumerate() {
            self.push_episode(e, i < split, window);
            self.push_rows(e, agent, agent_xy);
            let t = e.action.len() as i64;
            self.o += t + 1;
            self.a += t;
        }
        self.train_window_groups
            .push(group_start..self.train_windows.len());
        Ok(())
    }

    /// An episode's windows, frames and row ranges, on the training or held-out side.
    fn push_episode(&mut self, e: &EpisodeRecord, train: bool, window: i64) {
        let (o, a) = (self.o, self.a);
        let t = e.action.len() as i64;
        let (windows, frames) = if train {
            (&mut self.train_windows, &mut self.train_frames)
        } else {
            (&mut self.val_windows, &mut self.val_frames)
        };
        windows.extend((0..(t + 2 - window).max(0)).map(|s| (o + s, a + s)));
        if train {
            self.train_episode_actions.push(a);
            &mut self.train_episodes
        } else {
            &mut self.val_episodes
        }
        .push((o, t + 1));
        frames.extend(o..o + t + 1);
    }

    /// An episode's observations, physical states and actions (in the model's action frame).
    fn push_rows(
        &mut self,
        e: &EpisodeRecord,
        agent: &ModelConfig,
        agent_xy: Option<(usize, usize)>,
    ) {
        match agent.perception.observation {
            ObservationKind::Pixels => e
                .obs_image
                .iter()
                .for_each(|im| self.obs_u8.extend_from_slice(im)),
            ObservationKind::State => e
                .obs_state
                .iter()
                .for_each(|s| self.obs_f32.extend_from_slice(s)),
        }
        e.state
            .iter()
            .for_each(|s| self.states.extend_from_slice(s));
        match agent.level1.action_frame {
            ActionFrame::World => e
                .action
                .iter()
                .for_each(|x| self.actions.extend_from_slice(x)),
            // Each target as an offset from where the agent was when it was set.
            ActionFrame::Agent => {
                let agent_xy = agent_xy.expect("checked above");
                for (x, s) in e.action.iter().zip(&e.state) {
                    self.actions
                        .extend([x[0] - s[agent_xy.0], x[1] - s[agent_xy.1]]);
                }
            }
        }
    }

    /// The observations as one tensor `[N, H, W, C]` (u8) or `[N, D]` (f32), and the shape
    /// of one.
    fn observations(&self, kind: ObservationKind, m: &Manifest) -> (Tensor, Vec<i64>) {
        let o = self.o;
        match kind {
            ObservationKind::Pixels => {
                let [h, w, c] = m.image_shape.expect("checked above").map(|x| x as i64);
                (
                    Tensor::from_slice(&self.obs_u8).view([o, h, w, c]),
                    vec![h, w, c],
                )
            }
            ObservationKind::State => {
                let d = m.obs_state_names.len() as i64;
                (Tensor::from_slice(&self.obs_f32).view([o, d]), vec![d])
            }
        }
    }

    /// The training data, from the stacked rows and the observation tensor.
    fn into_training_data(
        self,
        obs: Tensor,
        shapes: ModelShapes,
        m: &Manifest,
        env_step: EnvStep,
        window: i64,
    ) -> TrainingData {
        TrainingData {
            env_step,
            obs,
            actions: Tensor::from_slice(&self.actions).view([self.a, 2]),
            states: Tensor::from_slice(&self.states).view([self.o, m.state_names.len() as i64]),
            state_names: m.state_names.clone(),
            train_windows: self.train_windows,
            train_window_groups: self.train_window_groups,
            shares: None,
            val_windows: self.val_windows,
            train_frames: self.train_frames,
            val_frames: self.val_frames,
            train_episodes: self.train_episodes,
            val_episodes: self.val_episodes,
            train_episode_actions: self.train_episode_actions,
            shapes,
            window,
        }
    }
}
