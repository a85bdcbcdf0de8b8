//! Cross-entropy method (DINO-WM's MPC-CEM): sample around a Gaussian, refit it to the
//! elites, repeat. The current mean is always candidate 0, so the best cost never rises.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use super::{initial_mean, normal, ActionBox, Objective, Plan, Planner, PlannerConfig, Unroll};

pub struct Cem {
    cfg: PlannerConfig,
    rng: ChaCha8Rng,
}

impl Cem {
    pub fn new(cfg: PlannerConfig, seed: u64) -> Cem {
        Cem {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl Planner for Cem {
    fn plan(
        &mut self,
        unroll: &dyn Unroll,
        objective: &dyn Objective,
        space: &ActionBox,
        warm: Option<&Tensor>,
    ) -> Plan {
        let (h, a, n) = (self.cfg.horizon, space.dim, self.cfg.samples);
        let dev = unroll.device();
        let mut mean = initial_mean(warm, h, a, dev);
        let mut std = Tensor::full([h, a], self.cfg.init_std, (Kind::Float, dev));
        let mut best = (f64::INFINITY, mean.shallow_clone());
        let mut trace = Vec::with_capacity(self.cfg.iterations as usize);
        tch::no_grad(|| {
            for _ in 0..self.cfg.iterations {
                let noise = normal(&mut self.rng, &[n, h, a], dev);
                let candidates = &mean.unsqueeze(0) + &std.unsqueeze(0) * noise;
                let _ = candidates.get(0).copy_(&mean);
                let candidates = space.project(&candidates);
                let cost = objective
                    .cost(&unroll.unroll(&candidates), &candidates)
                    .to_kind(Kind::Float);
                let k = self.cfg.elites.min(n);
                let (top, idx) = cost.topk(k, 0, false, true);
                let elites = candidates.index_select(0, &idx);
                let c0 = top.double_value(&[0]);
                if c0 < best.0 {
                    best = (c0, elites.get(0).copy());
                }
                trace.push(best.0);
                mean = elites.mean_dim(0i64, false, Kind::Float);
                std = elites
                    .std_dim(0i64, false, false)
                    .clamp_min(self.cfg.min_std);
            }
        });
        Plan {
            actions: best.1,
            cost: best.0,
            iterations: self.cfg.iterations,
            cost_trace: trace,
        }
    }

    fn config(&self) -> &PlannerConfig {
        &self.cfg
    }
}
