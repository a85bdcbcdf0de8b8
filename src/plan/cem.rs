//! Cross-entropy method (DINO-WM's MPC-CEM): sample around a Gaussian, refit it to the
//! elites, repeat. The current mean is always candidate 0, so the best cost never rises.

use tch::{Kind, Tensor};

use super::{sampling_search, Plan, Planner, PlannerConfig, Search, Seeded};

/// Built by [`super::make_planner`].
pub struct Cem(pub(super) Seeded);

impl Planner for Cem {
    fn plan(&mut self, search: Search<'_>) -> Plan {
        let (unroll, objective, space, warm) = search.parts();
        let refit = |_: &Tensor, elites: &Tensor| {
            (
                elites.mean_dim(0i64, false, Kind::Float),
                elites.std_dim(0i64, false, false),
            )
        };
        let (best, _) = sampling_search(
            &self.0.cfg,
            &mut self.0.rng,
            (unroll, objective, space),
            warm,
            refit,
        );
        best.into_plan(self.0.cfg.iterations)
    }

    fn config(&self) -> &PlannerConfig {
        &self.0.cfg
    }
}
