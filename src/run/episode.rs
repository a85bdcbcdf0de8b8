//! The episode loop: reset, observe, act, step, record, success. Evaluation, collection
//! with an agent, recordings, the live stream and batch runs all play their episodes
//! through [`run_from`] (or [`run_parallel`], one agent serving several sandboxes).

use std::sync::Arc;

use serde::Serialize;

#[cfg(feature = "torch")]
use crate::agent::{OracleAgent, PlanningAgent};
use crate::data::actor::{ActTiming, Actor, ScriptedActor};
use crate::data::episodes::episode_seed;
use crate::data::recording::RecordedEpisode;
use crate::data::{make_policy, GoalWindow, PolicyKind};
use crate::sim::{CriterionStatus, Env, Observation, Scene};

/// One closed-loop episode.
#[derive(Clone, Debug, Serialize)]
pub struct EvalEpisode {
    pub index: u64,
    pub seed: u64,
    pub success: bool,
    pub steps: u32,
    pub final_goal_distance: f32,
    /// The scene's cost at the last step.
    pub final_cost: f32,
    /// Every success criterion at the last step (why a failure failed: position or angle).
    pub final_criteria: Vec<CriterionStatus>,
    pub distance_bin: Option<usize>,
    pub replans: usize,
    pub planning_s: f64,
    pub replan_ms: Vec<f64>,
    /// Where the start/goal pair came from, with `--goals-from`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal_window: Option<GoalWindow>,
    /// The actions taken (kept for `--record`, not in the JSON lines).
    #[serde(skip)]
    pub actions: Vec<[f32; 2]>,
    /// The state digest after each step (kept for `--record`).
    #[serde(skip)]
    pub state_digests: Vec<u32>,
    /// The values the scene's factors of variation took (absent without factors).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub factors: crate::sim::factors::Drawn,
}

impl EvalEpisode {
    pub(crate) fn new(index: u64, seed: u64) -> EvalEpisode {
        EvalEpisode {
            index,
            seed,
            success: false,
            steps: 0,
            final_goal_distance: f32::NAN,
            final_cost: f32::NAN,
            final_criteria: Vec::new(),
            distance_bin: None,
            replans: 0,
            planning_s: 0.0,
            replan_ms: Vec::new(),
            goal_window: None,
            actions: Vec::new(),
            state_digests: Vec::new(),
            factors: Default::default(),
        }
    }

    /// Takes `action` in `env`; returns the next observation, or None when the episode ended.
    /// An action the env refuses (NaN from a broken model) is an error naming the episode.
    pub(crate) fn step(
        &mut self,
        env: &mut Env,
        action: [f32; 2],
        timing: ActTiming,
    ) -> anyhow::Result<Option<Observation>> {
        if timing.replanned {
            self.replans += 1;
            self.planning_s += timing.planning_s;
            self.replan_ms.push(timing.planning_s * 1e3);
        }
        self.actions.push(action);
        let step = env.step(&action).map_err(|e| {
            anyhow::anyhow!(
                "episode {} (seed {}), step {}: the agent's action was refused: {e}",
                self.index,
                self.seed,
                self.actions.len()
            )
        })?;
        self.state_digests.push(env.state_digest());
        self.steps = step.info.steps;
        self.success = step.info.success;
        self.final_goal_distance = step.info.goal_distance;
        self.final_cost = step.cost;
        self.final_criteria = step.info.criteria.clone();
        self.distance_bin = step.info.distance_bin;
        Ok((!(step.terminated || step.truncated)).then_some(step.observation))
    }
}

/// Where episodes `0..count` start and what they aim at: the scene's sampler seeded with
/// `episode_seed(seed, i)`, or given start/goal windows (`--goals-from`). Either way episode
/// i's planner seeds come from `episode_seed(seed, i)`.
#[derive(Clone, Copy)]
pub struct Starts<'a> {
    pub count: u64,
    pub seed: u64,
    pub windows: Option<&'a [GoalWindow]>,
    /// Only these of the episodes (`--only`; each below `count`, none twice).
    pub only: Option<&'a [u64]>,
}

impl Starts<'_> {
    pub fn seeded(count: u64, seed: u64) -> Starts<'static> {
        Starts {
            count,
            seed,
            windows: None,
            only: None,
        }
    }

    /// The indices of the episodes to play.
    pub(crate) fn indices(&self) -> Vec<u64> {
        match self.only {
            Some(only) => only.to_vec(),
            None => (0..self.count).collect(),
        }
    }

    /// Resets `env` for episode `index`: the episode record to fill and the first observation.
    pub(crate) fn reset(&self, env: &mut Env, index: u64) -> (EvalEpisode, Observation) {
        let seed = episode_seed(self.seed, index);
        let mut ep = EvalEpisode::new(index, seed);
        let obs = match self.windows {
            Some(w) => {
                let window = &w[index as usize];
                ep.goal_window = Some(window.clone());
                env.reset_to(window.layout.clone())
            }
            None => env.reset(seed),
        };
        ep.factors = env.layout().factors.clone();
        (ep, obs)
    }
}

/// Runs one episode with an actor.
pub fn run_episode(
    actor: &mut dyn Actor,
    env: &mut Env,
    index: u64,
    seed: u64,
) -> anyhow::Result<EvalEpisode> {
    run_episode_with(actor, env, index, seed, |_, _| {})
}

/// [`run_episode`], calling `observe(env, first)` on the state before every action and
/// after the last one (`first` after the reset).
fn run_episode_with(
    actor: &mut dyn Actor,
    env: &mut Env,
    index: u64,
    seed: u64,
    observe: impl FnMut(&Env, bool),
) -> anyhow::Result<EvalEpisode> {
    // Episode `index` of a one-episode schedule whose seed is `seed` itself.
    let mut ep = EvalEpisode::new(index, seed);
    let obs = env.reset(seed);
    ep.factors = env.layout().factors.clone();
    run_from(actor, env, &mut ep, obs, observe)?;
    Ok(ep)
}

/// Plays `ep` from its reset state `obs` to the end.
pub fn run_from(
    actor: &mut dyn Actor,
    env: &mut Env,
    ep: &mut EvalEpisode,
    mut obs: Observation,
    mut observe: impl FnMut(&Env, bool),
) -> anyhow::Result<()> {
    actor.reset(env, ep.seed);
    observe(env, true);
    loop {
        let (action, timing) = actor.act(env, &obs);
        let next = ep.step(env, action, timing)?;
        observe(env, false);
        match next {
            Some(next) => obs = next,
            None => return Ok(()),
        }
    }
}

/// One episode of any [`EvalActor`] with an observer of the env (frames for `hjepa record`).
pub fn run_episode_observed(
    actor: &mut EvalActor,
    env: &mut Env,
    index: u64,
    seed: u64,
    observe: impl FnMut(&Env, bool),
) -> anyhow::Result<EvalEpisode> {
    run_episode_with(actor.actor(), env, index, seed, observe)
}

#[cfg(feature = "torch")]
/// Runs episodes `0..episodes` on `width` sandboxes in lockstep, one agent serving them all:
/// each step, the observations of the sandboxes that replan go through the encoder as one
/// batch. Every episode keeps its own seed and planner seeds; `done` gets them as they end.
pub fn run_parallel(
    agent: &mut PlanningAgent,
    scene: &Arc<Scene>,
    starts: Starts,
    width: usize,
    mut done: impl FnMut(EvalEpisode) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut envs: Vec<Env> = (0..width).map(|_| Env::new(scene.clone())).collect();
    let mut running: Vec<Option<(EvalEpisode, Observation)>> = (0..width).map(|_| None).collect();
    let mut queue = starts.indices().into_iter();
    loop {
        for (slot, env) in envs.iter_mut().enumerate() {
            if running[slot].is_none() {
                if let Some(i) = queue.next() {
                    let (ep, obs) = starts.reset(env, i);
                    agent.reset_slot(slot, &env.goal_observation(), ep.seed);
                    running[slot] = Some((ep, obs));
                }
            }
        }
        let active: Vec<usize> = (0..width).filter(|&i| running[i].is_some()).collect();
        if active.is_empty() {
            return Ok(());
        }
        let acts = {
            let obs: Vec<&Observation> = active
                .iter()
                .map(|&i| &running[i].as_ref().expect("active").1)
                .collect();
            agent.act_batch(&active, &obs)
        };
        for (&slot, (action, timing)) in active.iter().zip(acts) {
            let (ep, obs) = running[slot].as_mut().expect("active");
            match ep.step(&mut envs[slot], action, timing)? {
                Some(next_obs) => *obs = next_obs,
                None => done(running[slot].take().expect("active").0)?,
            }
        }
    }
}

impl From<&EvalEpisode> for RecordedEpisode {
    fn from(ep: &EvalEpisode) -> RecordedEpisode {
        RecordedEpisode {
            index: ep.index,
            seed: ep.seed,
            success: ep.success,
            steps: ep.steps,
            actions: ep.actions.clone(),
            start: ep.goal_window.as_ref().map(|w| w.layout.clone()),
            state_digests: ep.state_digests.clone(),
            factors: ep.factors.clone(),
        }
    }
}

/// Who acts in an evaluation: the learned planning agent, the same planner with the
/// sandbox as its model, or a scripted policy (the random floor).
pub enum EvalActor {
    #[cfg(feature = "torch")]
    Learned(PlanningAgent),
    #[cfg(feature = "torch")]
    Oracle(OracleAgent),
    Scripted(ScriptedActor),
}

impl EvalActor {
    /// The random policy, seeded per episode like `hjepa run --policy random`.
    pub fn random() -> EvalActor {
        EvalActor::scripted(PolicyKind::Random, 0.0)
    }

    /// A scripted policy (heading noise `noise`), seeded per episode like `hjepa run`.
    pub fn scripted(kind: PolicyKind, noise: f32) -> EvalActor {
        EvalActor::Scripted(ScriptedActor(make_policy(kind, noise)))
    }

    /// The actor behind the common interface.
    pub fn actor(&mut self) -> &mut dyn Actor {
        match self {
            #[cfg(feature = "torch")]
            EvalActor::Learned(l) => l,
            #[cfg(feature = "torch")]
            EvalActor::Oracle(o) => o,
            EvalActor::Scripted(s) => s,
        }
    }

    /// Plays episodes `0..episodes` (episode i seeded `episode_seed(seed, i)`); `done` gets
    /// each as it ends. The learned agent serves `parallel` sandboxes at once; the others
    /// run one.
    pub fn play(
        &mut self,
        scene: &Arc<Scene>,
        episodes: u64,
        seed: u64,
        parallel: usize,
        done: impl FnMut(EvalEpisode) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.play_from(scene, Starts::seeded(episodes, seed), parallel, done)
    }

    /// [`EvalActor::play`] on any [`Starts`].
    pub fn play_from(
        &mut self,
        scene: &Arc<Scene>,
        starts: Starts,
        parallel: usize,
        done: impl FnMut(EvalEpisode) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        #[cfg(not(feature = "torch"))]
        let _ = parallel; // only a learned agent serves several sandboxes
        #[cfg(feature = "torch")]
        if let (EvalActor::Learned(learned), true) = (&mut *self, parallel > 1) {
            return run_parallel(learned, scene, starts, parallel, done);
        }
        play_starts(self.actor(), scene, starts, done)
    }
}

/// Plays the episodes of `starts` one after another with any [`Actor`] in one sandbox of
/// `scene`; `done` gets each as it ends. What [`EvalActor::play_from`] runs for one
/// sandbox, and what the Python package's `evaluate` runs a Python policy through.
pub fn play_starts(
    actor: &mut dyn Actor,
    scene: &Arc<Scene>,
    starts: Starts,
    mut done: impl FnMut(EvalEpisode) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut env = Env::new(scene.clone());
    for i in starts.indices() {
        let (mut ep, obs) = starts.reset(&mut env, i);
        run_from(actor, &mut env, &mut ep, obs, |_, _| {})?;
        done(ep)?;
    }
    Ok(())
}
