//! Cross-entropy method (DINO-WM's MPC-CEM): sample around a Gaussian, refit it to the
//! elites, repeat. The current mean is always candidate 0, so the best cost never rises.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use super::{sampling_search, ActionBox, Objective, Plan, Planner, PlannerConfig, Unroll};

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
        let refit = |_: &Tensor, elites: &Tensor| {
            (
                elites.mean_dim(0i64, false, Kind::Float),
                elites.std_dim(0i64, false, false),
            )
        };
        let (best, _) = sampling_search(
            &self.cfg,
            &mut self.rng,
            (unroll, objective, space),
            warm,
            refit,
        );
        best.into_plan(self.cfg.iterations)
    }

    fn config(&self) -> &PlannerConfig {
        &self.cfg
    }
}
