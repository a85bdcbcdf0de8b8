//! Model-predictive path integral control (TD-MPC2 / PLDM style): sample around the mean,
//! weight the `elites` best by exp(-cost / temperature), with the temperature relative to
//! their cost spread so one setting works across cost scales, and move the mean and std to
//! the weighted statistics.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use super::{
    initial_mean, sample_elites, ActionBox, Best, Objective, Plan, Planner, PlannerConfig, Unroll,
};

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
                let k = top.size()[0];
                let spread = (top.get(k - 1) - top.get(0)).clamp_min(1e-9);
                let w = (-(&top - top.get(0)) / (spread * c.temperature))
                    .softmax(0, Kind::Float)
                    .view([k, 1, 1]);
                mean = (&w * &elites).sum_dim_intlist([0i64].as_slice(), false, Kind::Float);
                let var = (&w * (&elites - mean.unsqueeze(0)).square()).sum_dim_intlist(
                    [0i64].as_slice(),
                    false,
                    Kind::Float,
                );
                std = var.sqrt().clamp_min(c.min_std);
            }
            // The weighted mean itself is often better than any single sample.
            let m = space.project(&mean.unsqueeze(0));
            best.offer(&m, &objective.cost(&unroll.unroll(&m), &m));
        });
        best.into_plan(c.iterations)
    }

    fn config(&self) -> &PlannerConfig {
        &self.cfg
    }
}
