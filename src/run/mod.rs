//! Running agents in the sandbox: one episode loop, and on it evaluation, collection with an
//! agent, recordings, the live stream the viewer reads, the demo, batch experiments and
//! benchmarks.

pub mod actors;
#[cfg(feature = "torch")]
pub mod agent_data;
#[cfg(feature = "torch")]
pub mod batch;
pub mod bench;
#[cfg(feature = "torch")]
pub mod demo;
pub mod episode;
#[cfg(feature = "torch")]
pub mod eval;
pub mod live;
mod live_frame;
pub mod record;
#[cfg(feature = "torch")]
pub mod reproduce;
pub mod results;
pub mod view;
