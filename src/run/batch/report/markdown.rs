//! The report's Markdown summary.

use std::path::{Path, PathBuf};

use super::{ActorStats, CellStats, Report};
use crate::run::batch::experiment::CellLabel;

/// A success rate with its 95 % interval, `*` when the cell's runs are not all done.
fn pct(s: &ActorStats) -> String {
    if s.episodes == 0 {
        return "–".into();
    }
    format!(
        "{:.1} % ({:.0}–{:.0}){}",
        100.0 * s.rate(),
        100.0 * s.ci95.0,
        100.0 * s.ci95.1,
        if s.complete() { "" } else { " *" }
    )
}

/// A cell's label as the first four Markdown table cells (`| scene | agent | variant |
/// overrides |`).
fn label_cells(l: &CellLabel) -> String {
    let overrides = if l.overrides.is_empty() {
        "–"
    } else {
        &l.overrides
    };
    format!(
        "| {} | {} | {} | {overrides} |",
        l.scene, l.agent, l.variant
    )
}

/// The Markdown summary.
pub fn markdown(report: &Report, plots: &[PathBuf], out: &Path) -> String {
    let mut s = header(report);
    push_cells_table(&mut s, report);
    push_bins_table(&mut s, report);
    push_models_table(&mut s, report);
    push_plots(&mut s, plots, out);
    s += "\nTables: `cells.csv` (one row per cell and actor), `bins.csv`, `models.csv`.\n";
    s
}

/// The title, the description, and where the runs stand.
fn header(report: &Report) -> String {
    let mut s = format!("# Experiment `{}`\n\n", report.experiment);
    if !report.description.is_empty() {
        s += &format!("{}\n\n", report.description.trim());
    }
    let status: Vec<String> = report
        .status
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    s += &format!(
        "Runs: {} in the grid; {}. Git revision(s): {}. Host(s): {}.\n\n",
        report.runs_in_grid,
        if status.is_empty() {
            "none started".into()
        } else {
            status.join(", ")
        },
        report.git_revs.join(", "),
        report.hosts.join(", ")
    );
    s
}

/// The main table: one row per cell, the learned agent beside the random floor and the
/// oracle.
fn push_cells_table(s: &mut String, report: &Report) {
    *s += "Success rate with its 95 % Wilson interval over all seeds of a cell; planning time \
          per replan (median, p95) and per episode for the learned agent; the random floor \
          and the oracle model (the same planner on the sandbox) on the same start/goal pairs. \
          `*` marks a cell whose runs are not all done.\n\n";
    *s += "| scene | agent | variant | overrides | episodes | learned | ms / replan (p95) | s planning / episode | random | oracle |\n";
    *s += "|---|---|---|---|---|---|---|---|---|---|\n";
    let none = ActorStats::default();
    for c in &report.cells {
        let l = c.actors.get("learned");
        let r = c.actors.get("random").unwrap_or(&none);
        let o = c.actors.get("oracle").unwrap_or(&none);
        let main = l.or(c.actors.get("oracle")).unwrap_or(&none);
        *s += &format!(
            "{} {} | {} | {} | {} | {} | {} |\n",
            label_cells(&c.label),
            c.actors.values().map(|a| a.episodes).max().unwrap_or(0),
            l.map_or("–".into(), pct),
            if main.replan_ms_median.is_finite() {
                format!("{:.1} ({:.1})", main.replan_ms_median, main.replan_ms_p95)
            } else {
                "–".into()
            },
            if main.episodes > 0 {
                format!("{:.2}", main.planning_s_per_episode)
            } else {
                "–".into()
            },
            pct(r),
            pct(o),
        );
    }
}

/// Success per start-goal distance bin of the planning actors (none without bins).
fn push_bins_table(s: &mut String, report: &Report) {
    let binned: Vec<(&CellStats, &String, &ActorStats)> = report
        .cells
        .iter()
        .flat_map(|c| c.actors.iter().map(move |(a, st)| (c, a, st)))
        .filter(|(_, a, st)| !st.bins.is_empty() && a.as_str() != "random")
        .collect();
    if !binned.is_empty() {
        *s += "\n## By start-goal distance bin\n\n| scene | agent | variant | overrides | actor | bin | success | s planning / episode |\n|---|---|---|---|---|---|---|---|\n";
        for (c, a, st) in binned {
            for (b, k, n, plan) in &st.bins {
                *s += &format!(
                    "{} {a} | {b} | {k}/{n} = {:.1} % | {plan:.2} |\n",
                    label_cells(&c.label),
                    100.0 * *k as f64 / (*n).max(1) as f64
                );
            }
        }
    }
}

/// Each model's prediction error at the first and the last horizon (none without models).
fn push_models_table(s: &mut String, report: &Report) {
    if !report.models.is_empty() {
        *s += "\n## Models: prediction error per horizon (relative to the representation's variance)\n\n| model | level 1 @1 | level 1 @last | level 2 @1 jump | level 2 @last |\n|---|---|---|---|---|\n";
        for m in &report.models {
            let at = |v: &Vec<f64>, last: bool| {
                let x = if last { v.last() } else { v.first() };
                x.map_or("–".into(), |x| {
                    format!("{x:.3} (h {})", if last { v.len() } else { 1 })
                })
            };
            *s += &format!(
                "| {} | {} | {} | {} | {} |\n",
                m.model,
                at(&m.level1, false),
                at(&m.level1, true),
                at(&m.level2, false),
                at(&m.level2, true)
            );
        }
    }
}

/// The plots as images, relative to the report's folder (none without plots).
fn push_plots(s: &mut String, plots: &[PathBuf], out: &Path) {
    if !plots.is_empty() {
        *s += "\n## Plots\n\n";
        for p in plots {
            let rel = p.strip_prefix(out).unwrap_or(p);
            *s += &format!("![{}]({})\n", rel.display(), rel.display());
        }
    }
}
