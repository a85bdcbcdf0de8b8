//! The sizes hjepa accepts, in one table (docs/limits.md lists them with the reasons): every
//! request is checked against them where it enters (command-line flags here, scene, agent
//! and experiment files in their parsers), so an oversized one is refused with exit 2 before
//! anything is allocated or run, and a NaN, an infinity or a wrong sign never gets through.

use std::fmt::Display;
use std::str::FromStr;

/// Episodes in one command (eval, collect, run, demo, record's episode index).
pub const MAX_EPISODES: u64 = 1_000_000;
/// Control steps of one episode (a scene's `episode_steps`, `--max-steps`, `--steps`).
pub const MAX_EPISODE_STEPS: u32 = 100_000;
/// Physics steps per env step: a scene's substeps x frameskip.
pub const MAX_SUBSTEPS: u32 = 1_000;
/// Bodies in a scene, copies (`count`) included.
pub const MAX_BODIES: u64 = 10_000;
/// Side of a rendered image in pixels (observations and `record --size`).
pub const MAX_IMAGE_SIDE: u32 = 4_096;
/// Candidates x horizon x iterations of one planner call: each candidate step is a model
/// prediction, and the candidates' tensors are held at once.
pub const MAX_PLAN_CANDIDATE_STEPS: u64 = 100_000_000;
/// Width of a hidden layer, and a latent or level-2 dimension.
pub const MAX_HIDDEN: i64 = 16_384;
/// Runs one experiment file may expand to.
pub const MAX_RUNS_PER_EXPERIMENT: u64 = 100_000;
/// Worker threads, parallel episodes or sandboxes of one command.
pub const MAX_THREADS: usize = 1_024;
/// Optimiser steps of one training run.
pub const MAX_TRAIN_STEPS: i64 = 100_000_000;
/// Seconds a benchmark row may be asked to run.
pub const MAX_BENCH_SECONDS: f64 = 86_400.0;
/// Heading noise of the scripted policies (radians, std): past a few turns it changes
/// nothing, so a larger value is a typo.
pub const MAX_NOISE: f32 = 100.0;

/// Parses `s` and checks it lies in `lo..=hi` (which also refuses NaN and, for bounded
/// ranges, infinities).
fn in_range<T>(s: &str, lo: T, hi: T, what: &str) -> Result<T, String>
where
    T: FromStr + PartialOrd + Display + Copy,
    T::Err: Display,
{
    let v: T = s
        .trim()
        .parse()
        .map_err(|e| format!("expected {what} from {lo} to {hi}: {e}"))?;
    if v >= lo && v <= hi {
        Ok(v)
    } else {
        Err(format!("expected {what} from {lo} to {hi}, got {v}"))
    }
}

/// `--episodes` and other episode counts: 1 to [`MAX_EPISODES`].
pub fn episodes(s: &str) -> Result<u64, String> {
    in_range(s, 1, MAX_EPISODES, "a number of episodes")
}

/// An episode index (`--episode`): 0 to [`MAX_EPISODES`] - 1.
pub fn episode_index(s: &str) -> Result<u64, String> {
    in_range(s, 0, MAX_EPISODES - 1, "an episode index")
}

/// `--max-steps`, `--steps` and other step counts: 1 to [`MAX_EPISODE_STEPS`].
pub fn steps(s: &str) -> Result<u32, String> {
    in_range(s, 1, MAX_EPISODE_STEPS, "a number of control steps")
}

/// An offset in control steps (`--goal-offset`): 1 to [`MAX_EPISODE_STEPS`].
pub fn step_offset(s: &str) -> Result<u32, String> {
    in_range(s, 1, MAX_EPISODE_STEPS, "an offset in control steps")
}

/// `--threads`, `--parallel`, `--jobs`: 1 to [`MAX_THREADS`].
pub fn threads(s: &str) -> Result<usize, String> {
    in_range(s, 1, MAX_THREADS, "a number of threads")
}

/// `--noise`: a finite heading noise from 0 to [`MAX_NOISE`] radians.
pub fn noise(s: &str) -> Result<f32, String> {
    in_range(s, 0.0, MAX_NOISE, "a heading noise in radians")
}

/// `--seconds`: more than 0, at most [`MAX_BENCH_SECONDS`].
pub fn seconds(s: &str) -> Result<f64, String> {
    let v = in_range(s, 0.0, MAX_BENCH_SECONDS, "a duration in seconds")?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!(
            "expected a duration in seconds above 0 (at most {MAX_BENCH_SECONDS}), got {v}"
        ))
    }
}

/// `--size`, `--width`, `--height` of an image: 1 to [`MAX_IMAGE_SIDE`] pixels.
pub fn image_side(s: &str) -> Result<u32, String> {
    in_range(s, 1, MAX_IMAGE_SIDE, "an image side in pixels")
}

/// A positive, finite multiplier such as the viewer's `--speed` (at most 1000).
pub fn speed(s: &str) -> Result<f32, String> {
    let v = in_range(s, 0.0, 1000.0, "a speed factor")?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("expected a speed factor above 0, got {v}"))
    }
}

/// `--steps` of a training run: 1 to [`MAX_TRAIN_STEPS`].
pub fn train_steps(s: &str) -> Result<i64, String> {
    in_range(s, 1, MAX_TRAIN_STEPS, "a number of training steps")
}

/// Repetitions of a benchmark row: 1 to 1000.
pub fn repeats(s: &str) -> Result<usize, String> {
    in_range(s, 1, 1000, "a number of repeats")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_nan_infinity_sign_and_oversize() {
        assert!(noise("NaN").is_err());
        assert!(noise("inf").is_err());
        assert!(noise("-0.1").is_err());
        assert_eq!(noise("0.3"), Ok(0.3));
        assert!(seconds("-1").is_err());
        assert!(seconds("0").is_err());
        assert!(seconds("nan").is_err());
        assert_eq!(seconds("2.5"), Ok(2.5));
        assert!(episodes("0").is_err());
        assert!(episodes("-5").is_err());
        assert!(episodes("1000001").is_err());
        assert_eq!(episodes("100"), Ok(100));
        assert!(image_side("100000").is_err());
        assert!(steps("0").is_err());
        let e = image_side("100000").unwrap_err();
        assert!(e.contains("1 to 4096") && e.contains("100000"), "{e}");
    }
}
