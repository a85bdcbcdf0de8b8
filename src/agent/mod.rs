//! The configurator and the agent: an agent file's `[planning]` table names the world-model
//! checkpoint, the cost terms and the planner(s); [`PlanningAgent`] assembles them and acts
//! closed loop (receding-horizon MPC, warm-started from the shifted previous plan).
//! [`OracleAgent`] runs the same planner with the sandbox as its model.

pub mod config;
mod dynamics;
mod landmarks;
pub mod load;
mod objective;
pub mod oracle;
pub mod planning_agent;
pub mod subgoal_probe;
mod subgoals;
pub mod unroll;

pub use crate::data::actor::{ActTiming, Actor, ScriptedActor};
pub use config::{AgentFile, Dynamics, DynamicsRole, JoinedDynamics, PlanningConfig, SeenBy};
pub use landmarks::LANDMARKS_FILE;
pub use load::{
    assemble_planning_agent, committee_members, load_planning_agent, planning_run, resolve_run,
    stored_landmarks, CommitteeMember,
};
pub use oracle::OracleAgent;
pub use planning_agent::{Diagnostic, PlanningAgent};
pub use subgoal_probe::SubgoalProbe;
pub use unroll::{
    executed_offset, AbstractUnroll, CommitteeUnroll, LatentUnroll, StateModelUnroll,
};
