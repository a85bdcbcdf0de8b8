//! Model-predictive path integral control (TD-MPC2 / PLDM style): sample around the mean,
//! weight the `elites` best by exp(-cost / temperature), with the temperature relative to
//! their cost spread so one setting works across cost scales, and move the mean and std to
//! the weighted statistics.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use super::{sampling_search, ActionBox, Objective, Plan, Planner, PlannerConfig, Unroll};

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
        let temperature = self.cfg.temperature;
        let refit = |top: &Tensor, elites: &Tensor| {
            let k = top.size()[0];
            let spread = (top.get(k - 1) - top.get(0)).clamp_min(1e-9);
            let w = (-(top - top.get(0)) / (spread * temperature))
                .softmax(0, Kind::Float)
                .view([k, 1, 1]);
            let mean = (&w * elites).sum_dim_intlist([0i64].as_slice(), false, Kind::Float);
            let var = (&w * (elites - mean.unsqueeze(0)).square()).sum_dim_intlist(
                [0i64].as_slice(),
                false,
                Kind::Float,
            );
            (mean, var.sqrt())
        };
        let (mut best, mean) = sampling_search(
            &self.cfg,
            &mut self.rng,
            (unroll, objective, space),
            warm,
            refit,
        );
        // The weighted mean itself is often better than any single sample.
        tch::no_grad(|| {
            let m = space.project(&mean.unsqueeze(0));
            best.offer(&m, &objective.cost(&unroll.unroll(&m), &m));
        });
        best.into_plan(self.cfg.iterations)
    }

    fn config(&self) -> &PlannerConfig {
        &self.cfg
    }
}
