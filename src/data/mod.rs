//! Long-term memory: datasets of episodes (safetensors shards + a JSON manifest) and the
//! scripted policies that collect them.

pub mod collect;
pub mod dataset;
pub mod policy;

pub use collect::{collect, CollectOptions, CollectSummary};
pub use dataset::{Dataset, EpisodeRecord, Manifest};
pub use policy::{make_policy, Policy, PolicyKind};
