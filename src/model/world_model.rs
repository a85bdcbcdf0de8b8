//! The world model: the perception encoder plus the level-1 predictor (one control step),
//! the level-2 abstraction, macro-action encoder and predictor (k steps per jump), and the
//! inverse-dynamics heads used as regularisers. Checkpoint names: `encoder`, `predictor1`
//! (with `[level1] ensemble = K`, also `predictor1_1` .. `predictor1_{K-1}`), `idm1`,
//! `level2/{abstraction,macro_encoder,predictor,idm}`.

use tch::nn;
use tch::Tensor;

use super::config::{ActionFrame, EncoderKind, Level2, ModelConfig, ObservationKind, StateFrame};
use super::encoder::{Encoder, IdentityEncoder, Mlp, PixelEncoder, StackedMlp, StateEncoder};

/// Shapes of the data the model is built for.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelShapes {
    /// `[H, W, 3]` for pixels, `[D]` for states.
    pub observation: Vec<i64>,
    /// State components that are angles: the state encoder reads them as (cos, sin).
    #[serde(default)]
    pub angle_inputs: Vec<i64>,
    pub action_low: [f32; 2],
    pub action_high: [f32; 2],
}

/// The whole world model: both levels.
#[derive(Debug)]
pub struct WorldModel {
    pub encoder: Encoder,
    /// z(t), a(t) -> z(t+1), as a residual: one net per ensemble member (`[level1] ensemble`).
    pub predictors1: Vec<Mlp>,
    /// z(t), z(t+1) -> a(t), for the inverse-dynamics regulariser.
    pub idm1: Mlp,
    pub level2: Option<Level2Nets>,
    /// z, z_goal -> estimated steps to reach z_goal / max_steps.
    pub critic: Option<CriticNet>,
    /// h, h_goal -> the same estimate from level-2 states (`[critic] level2`).
    pub critic2: Option<CriticNet>,
    /// The critics' unit: their output times this is control steps.
    pub critic_max_steps: i64,
    action_center: Tensor,
    action_scale: Tensor,
    pub latent_dim: i64,
    /// `[level1] state_frame`: the predictors' input and output frame.
    state_frame: StateFrame,
}

#[derive(Debug)]
pub struct Level2Nets {
    /// z -> h, the more abstract representation.
    pub abstraction: Mlp,
    /// a(t..t+k) -> u in [-1, 1]^m.
    pub macro_encoder: Mlp,
    /// h(t), u(t) -> h(t+k), as a residual.
    pub predictor2: Mlp,
    /// h(t), h(t+k) -> u(t), inverse dynamics at level 2.
    pub idm2: Mlp,
    pub k: i64,
    pub dim: i64,
    pub macro_dim: i64,
}

/// Level 2 with the level-2 critic when trained, borrowed together: what hierarchical
/// planning and level-2 costs read (see [`WorldModel::upper`]).
#[derive(Clone, Copy, Debug)]
pub struct UpperLevel<'a> {
    pub nets: &'a Level2Nets,
    pub critic: Option<&'a CriticNet>,
    /// The critic's unit in control steps.
    pub critic_max_steps: i64,
}

impl UpperLevel<'_> {
    /// The level-2 state h of latents `z` `[n, dh]`, without gradients.
    pub fn abstract_state(&self, z: &Tensor) -> Tensor {
        tch::no_grad(|| self.nets.abstract_state(z))
    }
}

impl WorldModel {
    /// Level 2 and its critic, or None for a one-level model.
    pub fn upper(&self) -> Option<UpperLevel<'_>> {
        self.level2.as_ref().map(|nets| UpperLevel {
            nets,
            critic: self.critic2.as_ref(),
            critic_max_steps: self.critic_max_steps,
        })
    }

    /// Builds every net under `p` (see the module's checkpoint names). The creation order
    /// fixes which random numbers initialise which weights: encoder, level 2, level-2
    /// critic, level-1 predictors, level-1 inverse dynamics, critic.
    pub fn new(p: &nn::Path, agent: &ModelConfig, shapes: &ModelShapes) -> WorldModel {
        let identity = agent.perception.encoder == EncoderKind::Identity;
        // The identity encoder's z is the state's features (checked against `latent_dim`
        // when the data is loaded).
        let d = match identity {
            true => shapes.observation[0] + shapes.angle_inputs.len() as i64,
            false => agent.perception.latent_dim,
        };
        let encoder = new_encoder(&(p / "encoder"), agent, shapes, identity, d);
        let h1 = agent.level1.hidden;
        let level2 = agent
            .level2
            .enabled
            .then(|| Level2Nets::new(&(p / "level2"), &agent.level2, d));
        let critic2 = level2
            .as_ref()
            .filter(|_| agent.critic.enabled && agent.critic.level2)
            .map(|l2| CriticNet::new(&(p / "critic2"), l2.dim, &agent.critic));
        let lo = Tensor::from_slice(&shapes.action_low);
        let hi = Tensor::from_slice(&shapes.action_high);
        WorldModel {
            encoder,
            predictors1: (0..agent.level1.ensemble)
                .map(|i| new_predictor1(p, agent, d, i))
                .collect(),
            idm1: Mlp::new(&(p / "idm1"), &[2 * d, h1, 2]),
            level2,
            critic: agent
                .critic
                .enabled
                .then(|| CriticNet::new(&(p / "critic"), d, &agent.critic)),
            critic2,
            critic_max_steps: agent.critic.max_steps,
            // An offset from the agent is centred on staying put.
            action_center: match agent.level1.action_frame {
                ActionFrame::World => (&hi + &lo) / 2.0,
                ActionFrame::Agent => Tensor::zeros([2], (tch::Kind::Float, tch::Device::Cpu)),
            }
            .to_device(p.device()),
            action_scale: ((&hi - &lo) / 2.0).clamp_min(1e-6).to_device(p.device()),
            latent_dim: d,
            state_frame: agent.level1.state_frame,
        }
    }

    /// Observations -> z.
    pub fn encode(&self, obs: &Tensor) -> Tensor {
        self.encoder.encode(obs)
    }

    /// z -> the state vectors it stands for: only a state model's (`[perception] encoder =
    /// "identity"`), whose z is the normalised state; None for a learned encoder.
    pub fn decode_state(&self, z: &Tensor) -> Option<Tensor> {
        match &self.encoder {
            Encoder::Identity(e) => Some(e.decode(z)),
            _ => None,
        }
    }

    /// Estimated cost-to-go from z `[N, D]` to z_goal `[N or 1, D]`: `[N]`, in units of the
    /// critic's `max_steps`. None without a critic.
    pub fn cost_to_go(&self, z: &Tensor, z_goal: &Tensor) -> Option<Tensor> {
        Some(self.critic.as_ref()?.distance(z, z_goal))
    }

    /// Actions in the model's frame (`[level1] action_frame`: the scene's units, or offsets
    /// from the agent in metres) -> [-1, 1] (offsets by the same half-extents).
    pub fn normalize_actions(&self, a: &Tensor) -> Tensor {
        (a - &self.action_center) / &self.action_scale
    }

    /// Level-1 predictors in the ensemble (1 without one).
    pub fn members(&self) -> i64 {
        self.predictors1.len() as i64
    }

    /// Open-loop level-1 rollout: z0 `[B, D]`, normalised actions `[B, T, 2]` -> `[B, T, D]`
    /// (the predicted z(1..T)); with an ensemble, the mean of its members' rollouts.
    pub fn rollout(&self, z0: &Tensor, a_norm: &Tensor) -> Tensor {
        match self.predictors1.as_slice() {
            // One predictor (the planner's inner loop): no stacking over members.
            [net] => self.rollout_with(net, z0, a_norm),
            _ => self
                .rollout_members(z0, a_norm)
                .mean_dim([0i64].as_slice(), false, z0.kind()),
        }
    }

    /// Member `i`'s rollout through its own net alone: `[B, T, D]` (`hjepa bench model`
    /// times it beside the whole ensemble).
    pub fn rollout_member(&self, i: usize, z0: &Tensor, a_norm: &Tensor) -> Tensor {
        self.rollout_with(&self.predictors1[i], z0, a_norm)
    }

    /// Each ensemble member's own open-loop rollout: `[K, B, T, D]`. On a GPU the members
    /// run as one stacked net (`rollout_members_stacked`: K times fewer kernel launches); on
    /// a CPU one after another, which `hjepa bench model` measured 1.0-1.6x faster than
    /// stacked (a batched matmul gains nothing there).
    pub fn rollout_members(&self, z0: &Tensor, a_norm: &Tensor) -> Tensor {
        if z0.device().is_cuda() && self.members() > 1 && self.state_frame == StateFrame::World {
            return self.rollout_members_stacked(z0, a_norm);
        }
        let members: Vec<Tensor> = self
            .predictors1
            .iter()
            .map(|net| self.rollout_with(net, z0, a_norm))
            .collect();
        Tensor::stack(&members, 0)
    }

    /// One level-1 predictor's open-loop rollout: z0 `[B, D]`, normalised actions
    /// `[B, T, 2]` -> `[B, T, D]`.
    fn rollout_with(&self, net: &Mlp, z0: &Tensor, a_norm: &Tensor) -> Tensor {
        let steps = a_norm.size()[1];
        let mut z = z0.shallow_clone();
        let mut out = Vec::with_capacity(steps as usize);
        for t in 0..steps {
            let a = a_norm.select(1, t);
            z = match self.state_frame {
                StateFrame::World => &z + net.forward(&Tensor::cat(&[&z, &a], -1)),
                StateFrame::Body => self.body_frame_step(net, &z, &a),
            };
            out.push(z.shallow_clone());
        }
        Tensor::stack(&out, 1)
    }

    /// One step of a state model in the pushed body's frame. z holds the normalised
    /// features `[agent x, y, vx, vy, body x, y, cos, sin]`; the net reads the agent's
    /// position, velocity and PD target relative to the body, rotated into its frame, and
    /// returns the agent's displacement and velocity change and the body's displacement (in
    /// that frame) and turn; those are rotated back and added.
    fn body_frame_step(&self, net: &Mlp, z: &Tensor, a_norm: &Tensor) -> Tensor {
        let Encoder::Identity(e) = &self.encoder else {
            unreachable!("state_frame = body is refused without the identity encoder")
        };
        let (mean, std) = e.stats();
        let f = z * std + mean;
        let col = |t: &Tensor, i: i64| t.narrow(1, i, 1);
        let (ax, ay, vx, vy, bx, by) = (
            col(&f, 0),
            col(&f, 1),
            col(&f, 2),
            col(&f, 3),
            col(&f, 4),
            col(&f, 5),
        );
        // A predicted (cos, sin) drifts off the unit circle; the rotation needs it on.
        let norm = (col(&f, 6).square() + col(&f, 7).square())
            .sqrt()
            .clamp_min(1e-6);
        let (c, s) = (col(&f, 6) / &norm, col(&f, 7) / &norm);
        let target = a_norm * &self.action_scale + &self.action_center;
        let into = |x: &Tensor, y: &Tensor| (&c * x + &s * y, &c * y - &s * x);
        let out_of = |x: &Tensor, y: &Tensor| (&c * x - &s * y, &s * x + &c * y);
        // Scales from the training set's spread, so the net sees inputs near unit size.
        let pos = (col(&std.unsqueeze(0), 0) + col(&std.unsqueeze(0), 1)) / 2.0;
        let vel = (col(&std.unsqueeze(0), 2) + col(&std.unsqueeze(0), 3)) / 2.0;
        let (px, py) = into(&(&ax - &bx), &(&ay - &by));
        let (wx, wy) = into(&vx, &vy);
        let (qx, qy) = into(&(col(&target, 0) - &bx), &(col(&target, 1) - &by));
        let x = Tensor::cat(
            &[
                &px / &pos,
                &py / &pos,
                &wx / &vel,
                &wy / &vel,
                &qx / &pos,
                &qy / &pos,
            ],
            1,
        );
        let o = net.forward(&x);
        let (dax, day) = out_of(&(col(&o, 0) * &pos), &(col(&o, 1) * &pos));
        let (dvx, dvy) = out_of(&(col(&o, 2) * &vel), &(col(&o, 3) * &vel));
        let (dbx, dby) = out_of(&(col(&o, 4) * &pos), &(col(&o, 5) * &pos));
        let turn = col(&o, 6);
        let (tc, ts) = (turn.cos(), turn.sin());
        let next = Tensor::cat(
            &[
                ax + dax,
                ay + day,
                vx + dvx,
                vy + dvy,
                bx + dbx,
                by + dby,
                &c * &tc - &s * &ts,
                &s * &tc + &c * &ts,
            ],
            1,
        );
        (next - mean) / std
    }

    /// `rollout_members` through one `StackedMlp`: one batched matmul per layer and step for
    /// all members. Same result up to float rounding (world-frame predictors only).
    pub fn rollout_members_stacked(&self, z0: &Tensor, a_norm: &Tensor) -> Tensor {
        let k = self.members();
        let net = StackedMlp::new(&self.predictors1);
        let steps = a_norm.size()[1];
        let mut z = z0.unsqueeze(0).expand([k, -1, -1], false);
        let a = a_norm.unsqueeze(0).expand([k, -1, -1, -1], false);
        let mut out = Vec::with_capacity(steps as usize);
        for t in 0..steps {
            z = &z + net.forward(&Tensor::cat(&[&z, &a.select(2, t)], -1));
            out.push(z.shallow_clone());
        }
        Tensor::stack(&out, 2)
    }
}

/// The perception encoder at `p` (`encoder`), with output width `d`.
fn new_encoder(
    p: &nn::Path,
    agent: &ModelConfig,
    shapes: &ModelShapes,
    identity: bool,
    d: i64,
) -> Encoder {
    match agent.perception.observation {
        ObservationKind::State if identity => Encoder::Identity(IdentityEncoder::new(
            p,
            shapes.observation[0],
            &shapes.angle_inputs,
        )),
        ObservationKind::Pixels => Encoder::Pixels(PixelEncoder::new(
            p,
            shapes.observation[0],
            shapes.observation[1],
            &agent.perception.channels,
            d,
        )),
        ObservationKind::State => Encoder::State(StateEncoder::new(
            p,
            shapes.observation[0],
            &shapes.angle_inputs,
            agent.perception.hidden,
            d,
        )),
    }
}

/// Ensemble member `i` of the level-1 predictor, under `p`.
fn new_predictor1(p: &nn::Path, agent: &ModelConfig, d: i64, i: i64) -> Mlp {
    let h1 = agent.level1.hidden;
    // Member 0 keeps the single predictor's name, so older checkpoints load.
    let name = match i {
        0 => "predictor1".to_string(),
        i => format!("predictor1_{i}"),
    };
    // In the body's frame: in the agent's position, velocity and target
    // (6), out the agent's and the body's motion (2 + 2 + 2 + 1 angle).
    let (inputs, outputs) = match agent.level1.state_frame {
        StateFrame::World => (d + 2, d),
        StateFrame::Body => (BODY_FRAME_INPUTS, BODY_FRAME_OUTPUTS),
    };
    let sizes = [
        vec![inputs],
        vec![h1; agent.level1.predictor_layers as usize],
        vec![outputs],
    ]
    .concat();
    let path = p / name.as_str();
    let net = match agent.level1.layer_norm {
        true => Mlp::normed(&path, &sizes),
        false => Mlp::new(&path, &sizes),
    };
    // Starting from "nothing moves": a random body-frame step turns the
    // body's frame by a random angle, and a rollout of such turns trains
    // chaotically (the loss diverged from tch's default initialisation).
    match agent.level1.state_frame {
        StateFrame::World => net,
        StateFrame::Body => net.zero_output(),
    }
}

/// A body-frame predictor's inputs: the agent's position, velocity and PD target relative
/// to the body; its outputs: the agent's displacement and velocity change, the body's
/// displacement and turn.
const BODY_FRAME_INPUTS: i64 = 6;
const BODY_FRAME_OUTPUTS: i64 = 7;

/// The critic's net (`[critic] hidden`, `metric_dim`): an MLP on (z, z_goal), or an
/// embedding z -> phi(z) whose distances are the estimates.
#[derive(Debug)]
pub struct CriticNet {
    mlp: Mlp,
    metric: bool,
}

impl CriticNet {
    pub fn new(p: &nn::Path, latent_dim: i64, cfg: &super::config::Critic) -> CriticNet {
        let metric = cfg.metric_dim > 0;
        let sizes = if metric {
            [latent_dim, cfg.hidden, cfg.hidden, cfg.metric_dim]
        } else {
            [2 * latent_dim, cfg.hidden, cfg.hidden, 1]
        };
        CriticNet {
            mlp: Mlp::new(p, &sizes),
            metric,
        }
    }

    /// The estimate `[N]` for z `[N, D]` and z_goal `[N or 1, D]`, in units of `max_steps`.
    pub fn distance(&self, z: &Tensor, z_goal: &Tensor) -> Tensor {
        if self.metric {
            (self.mlp.forward(z) - self.mlp.forward(z_goal)).norm_scalaropt_dim(
                2,
                [-1i64].as_slice(),
                false,
            )
        } else {
            self.mlp
                .forward(&Tensor::cat(&[z, &z_goal.expand_as(z)], -1))
                .squeeze_dim(-1)
        }
    }

    /// The estimates `[N, M]` from each row of `z` `[N, D]` to each row of `goals` `[M, D]`.
    pub fn pairwise(&self, z: &Tensor, goals: &Tensor) -> Tensor {
        if self.metric {
            // Embed each once: N + M forward passes instead of N * M.
            return Tensor::cdist(
                &self.mlp.forward(z),
                &self.mlp.forward(goals),
                2.0,
                None::<i64>,
            );
        }
        let (n, m) = (z.size()[0], goals.size()[0]);
        let z = z.unsqueeze(1).expand([n, m, -1], false).flatten(0, 1);
        let goals = goals.unsqueeze(0).expand([n, m, -1], false).flatten(0, 1);
        self.distance(&z, &goals).view([n, m])
    }
}

impl Level2Nets {
    /// The level-2 nets under `q` (`level2`), over level-1 states of width `d`.
    fn new(q: &nn::Path, l2: &Level2, d: i64) -> Level2Nets {
        Level2Nets {
            abstraction: Mlp::new(&(q / "abstraction"), &[d, l2.hidden, l2.dim]),
            macro_encoder: Mlp::new(&(q / "macro_encoder"), &[2 * l2.k, l2.hidden, l2.macro_dim]),
            predictor2: Mlp::new(
                &(q / "predictor"),
                &[l2.dim + l2.macro_dim, l2.hidden, l2.hidden, l2.dim],
            ),
            idm2: Mlp::new(&(q / "idm"), &[2 * l2.dim, l2.hidden, l2.macro_dim]),
            k: l2.k,
            dim: l2.dim,
            macro_dim: l2.macro_dim,
        }
    }

    /// z -> h.
    pub fn abstract_state(&self, z: &Tensor) -> Tensor {
        self.abstraction.forward(z)
    }

    /// Normalised action chunks `[B, k, 2]` -> macro-actions `[B, m]` in [-1, 1].
    pub fn encode_macro(&self, chunk: &Tensor) -> Tensor {
        self.macro_encoder.forward(&chunk.flatten(1, -1)).tanh()
    }

    /// One level-2 jump: h(t), u(t) -> h(t+k).
    pub fn predict(&self, h: &Tensor, u: &Tensor) -> Tensor {
        h + self.predictor2.forward(&Tensor::cat(&[h, u], -1))
    }

    /// Open-loop level-2 rollout: h0 `[B, H]`, macro-actions `[B, J, m]` -> `[B, J, H]`.
    pub fn rollout(&self, h0: &Tensor, u: &Tensor) -> Tensor {
        let jumps = u.size()[1];
        let mut h = h0.shallow_clone();
        let mut out = Vec::with_capacity(jumps as usize);
        for j in 0..jumps {
            h = self.predict(&h, &u.select(1, j));
            out.push(h.shallow_clone());
        }
        Tensor::stack(&out, 1)
    }
}
