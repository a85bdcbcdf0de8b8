//! Checking a model configuration: ranges and weights, each refusal naming the
//! file, the key and what was expected.

use std::path::Path;

use super::config::*;
use super::world_model::ModelShapes;
use crate::error::InputError;

/// A layer width or a latent size: 1 to [`crate::limits::MAX_HIDDEN`].
fn width(path: &Path, key: &str, v: i64) -> Result<(), InputError> {
    let max = crate::limits::MAX_HIDDEN;
    if (1..=max).contains(&v) {
        Ok(())
    } else {
        Err(InputError::new(
            path,
            key,
            format!("expected a width from 1 to {max}, got {v}"),
        ))
    }
}

impl ModelConfig {
    /// Checks that this model can read data of `shapes` before any net is built: sizes in
    /// range, and for pixels an image that survives every stride-2 convolution stage.
    pub fn check_shapes(&self, shapes: &ModelShapes) -> Result<(), (&'static str, String)> {
        let obs = &shapes.observation;
        let pixels = self.perception.observation == ObservationKind::Pixels;
        let side = crate::limits::MAX_IMAGE_SIDE as i64;
        let ok = match (pixels, obs.as_slice()) {
            (true, &[h, w, 3]) => (1..=side).contains(&h) && (1..=side).contains(&w),
            (false, &[d]) => (1..=100_000).contains(&d),
            _ => false,
        };
        if !ok {
            return Err((
                "shapes.observation",
                format!(
                    "observation shape {obs:?}: expected {}",
                    if pixels {
                        format!("[height, width, 3] with sides from 1 to {side}")
                    } else {
                        "[d] with d from 1 to 100000".to_string()
                    }
                ),
            ));
        }
        if let Some(a) = shapes.angle_inputs.iter().find(|&&a| a < 0 || a >= obs[0]) {
            return Err((
                "shapes.angle_inputs",
                format!(
                    "angle input {a} is outside the state's {} components",
                    obs[0]
                ),
            ));
        }
        let [lo, hi] = [shapes.action_low, shapes.action_high];
        if (0..2).any(|i| !(lo[i].is_finite() && hi[i].is_finite() && lo[i] < hi[i])) {
            return Err((
                "shapes.action_low",
                format!("action box {lo:?}..{hi:?}: expected finite bounds, low below high"),
            ));
        }
        if pixels {
            let stages = self.perception.channels.len() as u32;
            let (h, w) = (obs[0] >> stages, obs[1] >> stages);
            if h < 1 || w < 1 {
                return Err(("perception.channels", format!(
                    "a {}x{} image is too small for {stages} stride-2 convolution stages (perception.channels): each halves it, and it must stay at least 1x1; use fewer stages or a larger image",
                    obs[0], obs[1]
                )));
            }
        }
        Ok(())
    }

    /// Checks every table; errors name the key.
    pub fn validate(&self, path: &Path) -> Result<(), InputError> {
        self.check_perception(path)?;
        self.check_level1(path)?;
        self.check_level2(path)?;
        self.check_critic(path)?;
        self.check_train(path)
    }

    /// `[perception]`: sizes, and the encoder the observations allow.
    fn check_perception(&self, path: &Path) -> Result<(), InputError> {
        let bad = |key: &str, msg: String| Err(InputError::new(path, key, msg));
        let p = &self.perception;
        if p.latent_dim < 1 || p.latent_dim > 4096 {
            return bad(
                "perception.latent_dim",
                format!("expected 1..=4096, got {}", p.latent_dim),
            );
        }
        width(path, "perception.hidden", p.hidden)?;
        if self.level1.prediction_units == PredictionUnits::Step
            && p.encoder != EncoderKind::Identity
        {
            return bad(
                "level1.prediction_units",
                "\"step\" needs a state model (perception.encoder = \"identity\"): a learned encoder's steps change as it trains".into(),
            );
        }
        if p.encoder == EncoderKind::Identity && p.observation != ObservationKind::State {
            return bad(
                "perception.encoder",
                "expected \"learned\" for pixel observations (\"identity\" reads a state vector)"
                    .into(),
            );
        }
        if p.observation == ObservationKind::Pixels
            && (p.channels.is_empty()
                || p.channels.len() > 12
                || p.channels.iter().any(|c| !(1..=4096).contains(c)))
        {
            return bad(
                "perception.channels",
                format!(
                    "expected 1 to 12 stages of 1 to 4096 channels, got {:?}",
                    p.channels
                ),
            );
        }
        Ok(())
    }

    /// `[level1]`: horizon, widths, depth and ensemble.
    fn check_level1(&self, path: &Path) -> Result<(), InputError> {
        let bad = |key: &str, msg: String| Err(InputError::new(path, key, msg));
        if self.level1.horizon < 1 {
            return bad(
                "level1.horizon",
                format!("expected at least 1, got {}", self.level1.horizon),
            );
        }
        width(path, "level1.hidden", self.level1.hidden)?;
        if !(1..=8).contains(&self.level1.predictor_layers) {
            return bad(
                "level1.predictor_layers",
                format!(
                    "expected 1 to 8 hidden layers, got {}",
                    self.level1.predictor_layers
                ),
            );
        }
        if !(1..=16).contains(&self.level1.ensemble) {
            return bad(
                "level1.ensemble",
                format!("expected 1 to 16 predictors, got {}", self.level1.ensemble),
            );
        }
        check_weights(&self.level1.loss, "level1.loss", path)?;
        Ok(())
    }

    /// `[level2]`, when enabled.
    fn check_level2(&self, path: &Path) -> Result<(), InputError> {
        let bad = |key: &str, msg: String| Err(InputError::new(path, key, msg));
        let l2 = &self.level2;
        if l2.enabled {
            for (k, v) in [
                ("k", l2.k),
                ("dim", l2.dim),
                ("macro_dim", l2.macro_dim),
                ("jumps", l2.jumps),
                ("hidden", l2.hidden),
            ] {
                if v < 1 {
                    return bad(
                        &format!("level2.{k}"),
                        format!("expected at least 1, got {v}"),
                    );
                }
            }
            for (k, v) in [
                ("dim", l2.dim),
                ("macro_dim", l2.macro_dim),
                ("hidden", l2.hidden),
            ] {
                width(path, &format!("level2.{k}"), v)?;
            }
            if l2.k > crate::limits::MAX_EPISODE_STEPS as i64 || l2.jumps > 1_000 {
                return bad(
                    "level2",
                    format!(
                        "expected k up to {} and jumps up to 1000, got k = {}, jumps = {}",
                        crate::limits::MAX_EPISODE_STEPS,
                        l2.k,
                        l2.jumps
                    ),
                );
            }
            check_weights(&l2.loss, "level2.loss", path)?;
        }
        Ok(())
    }

    /// `[critic]`, when enabled.
    fn check_critic(&self, path: &Path) -> Result<(), InputError> {
        let bad = |key: &str, msg: String| Err(InputError::new(path, key, msg));
        let c = &self.critic;
        if c.enabled {
            for (key, v) in [
                ("hidden", c.hidden),
                ("max_steps", c.max_steps),
                ("node_stride", c.node_stride),
                ("neighbours", c.neighbours),
                ("sources", c.sources),
                ("predicted_steps", c.predicted_steps),
                ("steps", c.steps),
                ("batch_size", c.batch_size),
            ] {
                if v < 1 {
                    return bad(
                        &format!("critic.{key}"),
                        format!("expected at least 1, got {v}"),
                    );
                }
            }
            width(path, "critic.hidden", c.hidden)?;
            if c.metric_dim < 0 || c.metric_dim > crate::limits::MAX_HIDDEN {
                return bad(
                    "critic.metric_dim",
                    format!(
                        "expected 0 (an MLP on both) or a dimension >= 1, got {}",
                        c.metric_dim
                    ),
                );
            }
            if !(c.radius.is_finite() && c.radius > 0.0) {
                return bad(
                    "critic.radius",
                    format!("expected a length > 0 (data steps), got {}", c.radius),
                );
            }
            if !(c.input_noise.is_finite() && c.input_noise >= 0.0) {
                return bad(
                    "critic.input_noise",
                    format!("expected a std >= 0 (data steps), got {}", c.input_noise),
                );
            }
            if !(c.predicted.is_finite() && (0.0..=1.0).contains(&c.predicted)) {
                return bad(
                    "critic.predicted",
                    format!("expected a fraction in [0, 1], got {}", c.predicted),
                );
            }
            if !(c.learning_rate.is_finite() && c.learning_rate > 0.0) {
                return bad(
                    "critic.learning_rate",
                    format!("expected a value > 0, got {}", c.learning_rate),
                );
            }
        }
        Ok(())
    }

    /// `[train]`: budget, rates and the validation split. (`device` is a `Device` already: whether this machine has it is asked where a model is built, so a GPU-trained checkpoint still loads for a CPU eval.)
    fn check_train(&self, path: &Path) -> Result<(), InputError> {
        let bad = |key: &str, msg: String| Err(InputError::new(path, key, msg));
        let t = &self.train;
        if !(1..=crate::limits::MAX_TRAIN_STEPS).contains(&t.steps) {
            return bad(
                "train.steps",
                format!(
                    "expected 1 to {}, got {}",
                    crate::limits::MAX_TRAIN_STEPS,
                    t.steps
                ),
            );
        }
        if !(2..=65_536).contains(&t.batch_size) {
            return bad(
                "train.batch_size",
                format!(
                    "expected 2 (variance needs a batch) to 65536, got {}",
                    t.batch_size
                ),
            );
        }
        if !(t.learning_rate.is_finite() && t.learning_rate > 0.0) {
            return bad(
                "train.learning_rate",
                format!("expected a positive number, got {}", t.learning_rate),
            );
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            return bad(
                "train.weight_decay",
                format!("expected a number >= 0, got {}", t.weight_decay),
            );
        }
        if t.validate_every < 1 {
            return bad(
                "train.validate_every",
                format!("expected at least 1, got {}", t.validate_every),
            );
        }
        if !(t.validation_fraction > 0.0 && t.validation_fraction < 1.0) {
            return bad(
                "train.validation_fraction",
                format!(
                    "expected a fraction in (0, 1), got {}",
                    t.validation_fraction
                ),
            );
        }
        Ok(())
    }
}

fn check_weights(w: &LossWeights, key: &str, path: &Path) -> Result<(), InputError> {
    for (k, v) in [
        ("prediction", w.prediction),
        ("std", w.std),
        ("cov", w.cov),
        ("time_sim", w.time_sim),
        ("idm", w.idm),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(InputError::new(
                path,
                format!("{key}.{k}"),
                format!("expected a weight >= 0, got {v}"),
            ));
        }
    }
    if !(w.sigreg > 0.0 && w.sigreg < 1.0) {
        return Err(InputError::new(
            path,
            format!("{key}.sigreg"),
            format!("expected lambda in (0, 1), got {}", w.sigreg),
        ));
    }
    if w.sigreg_projections < 1 {
        return Err(InputError::new(
            path,
            format!("{key}.sigreg_projections"),
            format!("expected at least 1, got {}", w.sigreg_projections),
        ));
    }
    if !(w.ema_decay > 0.0 && w.ema_decay < 1.0) {
        return Err(InputError::new(
            path,
            format!("{key}.ema_decay"),
            format!("expected a decay in (0, 1), got {}", w.ema_decay),
        ));
    }
    Ok(())
}
