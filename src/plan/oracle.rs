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
use crate::sim::{Env, Scene, Snapshot};

pub struct SandboxModel {
    scratch: RefCell<Env>,
    start: Snapshot,
    space: ActionBox,
}

impl SandboxModel {
    /// A scratch env for `scene` without pixels (the search needs physics and the goal only).
    pub fn scratch_env(scene: &Scene) -> Env {
        let mut blind = scene.clone();
        blind.observation.image = None;
        Env::new(Arc::new(blind))
    }

    /// Plans from `env`'s current state, on `scratch` (reused between replans).
    pub fn new(env: &Env, scratch: Env, space: ActionBox) -> SandboxModel {
        SandboxModel {
            scratch: RefCell::new(scratch),
            start: env.snapshot(),
            space,
        }
    }

    /// Gives the scratch env back for the next replan.
    pub fn into_scratch(self) -> Env {
        self.scratch.into_inner()
    }
}

impl Unroll for SandboxModel {
    /// `[N, H, 2]` normalised actions -> `[N, H, 1]` true cost after each step (0 once the
    /// goal is reached and the episode ends).
    fn unroll(&self, actions: &Tensor) -> Tensor {
        let (n, h) = (actions.size()[0], actions.size()[1]);
        let a: Vec<f32> =
            Vec::try_from(actions.to_kind(Kind::Float).flatten(0, -1)).expect("float actions");
        let mut out = vec![0f32; (n * h) as usize];
        let mut env = self.scratch.borrow_mut();
        for i in 0..n as usize {
            env.restore(&self.start);
            for t in 0..h as usize {
                let k = (i * h as usize + t) * 2;
                let act = self.space.to_scene(&a[k..k + 2]);
                let Ok(step) = env.step(&[act[0], act[1]]) else {
                    break;
                };
                out[i * h as usize + t] = shaped_cost(&env);
                if step.terminated || step.truncated {
                    let rest = if step.info.success {
                        0.0
                    } else {
                        out[i * h as usize + t]
                    };
                    for u in t + 1..h as usize {
                        out[i * h as usize + u] = rest;
                    }
                    break;
                }
            }
        }
        Tensor::from_slice(&out).view([n, h, 1])
    }

    fn differentiable(&self) -> bool {
        false
    }
}

/// Reads the oracle's per-step true cost: summed over the steps or the last one.
pub struct TrueCost {
    pub reduce: Reduce,
}

impl Objective for TrueCost {
    fn cost(&self, states: &Tensor, _actions: &Tensor) -> Tensor {
        let c = states.select(-1, 0);
        match self.reduce {
            Reduce::Sum => c.sum_dim_intlist([-1i64].as_slice(), false, Kind::Float),
            Reduce::Last => c.select(-1, c.size()[1] - 1),
        }
    }
}
