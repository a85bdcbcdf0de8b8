//! Model-predictive path integral control (TD-MPC2 / PLDM style): sample around the mean,
//! weight the `elites` best by exp(-cost / temperature), with the temperature relative to
//! their cost spread so one setting works across cost scales, and move the mean and std to
//! the weighted statistics.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use super::{initial_mean, normal, ActionBox, Objective, Plan, Planner, PlannerConfig, Unroll};

pub struct Mppi {
    cfg: PlannerConfig,
    rng: ChaCha8Rng,
}

impl Mppi {
    pub fn new(cfg: PlannerConfig, seed: u64) -> Mppi {
        Mppi {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl Planner for Mppi {
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
                let k = self.cfg.elites.clamp(1, n);
                let (top, idx) = cost.topk(k, 0, false, true);
                let elites = candidates.index_select(0, &idx);
                let c0 = top.double_value(&[0]);
                if c0 < best.0 {
                    best = (c0, elites.get(0).copy());
                }
                trace.push(best.0);
                let spread = (top.get(k - 1) - top.get(0)).clamp_min(1e-9);
                let w = (-(&top - top.get(0)) / (spread * self.cfg.temperature))
                    .softmax(0, Kind::Float)
                    .view([k, 1, 1]);
                mean = (&w * &elites).sum_dim_intlist([0i64].as_slice(), false, Kind::Float);
                let var = (&w * (&elites - mean.unsqueeze(0)).square()).sum_dim_intlist(
                    [0i64].as_slice(),
                    false,
                    Kind::Float,
                );
                std = var.sqrt().clamp_min(self.cfg.min_std);
            }
            // The weighted mean itself is often better than any single sample.
            let m = space.project(&mean.unsqueeze(0));
            let c = objective.cost(&unroll.unroll(&m), &m).double_value(&[0]);
            if c < best.0 {
                best = (c, m.get(0));
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
