//! Long-term memory: datasets of episodes (safetensors shards + a JSON manifest) and the
//! scripted policies that collect them.

pub mod policy;

pub use policy::{make_policy, Policy, PolicyKind};
