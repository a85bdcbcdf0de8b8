//! The optimiser: a plain AdamW whose moments are kept by name (so checkpoints hold them),
//! and the EMA target's update.

use tch::Tensor;

use super::Trainer;
use crate::model::config::AntiCollapse;

impl Trainer {
    /// The trainable variables, sorted by name (the order the moments are updated in).
    pub(super) fn named_trainable(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Clears the gradients `backward` accumulates into.
    pub(super) fn zero_grad(&self) {
        for (_, p) in self.named_trainable() {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// AdamW (beta 0.9 / 0.999, eps 1e-8, decoupled weight decay).
    pub(super) fn adamw(&mut self) {
        let (lr, wd) = (
            self.agent.train.learning_rate_at(self.step),
            self.agent.train.weight_decay,
        );
        let (b1, b2, eps) = (0.9, 0.999, 1e-8);
        let t = (self.step + 1) as i32;
        let (c1, c2) = (1.0 - f64::powi(b1, t), 1.0 - f64::powi(b2, t));
        let vars = self.named_trainable();
        tch::no_grad(|| {
            for (name, p) in vars {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let (m, v) = self
                    .moments
                    .entry(name)
                    .or_insert_with(|| (p.zeros_like(), p.zeros_like()));
                *m = &*m * b1 + &g * (1.0 - b1);
                *v = &*v * b2 + (&g * &g) * (1.0 - b2);
                let update = (&*m / c1) / ((&*v / c2).sqrt() + eps) * lr + &p * (lr * wd);
                let mut p = p;
                let _ = p.f_sub_(&update);
            }
        });
    }

    /// Moves the EMA target towards the online weights (when there is a target).
    pub(super) fn update_target(&mut self) {
        let Some(tvs) = &self.target_vs else { return };
        let decay = match self.agent.level1.anti_collapse {
            AntiCollapse::Ema => self.agent.level1.loss.ema_decay,
            _ => self.agent.level2.loss.ema_decay,
        };
        let online = self.vs.variables();
        tch::no_grad(|| {
            for (name, mut t) in tvs.variables() {
                let o = &online[&name];
                let _ = t.copy_(&(&t * decay + o * (1.0 - decay)));
            }
        });
    }
}
