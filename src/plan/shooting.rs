//! Random shooting: one round of Gaussian samples around the warm start, keep the cheapest.
//! The simplest sampling planner, a baseline for CEM and MPPI, and the worked example of
//! adding a planner (README, "Adding a planner or cost term").

use tch::{Kind, Tensor};

use super::{initial_mean, sample_elites, Best, Plan, Planner, PlannerConfig, Search, Seeded};

/// Built by [`super::make_planner`].
pub struct RandomShooting(pub(super) Seeded);

impl Planner for RandomShooting {
    /// `samples x iterations` candidates in all, drawn around the same mean (no refit).
    fn plan(&mut self, search: Search<'_>) -> Plan {
        let (unroll, objective, space, warm) = search.parts();
        let c = &self.0.cfg;
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
                    &mut self.0.rng,
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
        &self.0.cfg
    }
}
