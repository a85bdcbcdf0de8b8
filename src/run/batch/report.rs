//! `hjepa report`: a results database as a Markdown summary, CSV tables and PNG plots.
//!
//! Everything is computed from the database alone: the grid says which runs answer each
//! cell × actor × seed, the episodes table holds their outcomes. Cells aggregate their
//! seeds; a cell whose runs are not all done is marked incomplete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::experiment::CellLabel;

mod load;
mod markdown;
mod plots;
mod tables;

pub use load::load;
pub use markdown::markdown;

/// One actor's episodes in one cell, over its seeds.
#[derive(Clone, Debug, Default)]
pub struct ActorStats {
    pub runs_done: usize,
    pub runs_total: usize,
    pub episodes: usize,
    pub successes: usize,
    pub ci95: (f64, f64),
    pub median_steps_to_success: Option<f64>,
    pub replan_ms_median: f64,
    pub replan_ms_p95: f64,
    pub planning_s_per_episode: f64,
    /// (bin, successes, episodes, planning s per episode).
    pub bins: Vec<(i64, usize, usize, f64)>,
    pub replan_ms: Vec<f64>,
}

impl ActorStats {
    pub fn rate(&self) -> f64 {
        self.successes as f64 / self.episodes.max(1) as f64
    }
    pub fn complete(&self) -> bool {
        self.runs_done == self.runs_total
    }
}

#[derive(Clone, Debug)]
pub struct CellStats {
    pub label: CellLabel,
    /// By actor name (learned, oracle, random).
    pub actors: BTreeMap<String, ActorStats>,
}

#[derive(Clone, Debug)]
pub struct ModelErrors {
    pub model: String,
    pub level1: Vec<f64>,
    pub level2: Vec<f64>,
    pub level2_k: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub experiment: String,
    pub description: String,
    pub cells: Vec<CellStats>,
    pub models: Vec<ModelErrors>,
    /// Runs by status.
    pub status: Vec<(String, usize)>,
    pub git_revs: Vec<String>,
    pub hosts: Vec<String>,
    pub runs_in_grid: usize,
}

/// Files written by [`write`].
#[derive(Debug)]
pub struct Written {
    pub markdown: PathBuf,
    pub csv: Vec<PathBuf>,
    pub plots: Vec<PathBuf>,
}

/// Writes `report.md`, `cells.csv`, `bins.csv`, `models.csv` and the plots into `out`.
pub fn write(report: &Report, out: &Path) -> anyhow::Result<Written> {
    crate::error::create_dir_all(out)?;
    let (cells_csv, bins_csv) = tables::cells_and_bins_csv(report);
    let models_csv = tables::models_csv(report);
    let csv = vec![
        out.join("cells.csv"),
        out.join("bins.csv"),
        out.join("models.csv"),
    ];
    for (p, text) in csv.iter().zip([&cells_csv, &bins_csv, &models_csv]) {
        crate::data::dataset::write_atomic(p, text.as_bytes())?;
    }
    let plots = plots::write_plots(report, out)?;
    let md = out.join("report.md");
    crate::data::dataset::write_atomic(&md, markdown(report, &plots, out).as_bytes())?;
    Ok(Written {
        markdown: md,
        csv,
        plots,
    })
}
