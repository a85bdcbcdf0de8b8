//! hjepa: a 2-D physics sandbox (rapier2d) that streams observations to H-JEPA world models
//! and planners.
//!
//! Data flow: [`sim`] (scenes → physics → observations) → [`data`] (datasets, the long-term
//! memory) → world model → cost → planner → action.

pub mod agent;
pub mod agent_data;
pub mod batch;
pub mod bench;
pub mod cli;
pub mod cost;
pub mod data;
pub mod demo;
pub mod episodes;
pub mod error;
pub mod eval;
pub mod live;
pub mod model;
pub mod plan;
pub mod record;
pub mod recording;
pub mod sim;
pub mod view;
#[cfg(feature = "viewer")]
pub mod viewer;
