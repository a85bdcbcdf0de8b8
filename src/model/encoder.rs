//! Perception: encoders from observations to the level-1 representation z. Each is a
//! struct built from an `nn::Path` with named sub-paths so checkpoint names stay stable.

use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use super::config::ObservationKind;
use crate::sim::Observation;

/// An MLP with ReLU between layers: `sizes = [in, hidden..., out]`; or, built with
/// `Mlp::normed`, LayerNorm then Mish after each hidden layer (TD-MPC2's `NormedLinear`).
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<nn::Linear>,
    /// One per hidden layer when normed, else empty.
    norms: Vec<nn::LayerNorm>,
}

impl Mlp {
    pub fn new(p: &nn::Path, sizes: &[i64]) -> Mlp {
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| nn::linear(p / format!("fc{i}"), w[0], w[1], Default::default()))
            .collect();
        Mlp {
            layers,
            norms: Vec::new(),
        }
    }

    /// LayerNorm (`ln{i}`) and Mish after each hidden layer: activations keep one scale
    /// however deep the net, which is what lets TD-MPC2's dynamics nets train stably.
    pub fn normed(p: &nn::Path, sizes: &[i64]) -> Mlp {
        let mut mlp = Mlp::new(p, sizes);
        mlp.norms = sizes[1..sizes.len() - 1]
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let cfg = nn::LayerNormConfig {
                    eps: LAYER_NORM_EPS,
                    ..Default::default()
                };
                nn::layer_norm(p / format!("ln{i}"), vec![w], cfg)
            })
            .collect();
        mlp
    }

    /// Zeroes the output layer, so the net starts out answering 0 (a residual step that
    /// starts as the identity).
    pub fn zero_output(self) -> Mlp {
        if let Some(last) = self.layers.last() {
            tch::no_grad(|| {
                let _ = last.ws.shallow_clone().zero_();
                if let Some(b) = &last.bs {
                    let _ = b.shallow_clone().zero_();
                }
            });
        }
        self
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h);
            if i + 1 < self.layers.len() {
                h = match self.norms.get(i) {
                    Some(norm) => norm.forward(&h).mish(),
                    None => h.relu(),
                };
            }
        }
        h
    }
}

/// Same-shaped MLPs (an ensemble's members) run as one batched net: each layer's weights
/// are stacked over the members, so K members cost one batched matmul per layer rather than
/// K small ones (fewer kernel launches on a GPU; on a CPU `hjepa bench model` measured it
/// 1.0-1.6x slower, so CPUs do not use it). Built from the members' own variables, so
/// gradients reach them and checkpoint names do not change.
#[derive(Debug)]
pub struct StackedMlp {
    /// `[K, in, out]` per layer.
    weights: Vec<Tensor>,
    /// `[K, 1, out]` per layer.
    biases: Vec<Tensor>,
    /// Per hidden layer when the members are normed: LayerNorm's gain and shift, `[K, 1, out]`.
    norms: Vec<(Tensor, Tensor)>,
}

/// The epsilon of `Mlp::normed`'s LayerNorms (tch's default), for the stacked path.
const LAYER_NORM_EPS: f64 = 1e-5;

fn affine(t: &Option<Tensor>) -> &Tensor {
    t.as_ref().expect("LayerNorm with affine parameters")
}

impl StackedMlp {
    pub fn new(members: &[Mlp]) -> StackedMlp {
        let first = &members[0];
        assert!(
            members
                .iter()
                .all(|m| m.layers.len() == first.layers.len() && m.norms.len() == first.norms.len()),
            "stacked MLPs need the same shape"
        );
        let stack = |ts: Vec<&Tensor>| Tensor::stack(&ts, 0);
        let weights = (0..first.layers.len())
            .map(|i| stack(members.iter().map(|m| &m.layers[i].ws).collect()).transpose(1, 2))
            .collect();
        let biases = (0..first.layers.len())
            .map(|i| {
                let bs = members
                    .iter()
                    .map(|m| m.layers[i].bs.as_ref().expect("Mlp layers have biases"));
                stack(bs.collect()).unsqueeze(1)
            })
            .collect();
        let norms = (0..first.norms.len())
            .map(|i| {
                let gain = stack(members.iter().map(|m| affine(&m.norms[i].ws)).collect());
                let shift = stack(members.iter().map(|m| affine(&m.norms[i].bs)).collect());
                (gain.unsqueeze(1), shift.unsqueeze(1))
            })
            .collect();
        StackedMlp {
            weights,
            biases,
            norms,
        }
    }

    /// `[K, B, in]` -> `[K, B, out]`: member k's net applied to row block k.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        let last = self.weights.len() - 1;
        for (i, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            h = b.baddbmm(&h, w, 1.0, 1.0);
            if i < last {
                h = match self.norms.get(i) {
                    Some((gain, shift)) => {
                        let width = h.size()[2];
                        (h.layer_norm(
                            [width],
                            None::<&Tensor>,
                            None::<&Tensor>,
                            LAYER_NORM_EPS,
                            true,
                        ) * gain
                            + shift)
                            .mish()
                    }
                    None => h.relu(),
                };
            }
        }
        h
    }
}

/// Pixels `[N, H, W, 3]` u8 -> z `[N, latent]`: stride-2 convs (k 4) with ReLU, then a linear map.
///
/// Images are first normalised per pixel and channel with the training set's mean and std
/// (non-trainable variables kept in the checkpoint). In top-down scenes most pixels never
/// change, so this removes the static background and scales up the few pixels that move,
/// which lets a small agent dot drive the representation from the first steps.
#[derive(Debug)]
pub struct PixelEncoder {
    mean: Tensor,
    std: Tensor,
    convs: Vec<nn::Conv2D>,
    head: nn::Linear,
}

impl PixelEncoder {
    pub fn new(
        p: &nn::Path,
        height: i64,
        width: i64,
        channels: &[i64],
        latent: i64,
    ) -> PixelEncoder {
        let cfg = nn::ConvConfig {
            stride: 2,
            padding: 1,
            ..Default::default()
        };
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
        let mean = p.zeros_no_train("input_mean", &[height, width, 3]);
        let std = p.ones_no_train("input_std", &[height, width, 3]);
        PixelEncoder {
            mean,
            std,
            convs,
            head,
        }
    }

    pub fn encode(&self, images: &Tensor) -> Tensor {
        let x = (images.to_kind(Kind::Float) / 255.0 - &self.mean) / &self.std;
        let mut x = x.permute([0, 3, 1, 2]);
        for c in &self.convs {
            x = c.forward(&x).relu();
        }
        self.head.forward(&x.flatten(1, -1))
    }
}

/// State vectors `[N, D]` -> z: angle components become (cos, sin) so the wrap at +-pi is
/// no discontinuity, then everything is normalised with the training set's mean and std
/// (non-trainable variables kept in the checkpoint) and fed to an MLP.
#[derive(Debug)]
pub struct StateEncoder {
    /// The normalised features (the identity encoder's z; same checkpoint names).
    input: IdentityEncoder,
    mlp: Mlp,
}

/// `[N, D]` states -> `[N, D + A]` features: the non-angle components, then cos and sin of
/// each angle component.
pub fn state_features(states: &Tensor, angles: &[i64]) -> Tensor {
    if angles.is_empty() {
        return states.shallow_clone();
    }
    let d = states.size()[1];
    let plain: Vec<i64> = (0..d).filter(|i| !angles.contains(i)).collect();
    let idx = |v: &[i64]| Tensor::from_slice(v).to_device(states.device());
    let a = states.index_select(1, &idx(angles));
    Tensor::cat(&[states.index_select(1, &idx(&plain)), a.cos(), a.sin()], 1)
}

/// The inverse of [`state_features`]: `[N, D + A]` features -> `[N, D]` states, each angle
/// back from its (cos, sin) by atan2.
pub fn state_from_features(features: &Tensor, dim: i64, angles: &[i64]) -> Tensor {
    if angles.is_empty() {
        return features.shallow_clone();
    }
    let a = angles.len() as i64;
    let plain: Vec<i64> = (0..dim).filter(|i| !angles.contains(i)).collect();
    let idx = |v: &[i64]| Tensor::from_slice(v).to_device(features.device());
    let p = plain.len() as i64;
    let angle = features
        .narrow(1, p + a, a)
        .atan2(&features.narrow(1, p, a));
    let n = features.size()[0];
    Tensor::zeros([n, dim], (features.kind(), features.device()))
        .index_copy(1, &idx(&plain), &features.narrow(1, 0, p))
        .index_copy(1, &idx(angles), &angle)
}

impl StateEncoder {
    pub fn new(p: &nn::Path, dim: i64, angles: &[i64], hidden: i64, latent: i64) -> StateEncoder {
        let features = dim + angles.len() as i64;
        StateEncoder {
            input: IdentityEncoder::new(p, dim, angles),
            mlp: Mlp::new(&(p / "mlp"), &[features, hidden, hidden, latent]),
        }
    }

    pub fn encode(&self, states: &Tensor) -> Tensor {
        self.mlp.forward(&self.input.encode(states))
    }
}

/// State vectors `[N, D]` -> their normalised features `[N, D + A]`, nothing trained: a
/// world model whose predictors work on the state itself (`[perception] encoder = "identity"`).
#[derive(Debug)]
pub struct IdentityEncoder {
    angles: Vec<i64>,
    mean: Tensor,
    std: Tensor,
}

impl IdentityEncoder {
    pub fn new(p: &nn::Path, dim: i64, angles: &[i64]) -> IdentityEncoder {
        let features = dim + angles.len() as i64;
        IdentityEncoder {
            angles: angles.to_vec(),
            mean: p.zeros_no_train("input_mean", &[features]),
            std: p.ones_no_train("input_std", &[features]),
        }
    }

    pub fn encode(&self, states: &Tensor) -> Tensor {
        (state_features(states, &self.angles) - &self.mean) / &self.std
    }

    /// The training set's feature mean and std that z is normalised with.
    pub fn stats(&self) -> (&Tensor, &Tensor) {
        (&self.mean, &self.std)
    }

    /// z `[N, D + A]` -> the state vectors `[N, D]` it encodes (for predicted z, the states
    /// the predictors expect).
    pub fn decode(&self, z: &Tensor) -> Tensor {
        let dim = self.mean.size()[0] - self.angles.len() as i64;
        state_from_features(&(z * &self.std + &self.mean), dim, &self.angles)
    }
}

#[derive(Debug)]
pub enum Encoder {
    Pixels(PixelEncoder),
    State(StateEncoder),
    Identity(IdentityEncoder),
}

impl Encoder {
    pub fn encode(&self, obs: &Tensor) -> Tensor {
        match self {
            Encoder::Pixels(e) => e.encode(obs),
            Encoder::State(e) => e.encode(obs),
            Encoder::Identity(e) => e.encode(obs),
        }
    }
}

/// An observation as a batch of one, in the layout the encoder reads.
pub fn observation_tensor(obs: &Observation, kind: ObservationKind, device: Device) -> Tensor {
    match kind {
        ObservationKind::Pixels => {
            let img = obs
                .image
                .as_ref()
                .expect("checked: the scene renders images");
            Tensor::from_slice(&img.rgb)
                .view([1, img.height as i64, img.width as i64, 3])
                .to_device(device)
        }
        ObservationKind::State => Tensor::from_slice(&obs.state)
            .view([1, -1])
            .to_device(device),
    }
}
