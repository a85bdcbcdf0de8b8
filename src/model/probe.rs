//! Diagnostics, at every validation and from `hjepa probe`: prediction error per horizon at
//! both levels, embedding spread and effective rank with a collapse alarm, linear probes from
//! each level's representation to the true physical state, and level-2 consistency.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::data::TrainingData;
use super::world_model::{Level2Nets, WorldModel};

/// Alarm thresholds: a representation whose effective rank is below this fraction of its
/// dimension (and below 2), or whose mean per-dimension std is below `MIN_STD` relative to
/// its mean absolute value, has collapsed.
pub const MIN_RANK_FRACTION: f64 = 0.1;
pub const MIN_STD: f64 = 1e-3;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Spread {
    pub std_mean: f64,
    pub std_min: f64,
    pub effective_rank: f64,
    pub dim: i64,
}

impl Spread {
    /// The reason for a collapse alarm, if any.
    pub fn alarm(&self) -> Option<String> {
        if !self.std_mean.is_finite() {
            return Some("non-finite representations".into());
        }
        if self.std_mean < MIN_STD {
            return Some(format!(
                "mean std per dimension {:.2e} < {MIN_STD:.0e}",
                self.std_mean
            ));
        }
        if self.effective_rank
            < (MIN_RANK_FRACTION * self.dim as f64)
                .max(2.0)
                .min(self.dim as f64)
        {
            return Some(format!(
                "effective rank {:.2} of {} dimensions",
                self.effective_rank, self.dim
            ));
        }
        None
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Probe {
    /// What is probed: `agent position`, `<body> pose`.
    pub target: String,
    pub level: u8,
    /// R^2 on held-out episodes (mean over the target's columns).
    pub r2: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Diagnostics {
    /// Level-1 open-loop error at 1..H steps, relative to the representation's variance.
    pub level1_error: Vec<f64>,
    /// Level-2 error at 1..J jumps, relative to h's variance.
    pub level2_error: Vec<f64>,
    /// Control steps per level-2 jump (0 without level 2).
    #[serde(default)]
    pub level2_k: i64,
    /// E2 of k composed level-1 steps vs P2's one jump, relative to h's variance.
    pub level2_consistency: Option<f64>,
    pub level1_spread: Spread,
    pub level2_spread: Option<Spread>,
    pub probes: Vec<Probe>,
    /// Correlation between the critic's estimate and the true temporal distance (clipped)
    /// on pairs of held-out frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critic_correlation: Option<f64>,
    /// The critics over a maze's cells (`hjepa probe` on scenes with a grid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critic_map: Option<super::critic_map::CriticMap>,
}

impl Diagnostics {
    /// Whether every representation was finite (weights that blew up make them inf/NaN).
    pub fn finite(&self) -> bool {
        self.level1_spread.std_mean.is_finite()
            && self
                .level2_spread
                .as_ref()
                .is_none_or(|s| s.std_mean.is_finite())
    }

    pub fn alarms(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(a) = self.level1_spread.alarm() {
            v.push(format!("COLLAPSE ALARM level 1: {a}"));
        }
        if let Some(a) = self.level2_spread.as_ref().and_then(|s| s.alarm()) {
            v.push(format!("COLLAPSE ALARM level 2: {a}"));
        }
        v
    }

    pub fn summary(&self) -> String {
        let f = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut s = format!(
            "level-1 error by horizon [{}]; std {:.3} (min {:.3}), effective rank {:.1}/{}",
            f(&self.level1_error),
            self.level1_spread.std_mean,
            self.level1_spread.std_min,
            self.level1_spread.effective_rank,
            self.level1_spread.dim
        );
        if let Some(sp) = &self.level2_spread {
            s += &format!(
                "\nlevel-2 error by jump [{}]; consistency {:.3}; std {:.3}, effective rank {:.1}/{}",
                f(&self.level2_error),
                self.level2_consistency.unwrap_or(f64::NAN),
                sp.std_mean,
                sp.effective_rank,
                sp.dim
            );
        }
        for p in &self.probes {
            s += &format!("\nprobe level {} -> {}: R^2 {:.3}", p.level, p.target, p.r2);
        }
        if let Some(c) = self.critic_correlation {
            s += &format!("\ncritic vs true temporal distance (held out): correlation {c:.3}");
        }
        if let Some(m) = &self.critic_map {
            s += &format!("\n{}", m.summary());
        }
        for a in self.alarms() {
            s += &format!("\n{a}");
        }
        s
    }
}

/// Spread statistics of representations `[N, D]`.
pub fn spread(z: &Tensor) -> Spread {
    let z = z.to_kind(Kind::Double);
    if !bool::try_from(z.isfinite().all()).unwrap_or(false) {
        return Spread {
            std_mean: f64::NAN,
            std_min: f64::NAN,
            effective_rank: f64::NAN,
            dim: z.size()[1],
        };
    }
    let std = z.std_dim(0i64, false, false);
    let zc = &z - z.mean_dim(0i64, true, Kind::Double);
    let (_, s, _) = zc.svd(true, false);
    let p = &s / s.sum(Kind::Double).clamp_min(1e-12);
    let entropy = -(&p * (&p + 1e-12).log()).sum(Kind::Double);
    Spread {
        std_mean: std.mean(Kind::Double).double_value(&[]),
        std_min: std.min().double_value(&[]),
        effective_rank: entropy.exp().double_value(&[]),
        dim: z.size()[1],
    }
}

/// Encodes observation rows in chunks without gradients.
pub fn encode_rows(
    model: &WorldModel,
    data: &TrainingData,
    rows: &[i64],
    device: Device,
) -> Tensor {
    tch::no_grad(|| {
        let chunks: Vec<Tensor> = rows
            .chunks(512)
            .map(|c| {
                model
                    .encode(
                        &data
                            .obs
                            .index_select(0, &Tensor::from_slice(c))
                            .to_device(device),
                    )
                    .to(Device::Cpu)
            })
            .collect();
        Tensor::cat(&chunks, 0)
    })
}

/// Ridge regression from `x_train` to `y_train`, scored by R^2 per column on the test rows.
/// Features are standardised with the training rows' statistics first, so the score does
/// not depend on the representation's scale (a tiny-variance encoder is not penalised by
/// the ridge term). Non-finite inputs score NaN.
pub fn linear_probe_r2(
    x_train: &Tensor,
    y_train: &Tensor,
    x_test: &Tensor,
    y_test: &Tensor,
) -> Vec<f64> {
    let cols = y_train.size().get(1).copied().unwrap_or(1) as usize;
    let finite = |t: &Tensor| bool::try_from(t.isfinite().all()).unwrap_or(false);
    if ![x_train, y_train, x_test, y_test].into_iter().all(finite) {
        return vec![f64::NAN; cols];
    }
    let (xt, xv) = (x_train.to_kind(Kind::Double), x_test.to_kind(Kind::Double));
    let mean = xt.mean_dim(0i64, true, Kind::Double);
    let std = xt.std_dim(0i64, false, true).clamp_min(1e-12);
    let (xt, xv) = ((&xt - &mean) / &std, (&xv - &mean) / &std);
    let (yt, yv) = (y_train.to_kind(Kind::Double), y_test.to_kind(Kind::Double));
    let y_mean = yt.mean_dim(0i64, true, Kind::Double);
    let (n, d) = (xt.size()[0], xt.size()[1]);
    let gram = xt.transpose(0, 1).matmul(&xt)
        + Tensor::eye(d, (Kind::Double, Device::Cpu)) * (1e-4 * n as f64);
    let w = Tensor::linalg_solve(&gram, &xt.transpose(0, 1).matmul(&(&yt - &y_mean)), true);
    let pred = xv.matmul(&w) + &y_mean;
    let sse =
        (&pred - &yv)
            .pow_tensor_scalar(2)
            .sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
    let sst = (&yv - yv.mean_dim(0i64, true, Kind::Double))
        .pow_tensor_scalar(2)
        .sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
    let r2 = 1.0 - sse / sst.clamp_min(1e-12);
    Vec::<f64>::try_from(r2).unwrap_or_default()
}

/// Probe targets from the physical state: the agent's position and each body's pose (x, y,
/// cos and sin of the angle, so the wrap-around does not hurt a linear probe).
fn probe_targets(data: &TrainingData) -> Vec<(String, Tensor)> {
    let col = |name: &str| {
        data.state_names
            .iter()
            .position(|n| n == name)
            .map(|i| data.states.select(1, i as i64))
    };
    let mut out = Vec::new();
    if let (Some(x), Some(y)) = (col("agent.x"), col("agent.y")) {
        out.push(("agent position".to_string(), Tensor::stack(&[x, y], 1)));
    }
    for n in &data.state_names {
        if let Some(body) = n.strip_suffix(".angle") {
            if let (Some(x), Some(y), Some(a)) =
                (col(&format!("{body}.x")), col(&format!("{body}.y")), col(n))
            {
                out.push((
                    format!("{body} pose"),
                    Tensor::stack(&[x, y, a.cos(), a.sin()], 1),
                ));
            }
        }
    }
    out
}

/// Every diagnostic on held-out windows and frames (deterministic subsets).
pub fn diagnose(
    model: &WorldModel,
    data: &TrainingData,
    device: Device,
    max_windows: usize,
    max_frames: usize,
) -> Diagnostics {
    let val_w = every_nth(&data.val_windows, max_windows);
    let train_rows = every_nth(&data.train_frames, max_frames);
    let val_rows = every_nth(&data.val_frames, max_frames);
    let mut d = Diagnostics::default();
    prediction_errors(model, data, &val_w, device, &mut d);
    if let (Some(_), false) = (&model.critic, data.val_episodes.is_empty()) {
        d.critic_correlation = Some(critic_correlation(model, data, device));
    }
    representation_probes(model, data, &train_rows, &val_rows, device, &mut d);
    d
}

/// Evenly spaced items of `items`: every one when there are at most `cap`, else every
/// `len / cap`-th (so a few more than `cap`).
fn every_nth<T: Copy>(items: &[T], cap: usize) -> Vec<T> {
    let stride = |n: usize, cap: usize| (n / cap.max(1)).max(1);
    items
        .iter()
        .step_by(stride(items.len(), cap))
        .copied()
        .collect()
}

/// Open-loop prediction errors on the windows `val_w`, relative to the representation's
/// variance: level 1 per step, and level 2 per jump with its consistency.
fn prediction_errors(
    model: &WorldModel,
    data: &TrainingData,
    val_w: &[(i64, i64)],
    device: Device,
    d: &mut Diagnostics,
) {
    tch::no_grad(|| {
        let (obs, actions) = data.batch(val_w, device);
        let (b, l) = (obs.size()[0], obs.size()[1]);
        let z = model.encode(&obs.flatten(0, 1)).view([b, l, -1]);
        let a = model.normalize_actions(&actions);
        let var_z = z
            .flatten(0, 1)
            .var_dim(0i64, false, false)
            .mean(Kind::Float)
            .clamp_min(1e-12);
        let pred = model.rollout(&z.select(1, 0), &a);
        d.level1_error = (0..l - 1)
            .map(|t| {
                ((pred.select(1, t) - z.select(1, t + 1))
                    .pow_tensor_scalar(2)
                    .mean(Kind::Float)
                    / &var_z)
                    .double_value(&[])
            })
            .collect();
        if let Some(l2) = &model.level2 {
            level2_errors(l2, &z, &a, &pred, device, d);
        }
    });
}

/// Level 2's error per jump from the encodings `z` `[B, L, D]` and normalised actions `a`,
/// and the consistency of one jump with k composed level-1 steps (`pred`, the level-1
/// rollout).
fn level2_errors(
    l2: &Level2Nets,
    z: &Tensor,
    a: &Tensor,
    pred: &Tensor,
    device: Device,
    d: &mut Diagnostics,
) {
    let (b, l) = (z.size()[0], z.size()[1]);
    let jumps = (l - 1) / l2.k;
    d.level2_k = l2.k;
    let idx: Vec<i64> = (0..=jumps).map(|j| j * l2.k).collect();
    let h = l2.abstract_state(&z.index_select(1, &Tensor::from_slice(&idx).to_device(device)));
    let var_h = h
        .flatten(0, 1)
        .var_dim(0i64, false, false)
        .mean(Kind::Float)
        .clamp_min(1e-12);
    let chunks = a.narrow(1, 0, jumps * l2.k).reshape([b * jumps, l2.k, 2]);
    let u = l2.encode_macro(&chunks).view([b, jumps, -1]);
    let hp = l2.rollout(&h.select(1, 0), &u);
    d.level2_error = (0..jumps)
        .map(|j| {
            ((hp.select(1, j) - h.select(1, j + 1))
                .pow_tensor_scalar(2)
                .mean(Kind::Float)
                / &var_h)
                .double_value(&[])
        })
        .collect();
    let composed = l2.abstract_state(&pred.select(1, l2.k - 1));
    d.level2_consistency = Some(
        ((composed - hp.select(1, 0))
            .pow_tensor_scalar(2)
            .mean(Kind::Float)
            / &var_h)
            .double_value(&[]),
    );
}

/// Spread of the held-out representations at both levels, and linear probes from them to
/// the physical state (fitted on the training frames).
fn representation_probes(
    model: &WorldModel,
    data: &TrainingData,
    train_rows: &[i64],
    val_rows: &[i64],
    device: Device,
    d: &mut Diagnostics,
) {
    let z_train = encode_rows(model, data, train_rows, device);
    let z_val = encode_rows(model, data, val_rows, device);
    d.level1_spread = spread(&z_val);
    let h_of = |z: &Tensor| {
        model
            .level2
            .as_ref()
            .map(|l2| tch::no_grad(|| l2.abstract_state(&z.to_device(device)).to(Device::Cpu)))
    };
    let (h_train, h_val) = (h_of(&z_train), h_of(&z_val));
    d.level2_spread = h_val.as_ref().map(spread);
    let sel = |rows: &[i64], t: &Tensor| t.index_select(0, &Tensor::from_slice(rows));
    for (name, y) in probe_targets(data) {
        let (yt, yv) = (sel(train_rows, &y), sel(val_rows, &y));
        let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
        d.probes.push(Probe {
            target: name.clone(),
            level: 1,
            r2: mean(linear_probe_r2(&z_train, &yt, &z_val, &yv)),
        });
        if let (Some(ht), Some(hv)) = (&h_train, &h_val) {
            d.probes.push(Probe {
                target: name,
                level: 2,
                r2: mean(linear_probe_r2(ht, &yt, hv, &yv)),
            });
        }
    }
}

/// Pearson correlation between the critic's output and the clipped temporal distance on
/// deterministic pairs from held-out episodes (up to 64 steps apart, 8 pairs per episode).
fn critic_correlation(model: &WorldModel, data: &TrainingData, device: Device) -> f64 {
    let (mut from, mut to, mut dt) = (Vec::new(), Vec::new(), Vec::new());
    for (e, &(start, len)) in data.val_episodes.iter().enumerate().take(256) {
        for j in 0..8i64 {
            let t1 = (j * 7919 + e as i64 * 104_729) % len;
            let gap = (j * 9 + e as i64) % 65;
            let t2 = (t1 + gap).min(len - 1);
            from.push(start + t1);
            to.push(start + t2);
            dt.push((t2 - t1) as f64);
        }
    }
    let za = encode_rows(model, data, &from, device).to_device(device);
    let zb = encode_rows(model, data, &to, device).to_device(device);
    let pred = tch::no_grad(|| {
        model
            .cost_to_go(&za, &zb)
            .expect("critic")
            .to_kind(Kind::Double)
            .to(Device::Cpu)
    });
    let truth = Tensor::from_slice(&dt);
    let (pc, tc) = (
        &pred - pred.mean(Kind::Double),
        &truth - truth.mean(Kind::Double),
    );
    let num = (&pc * &tc).sum(Kind::Double);
    let den = (pc.square().sum(Kind::Double) * tc.square().sum(Kind::Double))
        .sqrt()
        .clamp_min(1e-12);
    (num / den).double_value(&[])
}
