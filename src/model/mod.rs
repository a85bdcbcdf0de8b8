//! The H-JEPA world model (tch): perception encoders, a level-1 predictor (one control step)
//! and a level-2 abstraction + predictor (k steps at once, driven by learned macro-actions),
//! trained without a decoder against collapse with VICReg, SIGReg or an EMA target.

pub mod checkpoint;
pub mod config;
mod config_check;
pub mod critic;
pub mod critic_map;
pub mod cuda;
pub mod data;
pub mod encoder;
pub mod losses;
pub mod plots;
pub mod probe;
pub mod shipped;
pub mod train;
pub mod world_model;

pub use checkpoint::{CheckpointMeta, TrainedModel};
pub use config::ModelConfig;
pub use probe::Diagnostics;
pub use train::{train, TrainOptions, Trainer};
pub use world_model::WorldModel;
