//! The upper level's memory with `[planning.landmarks]`: level-2 states placed among the
//! frames the data visited, and the graph the level-2 critic draws between them.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::data::Dataset;
use crate::error::InputError;
use crate::model::checkpoint::checkpoint_dir;
use crate::model::critic::encode_all;
use crate::model::data::TrainingData;
use crate::model::world_model::{CriticNet, UpperLevel};
use crate::model::CheckpointMeta;
use crate::model::WorldModel;
use crate::plan::landmarks::{
    farthest_points, kmeans, LandmarkConfig, LandmarkGraph, Placement, Subgoal,
};

use super::config::AgentFile;
use super::load::*;
use super::planning_agent::*;

/// The file beside a checkpoint's weights that keeps its landmark states, so that a shipped
/// model plans without the dataset they were placed in (`hjepa export` writes it; placing
/// them needs the whole training set, 2.9 GB for maze_large).
pub const LANDMARKS_FILE: &str = "landmarks.safetensors";

/// What stored landmarks were placed with: they stand in for placing them again only when
/// every field matches the agent file and the checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Placed {
    count: i64,
    placement: Placement,
    /// The checkpoint's `dataset_digest` and `step`: the data they were placed in, and the
    /// model whose level-2 states they are.
    dataset_digest: String,
    step: i64,
}

impl Placed {
    fn of(cfg: &LandmarkConfig, meta: &CheckpointMeta) -> Placed {
        Placed {
            count: cfg.count,
            placement: cfg.placement,
            dataset_digest: meta.dataset_digest.clone(),
            step: meta.step,
        }
    }
}

/// The upper level's memory with `[planning.landmarks]`: level-2 states placed among the
/// frames the data visited, and the graph the level-2 critic draws between them.
pub(super) struct Landmarks {
    pub(super) cfg: LandmarkConfig,
    /// `[L, dh]`.
    pub(super) states: Tensor,
    pub(super) graph: LandmarkGraph,
}

/// The level-2 critic's estimates in data steps from each row of `from` to each of `to`, as
/// rows of a matrix.
pub(super) fn critic_steps(
    critic2: &CriticNet,
    max_steps: i64,
    from: &Tensor,
    to: &Tensor,
) -> Vec<Vec<f32>> {
    let steps = tch::no_grad(|| critic2.pairwise(from, to)) * max_steps as f64;
    let cols = to.size()[0] as usize;
    let flat = Vec::<f32>::try_from(
        steps
            .to_kind(Kind::Float)
            .to_device(Device::Cpu)
            .flatten(0, -1),
    )
    .expect("f32 estimates");
    flat.chunks(cols).map(<[f32]>::to_vec).collect()
}

impl Landmarks {
    /// The landmarks of the checkpoint in `run`: its stored ones (`LANDMARKS_FILE`) when they
    /// were placed as the agent file asks, in the data it was trained on; else placed among
    /// the training frames of the dataset. Then joined by the level-2 critic.
    pub(super) fn load(
        cfg: &LandmarkConfig,
        agent: &AgentFile,
        agent_path: &Path,
        run: &Path,
        meta: &CheckpointMeta,
        model: &WorldModel,
        device: Device,
    ) -> Result<Landmarks, InputError> {
        let Some(UpperLevel {
            nets: l2,
            critic: Some(critic2),
            critic_max_steps,
        }) = model.upper()
        else {
            return Err(InputError::new(
                agent_path,
                "planning.landmarks",
                "landmarks need a model with level 2 and a level-2 critic ([critic] level2 = true); this checkpoint's model has none".to_string(),
            ));
        };
        let dir = match &cfg.data {
            Some(d) => resolve_run(d, agent_path),
            None => meta.dataset.clone(),
        };
        let have_data = dir.join(crate::data::dataset::MANIFEST).exists();
        let stored_path = checkpoint_dir(run)?.join(LANDMARKS_FILE);
        if cfg.data.is_none() && stored_path.exists() {
            let (placed, states) = read_stored(&stored_path)?;
            if placed == Placed::of(cfg, meta) {
                return Ok(Landmarks::join(
                    cfg,
                    states.to_device(device),
                    critic2,
                    critic_max_steps,
                ));
            }
            if !have_data {
                return Err(InputError::new(
                    agent_path,
                    "planning.landmarks",
                    format!(
                        "{} holds landmarks placed as {placed:?}, this agent file and checkpoint ask for {:?}, and the dataset to place them in is not at {}",
                        stored_path.display(),
                        Placed::of(cfg, meta),
                        dir.display()
                    ),
                ));
            }
        }
        if !have_data {
            return Err(InputError::new(
                agent_path,
                "planning.landmarks.data",
                format!(
                    "no dataset at {}{} (landmarks are frames of a dataset of this scene)",
                    dir.display(),
                    if cfg.data.is_none() {
                        ", where the checkpoint was trained"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let data = TrainingData::load(&Dataset::open(&dir)?, agent, agent_path)?;
        if data.shapes.observation != meta.shapes.observation {
            return Err(InputError::new(
                agent_path,
                "planning.landmarks.data",
                format!(
                    "the dataset at {} has observations of shape {:?}, the checkpoint's model reads {:?}",
                    dir.display(),
                    data.shapes.observation,
                    meta.shapes.observation
                ),
            ));
        }
        // Every floor(N / 20 000)-th training frame (20 000 to 40 000 of them) to place them among.
        let stride = (data.train_frames.len() / 20_000).max(1);
        let rows: Vec<i64> = data.train_frames.iter().step_by(stride).copied().collect();
        let obs = data.obs.index_select(0, &Tensor::from_slice(&rows));
        let h = tch::no_grad(|| l2.abstract_state(&encode_all(model, &obs, device)));
        let seeds = h.index_select(
            0,
            &Tensor::from_slice(&farthest_points(&h, cfg.count)).to_device(device),
        );
        let states = match cfg.placement {
            Placement::Frames => seeds,
            Placement::Centroids => tch::no_grad(|| kmeans(&h, &seeds, 20)),
        };
        Ok(Landmarks::join(cfg, states, critic2, critic_max_steps))
    }

    /// The graph over `states` `[L, dh]`: an edge where the level-2 critic rates two within
    /// `max_edge` data steps.
    fn join(
        cfg: &LandmarkConfig,
        states: Tensor,
        critic2: &CriticNet,
        critic_max_steps: i64,
    ) -> Landmarks {
        let cost = critic_steps(critic2, critic_max_steps, &states, &states);
        let graph = LandmarkGraph::new(&cost, cfg.max_edge as f32);
        Landmarks {
            cfg: cfg.clone(),
            states,
            graph,
        }
    }

    /// The states as `LANDMARKS_FILE`'s bytes: one f32 tensor `states` `[L, dh]`, and what
    /// they were placed with as the one metadata key (one key keeps the bytes reproducible).
    pub(super) fn stored_bytes(&self, meta: &CheckpointMeta) -> anyhow::Result<Vec<u8>> {
        let states = self.states.to_kind(Kind::Float).to_device(Device::Cpu);
        let shape: Vec<usize> = states.size().iter().map(|&d| d as usize).collect();
        let values = Vec::<f32>::try_from(states.flatten(0, -1))?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &bytes)?;
        let placed = serde_json::to_string(&Placed::of(&self.cfg, meta))?;
        let metadata = HashMap::from([("hjepa".to_string(), placed)]);
        Ok(safetensors::serialize([("states", view)], Some(metadata))?)
    }

    /// When a choice is due (`replan_every` steps since the last), sets the subgoal of `m`
    /// to the goal or a landmark, and its way ahead to the landmark path and the goal.
    pub(super) fn refresh_subgoal(&self, upper: UpperLevel<'_>, m: &mut Memory, z0: &Tensor) {
        if m.subgoal.is_some() && m.upper_age < self.cfg.replan_every {
            return;
        }
        // `Landmarks::load` refused a model without a level-2 critic.
        let Some(critic2) = upper.critic else {
            return;
        };
        let max_steps = upper.critic_max_steps;
        let h0 = upper.abstract_state(z0);
        let goal_h = m.goal_h(upper);
        let to_goal = m
            .landmarks_to_goal
            .get_or_insert_with(|| self.to_goal(critic2, max_steps, &goal_h));
        let (subgoal, path) = self.subgoal(critic2, max_steps, &h0, &goal_h, to_goal);
        m.subgoal = Some(subgoal);
        m.upper_states = Some(path);
        m.upper_age = 0;
    }

    /// Each landmark's cost to the goal `[1, dh]` along the graph.
    pub(super) fn to_goal(&self, critic2: &CriticNet, max_steps: i64, goal_h: &Tensor) -> Vec<f32> {
        let direct: Vec<f32> = critic_steps(critic2, max_steps, &self.states, goal_h)
            .into_iter()
            .map(|row| row[0])
            .collect();
        self.graph.to_goal(&direct)
    }

    /// The subgoal for the agent at `h0` `[1, dh]` (the goal, or a landmark), and the states
    /// from it to the goal along the graph `[P, dh]`.
    fn subgoal(
        &self,
        critic2: &CriticNet,
        max_steps: i64,
        h0: &Tensor,
        goal_h: &Tensor,
        to_goal: &[f32],
    ) -> (Tensor, Tensor) {
        let from = critic_steps(critic2, max_steps, h0, &self.states).remove(0);
        let direct = critic_steps(critic2, max_steps, h0, goal_h)[0][0];
        match self
            .graph
            .choose(&from, direct, to_goal, self.cfg.reach as f32)
        {
            Subgoal::Goal => (goal_h.shallow_clone(), goal_h.shallow_clone()),
            Subgoal::Landmark(i) => {
                let path: Vec<i64> = self
                    .graph
                    .path(i, to_goal)
                    .into_iter()
                    .map(|j| j as i64)
                    .collect();
                let on_path = self
                    .states
                    .index_select(0, &Tensor::from_slice(&path).to_device(h0.device()));
                (
                    self.states.get(i as i64).unsqueeze(0),
                    Tensor::cat(&[on_path, goal_h.shallow_clone()], 0),
                )
            }
        }
    }
}

/// Reads `LANDMARKS_FILE`: what they were placed with, and the states `[L, dh]` on the CPU.
fn read_stored(path: &Path) -> Result<(Placed, Tensor), InputError> {
    let bad = |what: String| InputError::new(path, "", what);
    let bytes =
        std::fs::read(path).map_err(|e| bad(format!("cannot read the stored landmarks: {e}")))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let placed: Placed = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("hjepa"))
        .ok_or_else(|| bad("no `hjepa` metadata key (what the landmarks were placed with)".into()))
        .and_then(|j| {
            serde_json::from_str(j).map_err(|e| bad(format!("metadata key `hjepa`: {e}")))
        })?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let view = file
        .tensor("states")
        .map_err(|e| bad(format!("tensor `states`: {e}")))?;
    let shape = view.shape();
    if view.dtype() != safetensors::Dtype::F32
        || shape.len() != 2
        || shape[0] != placed.count as usize
    {
        return Err(bad(format!(
            "tensor `states`: expected f32 of shape [{}, dh], found {:?} of shape {shape:?}",
            placed.count,
            view.dtype()
        )));
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let states = Tensor::from_slice(&values).reshape([shape[0] as i64, shape[1] as i64]);
    Ok((placed, states))
}
