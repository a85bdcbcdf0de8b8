//! The oracle model: the sandbox itself behind the [`Unroll`] interface. Each candidate is
//! replayed on a private copy of the env restored from a snapshot, and the "state" it
//! returns per step is the true shaped cost (goal distance, or the body's pose error plus a
//! pull toward it), so [`TrueCost`] reads it back. The same planners, budgets and replanning
//! run on it as on the learned model: it is the upper bound that tells planner failures
//! from world-model failures.

use std::cell::RefCell;
use std::sync::Arc;

use tch::{Kind, Tensor};

use super::{ActionBox, Objective, Unroll};
use crate::cost::Reduce;
use crate::data::policy::shaped_cost;
use crate::sim::{Env, Observation, Scene, Snapshot, Step};

pub struct SandboxModel {
    scratch: RefCell<Env>,
    start: Snapshot,
    /// What the env showed at the snapshot.
    start_observation: Observation,
    space: ActionBox,
}

impl SandboxModel {
    /// A scratch env for `scene` without pixels (the search needs physics and the goal only).
    pub fn scratch_env(scene: &Scene) -> Env {
        let mut blind = scene.clone();
        blind.observation.image = None;
        Env::new(Arc::new(blind))
    }

    /// A scratch env for `scene` that renders what the scene shows (for [`SandboxEncoded`]).
    pub fn seeing_scratch_env(scene: &Scene) -> Env {
        Env::new(Arc::new(scene.clone()))
    }

    /// Plans from `env`'s current state, on `scratch` (reused between replans).
    pub fn new(env: &Env, mut scratch: Env, space: ActionBox) -> SandboxModel {
        let start = env.snapshot();
        scratch.restore(&start);
        SandboxModel {
            start_observation: scratch.observe(),
            scratch: RefCell::new(scratch),
            start,
            space,
        }
    }

    /// Gives the scratch env back for the next replan.
    pub fn into_scratch(self) -> Env {
        self.scratch.into_inner()
    }
}

impl SandboxModel {
    /// Replays each candidate of `actions` `[N, H, 2]` (normalised) from the snapshot and
    /// calls `visit(k, env, step, ended)` for every flat index `k = i * H + t`: after each
    /// step taken, and, once the episode has ended, for the remaining steps with the final
    /// step again (`ended` true).
    fn replay(&self, actions: &Tensor, mut visit: impl FnMut(usize, &Env, &Step, bool)) {
        let (n, h) = (actions.size()[0] as usize, actions.size()[1] as usize);
        let a: Vec<f32> = Vec::try_from(
            actions
                .to_kind(Kind::Float)
                .to_device(tch::Device::Cpu)
                .flatten(0, -1),
        )
        .expect("float actions");
        let mut env = self.scratch.borrow_mut();
        for i in 0..n {
            env.restore(&self.start);
            for t in 0..h {
                let k = i * h + t;
                let act = self
                    .space
                    .to_scene(&a[2 * k..2 * k + 2], env.world().agent_position().into());
                let Ok(step) = env.step(&[act[0], act[1]]) else {
                    break;
                };
                visit(k, &env, &step, false);
                if step.terminated || step.truncated {
                    for u in t + 1..h {
                        visit(i * h + u, &env, &step, true);
                    }
                    break;
                }
            }
        }
    }
}

impl Unroll for SandboxModel {
    /// `[N, H, 2]` normalised actions -> `[N, H, 1]` true cost after each step (0 once the
    /// goal is reached and the episode ends).
    fn unroll(&self, actions: &Tensor) -> Tensor {
        let (n, h) = (actions.size()[0], actions.size()[1]);
        let mut out = vec![0f32; (n * h) as usize];
        let mut last = 0f32;
        self.replay(actions, |k, env, step, ended| {
            out[k] = match ended {
                false => {
                    last = shaped_cost(env);
                    last
                }
                true if step.info.success => 0.0,
                true => last,
            };
        });
        Tensor::from_slice(&out).view([n, h, 1])
    }

    fn differentiable(&self) -> bool {
        false
    }
}

/// The sandbox's dynamics seen through the learned encoder (`hjepa eval
/// --sandbox-dynamics`): each candidate replayed on the sandbox, each step's observation
/// encoded `[N, H, D]` (after the episode ends, its final one). Planning on it with the
/// agent's own cost removes the predictor's errors, so what still fails is the cost's.
pub struct SandboxEncoded<'a> {
    pub sandbox: &'a SandboxModel,
    /// Observations `[M]` -> encodings `[M, D]` on `device`.
    pub encode: &'a dyn Fn(&[&Observation]) -> Tensor,
    /// Where the encoder runs (the planner's candidates live there too).
    pub device: tch::Device,
}

impl Unroll for SandboxEncoded<'_> {
    fn unroll(&self, actions: &Tensor) -> Tensor {
        let (n, h) = (actions.size()[0], actions.size()[1]);
        let mut seen: Vec<Option<Observation>> = vec![None; (n * h) as usize];
        self.sandbox.replay(actions, |k, _, step, _| {
            seen[k] = Some(step.observation.clone());
        });
        // A refused action (never from a projected plan) leaves the steps after it unseen:
        // they repeat the last observation of their candidate.
        let mut obs: Vec<&Observation> = Vec::with_capacity(seen.len());
        for (k, o) in seen.iter().enumerate() {
            let prev = (k as i64 % h > 0).then(|| obs[k - 1]);
            obs.push(
                o.as_ref()
                    .or(prev)
                    .unwrap_or(&self.sandbox.start_observation),
            );
        }
        let z = (self.encode)(&obs);
        z.view([n, h, -1])
    }

    fn differentiable(&self) -> bool {
        false
    }

    fn device(&self) -> tch::Device {
        self.device
    }
}

/// Reads the oracle's per-step true cost, reduced over the steps like the learned cost.
pub struct TrueCost {
    pub reduce: Reduce,
}

impl Objective for TrueCost {
    fn cost(&self, states: &Tensor, _actions: &Tensor) -> Tensor {
        crate::cost::reduce(&states.select(-1, 0), self.reduce)
    }
}
