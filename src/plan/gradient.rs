//! Gradient descent on the action sequence through a differentiable model: `samples`
//! parallel restarts (the warm start and Gaussian perturbations of it), Adam steps,
//! projection after each step; the best restart wins.

use tch::Kind;

use super::{initial_mean, normal, Best, Plan, Planner, PlannerConfig, Search, Seeded};

/// Built by [`super::make_planner`].
pub struct GradientDescent(pub(super) Seeded);

impl Planner for GradientDescent {
    fn plan(&mut self, search: Search<'_>) -> Plan {
        let (unroll, objective, space, warm) = search.parts();
        assert!(
            unroll.differentiable(),
            "the gradient planner needs a differentiable model (not the oracle)"
        );
        let (h, a, n) = (self.0.cfg.horizon, space.dim, self.0.cfg.samples);
        let mean = initial_mean(warm, h, a, unroll.device());
        let init = mean.unsqueeze(0)
            + normal(&mut self.0.rng, &[n, h, a], mean.device()) * self.0.cfg.init_std;
        let _ = init.get(0).copy_(&mean);
        let mut x = space.project(&init).detach().set_requires_grad(true);
        let (mut m, mut v) = (x.zeros_like(), x.zeros_like());
        let (b1, b2, lr) = (0.9, 0.999, self.0.cfg.learning_rate);
        let mut best = Best::new(&mean);
        for t in 1..=self.0.cfg.iterations {
            let cost = objective.cost(&unroll.unroll(&x), &x);
            best.offer(&x, &cost);
            best.end_iteration();
            x.zero_grad();
            cost.sum(Kind::Float).backward();
            let g = x.grad();
            tch::no_grad(|| {
                m = &m * b1 + &g * (1.0 - b1);
                v = &v * b2 + g.square() * (1.0 - b2);
                let step = (&m / (1.0 - f64::powi(b1, t as i32)))
                    / ((&v / (1.0 - f64::powi(b2, t as i32))).sqrt() + 1e-8)
                    * lr;
                x = space.project(&(x.detach() - step)).set_requires_grad(true);
            });
        }
        tch::no_grad(|| best.offer(&x, &objective.cost(&unroll.unroll(&x), &x)));
        best.into_plan(self.0.cfg.iterations)
    }

    fn config(&self) -> &PlannerConfig {
        &self.0.cfg
    }
}
