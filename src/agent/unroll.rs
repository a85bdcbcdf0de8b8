//! The model's unroll as planners see it ([`crate::plan::Unroll`]): the latent predictor
//! (with offset correction), a committee of models, a state model read back and encoded,
//! and level 2's abstract predictor.

use tch::{Device, Kind, Tensor};

use crate::model::config::ObservationKind;
use crate::model::encoder::observation_tensor;
use crate::model::world_model::Level2Nets;
use crate::model::WorldModel;
use crate::plan::Unroll;
use crate::sim::Observation;

/// Encodes observations `[n]` in one forward pass: `[n, D]`.
pub(super) fn encode_observations(
    model: &WorldModel,
    kind: ObservationKind,
    device: Device,
    obs: &[&Observation],
) -> Tensor {
    let x: Vec<Tensor> = obs
        .iter()
        .map(|o| observation_tensor(o, kind, device))
        .collect();
    tch::no_grad(|| model.encode(&Tensor::cat(&x, 0)))
}

/// The learned model's level-1 unroll from one encoded state, optionally corrected by a
/// per-step offset `[1, D]` (see `PlanningConfig::offset_correction`): step t gets t·offset.
pub struct LatentUnroll<'a> {
    pub model: &'a WorldModel,
    pub z0: Tensor,
    pub offset: Option<Tensor>,
    /// Each ensemble member's states, member-major (`[K * N, H, D]`, for an
    /// [`EnsembleCost`]), rather than their mean.
    pub each_member: bool,
}

impl LatentUnroll<'_> {
    /// Predictions per candidate it returns: the ensemble's members, or 1.
    pub(super) fn rows(&self) -> i64 {
        if self.each_member {
            self.model.members()
        } else {
            1
        }
    }

    pub(super) fn shallow(&self) -> Self {
        LatentUnroll {
            model: self.model,
            z0: self.z0.shallow_clone(),
            offset: self.offset.as_ref().map(Tensor::shallow_clone),
            each_member: self.each_member,
        }
    }
}

impl Unroll for LatentUnroll<'_> {
    fn unroll(&self, actions: &Tensor) -> Tensor {
        let n = actions.size()[0];
        let z0 = self.z0.expand([n, -1], false);
        let states = if self.each_member {
            self.model.rollout_members(&z0, actions).flatten(0, 1)
        } else {
            self.model.rollout(&z0, actions)
        };
        with_drift(states, self.offset.as_ref())
    }
    fn device(&self) -> Device {
        self.z0.device()
    }
}

/// The unrolls of a committee of models (`planning.peers`), each from its own encoding of
/// the observation, stacked model-major along the first axis for a [`CommitteeCost`]; a
/// state model that joins them (`dynamics_role = "join"`) comes last.
pub struct CommitteeUnroll<'a> {
    pub models: Vec<LatentUnroll<'a>>,
    pub state_model: Option<StateModelUnroll<'a>>,
}

impl Unroll for CommitteeUnroll<'_> {
    fn unroll(&self, actions: &Tensor) -> Tensor {
        let states: Vec<Tensor> = self
            .models
            .iter()
            .map(|u| u.unroll(actions))
            .chain(self.state_model.iter().map(|s| s.unroll(actions)))
            .collect();
        Tensor::cat(&states, 0)
    }
    fn device(&self) -> Device {
        self.models[0].device()
    }
}

/// Candidates predicted by state models (`planning.dynamics`) and encoded by each scorer:
/// `[E * R * N, H, D]` for E encoders (the checkpoint's, then the peers'), encoder-major,
/// each block the state models' R rows per candidate (their members, model- then
/// member-major, or 1).
pub struct StateModelUnroll<'a> {
    pub dynamics: Vec<&'a WorldModel>,
    /// The observation as each state model reads it (its z: the normalised state), `[1, F]`.
    pub s0: Vec<Tensor>,
    pub encoders: Vec<&'a WorldModel>,
    /// One row per member; set when the models have more than one member between them.
    pub each_member: bool,
}

impl StateModelUnroll<'_> {
    pub fn rows(&self) -> i64 {
        if self.each_member {
            self.dynamics.iter().map(|d| d.members()).sum()
        } else {
            1
        }
    }

    /// How one encoder's block of rows per candidate splits into committee models, in the
    /// unroll's order: pooled, one model of all [`rows`](Self::rows); `separate`
    /// (`planning.dynamics_separate`), one model per state model, of its members.
    pub fn scorer_blocks(&self, separate: bool) -> Vec<i64> {
        match separate && self.each_member {
            true => self.dynamics.iter().map(|d| d.members()).collect(),
            false => vec![self.rows()],
        }
    }
}

impl Unroll for StateModelUnroll<'_> {
    fn unroll(&self, actions: &Tensor) -> Tensor {
        let n = actions.size()[0];
        // Each model's predictions read back as states (its own normalisation).
        let per_model: Vec<Tensor> = self
            .dynamics
            .iter()
            .zip(&self.s0)
            .map(|(d, s0)| {
                let s0 = s0.expand([n, -1], false);
                let z = if self.each_member {
                    d.rollout_members(&s0, actions).flatten(0, 1)
                } else {
                    d.rollout(&s0, actions)
                };
                let (rows, h) = (z.size()[0], z.size()[1]);
                d.decode_state(&z.flatten(0, 1))
                    .expect("checked when loaded: an identity encoder")
                    .view([rows, h, -1])
            })
            .collect();
        let states = Tensor::cat(&per_model, 0);
        let (rows, h) = (states.size()[0], states.size()[1]);
        let states = states.flatten(0, 1);
        let encoded: Vec<Tensor> = self
            .encoders
            .iter()
            .map(|m| m.encode(&states).view([rows, h, -1]))
            .collect();
        Tensor::cat(&encoded, 0)
    }
    fn device(&self) -> Device {
        self.s0[0].device()
    }
}

/// Predicted states `[N, H, D]` with step t (from 1) moved by t·offset (`[1, D]`), if any.
pub(super) fn with_drift(states: Tensor, offset: Option<&Tensor>) -> Tensor {
    match offset {
        Some(d) => {
            let h = states.size()[1];
            let t = Tensor::arange_start(1, h + 1, (Kind::Float, d.device())).view([1, h, 1]);
            states + t * d.view([1, 1, -1])
        }
        None => states,
    }
}

/// Offset-free MPC's correction per step: how far the observed `z_now` `[1, D]` is from what
/// `from_last` (the unroll from the last replan's z) predicted after the `taken` actions
/// `[E, A]` executed since, spread evenly over those E steps: `[1, D]`.
pub fn executed_offset(from_last: &dyn Unroll, taken: &Tensor, z_now: &Tensor) -> Tensor {
    let executed = taken.size()[0];
    let predicted = tch::no_grad(|| from_last.unroll(&taken.unsqueeze(0))).select(1, executed - 1);
    (z_now - predicted) / executed as f64
}

/// The learned model's level-2 unroll over macro-actions from one abstract state,
/// optionally corrected by a per-jump offset `[1, Dh]` as `LatentUnroll` is per step.
pub struct AbstractUnroll<'a> {
    pub level2: &'a Level2Nets,
    pub h0: Tensor,
    pub offset: Option<Tensor>,
}

impl Unroll for AbstractUnroll<'_> {
    fn unroll(&self, macros: &Tensor) -> Tensor {
        let states = self
            .level2
            .rollout(&self.h0.expand([macros.size()[0], -1], false), macros);
        with_drift(states, self.offset.as_ref())
    }
    fn device(&self) -> Device {
        self.h0.device()
    }
}
