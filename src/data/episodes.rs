//! Running whole episodes of a scene with a scripted policy, and summarising them: what
//! `hjepa run` prints and what the expert tests check.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::data::{make_policy, PolicyKind};
use crate::sim::{Env, Scene};

/// The seed of episode `index` of a run with base seed `seed` (SplitMix64, so neighbouring
/// episodes get unrelated streams and a resumed collection redraws the same episodes).
pub fn episode_seed(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Clone, Debug, Serialize)]
pub struct EpisodeResult {
    pub seed: u64,
    pub success: bool,
    /// Per criterion, in scene order: reached at the end of the episode.
    pub criteria: Vec<(String, bool)>,
    pub steps: u32,
    pub final_goal_distance: f32,
    pub final_cost: f32,
    pub blew_up: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub scene: String,
    pub policy: PolicyKind,
    pub episodes: Vec<EpisodeResult>,
    pub env_steps: u64,
    pub seconds: f64,
}

/// Wilson score interval for a binomial proportion at 95 %.
pub fn wilson_interval(successes: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (z, n, p) = (1.959_964, n as f64, successes as f64 / n as f64);
    let denom = 1.0 + z * z / n;
    let center = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n) + z * z / (4.0 * n * n)).sqrt() / denom;
    ((center - half).max(0.0), (center + half).min(1.0))
}

impl RunReport {
    pub fn successes(&self) -> usize {
        self.episodes.iter().filter(|e| e.success).count()
    }

    pub fn success_rate(&self) -> f64 {
        self.successes() as f64 / self.episodes.len().max(1) as f64
    }

    /// A short human-readable summary.
    pub fn summary(&self) -> String {
        let n = self.episodes.len();
        let k = self.successes();
        let (lo, hi) = wilson_interval(k, n);
        let mut s = format!(
            "scene {} | policy {:?} | {} episodes\nsuccess {}/{} = {:.1}% (95% CI {:.1}-{:.1}%)\n",
            self.scene,
            self.policy,
            n,
            k,
            n,
            100.0 * self.success_rate(),
            100.0 * lo,
            100.0 * hi
        );
        if let Some(first) = self.episodes.first() {
            for (i, (name, _)) in first.criteria.iter().enumerate() {
                let c = self.episodes.iter().filter(|e| e.criteria[i].1).count();
                s += &format!("  criterion {name}: {c}/{n}\n");
            }
        }
        let succ: Vec<f64> = self
            .episodes
            .iter()
            .filter(|e| e.success)
            .map(|e| e.steps as f64)
            .collect();
        if !succ.is_empty() {
            s += &format!(
                "steps to success: mean {:.1}\n",
                succ.iter().sum::<f64>() / succ.len() as f64
            );
        }
        let dist: f64 = self
            .episodes
            .iter()
            .map(|e| e.final_goal_distance as f64)
            .sum::<f64>()
            / n.max(1) as f64;
        s += &format!("final agent-goal distance: mean {dist:.3} m\n");
        let blew = self.episodes.iter().filter(|e| e.blew_up).count();
        if blew > 0 {
            s += &format!("WARNING: {blew} episodes ended because a body blew up\n");
        }
        s += &format!(
            "{} env steps in {:.2} s ({:.0} steps/s, one thread)",
            self.env_steps,
            self.seconds,
            self.env_steps as f64 / self.seconds.max(1e-9)
        );
        s
    }
}

/// Runs `episodes` episodes with a scripted policy on one thread; episode i uses
/// `episode_seed(seed, i)` for both the env and the policy. Shows a progress bar on stderr
/// when it is a terminal.
pub fn run_episodes(
    scene: Arc<Scene>,
    policy: PolicyKind,
    noise: f32,
    episodes: u64,
    seed: u64,
) -> RunReport {
    let mut env = Env::new(scene.clone());
    let mut pol = make_policy(policy, noise);
    let start = Instant::now();
    let mut results = Vec::new();
    let mut env_steps = 0;
    let bar = indicatif::ProgressBar::new(episodes);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} episodes, eta {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} {policy:?}", scene.name));
    for i in 0..episodes {
        bar.set_position(i);
        bar.set_message(format!(
            "{} successes",
            results
                .iter()
                .filter(|r: &&EpisodeResult| r.success)
                .count()
        ));
        let s = episode_seed(seed, i);
        env.reset(s);
        pol.reset(&env, s);
        loop {
            let a = pol.act(&env);
            let step = env.step(&a).expect("scripted policies emit finite actions");
            env_steps += 1;
            if step.terminated || step.truncated {
                results.push(EpisodeResult {
                    seed: s,
                    success: step.info.success,
                    criteria: step
                        .info
                        .criteria
                        .iter()
                        .map(|c| (c.name.clone(), c.success))
                        .collect(),
                    steps: step.info.steps,
                    final_goal_distance: step.info.goal_distance,
                    final_cost: step.cost,
                    blew_up: step.info.blew_up,
                });
                break;
            }
        }
    }
    bar.finish_and_clear();
    RunReport {
        scene: scene.name.clone(),
        policy,
        episodes: results,
        env_steps,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Writes the frames of episode 0 of a run as numbered PNGs (for a quick look at a scene).
pub fn write_frames(
    scene: Arc<Scene>,
    policy: PolicyKind,
    noise: f32,
    seed: u64,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    crate::error::create_dir_all(dir)?;
    let mut env = Env::new(scene);
    let mut pol = make_policy(policy, noise);
    let s = episode_seed(seed, 0);
    let mut obs = env.reset(s);
    pol.reset(&env, s);
    for t in 0.. {
        let Some(img) = &obs.image else {
            anyhow::bail!("scene {} has no image observation", env.scene().name);
        };
        img.save_png(&dir.join(format!("frame_{t:04}.png")))?;
        let step = env.step(&pol.act(&env))?;
        obs = step.observation;
        if step.terminated || step.truncated {
            break;
        }
    }
    Ok(())
}
