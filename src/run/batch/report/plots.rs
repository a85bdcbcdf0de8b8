//! The report's PNG plots: success against planning time, each numeric override axis and
//! the distance bins; planning time per replan; prediction error per horizon.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{ActorStats, Report};
use crate::model::plots::{line_chart_in, Series};
use crate::run::batch::experiment::CellLabel;

const PERCENT: Option<(f64, f64)> = Some((-2.0, 102.0));

/// Writes the plots into `out` (leaving out those with nothing to draw); returns their files.
pub(super) fn write_plots(report: &Report, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut plots = PlotFiles {
        out,
        written: Vec::new(),
    };
    // Success against planning compute (seconds per episode), one point per cell.
    plots.plot(
        "success_vs_planning_time.png".into(),
        "success vs planning time",
        "planning seconds per episode",
        "success %",
        success_vs_planning_time(report),
        PERCENT,
    )?;
    // Success against each numeric override axis (e.g. planner samples).
    for key in numeric_axes(report).keys() {
        plots.plot(
            format!("success_vs_{}.png", key.replace(['.', '/', ' '], "_")),
            &format!("success vs {key}"),
            key,
            "success %",
            success_vs_axis(report, key),
            PERCENT,
        )?;
    }
    // Success per start-goal distance bin (flat vs hierarchical variants side by side).
    plots.plot(
        "success_by_distance_bin.png".into(),
        "success per start-goal distance bin",
        "distance bin",
        "success %",
        success_by_distance_bin(report),
        PERCENT,
    )?;
    // Planning time per replan: histogram over log10(ms).
    plots.plot(
        "planning_time.png".into(),
        "planning time per replan",
        "log10(ms per replan)",
        "fraction of replans",
        planning_time_histograms(report),
        None,
    )?;
    // Prediction error against horizon for each model.
    plots.plot(
        "prediction_error.png".into(),
        "level-1 prediction error vs horizon",
        "horizon (steps)",
        "error / variance",
        prediction_error(report),
        None,
    )?;
    Ok(plots.written)
}

/// The folder the plots go to, and the files written so far.
struct PlotFiles<'a> {
    out: &'a Path,
    written: Vec<PathBuf>,
}

impl PlotFiles<'_> {
    /// Draws a line chart into `file` in the folder, unless it has no series.
    fn plot(
        &mut self,
        file: String,
        title: &str,
        x: &str,
        y: &str,
        series: Vec<Series>,
        range: Option<(f64, f64)>,
    ) -> anyhow::Result<()> {
        if series.is_empty() {
            return Ok(());
        }
        let p = self.out.join(file);
        line_chart_in(&p, title, x, y, &series, range)?;
        self.written.push(p);
        Ok(())
    }
}

/// A success rate in percent.
fn success_percent(s: &ActorStats) -> f64 {
    100.0 * s.rate()
}

/// Success against planning seconds per episode, one point per cell.
fn success_vs_planning_time(report: &Report) -> Vec<Series> {
    planner_series(report, None, |_, s| {
        (s.episodes > 0).then(|| vec![(s.planning_s_per_episode, success_percent(s))])
    })
}

/// Success against the values of one numeric override axis.
fn success_vs_axis(report: &Report, key: &str) -> Vec<Series> {
    planner_series(report, Some(key), |l, s| {
        let x = axis_value(l, key)?;
        (s.episodes > 0).then(|| vec![(x, success_percent(s))])
    })
}

/// Success per start-goal distance bin.
fn success_by_distance_bin(report: &Report) -> Vec<Series> {
    planner_series(report, None, |_, s| {
        (!s.bins.is_empty()).then(|| {
            s.bins
                .iter()
                .map(|(b, k, n, _)| (*b as f64, 100.0 * *k as f64 / (*n).max(1) as f64))
                .collect()
        })
    })
}

/// Histograms of the planning time per replan, over log10(ms).
fn planning_time_histograms(report: &Report) -> Vec<Series> {
    planner_series(report, None, |_, s| {
        (!s.replan_ms.is_empty()).then(|| histogram(&s.replan_ms))
    })
}

/// Level-1 prediction error against horizon, one series per model.
fn prediction_error(report: &Report) -> Vec<Series> {
    report
        .models
        .iter()
        .filter(|m| !m.level1.is_empty())
        .map(|m| Series {
            name: Path::new(&m.model)
                .file_name()
                .map_or(m.model.clone(), |f| f.to_string_lossy().to_string()),
            points: m
                .level1
                .iter()
                .enumerate()
                .map(|(h, e)| ((h + 1) as f64, *e))
                .collect(),
        })
        .collect()
}

/// A cell's name in a legend: its label without the defaults and without `skip_key`, keys
/// shortened to their last part.
fn short(l: &CellLabel, skip_key: Option<&str>) -> String {
    let mut parts = vec![l.scene.clone()];
    if l.agent != l.scene {
        parts.push(l.agent.clone());
    }
    if l.variant != "default" {
        parts.push(l.variant.clone());
    }
    for kv in l.overrides.split(' ').filter(|s| !s.is_empty()) {
        if skip_key.is_none_or(|k| !kv.starts_with(&format!("{k}="))) {
            // Shorten the key only: `planning.cost.critic=0.5` -> `critic=0.5`.
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            parts.push(format!("{}={v}", k.rsplit('.').next().unwrap_or(k)));
        }
    }
    parts.join(" ")
}

/// Override axes whose values are all numbers, with their values per cell.
fn numeric_axes(report: &Report) -> BTreeMap<String, ()> {
    let mut keys: BTreeMap<String, bool> = BTreeMap::new();
    for c in &report.cells {
        for kv in c.label.overrides.split(' ').filter(|s| !s.is_empty()) {
            if let Some((k, v)) = kv.split_once('=') {
                let numeric = v.parse::<f64>().is_ok();
                *keys.entry(k.to_string()).or_insert(true) &= numeric;
            }
        }
    }
    keys.into_iter()
        .filter(|(_, n)| *n)
        .map(|(k, _)| (k, ()))
        .collect()
}

/// The value of the override axis `key` in a label, if it is a number.
fn axis_value(l: &CellLabel, key: &str) -> Option<f64> {
    l.overrides
        .split(' ')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
}

/// Curves over the cells' planning actors (learned, oracle): `points` gives a cell's
/// points, or None to leave it out; series are named by cell and actor.
fn planner_series(
    report: &Report,
    skip_key: Option<&str>,
    mut points: impl FnMut(&CellLabel, &ActorStats) -> Option<Vec<(f64, f64)>>,
) -> Vec<Series> {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for c in &report.cells {
        for a in ["learned", "oracle"] {
            if let Some(p) = c.actors.get(a).and_then(|s| points(&c.label, s)) {
                series
                    .entry(format!("{} {a}", short(&c.label, skip_key)))
                    .or_default()
                    .extend(p);
            }
        }
    }
    series
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series { name, points }
        })
        .collect()
}

/// Fractions of values in 20 equal bins of log10(value).
fn histogram(values: &[f64]) -> Vec<(f64, f64)> {
    let logs: Vec<f64> = values
        .iter()
        .filter(|v| **v > 0.0)
        .map(|v| v.log10())
        .collect();
    if logs.is_empty() {
        return Vec::new();
    }
    let (lo, hi) = logs
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
    let bins = 20;
    let width = ((hi - lo) / bins as f64).max(1e-9);
    let mut counts = vec![0usize; bins];
    for x in &logs {
        counts[(((x - lo) / width) as usize).min(bins - 1)] += 1;
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, c)| (lo + (i as f64 + 0.5) * width, *c as f64 / logs.len() as f64))
        .collect()
}
