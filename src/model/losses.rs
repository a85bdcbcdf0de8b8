//! Anti-collapse regularisers and the per-level loss, as named terms.

use tch::{Kind, Tensor};

use super::config::{AntiCollapse, LossWeights};

/// VICReg variance term: hinge on each dimension's std, pushing it up to 1.
pub fn variance(z: &Tensor) -> Tensor {
    let std = (z.var_dim(0i64, true, false) + 1e-4).sqrt();
    (-std + 1.0).relu().mean(Kind::Float)
}

/// VICReg covariance term: squared off-diagonal covariances, divided by the dimension.
pub fn covariance(z: &Tensor) -> Tensor {
    let (n, d) = (z.size()[0], z.size()[1]);
    let zc = z - z.mean_dim(0i64, true, Kind::Float);
    let cov = zc.transpose(0, 1).matmul(&zc) / ((n - 1).max(1) as f64);
    let off = &cov - cov.diagonal(0, 0, 1).diag_embed(0, 0, 1);
    off.pow_tensor_scalar(2).sum(Kind::Float) / d as f64
}

/// LeJEPA's SIGReg: the Epps-Pulley statistic between each random 1-D projection of the
/// (batch of) embeddings and N(0, 1), averaged over `projections` unit directions. The
/// empirical characteristic function is compared with exp(-t^2/2) on 17 knots in [0, 3]
/// with trapezoid weights and a Gaussian window.
pub fn sigreg(z: &Tensor, projections: i64) -> Tensor {
    let d = z.size()[1];
    let dirs = Tensor::randn([d, projections], (Kind::Float, z.device()));
    let dirs = &dirs / dirs.norm_scalaropt_dim(2.0, [0i64], true);
    let x = z.matmul(&dirs); // [N, M]
    let knots = 17;
    let t = Tensor::linspace(0.0, 3.0, knots, (Kind::Float, z.device()));
    let tx = x.unsqueeze(-1) * &t; // [N, M, K]
    let re = tx.cos().mean_dim(0i64, false, Kind::Float);
    let im = tx.sin().mean_dim(0i64, false, Kind::Float);
    let target = (-(&t * &t) / 2.0).exp();
    let err = (re - &target).pow_tensor_scalar(2) + im.pow_tensor_scalar(2); // [M, K]
    let dt = 3.0 / (knots - 1) as f64;
    let mut w = vec![dt; knots as usize];
    w[0] = dt / 2.0;
    w[knots as usize - 1] = dt / 2.0;
    let weights = Tensor::from_slice(&w)
        .to_kind(Kind::Float)
        .to_device(z.device())
        * &target;
    (err * weights)
        .sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)
        .mean(Kind::Float)
}

/// One level's loss terms, as numbers for logs.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossTerms {
    pub prediction: f64,
    pub variance: f64,
    pub covariance: f64,
    pub time_sim: f64,
    pub idm: f64,
    pub sigreg: f64,
    pub total: f64,
}

/// The inputs of one level's loss.
pub struct LevelOutputs<'a> {
    /// Predicted representations `[B, T, D]`.
    pub predicted: &'a Tensor,
    /// Their targets `[B, T, D]` (from the EMA encoder, detached, for `Ema`).
    pub targets: &'a Tensor,
    /// Every representation of the window `[B, L, D]` (online encoder).
    pub all: &'a Tensor,
    /// Inverse-dynamics prediction and target, when the level has one.
    pub idm: Option<(Tensor, Tensor)>,
}

/// Combines a level's terms under its anti-collapse method; returns the differentiable
/// total and the numbers.
pub fn level_loss(out: LevelOutputs, method: AntiCollapse, w: &LossWeights) -> (Tensor, LossTerms) {
    let pred = (out.predicted - out.targets)
        .pow_tensor_scalar(2)
        .mean(Kind::Float);
    let flat = out.all.flatten(0, 1);
    let mut terms = LossTerms {
        prediction: pred.double_value(&[]),
        ..Default::default()
    };
    let total = match method {
        AntiCollapse::Vicreg => {
            let var = variance(&flat);
            let cov = covariance(&flat);
            let time = (out.all.narrow(1, 1, out.all.size()[1] - 1)
                - out.all.narrow(1, 0, out.all.size()[1] - 1))
            .pow_tensor_scalar(2)
            .mean(Kind::Float);
            let idm = match &out.idm {
                Some((p, t)) => (p - t).pow_tensor_scalar(2).mean(Kind::Float),
                None => Tensor::zeros([], (Kind::Float, flat.device())),
            };
            terms.variance = var.double_value(&[]);
            terms.covariance = cov.double_value(&[]);
            terms.time_sim = time.double_value(&[]);
            terms.idm = idm.double_value(&[]);
            &pred * w.prediction + var * w.std + cov * w.cov + time * w.time_sim + idm * w.idm
        }
        AntiCollapse::Sigreg => {
            let s = sigreg(&flat, w.sigreg_projections);
            terms.sigreg = s.double_value(&[]);
            &pred * ((1.0 - w.sigreg) * w.prediction) + s * w.sigreg
        }
        AntiCollapse::Ema => &pred * w.prediction,
    };
    terms.total = total.double_value(&[]);
    (total, terms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variance_and_sigreg_punish_collapse() {
        tch::manual_seed(0);
        let healthy = Tensor::randn([512, 8], (Kind::Float, tch::Device::Cpu));
        let collapsed = Tensor::ones([512, 8], (Kind::Float, tch::Device::Cpu)) * 0.3;
        assert!(variance(&healthy).double_value(&[]) < 0.1);
        assert!(variance(&collapsed).double_value(&[]) > 0.9);
        assert!(sigreg(&healthy, 64).double_value(&[]) < 0.01);
        assert!(sigreg(&collapsed, 64).double_value(&[]) > 0.1);
        // Perfectly correlated dimensions have a large covariance term; independent ones do not.
        let col = Tensor::randn([512, 1], (Kind::Float, tch::Device::Cpu));
        let correlated = col.repeat([1, 8]);
        assert!(
            covariance(&correlated).double_value(&[])
                > 10.0 * covariance(&healthy).double_value(&[])
        );
    }
}
