//! The sandbox: scenes, the rapier2d world, the Gymnasium-style env, the software
//! rasteriser, the vector env (on its worker threads) and the streaming thread. Knows
//! nothing of torch or Bevy.

pub mod env;
pub mod factors;
pub mod geometry;
pub mod layout;
pub mod render;
pub mod scene;
mod scene_agent;
mod scene_check;
mod scene_check_sample;
mod scene_goal;
pub mod shipped;
pub mod stream;
pub mod vec_env;
pub mod workers;
pub mod world;

pub use env::{check_action, Action, CriterionStatus, Env, Info, Observation, Snapshot, Step};
pub use render::Image;
pub use scene::Scene;
pub use stream::{Backpressure, Command, Frame, Sandbox, SandboxHandle};
pub use vec_env::VecEnv;
pub use world::Layout;
