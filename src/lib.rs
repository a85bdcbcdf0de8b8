//! hjepa: a 2-D physics sandbox (rapier2d) that streams observations to H-JEPA world models
//! and planners.
//!
//! The modules are layers, lowest first; each imports only from those above it in this list
//! (docs/architecture.md; `tests/layers.rs` keeps it so):
//! [`error`] → [`limits`] → [`device`] → [`sim`] (the sandbox) → [`data`] (datasets, the long-term memory) →
//! `model` (the world model) → `cost` → `plan` → `agent` → `run` (episodes, eval, batch,
//! bench) → `viewer` → [`cli`].

#[cfg(feature = "torch")]
pub mod agent;
pub mod cli;
#[cfg(feature = "torch")]
pub mod cost;
pub mod data;
pub mod device;
pub mod error;
pub mod limits;
#[cfg(feature = "torch")]
pub mod model;
#[cfg(feature = "torch")]
pub mod plan;
pub mod run;
pub mod sim;
#[cfg(feature = "viewer")]
pub mod viewer;
