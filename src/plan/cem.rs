//! Cross-entropy method (DINO-WM's MPC-CEM): sample around a Gaussian, refit it to the
//! elites, repeat. The current mean is always candidate 0, so the best cost never rises.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use super::{
    initial_mean, sample_elites, ActionBox, Best, Objective, Plan, Planner, PlannerConfig, Unroll,
};

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
        let c = &self.cfg;
        let mut mean = initial_mean(warm, c.horizon, space.dim, unroll.device());
        let mut std = Tensor::full(
            [c.horizon, space.dim],
            c.init_std,
            (Kind::Float, mean.device()),
        );
        let mut best = Best::new(&mean);
        tch::no_grad(|| {
            for _ in 0..c.iterations {
                let (top, elites) = sample_elites(
                    &mut self.rng,
                    &mean,
                    &std,
                    c.samples,
                    c.elites,
                    unroll,
                    objective,
                    space,
                );
                best.offer(&elites, &top);
                best.end_iteration();
                mean = elites.mean_dim(0i64, false, Kind::Float);
                std = elites.std_dim(0i64, false, false).clamp_min(c.min_std);
            }
        });
        best.into_plan(c.iterations)
    }

    fn config(&self) -> &PlannerConfig {
        &self.cfg
    }
}
