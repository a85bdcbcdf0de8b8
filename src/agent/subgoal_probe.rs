//! Where the viewer draws abstract subgoals: the world model has no decoder, so a linear
//! probe reads an agent position off level-2 states.

use std::sync::Arc;

use super::PlanningAgent;
use crate::data::episodes::episode_seed;
use crate::sim::scene::V2;
use crate::sim::{Env, Observation, Scene};

/// A ridge regression from level-2 states h to the agent's position, fitted on the start
/// states of a few hundred seeded episodes. The world model has no decoder; this linear
/// probe (the one `hjepa probe` reports, R² 0.88 for two_rooms' h) is how the viewer puts
/// abstract subgoals on the map. Drawn positions are the probe's reading, not the model's.
pub struct SubgoalProbe {
    /// `[dh + 1, 2]`: weights and bias.
    w: tch::Tensor,
}

impl SubgoalProbe {
    pub fn fit(agent: &PlanningAgent, scene: &Arc<Scene>) -> Option<SubgoalProbe> {
        let mut env = Env::new(scene.clone());
        let (mut obs, mut pos) = (Vec::new(), Vec::new());
        for i in 0..256 {
            obs.push(env.reset(episode_seed(0x5EED, i)));
            let p = env.world().agent_position();
            pos.extend([p.0, p.1]);
        }
        let refs: Vec<&Observation> = obs.iter().collect();
        let h = agent
            .abstract_states(&refs)?
            .to_device(tch::Device::Cpu)
            .to_kind(tch::Kind::Double);
        let n = h.size()[0];
        let x = tch::Tensor::cat(
            &[
                h,
                tch::Tensor::ones([n, 1], (tch::Kind::Double, tch::Device::Cpu)),
            ],
            1,
        );
        let y = tch::Tensor::from_slice(&pos)
            .view([n, 2])
            .to_kind(tch::Kind::Double);
        let d = x.size()[1];
        let eye = tch::Tensor::eye(d, (tch::Kind::Double, tch::Device::Cpu)) * 1e-3;
        let w = (x.transpose(0, 1).matmul(&x) + eye)
            .inverse()
            .matmul(&x.transpose(0, 1).matmul(&y));
        Some(SubgoalProbe { w })
    }

    /// Positions of abstract states `[H, dh]`.
    pub fn positions(&self, h: &tch::Tensor) -> Vec<V2> {
        let h = h.to_device(tch::Device::Cpu).to_kind(tch::Kind::Double);
        let n = h.size()[0];
        let x = tch::Tensor::cat(
            &[
                h,
                tch::Tensor::ones([n, 1], (tch::Kind::Double, tch::Device::Cpu)),
            ],
            1,
        );
        let p: Vec<f64> = Vec::try_from(x.matmul(&self.w).flatten(0, -1)).unwrap_or_default();
        p.chunks_exact(2)
            .map(|c| (c[0] as f32, c[1] as f32))
            .collect()
    }
}
