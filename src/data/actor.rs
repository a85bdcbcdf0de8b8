//! Something that acts in an env, behind one interface: scripted policies here, planning
//! agents and the oracle in `crate::agent`. The episode loop (`crate::run::episode`) sees
//! actors only through [`Actor`].

use crate::sim::{Env, Observation};

use super::Policy;

/// Timing of one `act` call.
#[derive(Clone, Copy, Debug, Default)]
pub struct ActTiming {
    /// Seconds spent planning in this call (0 when the plan was reused).
    pub planning_s: f64,
    pub replanned: bool,
}

/// Something that acts in an env: the learned agent reads only observations; the oracle
/// reads the env's true state.
pub trait Actor {
    /// Starts an episode whose goal the env knows.
    fn reset(&mut self, env: &mut Env, seed: u64);
    /// The next action (scene units) and how long planning took.
    fn act(&mut self, env: &Env, obs: &Observation) -> ([f32; 2], ActTiming);
    /// The rest of the current plan (scene units), next action first; empty for actors
    /// that do not plan. A viewer replays it in a snapshot to draw the expected path.
    fn planned_actions(&self) -> Vec<[f32; 2]> {
        Vec::new()
    }
}

/// A scripted policy (the random floor) behind the same interface as the planning agents.
pub struct ScriptedActor(pub Box<dyn Policy>);

impl Actor for ScriptedActor {
    fn reset(&mut self, env: &mut Env, seed: u64) {
        self.0.reset(env, seed);
    }

    fn act(&mut self, env: &Env, _obs: &Observation) -> ([f32; 2], ActTiming) {
        (self.0.act(env), ActTiming::default())
    }
}
