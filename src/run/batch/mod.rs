//! Headless batch experiments: an experiment file expands into a grid of runs
//! (`experiment`), worker threads play them (`runner`), each finished run is committed to an
//! SQLite database (`store`), and `report` turns a database into tables and plots.

pub mod experiment;
pub mod report;
pub mod runner;
pub mod store;

pub use experiment::{expand_file, ExperimentFile, Grid, Shard};
pub use runner::{batch, BatchOptions, BatchSummary};
pub use store::{merge, MergeSummary, Store};
