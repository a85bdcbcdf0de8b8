//! Random shooting: one round of Gaussian samples around the warm start, keep the cheapest.
//! The simplest sampling planner, a baseline for CEM and MPPI, and the worked example of
//! adding a planner (README, "Adding a planner or cost term").

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use super::{
    initial_mean, sample_elites, ActionBox, Best, Objective, Plan, Planner, PlannerConfig, Unroll,
};

pub struct RandomShooting {
    cfg: PlannerConfig,
    rng: ChaCha8Rng,
}

impl RandomShooting {
    pub fn new(cfg: PlannerConfig, seed: u64) -> RandomShooting {
        RandomShooting {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl Planner for RandomShooting {
    /// `samples x iterations` candidates in all, drawn around the same mean (no refit).
    fn plan(
        &mut self,
        unroll: &dyn Unroll,
        objective: &dyn Objective,
        space: &ActionBox,
        warm: Option<&Tensor>,
    ) -> Plan {
        let c = &self.cfg;
        let mean = initial_mean(warm, c.horizon, space.dim, unroll.device());
        let std = Tensor::full(
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
                    1,
                    unroll,
                    objective,
                    space,
                );
                best.offer(&elites, &top);
                best.end_iteration();
            }
        });
        best.into_plan(c.iterations)
    }

    fn config(&self) -> &PlannerConfig {
        &self.cfg
    }
}
