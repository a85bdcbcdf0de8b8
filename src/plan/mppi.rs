//! Model-predictive path integral control (TD-MPC2 / PLDM style): sample around the mean,
//! weight the `elites` best by exp(-cost / temperature), with the temperature relative to
//! their cost spread so one setting works across cost scales, and move the mean and std to
//! the weighted statistics.

use tch::{Kind, Tensor};

use super::{sampling_search, Plan, Planner, PlannerConfig, Search, Seeded};

/// Built by [`super::make_planner`].
pub struct Mppi(pub(super) Seeded);

impl Planner for Mppi {
    fn plan(&mut self, search: Search<'_>) -> Plan {
        let (unroll, objective, space, warm) = search.parts();
        let temperature = self.0.cfg.temperature;
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
            &self.0.cfg,
            &mut self.0.rng,
            (unroll, objective, space),
            warm,
            refit,
        );
        // The weighted mean itself is often better than any single sample.
        tch::no_grad(|| {
            let m = space.project(&mean.unsqueeze(0));
            best.offer(&m, &objective.cost(&unroll.unroll(&m), &m));
        });
        best.into_plan(self.0.cfg.iterations)
    }

    fn config(&self) -> &PlannerConfig {
        &self.0.cfg
    }
}
