//! Planners. They know a model only through [`Unroll`] (candidate action sequences ->
//! predicted states) and an [`Objective`] (predicted states and actions -> cost per
//! candidate), so the same CEM, MPPI and gradient planners run on the learned world model,
//! on either of its levels, on the sandbox itself (the oracle), and on mocks in tests.
//!
//! Actions are planned in the model's normalised box [-1, 1]^A; [`ActionBox`] projects
//! candidates onto what the env would actually execute (box, then norm ball).

pub mod cem;
pub mod gradient;
pub mod hierarchical;
pub mod landmarks;
pub mod mppi;
pub mod oracle;
pub mod shooting;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::ConfigError;

pub use cem::Cem;
pub use gradient::GradientDescent;
pub use mppi::Mppi;
pub use shooting::RandomShooting;

/// Rolls candidate action sequences `[N, H, A]` forward: predicted states `[N, H, D]` (or,
/// for an ensemble's `LatentUnroll::each_member`, `[K * N, H, D]`, member-major, which
/// only an `EnsembleCost` reads; every objective returns one cost per candidate).
pub trait Unroll {
    fn unroll(&self, actions: &Tensor) -> Tensor;
    /// Whether `unroll` is differentiable in the actions (the gradient planner needs it).
    fn differentiable(&self) -> bool {
        true
    }
    /// Where candidate tensors should live.
    fn device(&self) -> Device {
        Device::Cpu
    }
}

/// What planners minimise; the cost module (one layer down) defines and implements it.
pub use crate::cost::Objective;

/// The executable action set in normalised coordinates: x in [-1, 1]^A maps to
/// `center + scale * x` in scene units, clipped to the box and then, when `max_norm` is
/// set, scaled onto the norm ball (as `ActionSpace::project` does in the env).
#[derive(Clone, Debug, PartialEq)]
pub struct ActionBox {
    pub dim: i64,
    pub center: Vec<f32>,
    pub scale: Vec<f32>,
    pub max_norm: Option<f32>,
    /// Set when actions are offsets from the agent (`[level1] action_frame = "agent"`): the
    /// scene's action bounds `(low, high)` that the targets they make are clipped to.
    pub targets_within: Option<([f32; 2], [f32; 2])>,
}

impl ActionBox {
    /// The plain box [-1, 1]^dim (macro-actions, mocks).
    pub fn unit(dim: i64) -> ActionBox {
        ActionBox {
            dim,
            center: vec![0.0; dim as usize],
            scale: vec![1.0; dim as usize],
            max_norm: None,
            targets_within: None,
        }
    }

    /// A scene's action space.
    pub fn of_space(space: &crate::sim::scene::ActionSpace) -> ActionBox {
        ActionBox {
            dim: 2,
            center: vec![
                0.5 * (space.low.0 + space.high.0),
                0.5 * (space.low.1 + space.high.1),
            ],
            scale: vec![
                (0.5 * (space.high.0 - space.low.0)).max(1e-6),
                (0.5 * (space.high.1 - space.low.1)).max(1e-6),
            ],
            max_norm: space.max_norm,
            targets_within: None,
        }
    }

    /// Projects normalised actions `[..., A]` onto the executable set (differentiable almost
    /// everywhere).
    pub fn project(&self, x: &Tensor) -> Tensor {
        let x = x.clamp(-1.0, 1.0);
        let Some(max_norm) = self.max_norm else {
            return x;
        };
        let dev = x.device();
        let center = Tensor::from_slice(&self.center).to_device(dev);
        let scale = Tensor::from_slice(&self.scale).to_device(dev);
        let a = &x * &scale + &center;
        let norm = a
            .square()
            .sum_dim_intlist([-1i64].as_slice(), true, Kind::Float)
            .sqrt()
            .clamp_min(1e-12);
        let factor = (norm.reciprocal() * max_norm as f64).clamp_max(1.0);
        (a * factor - center) / scale
    }

    /// Offsets from the agent's position in the scene's action space (a world model with
    /// `[level1] action_frame = "agent"`), scaled by the space's half-extents; the targets
    /// they make are kept inside the space.
    pub fn agent_offsets(space: &crate::sim::scene::ActionSpace) -> ActionBox {
        ActionBox {
            center: vec![0.0; 2],
            max_norm: None,
            targets_within: Some(([space.low.0, space.low.1], [space.high.0, space.high.1])),
            ..ActionBox::of_space(space)
        }
    }

    /// Normalised -> scene units, for one action `[A]` taken with the agent at `agent`
    /// (read only when the box holds offsets from it).
    pub fn to_scene(&self, x: &[f32], agent: [f32; 2]) -> Vec<f32> {
        let scaled = x
            .iter()
            .zip(self.center.iter().zip(&self.scale))
            .map(|(x, (c, s))| c + s * x);
        match self.targets_within {
            None => scaled.collect(),
            Some((low, high)) => scaled
                .enumerate()
                .map(|(i, offset)| (agent[i] + offset).clamp(low[i], high[i]))
                .collect(),
        }
    }
}

/// A planner's search budget and settings (the `[planner]` table of an agent file, and
/// `[planner.level2]` for the hierarchical planner's upper level).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlannerConfig {
    pub kind: PlannerKind,
    /// Candidate sequences per iteration (CEM, MPPI) or parallel restarts (gradient).
    pub samples: i64,
    /// Elites kept per CEM iteration; MPPI averages over its `elites` best.
    #[serde(default = "default_elites")]
    pub elites: i64,
    pub iterations: i64,
    /// Steps (jumps, at level 2) per candidate sequence.
    pub horizon: i64,
    /// Env steps executed from each plan before replanning.
    #[serde(default = "one")]
    pub replan_every: i64,
    /// Initial sampling std, in normalised action units.
    #[serde(default = "default_init_std")]
    pub init_std: f64,
    #[serde(default = "default_min_std")]
    pub min_std: f64,
    /// MPPI temperature (relative to the elites' cost spread).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Gradient planner: Adam learning rate in normalised action units.
    #[serde(default = "default_lr")]
    pub learning_rate: f64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PlannerKind {
    Cem,
    Mppi,
    Gradient,
    /// Random shooting (`src/plan/shooting.rs`).
    Shooting,
}

fn default_elites() -> i64 {
    30
}
fn one() -> i64 {
    1
}
fn default_init_std() -> f64 {
    0.7
}
fn default_min_std() -> f64 {
    0.05
}
fn default_temperature() -> f64 {
    0.5
}
fn default_lr() -> f64 {
    0.1
}

impl PlannerConfig {
    /// Checks the budget; `key` prefixes the field names in errors (`planning.planner`).
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        self.validate_with_jumps(key, 1)
    }

    /// The same for a planner whose plan steps are jumps of `k` env steps (the hierarchical
    /// planner's upper level): `replan_every` counts env steps, `horizon` jumps.
    pub fn validate_with_jumps(&self, key: &str, k: i64) -> Result<(), ConfigError> {
        self.check(k).map_err(|e| e.under(key))
    }

    fn check(&self, k: i64) -> Result<(), ConfigError> {
        let positive = [
            ("samples", self.samples),
            ("iterations", self.iterations),
            ("horizon", self.horizon),
            ("replan_every", self.replan_every),
        ];
        for (name, v) in positive {
            if v < 1 {
                return Err(ConfigError::expected(name, "an integer >= 1", v));
            }
        }
        let budget = (self.samples as u64)
            .saturating_mul(self.horizon as u64)
            .saturating_mul(self.iterations as u64);
        if budget > crate::limits::MAX_PLAN_CANDIDATE_STEPS {
            return Err(ConfigError::needs(
                "samples",
                format!(
                    "samples x horizon x iterations = {} x {} x {} = {budget} model steps per plan, more than the limit {} (docs/limits.md)",
                    self.samples,
                    self.horizon,
                    self.iterations,
                    crate::limits::MAX_PLAN_CANDIDATE_STEPS
                ),
            ));
        }
        // MPPI weighs min(elites, samples) candidates (documented: a sweep over samples keeps
        // one elites value); CEM's refit needs a true subset.
        if self.kind == PlannerKind::Mppi && self.elites < 1 {
            return Err(ConfigError::expected(
                "elites",
                "an integer >= 1",
                self.elites,
            ));
        }
        if self.kind == PlannerKind::Cem && !(1..=self.samples).contains(&self.elites) {
            return Err(ConfigError::expected(
                "elites",
                format!("1..=samples ({})", self.samples),
                self.elites,
            ));
        }
        if self.replan_every > self.horizon * k {
            let horizon = if k > 1 {
                format!("{} jumps of k = {k} env steps", self.horizon)
            } else {
                self.horizon.to_string()
            };
            return Err(ConfigError::needs(
                "replan_every",
                format!("{} is longer than the horizon {horizon}", self.replan_every),
            ));
        }
        for (name, v) in [
            ("init_std", self.init_std),
            ("temperature", self.temperature),
            ("learning_rate", self.learning_rate),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(ConfigError::expected(name, "a positive number", v));
            }
        }
        if !(self.min_std.is_finite() && self.min_std >= 0.0) {
            return Err(ConfigError::expected(
                "min_std",
                "a number >= 0",
                self.min_std,
            ));
        }
        Ok(())
    }
}

/// A planner's answer.
#[derive(Debug)]
pub struct Plan {
    /// The chosen sequence `[H, A]`, normalised and projected.
    pub actions: Tensor,
    /// Its cost under the objective.
    pub cost: f64,
    /// Iterations run.
    pub iterations: i64,
    /// Cost of the best candidate after each iteration (for convergence plots and tests).
    pub cost_trace: Vec<f64>,
}

/// What one search is over: the model's unroll, the objective to minimise, the box the
/// actions live in, and a warm start (`[horizon, A]`, e.g. the previous plan shifted).
#[derive(Clone, Copy)]
pub struct Search<'a> {
    pub unroll: &'a dyn Unroll,
    pub objective: &'a dyn Objective,
    pub space: &'a ActionBox,
    pub warm: Option<&'a Tensor>,
}

impl<'a> Search<'a> {
    /// Its four parts, for a planner's body.
    pub fn parts(
        self,
    ) -> (
        &'a dyn Unroll,
        &'a dyn Objective,
        &'a ActionBox,
        Option<&'a Tensor>,
    ) {
        (self.unroll, self.objective, self.space, self.warm)
    }
}

/// What every planner holds: its budget and its own random stream (seeded per sandbox, so
/// plans are reproducible whatever else runs).
pub struct Seeded {
    pub cfg: PlannerConfig,
    pub rng: ChaCha8Rng,
}

impl Seeded {
    pub fn new(cfg: PlannerConfig, seed: u64) -> Seeded {
        Seeded {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

/// A sampling- or gradient-based search over action sequences.
pub trait Planner: Send {
    /// Minimises `objective(unroll(a), a)` over sequences `[horizon, A]` in `space`,
    /// starting from `warm` when given.
    fn plan(&mut self, search: Search<'_>) -> Plan;
    fn config(&self) -> &PlannerConfig;
}

/// Builds the planner an agent file names, with its own seeded noise.
pub fn make_planner(cfg: &PlannerConfig, seed: u64) -> Box<dyn Planner> {
    match cfg.kind {
        PlannerKind::Cem => Box::new(Cem(Seeded::new(cfg.clone(), seed))),
        PlannerKind::Mppi => Box::new(Mppi(Seeded::new(cfg.clone(), seed))),
        PlannerKind::Gradient => Box::new(GradientDescent(Seeded::new(cfg.clone(), seed))),
        PlannerKind::Shooting => Box::new(RandomShooting(Seeded::new(cfg.clone(), seed))),
    }
}

/// Standard normal noise `[shape]` from a seeded stream (reproducible, thread-independent).
pub fn normal(rng: &mut ChaCha8Rng, shape: &[i64], device: Device) -> Tensor {
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            let (u1, u2): (f32, f32) = (
                rng.random_range(f32::EPSILON..1.0),
                rng.random_range(0.0..1.0),
            );
            (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect();
    Tensor::from_slice(&v).view(shape).to_device(device)
}

/// The cheapest sequence a search has seen, and the best cost after each iteration.
pub struct Best {
    cost: f64,
    actions: Tensor,
    trace: Vec<f64>,
}

impl Best {
    /// Starts from `start` `[H, A]` with an unknown (infinite) cost.
    pub fn new(start: &Tensor) -> Best {
        Best {
            cost: f64::INFINITY,
            actions: start.shallow_clone(),
            trace: Vec::new(),
        }
    }

    /// Offers candidates `[N, H, A]` with their costs `[N]`; keeps the cheapest.
    pub fn offer(&mut self, candidates: &Tensor, cost: &Tensor) {
        let (c, i) = cost.detach().min_dim(0, false);
        let c = c.double_value(&[]);
        if c < self.cost {
            self.cost = c;
            self.actions = candidates.detach().get(i.int64_value(&[])).copy();
        }
    }

    /// Records the best cost at the end of an iteration.
    pub fn end_iteration(&mut self) {
        self.trace.push(self.cost);
    }

    pub fn into_plan(self, iterations: i64) -> Plan {
        Plan {
            actions: self.actions,
            cost: self.cost,
            iterations,
            cost_trace: self.trace,
        }
    }
}

/// One round of a sampling planner: `n` Gaussian candidates around `mean` `[H, A]` with
/// per-step `std` (candidate 0 is the mean itself, so a round never loses it), projected and
/// scored; returns the `k` cheapest as (costs ascending `[k]`, sequences `[k, H, A]`).
#[allow(clippy::too_many_arguments)]
pub fn sample_elites(
    rng: &mut ChaCha8Rng,
    mean: &Tensor,
    std: &Tensor,
    n: i64,
    k: i64,
    unroll: &dyn Unroll,
    objective: &dyn Objective,
    space: &ActionBox,
) -> (Tensor, Tensor) {
    let (h, a) = (mean.size()[0], mean.size()[1]);
    let noise = normal(rng, &[n, h, a], mean.device());
    let candidates = mean.unsqueeze(0) + std.unsqueeze(0) * noise;
    let _ = candidates.get(0).copy_(mean);
    let candidates = space.project(&candidates);
    let cost = objective
        .cost(&unroll.unroll(&candidates), &candidates)
        .to_kind(Kind::Float);
    let (top, idx) = cost.topk(k.clamp(1, n), 0, false, true);
    (top, candidates.index_select(0, &idx))
}

/// The loop shared by sampling planners: from the warm start (or the box centre) with
/// `init_std`, each iteration samples, keeps the elites and lets `refit` turn (costs
/// ascending, elites) into the next mean and std.
pub fn sampling_search(
    cfg: &PlannerConfig,
    rng: &mut ChaCha8Rng,
    problem: (&dyn Unroll, &dyn Objective, &ActionBox),
    warm: Option<&Tensor>,
    mut refit: impl FnMut(&Tensor, &Tensor) -> (Tensor, Tensor),
) -> (Best, Tensor) {
    let (unroll, objective, space) = problem;
    let mut mean = initial_mean(warm, cfg.horizon, space.dim, unroll.device());
    let mut std = Tensor::full(
        [cfg.horizon, space.dim],
        cfg.init_std,
        (Kind::Float, mean.device()),
    );
    let mut best = Best::new(&mean);
    tch::no_grad(|| {
        for _ in 0..cfg.iterations {
            let (top, elites) = sample_elites(
                rng,
                &mean,
                &std,
                cfg.samples,
                cfg.elites,
                unroll,
                objective,
                space,
            );
            best.offer(&elites, &top);
            best.end_iteration();
            let (m, s) = refit(&top, &elites);
            mean = m;
            std = s.clamp_min(cfg.min_std);
        }
    });
    (best, mean)
}

/// The initial mean of a search: the warm start, or zeros (the box centre).
pub fn initial_mean(warm: Option<&Tensor>, horizon: i64, dim: i64, device: Device) -> Tensor {
    match warm {
        Some(w) if w.size() == [horizon, dim] => w.to_device(device).to_kind(Kind::Float),
        _ => Tensor::zeros([horizon, dim], (Kind::Float, device)),
    }
}

/// The previous plan shifted by `executed` steps, its last action repeated at the end: the
/// warm start for the next replan (short-term memory).
pub fn shift_plan(plan: &Tensor, executed: i64) -> Tensor {
    let h = plan.size()[0];
    let e = executed.clamp(0, h - 1);
    let rest = plan.narrow(0, e, h - e);
    let last = plan.narrow(0, h - 1, 1).expand([e, plan.size()[1]], false);
    Tensor::cat(&[rest, last], 0)
}
