//! The training objective: each level's prediction loss and anti-collapse terms on a batch.

use tch::Tensor;

use super::{StepLosses, Trainer};
use crate::model::config::AntiCollapse;
use crate::model::losses::{level_loss, LevelOutputs, LossTerms};
use crate::model::world_model::Level2Nets;

/// A batch as both levels' losses read it, encoded once.
struct Encoded {
    /// `[B, L, D]` online encodings of the window's frames.
    z: Tensor,
    /// The same from the EMA target, when there is one (no gradient).
    tz: Option<Tensor>,
    /// `[B, L-1, 2]` normalised actions.
    a: Tensor,
    /// Batch size and window length.
    b: i64,
    l: i64,
}

impl Trainer {
    /// Losses on one batch (differentiable total, and the numbers).
    pub fn losses(&self, obs: &Tensor, actions: &Tensor) -> (Tensor, StepLosses) {
        let m = &self.model;
        let (b, l) = (obs.size()[0], obs.size()[1]);
        let z = m.encode(&obs.flatten(0, 1)).view([b, l, -1]);
        let tz = self
            .target
            .as_ref()
            .map(|t| tch::no_grad(|| t.encode(&obs.flatten(0, 1)).view([b, l, -1])));
        let a = m.normalize_actions(actions);
        let e = Encoded { z, tz, a, b, l };
        let (total1, terms1) = self.level1_loss(&e);
        let mut total = total1;
        let mut level2 = None;
        if let Some(n2) = &m.level2 {
            let (t2, terms2) = self.level2_loss(n2, &e);
            total = total + t2;
            level2 = Some(terms2);
        }
        let losses = StepLosses {
            total: total.double_value(&[]),
            level1: terms1,
            level2,
        };
        (total, losses)
    }

    /// Level 1: every ensemble member's `horizon`-step rollout against the next encodings.
    fn level1_loss(&self, e: &Encoded) -> (Tensor, LossTerms) {
        let m = &self.model;
        let (z, a, l) = (&e.z, &e.a, e.l);
        let l1 = &self.agent.level1;
        let h1 = l1.horizon;
        // Every ensemble member against the same targets: `[K * B, T, D]`, so the prediction
        // term is the members' mean.
        let members = m.members();
        let pred = m
            .rollout_members(&z.select(1, 0), &a.narrow(1, 0, h1))
            .flatten(0, 1);
        let targets = match (&e.tz, l1.anti_collapse) {
            (Some(t), AntiCollapse::Ema) => t.narrow(1, 1, h1),
            _ => z.narrow(1, 1, h1),
        }
        .repeat([members, 1, 1]);
        let (pred, targets) = match &self.prediction_scale {
            Some(unit) => (pred / unit, targets / unit),
            None => (pred, targets),
        };
        let idm = (l1.anti_collapse == AntiCollapse::Vicreg && l1.loss.idm > 0.0).then(|| {
            let pair = Tensor::cat(&[z.narrow(1, 0, l - 1), z.narrow(1, 1, l - 1)], -1);
            (m.idm1.forward(&pair), a.shallow_clone())
        });
        level_loss(
            LevelOutputs {
                predicted: &pred,
                targets: &targets,
                all: z,
                idm,
            },
            l1.anti_collapse,
            &l1.loss,
        )
    }

    /// Level 2: `jumps` jumps of k steps, driven by macro-actions encoded from the data's.
    fn level2_loss(&self, n2: &Level2Nets, e: &Encoded) -> (Tensor, LossTerms) {
        let (z, a, b) = (&e.z, &e.a, e.b);
        let c = &self.agent.level2;
        let jumps = c.jumps;
        let idx = Tensor::from_slice(&(0..=jumps).map(|j| j * c.k).collect::<Vec<i64>>())
            .to_device(self.device);
        let h = n2.abstract_state(&z.index_select(1, &idx));
        let chunks = a.narrow(1, 0, jumps * c.k).reshape([b * jumps, c.k, 2]);
        let u = n2.encode_macro(&chunks).view([b, jumps, -1]);
        let hp = n2.rollout(&h.select(1, 0), &u);
        let target_h = match (&e.tz, &self.target, c.anti_collapse) {
            (Some(t), Some(tm), AntiCollapse::Ema) => tch::no_grad(|| {
                tm.level2
                    .as_ref()
                    .expect("same architecture")
                    .abstract_state(&t.index_select(1, &idx))
                    .narrow(1, 1, jumps)
            }),
            _ => h.narrow(1, 1, jumps),
        };
        let idm2 = (c.anti_collapse == AntiCollapse::Vicreg && c.loss.idm > 0.0).then(|| {
            let pair = Tensor::cat(&[h.narrow(1, 0, jumps), h.narrow(1, 1, jumps)], -1);
            (n2.idm2.forward(&pair), u.detach())
        });
        level_loss(
            LevelOutputs {
                predicted: &hp,
                targets: &target_h,
                all: &h,
                idm: idm2,
            },
            c.anti_collapse,
            &c.loss,
        )
    }
}
