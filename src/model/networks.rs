//! The H-JEPA networks, each a struct built from an `nn::Path` with named sub-paths so
//! checkpoint names stay stable: perception encoders, the level-1 predictor, the level-2
//! abstraction, macro-action encoder and predictor, and inverse-dynamics heads.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::config::{AgentFile, ObservationKind};

/// An MLP with ReLU between layers: `sizes = [in, hidden..., out]`.
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<nn::Linear>,
}

impl Mlp {
    pub fn new(p: &nn::Path, sizes: &[i64]) -> Mlp {
        let layers = sizes.windows(2).enumerate().map(|(i, w)| nn::linear(p / format!("fc{i}"), w[0], w[1], Default::default())).collect();
        Mlp { layers }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h);
            if i + 1 < self.layers.len() {
                h = h.relu();
            }
        }
        h
    }
}

/// Pixels `[N, H, W, 3]` u8 -> z `[N, latent]`: stride-2 convs (k 4) with ReLU, then a linear map.
#[derive(Debug)]
pub struct PixelEncoder {
    convs: Vec<nn::Conv2D>,
    head: nn::Linear,
}

impl PixelEncoder {
    pub fn new(p: &nn::Path, height: i64, width: i64, channels: &[i64], latent: i64) -> PixelEncoder {
        let cfg = nn::ConvConfig { stride: 2, padding: 1, ..Default::default() };
        let mut c_in = 3;
        let (mut h, mut w) = (height, width);
        let mut convs = Vec::new();
        for (i, &c) in channels.iter().enumerate() {
            convs.push(nn::conv2d(p / format!("conv{i}"), c_in, c, 4, cfg));
            c_in = c;
            h /= 2;
            w /= 2;
        }
        let head = nn::linear(p / "head", c_in * h * w, latent, Default::default());
        PixelEncoder { convs, head }
    }

    pub fn encode(&self, images: &Tensor) -> Tensor {
        let mut x = images.permute([0, 3, 1, 2]).to_kind(Kind::Float) / 255.0;
        for c in &self.convs {
            x = c.forward(&x).relu();
        }
        self.head.forward(&x.flatten(1, -1))
    }
}

/// State vectors `[N, D]` -> z, after normalising with the training set's mean and std
/// (kept in the checkpoint as non-trainable variables).
#[derive(Debug)]
pub struct StateEncoder {
    mean: Tensor,
    std: Tensor,
    mlp: Mlp,
}

impl StateEncoder {
    pub fn new(p: &nn::Path, dim: i64, hidden: i64, latent: i64) -> StateEncoder {
        StateEncoder {
            mean: p.zeros_no_train("input_mean", &[dim]),
            std: p.ones_no_train("input_std", &[dim]),
            mlp: Mlp::new(&(p / "mlp"), &[dim, hidden, hidden, latent]),
        }
    }

    pub fn encode(&self, states: &Tensor) -> Tensor {
        self.mlp.forward(&((states - &self.mean) / &self.std))
    }
}

#[derive(Debug)]
pub enum Encoder {
    Pixels(PixelEncoder),
    State(StateEncoder),
}

impl Encoder {
    pub fn encode(&self, obs: &Tensor) -> Tensor {
        match self {
            Encoder::Pixels(e) => e.encode(obs),
            Encoder::State(e) => e.encode(obs),
        }
    }
}

/// Shapes of the data the model is built for.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelShapes {
    /// `[H, W, 3]` for pixels, `[D]` for states.
    pub observation: Vec<i64>,
    pub action_low: [f32; 2],
    pub action_high: [f32; 2],
}

/// The whole world model: both levels.
#[derive(Debug)]
pub struct WorldModel {
    pub encoder: Encoder,
    /// z(t), a(t) -> z(t+1), as a residual.
    pub predictor1: Mlp,
    /// z(t), z(t+1) -> a(t), for the inverse-dynamics regulariser.
    pub idm1: Mlp,
    pub level2: Option<Level2Nets>,
    action_center: Tensor,
    action_scale: Tensor,
    pub latent_dim: i64,
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

impl WorldModel {
    pub fn new(p: &nn::Path, agent: &AgentFile, shapes: &ModelShapes) -> WorldModel {
        let d = agent.perception.latent_dim;
        let encoder = match agent.perception.observation {
            ObservationKind::Pixels => Encoder::Pixels(PixelEncoder::new(
                &(p / "encoder"),
                shapes.observation[0],
                shapes.observation[1],
                &agent.perception.channels,
                d,
            )),
            ObservationKind::State => Encoder::State(StateEncoder::new(&(p / "encoder"), shapes.observation[0], agent.perception.hidden, d)),
        };
        let h1 = agent.level1.hidden;
        let level2 = agent.level2.enabled.then(|| {
            let l2 = &agent.level2;
            let q = p / "level2";
            Level2Nets {
                abstraction: Mlp::new(&(&q / "abstraction"), &[d, l2.hidden, l2.dim]),
                macro_encoder: Mlp::new(&(&q / "macro_encoder"), &[2 * l2.k, l2.hidden, l2.macro_dim]),
                predictor2: Mlp::new(&(&q / "predictor"), &[l2.dim + l2.macro_dim, l2.hidden, l2.hidden, l2.dim]),
                idm2: Mlp::new(&(&q / "idm"), &[2 * l2.dim, l2.hidden, l2.macro_dim]),
                k: l2.k,
                dim: l2.dim,
                macro_dim: l2.macro_dim,
            }
        });
        let lo = Tensor::from_slice(&shapes.action_low);
        let hi = Tensor::from_slice(&shapes.action_high);
        WorldModel {
            encoder,
            predictor1: Mlp::new(&(p / "predictor1"), &[d + 2, h1, h1, d]),
            idm1: Mlp::new(&(p / "idm1"), &[2 * d, h1, 2]),
            level2,
            action_center: ((&hi + &lo) / 2.0).to_device(p.device()),
            action_scale: ((&hi - &lo) / 2.0).clamp_min(1e-6).to_device(p.device()),
            latent_dim: d,
        }
    }

    /// Observations -> z.
    pub fn encode(&self, obs: &Tensor) -> Tensor {
        self.encoder.encode(obs)
    }

    /// Actions in the scene's units -> [-1, 1].
    pub fn normalize_actions(&self, a: &Tensor) -> Tensor {
        (a - &self.action_center) / &self.action_scale
    }

    /// One level-1 step: z(t), normalised a(t) -> z(t+1).
    pub fn predict(&self, z: &Tensor, a_norm: &Tensor) -> Tensor {
        z + self.predictor1.forward(&Tensor::cat(&[z, a_norm], -1))
    }

    /// Open-loop level-1 rollout: z0 `[B, D]`, normalised actions `[B, T, 2]` -> `[B, T, D]`
    /// (the predicted z(1..T)).
    pub fn rollout(&self, z0: &Tensor, a_norm: &Tensor) -> Tensor {
        let steps = a_norm.size()[1];
        let mut z = z0.shallow_clone();
        let mut out = Vec::with_capacity(steps as usize);
        for t in 0..steps {
            z = self.predict(&z, &a_norm.select(1, t));
            out.push(z.shallow_clone());
        }
        Tensor::stack(&out, 1)
    }
}

impl Level2Nets {
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
