//! Long-term memory: datasets of episodes (safetensors shards + a JSON manifest), the
//! scripted policies that collect them, and evaluation goals drawn from them.

pub mod actor;
pub mod collect;
pub mod dataset;
pub mod episodes;
pub mod goals;
pub mod oracle;
pub mod policy;
pub mod recording;
pub mod shard;

pub use collect::{collect, Cancelled, CollectOptions, CollectSummary};
pub use dataset::{Dataset, EpisodeRecord, Manifest};
pub use goals::{dataset_goals, GoalWindow};
pub use policy::{make_policy, Policy, PolicyKind};
