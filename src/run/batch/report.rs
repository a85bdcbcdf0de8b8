//! `hjepa report`: a results database as a Markdown summary, CSV tables and PNG plots.
//!
//! Everything is computed from the database alone: the grid says which runs answer each
//! cell × actor × seed, the episodes table holds their outcomes. Cells aggregate their
//! seeds; a cell whose runs are not all done is marked incomplete.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags};

use super::experiment::CellLabel;
use super::store::read_meta;
use crate::data::episodes::wilson_interval;
use crate::model::plots::{line_chart_in, Series};
use crate::run::eval::percentile;

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

struct EpisodeRow {
    success: bool,
    steps: i64,
    bin: Option<i64>,
    planning_s: f64,
    replan_ms: Vec<f64>,
}

/// Reads a database into per-cell statistics (read-only).
pub fn load(db: &Path) -> anyhow::Result<Report> {
    let meta = read_meta(db)?;
    let get = |k: &str| {
        meta.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare(
        "SELECT g.cell, g.scene, g.agent, g.variant, g.overrides, g.actor, g.run_id,
                COALESCE(r.status, 'pending')
         FROM grid g LEFT JOIN runs r ON r.id = g.run_id ORDER BY g.cell, g.actor, g.seed",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                CellLabel {
                    scene: r.get(1)?,
                    agent: r.get(2)?,
                    variant: r.get(3)?,
                    overrides: r.get(4)?,
                },
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut episodes_of: HashMap<String, Vec<EpisodeRow>> = HashMap::new();
    let mut eps = conn.prepare(
        "SELECT success, steps, distance_bin, planning_s, replan_ms FROM episodes
         WHERE run_id = ?1 ORDER BY idx",
    )?;
    let mut labels: BTreeMap<i64, CellLabel> = BTreeMap::new();
    // (cell, actor) -> (done runs, runs in the grid)
    let mut acc: BTreeMap<(i64, String), (Vec<String>, usize)> = BTreeMap::new();
    for (cell, label, actor, run_id, status) in &rows {
        labels.entry(*cell).or_insert_with(|| label.clone());
        let entry = acc.entry((*cell, actor.clone())).or_default();
        entry.1 += 1;
        if status == "done" {
            entry.0.push(run_id.clone());
            if !episodes_of.contains_key(run_id) {
                let list = eps
                    .query_map(params![run_id], |r| {
                        Ok(EpisodeRow {
                            success: r.get(0)?,
                            steps: r.get(1)?,
                            bin: r.get(2)?,
                            planning_s: r.get(3)?,
                            replan_ms: serde_json::from_str(&r.get::<_, String>(4)?)
                                .unwrap_or_default(),
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                episodes_of.insert(run_id.clone(), list);
            }
        }
    }
    let mut cells: BTreeMap<i64, CellStats> = labels
        .into_iter()
        .map(|(c, label)| {
            (
                c,
                CellStats {
                    label,
                    actors: BTreeMap::new(),
                },
            )
        })
        .collect();
    for ((cell, actor), (runs, total)) in acc {
        let all: Vec<&EpisodeRow> = runs.iter().flat_map(|r| episodes_of[r].iter()).collect();
        cells
            .get_mut(&cell)
            .expect("every grid row has a cell")
            .actors
            .insert(actor, actor_stats(&all, runs.len(), total));
    }
    let cells: Vec<CellStats> = cells.into_values().collect();

    let status = conn
        .prepare("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status")?
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let strings = |sql: &str| -> anyhow::Result<Vec<String>> {
        Ok(conn
            .prepare(sql)?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?)
    };
    let git_revs =
        strings("SELECT DISTINCT git_rev FROM runs WHERE git_rev IS NOT NULL ORDER BY 1")?;
    let hosts = strings("SELECT DISTINCT host FROM runs WHERE host IS NOT NULL ORDER BY 1")?;
    let runs_in_grid: i64 = conn.query_row(
        "SELECT (SELECT COUNT(DISTINCT run_id) FROM grid)
              + (SELECT COUNT(*) FROM runs WHERE kind = 'train')",
        [],
        |r| r.get(0),
    )?;
    let mut models = Vec::new();
    for (model, json) in conn
        .prepare(
            "SELECT model, model_errors FROM runs WHERE status = 'done' AND model_errors IS NOT NULL
             GROUP BY model ORDER BY MIN(ordinal)",
        )?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?
    {
        let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        let list = |k: &str| -> Vec<f64> {
            v.get(k)
                .and_then(|a| a.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
                .unwrap_or_default()
        };
        models.push(ModelErrors {
            model,
            level1: list("level1"),
            level2: list("level2"),
            level2_k: v.get("level2_k").and_then(|k| k.as_i64()),
        });
    }
    Ok(Report {
        experiment: get("experiment"),
        description: get("description"),
        cells,
        models,
        status,
        git_revs,
        hosts,
        runs_in_grid: runs_in_grid as usize,
    })
}

fn actor_stats(eps: &[&EpisodeRow], runs_done: usize, runs_total: usize) -> ActorStats {
    let successes = eps.iter().filter(|e| e.success).count();
    let mut steps: Vec<f64> = eps
        .iter()
        .filter(|e| e.success)
        .map(|e| e.steps as f64)
        .collect();
    steps.sort_by(f64::total_cmp);
    let mut replan: Vec<f64> = eps
        .iter()
        .flat_map(|e| e.replan_ms.iter().copied())
        .collect();
    replan.sort_by(f64::total_cmp);
    let mut bins: BTreeMap<i64, (usize, usize, f64)> = BTreeMap::new();
    for e in eps {
        if let Some(b) = e.bin {
            let s = bins.entry(b).or_default();
            s.0 += e.success as usize;
            s.1 += 1;
            s.2 += e.planning_s;
        }
    }
    ActorStats {
        runs_done,
        runs_total,
        episodes: eps.len(),
        successes,
        ci95: wilson_interval(successes, eps.len()),
        median_steps_to_success: (!steps.is_empty()).then(|| percentile(&steps, 0.5)),
        replan_ms_median: percentile(&replan, 0.5),
        replan_ms_p95: percentile(&replan, 0.95),
        planning_s_per_episode: eps.iter().map(|e| e.planning_s).sum::<f64>()
            / eps.len().max(1) as f64,
        bins: bins
            .into_iter()
            .map(|(b, (k, n, s))| (b, k, n, s / n.max(1) as f64))
            .collect(),
        replan_ms: replan,
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.6}")
    } else {
        String::new()
    }
}

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

/// Files written by [`write`].
#[derive(Debug)]
pub struct Written {
    pub markdown: PathBuf,
    pub csv: Vec<PathBuf>,
    pub plots: Vec<PathBuf>,
}

/// Writes `report.md`, `cells.csv`, `bins.csv`, `models.csv` and the plots into `out`.
pub fn write(report: &Report, out: &Path) -> anyhow::Result<Written> {
    std::fs::create_dir_all(out)?;
    let label_cols = |l: &CellLabel| {
        [&l.scene, &l.agent, &l.variant, &l.overrides]
            .map(|s| csv_field(s))
            .join(",")
    };
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
    let csv = vec![
        out.join("cells.csv"),
        out.join("bins.csv"),
        out.join("models.csv"),
    ];
    for (p, text) in csv.iter().zip([&cells_csv, &bins_csv, &models_csv]) {
        crate::data::dataset::write_atomic(p, text.as_bytes())?;
    }
    let plots = write_plots(report, out)?;
    let md = out.join("report.md");
    crate::data::dataset::write_atomic(&md, markdown(report, &plots, out).as_bytes())?;
    Ok(Written {
        markdown: md,
        csv,
        plots,
    })
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
    s += "Success rate with its 95 % Wilson interval over all seeds of a cell; planning time \
          per replan (median, p95) and per episode for the learned agent; the random floor \
          and the oracle model (the same planner on the sandbox) on the same start/goal pairs. \
          `*` marks a cell whose runs are not all done.\n\n";
    s += "| scene | agent | variant | overrides | episodes | learned | ms / replan (p95) | s planning / episode | random | oracle |\n";
    s += "|---|---|---|---|---|---|---|---|---|---|\n";
    let none = ActorStats::default();
    for c in &report.cells {
        let l = c.actors.get("learned");
        let r = c.actors.get("random").unwrap_or(&none);
        let o = c.actors.get("oracle").unwrap_or(&none);
        let main = l.or(c.actors.get("oracle")).unwrap_or(&none);
        s += &format!(
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
    let binned: Vec<(&CellStats, &String, &ActorStats)> = report
        .cells
        .iter()
        .flat_map(|c| c.actors.iter().map(move |(a, s)| (c, a, s)))
        .filter(|(_, a, s)| !s.bins.is_empty() && a.as_str() != "random")
        .collect();
    if !binned.is_empty() {
        s += "\n## By start-goal distance bin\n\n| scene | agent | variant | overrides | actor | bin | success | s planning / episode |\n|---|---|---|---|---|---|---|---|\n";
        for (c, a, st) in binned {
            for (b, k, n, plan) in &st.bins {
                s += &format!(
                    "{} {a} | {b} | {k}/{n} = {:.1} % | {plan:.2} |\n",
                    label_cells(&c.label),
                    100.0 * *k as f64 / (*n).max(1) as f64
                );
            }
        }
    }
    if !report.models.is_empty() {
        s += "\n## Models: prediction error per horizon (relative to the representation's variance)\n\n| model | level 1 @1 | level 1 @last | level 2 @1 jump | level 2 @last |\n|---|---|---|---|---|\n";
        for m in &report.models {
            let at = |v: &Vec<f64>, last: bool| {
                let x = if last { v.last() } else { v.first() };
                x.map_or("–".into(), |x| {
                    format!("{x:.3} (h {})", if last { v.len() } else { 1 })
                })
            };
            s += &format!(
                "| {} | {} | {} | {} | {} |\n",
                m.model,
                at(&m.level1, false),
                at(&m.level1, true),
                at(&m.level2, false),
                at(&m.level2, true)
            );
        }
    }
    if !plots.is_empty() {
        s += "\n## Plots\n\n";
        for p in plots {
            let rel = p.strip_prefix(out).unwrap_or(p);
            s += &format!("![{}]({})\n", rel.display(), rel.display());
        }
    }
    s += "\nTables: `cells.csv` (one row per cell and actor), `bins.csv`, `models.csv`.\n";
    s
}

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

fn write_plots(report: &Report, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut plot = |file: String, title: &str, x: &str, y: &str, series: Vec<Series>, range| {
        if series.is_empty() {
            return Ok::<(), anyhow::Error>(());
        }
        let p = out.join(file);
        line_chart_in(&p, title, x, y, &series, range)?;
        written.push(p);
        Ok(())
    };
    let rate = |s: &ActorStats| 100.0 * s.rate();
    // Success against planning compute (seconds per episode), one point per cell.
    plot(
        "success_vs_planning_time.png".into(),
        "success vs planning time",
        "planning seconds per episode",
        "success %",
        planner_series(report, None, |_, s| {
            (s.episodes > 0).then(|| vec![(s.planning_s_per_episode, rate(s))])
        }),
        PERCENT,
    )?;
    // Success against each numeric override axis (e.g. planner samples).
    for key in numeric_axes(report).keys() {
        plot(
            format!("success_vs_{}.png", key.replace(['.', '/', ' '], "_")),
            &format!("success vs {key}"),
            key,
            "success %",
            planner_series(report, Some(key), |l, s| {
                let x = axis_value(l, key)?;
                (s.episodes > 0).then(|| vec![(x, rate(s))])
            }),
            PERCENT,
        )?;
    }
    // Success per start-goal distance bin (flat vs hierarchical variants side by side).
    plot(
        "success_by_distance_bin.png".into(),
        "success per start-goal distance bin",
        "distance bin",
        "success %",
        planner_series(report, None, |_, s| {
            (!s.bins.is_empty()).then(|| {
                s.bins
                    .iter()
                    .map(|(b, k, n, _)| (*b as f64, 100.0 * *k as f64 / (*n).max(1) as f64))
                    .collect()
            })
        }),
        PERCENT,
    )?;
    // Planning time per replan: histogram over log10(ms).
    plot(
        "planning_time.png".into(),
        "planning time per replan",
        "log10(ms per replan)",
        "fraction of replans",
        planner_series(report, None, |_, s| {
            (!s.replan_ms.is_empty()).then(|| histogram(&s.replan_ms))
        }),
        None,
    )?;
    // Prediction error against horizon for each model.
    let models: Vec<Series> = report
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
        .collect();
    plot(
        "prediction_error.png".into(),
        "level-1 prediction error vs horizon",
        "horizon (steps)",
        "error / variance",
        models,
        None,
    )?;
    Ok(written)
}

const PERCENT: Option<(f64, f64)> = Some((-2.0, 102.0));

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
