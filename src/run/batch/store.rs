//! The results store: one SQLite database per experiment (or shard), in WAL mode. The grid
//! is written when the database is made; each run's row goes to `running` when it starts and
//! its episodes land with its `done` status in one transaction, so a `kill -9` loses at most
//! the runs in flight, and a rerun skips everything `done`.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::experiment::{Grid, Run};
use crate::error::InputError;
use crate::run::eval::EvalEpisode;

const SCHEMA_VERSION: &str = "1";

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE grid (
    cell INTEGER NOT NULL, scene TEXT NOT NULL, agent TEXT NOT NULL, variant TEXT NOT NULL,
    overrides TEXT NOT NULL, actor TEXT NOT NULL, seed INTEGER NOT NULL,
    episodes INTEGER NOT NULL, run_id TEXT NOT NULL,
    PRIMARY KEY (cell, actor, seed));
CREATE TABLE runs (
    id TEXT PRIMARY KEY, ordinal INTEGER NOT NULL, kind TEXT NOT NULL, actor TEXT,
    scene TEXT NOT NULL, agent TEXT NOT NULL, variant TEXT NOT NULL, overrides TEXT NOT NULL,
    seed INTEGER, episodes INTEGER, config TEXT NOT NULL, config_hash TEXT NOT NULL,
    status TEXT NOT NULL, error TEXT, git_rev TEXT, host TEXT, shard TEXT,
    started_at REAL, ended_at REAL, seconds REAL,
    -- Prediction error per horizon of the model a learned or training run used (JSON).
    model TEXT, model_errors TEXT);
CREATE TABLE episodes (
    run_id TEXT NOT NULL, idx INTEGER NOT NULL, seed INTEGER NOT NULL,
    success INTEGER NOT NULL, steps INTEGER NOT NULL, final_goal_distance REAL,
    final_cost REAL, distance_bin INTEGER, replans INTEGER NOT NULL,
    planning_s REAL NOT NULL, replan_ms TEXT NOT NULL,
    PRIMARY KEY (run_id, idx));
";

/// What the runner records about where and from what a run was made.
#[derive(Clone, Debug)]
pub struct Provenance {
    pub git_rev: String,
    pub host: String,
    pub shard: String,
}

impl Provenance {
    pub fn here(shard: String) -> Provenance {
        // The revision the binary was built from (build.rs), `-dirty` if its sources differed.
        let git_rev = env!("HJEPA_GIT_REV").to_string();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown".into());
        Provenance {
            git_rev,
            host,
            shard,
        }
    }
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub struct Store {
    conn: Connection,
    pub path: PathBuf,
}

/// A run's outcome, as committed.
pub struct Finished<'a> {
    pub run: &'a Run,
    pub episodes: &'a [EvalEpisode],
    pub started_at: f64,
    pub seconds: f64,
    pub model: Option<String>,
    pub model_errors: Option<String>,
}

fn sql_err(path: &Path, e: rusqlite::Error) -> anyhow::Error {
    anyhow::anyhow!("{}: {e}", path.display())
}

/// Reads `meta` from an existing database without changing it (read-only handle); an error
/// names the file when it is not an hjepa results database.
pub fn read_meta(path: &Path) -> Result<Vec<(String, String)>, InputError> {
    let not_ours =
        |e: String| InputError::new(path, "", format!("not an hjepa results database ({e})"));
    recover_hot_journal(path);
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| not_ours(e.to_string()))?;
    check_schema(path, &conn)?;
    let mut stmt = conn
        .prepare("SELECT key, value FROM meta ORDER BY key")
        .map_err(|e| not_ours(e.to_string()))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(|e| not_ours(e.to_string()))?
        .collect::<Result<Vec<(String, String)>, _>>()
        .map_err(|e| not_ours(e.to_string()))?;
    Ok(rows)
}

/// A process killed mid-transaction (say while switching a new database to WAL) leaves a
/// hot rollback journal, which a read-only handle cannot roll back ("attempt to write a
/// readonly database"). A read-write handle rolls it back to the last commit on first read,
/// as any SQLite open would; nothing committed is lost.
fn recover_hot_journal(path: &Path) {
    let mut journal = path.as_os_str().to_owned();
    journal.push("-journal");
    if Path::new(&journal).exists() {
        if let Ok(conn) = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE) {
            let _ = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            });
        }
    }
}

/// What to do about a damaged database, appended to every refusal of one.
pub const DAMAGED_FIX: &str = "the database is damaged or was changed by another program: restore it from a copy or from its shard databases (`hjepa merge`), or pass a new --db to rerun the experiment";

/// (name, declared type) of each column of `table`, in order; empty when there is no such
/// table.
fn table_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid")?;
    let cols = stmt
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect();
    cols
}

/// Refuses a database whose tables or columns are not the ones this version writes, naming
/// the table and column, instead of a raw "no such table" later.
fn check_schema(path: &Path, conn: &Connection) -> Result<(), InputError> {
    let internal = |e: rusqlite::Error| InputError::new(path, "", format!("{e}; {DAMAGED_FIX}"));
    let want = Connection::open_in_memory().map_err(internal)?;
    want.execute_batch(SCHEMA).map_err(internal)?;
    let tables: Vec<String> = want
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(internal)?;
    for table in tables {
        let expected = table_columns(&want, &table).map_err(internal)?;
        let found = table_columns(conn, &table).map_err(|e| {
            InputError::new(path, "", format!("not an hjepa results database ({e})"))
        })?;
        if found.is_empty() {
            return Err(InputError::new(
                path,
                &table,
                format!("table {table:?} is missing; {DAMAGED_FIX}"),
            ));
        }
        for (name, kind) in &expected {
            match found.iter().find(|(n, _)| n == name) {
                None => {
                    return Err(InputError::new(
                        path,
                        format!("{table}.{name}"),
                        format!("column {name:?} of table {table:?} is missing; {DAMAGED_FIX}"),
                    ))
                }
                Some((_, k)) if !k.eq_ignore_ascii_case(kind) => {
                    return Err(InputError::new(
                        path,
                        format!("{table}.{name}"),
                        format!("column {name:?} of table {table:?} is declared {k}, expected {kind}; {DAMAGED_FIX}"),
                    ))
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

fn meta_value<'a>(meta: &'a [(String, String)], key: &str) -> Option<&'a str> {
    meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Checks that an existing database belongs to this experiment's grid (read-only).
pub fn check_belongs(path: &Path, name: &str, grid_hash: &str) -> Result<(), InputError> {
    let meta = read_meta(path)?;
    let theirs = meta_value(&meta, "experiment").unwrap_or("?");
    if theirs != name {
        return Err(InputError::new(
            path,
            "meta.experiment",
            format!("this database holds experiment {theirs:?}, not {name:?}; pass another --db"),
        ));
    }
    if meta_value(&meta, "grid_hash") != Some(grid_hash) {
        return Err(InputError::new(
            path,
            "meta.grid_hash",
            format!("experiment {name:?} expands to another grid than the one this database was made for (the experiment file, an agent file, a scene or a checkpoint changed); pass a new --db to keep both"),
        ));
    }
    Ok(())
}

/// Creates the database at `path` whole or not at all: `fill` runs on a temporary file beside
/// it (rollback journal, so no WAL files are left), which is synced and hard-linked into
/// place, never over an existing file: a kill midway leaves no half-made database that later
/// runs would refuse, and of two processes creating it at once the second finds the first's
/// (and checks it like any existing database).
fn create_atomically(
    path: &Path,
    fill: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<()>,
) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".creating-{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let made = (|| -> anyhow::Result<()> {
        let mut conn = Connection::open(&tmp).map_err(|e| sql_err(&tmp, e))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let tx = conn.transaction()?;
        fill(&tx).map_err(|e| sql_err(path, e))?;
        tx.commit()?;
        conn.close().map_err(|(_, e)| sql_err(&tmp, e))?;
        std::fs::File::open(&tmp)?.sync_all()?;
        match std::fs::hard_link(&tmp, path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e.into()),
            _ => Ok(()),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    made
}

impl Store {
    /// Opens the database for `grid`, creating it (schema, meta, the whole grid) when missing.
    /// An existing file must hold the same experiment and grid; it is checked read-only first,
    /// so a refused database is left untouched.
    pub fn open(path: &Path, grid: &Grid) -> anyhow::Result<Store> {
        if path.exists() {
            check_belongs(path, &grid.name, &grid.hash)?;
        } else {
            create_atomically(path, |tx| {
                tx.execute_batch(SCHEMA)?;
                for (k, v) in [
                    ("schema_version", SCHEMA_VERSION),
                    ("experiment", grid.name.as_str()),
                    ("description", grid.description.as_str()),
                    ("grid_hash", grid.hash.as_str()),
                    ("experiment_file", grid.file_text.as_str()),
                ] {
                    tx.execute(
                        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                        params![k, v],
                    )?;
                }
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('created_at', ?1)",
                    params![unix_now().to_string()],
                )?;
                for e in &grid.entries {
                    tx.execute(
                        "INSERT INTO grid VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                        params![
                            e.cell as i64,
                            e.label.scene,
                            e.label.agent,
                            e.label.variant,
                            e.label.overrides,
                            e.actor.name(),
                            e.seed as i64,
                            e.episodes as i64,
                            e.run_id
                        ],
                    )?;
                }
                Ok(())
            })?;
            check_belongs(path, &grid.name, &grid.hash)?;
        }
        let conn = Connection::open(path).map_err(|e| sql_err(path, e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| sql_err(path, e))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| sql_err(path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Ids of the runs finished in this database.
    pub fn done_ids(&self) -> anyhow::Result<std::collections::HashSet<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM runs WHERE status = 'done'")?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    /// Marks a run as started (its row says `running` until it is done or failed).
    pub fn start(&mut self, run: &Run, prov: &Provenance, started_at: f64) -> anyhow::Result<()> {
        let (kind, actor, seed, episodes) = run_columns(run);
        self.conn.execute(
            "INSERT OR REPLACE INTO runs (id, ordinal, kind, actor, scene, agent, variant, overrides,
                seed, episodes, config, config_hash, status, git_rev, host, shard, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'running', ?13, ?14, ?15, ?16)",
            params![
                run.id,
                run.ordinal as i64,
                kind,
                actor,
                run.label.scene,
                run.label.agent,
                run.label.variant,
                run.label.overrides,
                seed,
                episodes,
                serde_json::to_string(&run.config)?,
                run.config_hash,
                prov.git_rev,
                prov.host,
                prov.shard,
                started_at
            ],
        )?;
        Ok(())
    }

    /// Commits a finished run and all its episodes in one transaction.
    pub fn finish(&mut self, f: &Finished) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM episodes WHERE run_id = ?1", params![f.run.id])?;
        {
            let mut ins = tx.prepare(
                "INSERT INTO episodes VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for e in f.episodes {
                ins.execute(params![
                    f.run.id,
                    e.index as i64,
                    e.seed as i64,
                    e.success,
                    e.steps,
                    finite(e.final_goal_distance),
                    finite(e.final_cost),
                    e.distance_bin.map(|b| b as i64),
                    e.replans as i64,
                    e.planning_s,
                    serde_json::to_string(&e.replan_ms)?
                ])?;
            }
        }
        let n = tx.execute(
            "UPDATE runs SET status = 'done', error = NULL, started_at = ?2, ended_at = ?3,
                seconds = ?4, model = ?5, model_errors = ?6 WHERE id = ?1",
            params![
                f.run.id,
                f.started_at,
                unix_now(),
                f.seconds,
                f.model,
                f.model_errors
            ],
        )?;
        anyhow::ensure!(
            n == 1,
            "run {} was not started in {}",
            f.run.id,
            self.path.display()
        );
        tx.commit()?;
        Ok(())
    }

    /// Records a run that failed (it reruns next time).
    pub fn fail(&mut self, run: &Run, error: &str) -> anyhow::Result<()> {
        self.conn.execute(
            "UPDATE runs SET status = 'failed', error = ?2, ended_at = ?3 WHERE id = ?1",
            params![run.id, error, unix_now()],
        )?;
        Ok(())
    }

    pub fn set_meta(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(())
    }

    pub fn meta(&self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

fn finite(x: f32) -> Option<f64> {
    x.is_finite().then_some(x as f64)
}

fn run_columns(run: &Run) -> (&'static str, Option<&'static str>, Option<i64>, Option<i64>) {
    match &run.config {
        super::experiment::RunConfig::Train { .. } => ("train", None, None, None),
        super::experiment::RunConfig::Eval {
            actor,
            seed,
            episodes,
            ..
        } => (
            "eval",
            Some(actor.name()),
            Some(*seed as i64),
            Some(*episodes as i64),
        ),
    }
}

/// `hjepa merge`: combines shard databases of one experiment into `out` (created, or an
/// existing database of the same experiment). Done runs are copied with their episodes; a
/// run done in several inputs is kept once. Inputs of another experiment or grid are refused
/// before anything is written, and the merge is all or nothing: it fills a copy beside `out`
/// and renames it over `out` only when every input went in.
pub fn merge(out: &Path, inputs: &[PathBuf]) -> anyhow::Result<MergeSummary> {
    anyhow::ensure!(
        !inputs.is_empty(),
        "nothing to merge: name the shard databases"
    );
    check_merge_inputs(out, inputs)?;
    let mut tmp_name = out.as_os_str().to_owned();
    tmp_name.push(format!(".merging-{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let merged = merge_into_copy(out, &tmp, inputs);
    if merged.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    merged
}

/// The merge on `tmp` (a copy of `out`, or a new database), renamed over `out` at the end.
fn merge_into_copy(out: &Path, tmp: &Path, inputs: &[PathBuf]) -> anyhow::Result<MergeSummary> {
    if out.exists() {
        // A consistent single-file copy, whatever `out`'s write-ahead log holds.
        let conn = Connection::open(out).map_err(|e| sql_err(out, e))?;
        conn.execute("VACUUM INTO ?1", params![tmp.to_string_lossy()])
            .map_err(|e| sql_err(out, e))?;
    } else {
        create_from_first_input(tmp, &inputs[0])?;
    }
    let mut conn = Connection::open(tmp).map_err(|e| sql_err(tmp, e))?;
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let mut summary = MergeSummary::default();
    for p in inputs {
        merge_input(&mut conn, p, &mut summary)?;
    }
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('merged_from', ?1)",
        params![serde_json::to_string(&summary.shards)?],
    )?;
    let (done, total): (i64, i64) = conn.query_row(
        "SELECT (SELECT COUNT(*) FROM runs WHERE status = 'done'),
                (SELECT COUNT(DISTINCT run_id) FROM grid)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    summary.runs_done = done as usize;
    summary.eval_runs_in_grid = total as usize;
    conn.close().map_err(|(_, e)| sql_err(tmp, e))?;
    std::fs::File::open(tmp)?.sync_all()?;
    if out.exists() {
        // Fold `out`'s log into it first, so no stale log sits beside the renamed file.
        let c = Connection::open(out).map_err(|e| sql_err(out, e))?;
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| sql_err(out, e))?;
        c.close().map_err(|(_, e)| sql_err(out, e))?;
    }
    std::fs::rename(tmp, out)?;
    Ok(summary)
}

/// Refuses inputs (and an existing `out`) of another experiment or grid than the first
/// input's, and an input that is also the output.
fn check_merge_inputs(out: &Path, inputs: &[PathBuf]) -> anyhow::Result<()> {
    let first = read_meta(&inputs[0])?;
    let name = meta_value(&first, "experiment").unwrap_or("").to_string();
    let hash = meta_value(&first, "grid_hash").unwrap_or("").to_string();
    for p in inputs.iter().skip(1) {
        check_belongs(p, &name, &hash)?;
    }
    if out.exists() {
        check_belongs(out, &name, &hash)?;
    }
    for p in inputs {
        if p.canonicalize().ok() == out.canonicalize().ok() {
            return Err(InputError::new(p, "", "is also the output of the merge").into());
        }
    }
    Ok(())
}

/// Creates `out` with the schema, meta and grid of the first input; runs come later.
fn create_from_first_input(out: &Path, first: &Path) -> anyhow::Result<()> {
    create_atomically(out, |tx| {
        tx.execute_batch(SCHEMA)?;
        tx.execute(
            "ATTACH DATABASE ?1 AS src",
            params![first.to_string_lossy()],
        )?;
        tx.execute_batch(
            "INSERT INTO meta SELECT * FROM src.meta WHERE key != 'shard';
                 INSERT INTO grid SELECT * FROM src.grid;",
        )?;
        Ok(())
    })
}

/// Copies one input's done runs (those not done in `out` yet) with their episodes, and its
/// unfinished runs that `out` does not have, in one transaction.
fn merge_input(conn: &mut Connection, p: &Path, summary: &mut MergeSummary) -> anyhow::Result<()> {
    conn.execute("ATTACH DATABASE ?1 AS src", params![p.to_string_lossy()])?;
    let tx = conn.transaction()?;
    let added: i64 = tx.query_row(
        "SELECT COUNT(*) FROM src.runs WHERE status = 'done'
               AND id NOT IN (SELECT id FROM runs WHERE status = 'done')",
        [],
        |r| r.get(0),
    )?;
    let dup: i64 = tx.query_row(
        "SELECT COUNT(*) FROM src.runs WHERE status = 'done'
               AND id IN (SELECT id FROM runs WHERE status = 'done')",
        [],
        |r| r.get(0),
    )?;
    tx.execute_batch(
        "DELETE FROM runs WHERE status != 'done'
               AND id IN (SELECT id FROM src.runs WHERE status = 'done');
             DELETE FROM episodes WHERE run_id NOT IN (SELECT id FROM runs WHERE status = 'done');
             INSERT INTO runs SELECT * FROM src.runs WHERE status = 'done'
               AND id NOT IN (SELECT id FROM runs);
             INSERT INTO episodes SELECT e.* FROM src.episodes e JOIN src.runs r ON e.run_id = r.id
               WHERE r.status = 'done' AND e.run_id NOT IN (SELECT DISTINCT run_id FROM episodes);
             INSERT OR IGNORE INTO runs SELECT * FROM src.runs WHERE status != 'done';",
    )?;
    tx.commit()?;
    conn.execute("DETACH DATABASE src", [])?;
    summary.runs_added += added as usize;
    summary.duplicates += dup as usize;
    let shard = read_meta(p)?
        .into_iter()
        .find(|(k, _)| k == "shard")
        .map_or("all".into(), |(_, v)| v);
    summary.shards.push(shard);
    Ok(())
}

#[derive(Debug, Default)]
pub struct MergeSummary {
    pub runs_added: usize,
    pub duplicates: usize,
    pub runs_done: usize,
    pub eval_runs_in_grid: usize,
    pub shards: Vec<String>,
}
