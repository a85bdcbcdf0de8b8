//! Reading a results database into per-cell statistics.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rusqlite::{params, Connection, OpenFlags, Statement};

use super::{ActorStats, CellStats, ModelErrors, Report};
use crate::data::episodes::wilson_interval;
use crate::error::InputError;
use crate::run::batch::experiment::CellLabel;
use crate::run::batch::store::read_meta;
use crate::run::eval::percentile;

struct EpisodeRow {
    success: bool,
    steps: i64,
    bin: Option<i64>,
    planning_s: f64,
    replan_ms: Vec<f64>,
}

/// A grid entry (cell × actor × seed) with the status of the run that answers it.
struct GridRow {
    cell: i64,
    label: CellLabel,
    actor: String,
    run_id: String,
    status: String,
}

/// Reads a database into per-cell statistics (read-only). A value the tables cannot hold
/// (text in a number column) is reported as damage to the file.
pub fn load(db: &Path) -> anyhow::Result<Report> {
    load_checked(db).map_err(|e| match e.downcast::<rusqlite::Error>() {
        Ok(sql) => InputError::new(
            db,
            "",
            format!("{sql}; {}", crate::run::batch::store::DAMAGED_FIX),
        )
        .into(),
        Err(other) => other,
    })
}

fn load_checked(db: &Path) -> anyhow::Result<Report> {
    let meta = read_meta(db)?;
    let get = |k: &str| {
        meta.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let rows = grid_rows(&conn)?;
    let cells = cell_stats(&conn, &rows)?;
    let status = conn
        .prepare("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status")?
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let git_revs = strings(
        &conn,
        "SELECT DISTINCT git_rev FROM runs WHERE git_rev IS NOT NULL ORDER BY 1",
    )?;
    let hosts = strings(
        &conn,
        "SELECT DISTINCT host FROM runs WHERE host IS NOT NULL ORDER BY 1",
    )?;
    let runs_in_grid: i64 = conn.query_row(
        "SELECT (SELECT COUNT(DISTINCT run_id) FROM grid)
              + (SELECT COUNT(*) FROM runs WHERE kind = 'train')",
        [],
        |r| r.get(0),
    )?;
    let models = model_errors(&conn)?;
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

/// Every grid entry with its run's status (`pending` if it never started), by cell.
fn grid_rows(conn: &Connection) -> anyhow::Result<Vec<GridRow>> {
    let mut stmt = conn.prepare(
        "SELECT g.cell, g.scene, g.agent, g.variant, g.overrides, g.actor, g.run_id,
                COALESCE(r.status, 'pending')
         FROM grid g LEFT JOIN runs r ON r.id = g.run_id ORDER BY g.cell, g.actor, g.seed",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(GridRow {
                cell: r.get::<_, i64>(0)?,
                label: CellLabel {
                    scene: r.get(1)?,
                    agent: r.get(2)?,
                    variant: r.get(3)?,
                    overrides: r.get(4)?,
                },
                actor: r.get::<_, String>(5)?,
                run_id: r.get::<_, String>(6)?,
                status: r.get::<_, String>(7)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Each cell's statistics per actor, over the done runs of its seeds (each run's episodes
/// are read once, however many cells share it).
fn cell_stats(conn: &Connection, rows: &[GridRow]) -> anyhow::Result<Vec<CellStats>> {
    let mut episodes_of: HashMap<String, Vec<EpisodeRow>> = HashMap::new();
    let mut eps = conn.prepare(
        "SELECT success, steps, distance_bin, planning_s, replan_ms FROM episodes
         WHERE run_id = ?1 ORDER BY idx",
    )?;
    let mut labels: BTreeMap<i64, CellLabel> = BTreeMap::new();
    // (cell, actor) -> (done runs, runs in the grid)
    let mut acc: BTreeMap<(i64, String), (Vec<String>, usize)> = BTreeMap::new();
    for GridRow {
        cell,
        label,
        actor,
        run_id,
        status,
    } in rows
    {
        labels.entry(*cell).or_insert_with(|| label.clone());
        let entry = acc.entry((*cell, actor.clone())).or_default();
        entry.1 += 1;
        if status == "done" {
            entry.0.push(run_id.clone());
            if !episodes_of.contains_key(run_id) {
                let list = run_episodes(&mut eps, run_id)?;
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
    Ok(cells.into_values().collect())
}

/// One run's episodes, in order.
fn run_episodes(eps: &mut Statement<'_>, run_id: &str) -> anyhow::Result<Vec<EpisodeRow>> {
    let list = eps
        .query_map(params![run_id], |r| {
            Ok(EpisodeRow {
                success: r.get(0)?,
                steps: r.get(1)?,
                bin: r.get(2)?,
                planning_s: r.get(3)?,
                replan_ms: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(list)
}

/// The first column of every row of a query, as strings.
fn strings(conn: &Connection, sql: &str) -> anyhow::Result<Vec<String>> {
    Ok(conn
        .prepare(sql)?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?)
}

/// The prediction errors recorded with the done runs, one entry per model, in run order.
fn model_errors(conn: &Connection) -> anyhow::Result<Vec<ModelErrors>> {
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
    Ok(models)
}

/// One actor's statistics over the episodes of its done runs in a cell.
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
