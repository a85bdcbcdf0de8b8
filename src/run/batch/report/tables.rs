//! The report's CSV tables.

use std::fmt::Write as _;

use super::Report;
use crate::run::batch::experiment::CellLabel;

/// A CSV field, quoted when it holds a comma, a quote or a newline.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A number with six decimals; blank when not finite.
fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.6}")
    } else {
        String::new()
    }
}

/// A cell's label as four CSV fields.
fn label_cols(l: &CellLabel) -> String {
    [&l.scene, &l.agent, &l.variant, &l.overrides]
        .map(|s| csv_field(s))
        .join(",")
}

/// `cells.csv` (one row per cell and actor) and `bins.csv` (one row per cell, actor and
/// distance bin).
pub(super) fn cells_and_bins_csv(report: &Report) -> (String, String) {
    let mut cells_csv = String::from("scene,agent,variant,overrides,actor,runs_done,runs_total,episodes,successes,success_rate,ci95_low,ci95_high,median_steps_to_success,replan_ms_median,replan_ms_p95,planning_s_per_episode\n");
    let mut bins_csv =
        String::from("scene,agent,variant,overrides,actor,distance_bin,episodes,successes,success_rate,planning_s_per_episode\n");
    for c in &report.cells {
        for (actor, s) in &c.actors {
            let _ = writeln!(
                cells_csv,
                "{},{actor},{},{},{},{},{},{},{},{},{},{},{}",
                label_cols(&c.label),
                s.runs_done,
                s.runs_total,
                s.episodes,
                s.successes,
                // A cell with nothing done has no rate: blank, not 0.
                if s.episodes > 0 {
                    num(s.rate())
                } else {
                    String::new()
                },
                if s.episodes > 0 {
                    num(s.ci95.0)
                } else {
                    String::new()
                },
                if s.episodes > 0 {
                    num(s.ci95.1)
                } else {
                    String::new()
                },
                s.median_steps_to_success.map(num).unwrap_or_default(),
                num(s.replan_ms_median),
                num(s.replan_ms_p95),
                num(s.planning_s_per_episode)
            );
            for (b, k, n, plan) in &s.bins {
                let _ = writeln!(
                    bins_csv,
                    "{},{actor},{b},{n},{k},{},{}",
                    label_cols(&c.label),
                    num(*k as f64 / (*n).max(1) as f64),
                    num(*plan)
                );
            }
        }
    }
    (cells_csv, bins_csv)
}

/// `models.csv`: one row per model, level and horizon.
pub(super) fn models_csv(report: &Report) -> String {
    let mut models_csv = String::from("model,level,horizon,error\n");
    for m in &report.models {
        for (lvl, errs) in [(1, &m.level1), (2, &m.level2)] {
            for (h, e) in errs.iter().enumerate() {
                let _ = writeln!(
                    models_csv,
                    "{},{lvl},{},{}",
                    csv_field(&m.model),
                    h + 1,
                    num(*e)
                );
            }
        }
    }
    models_csv
}
