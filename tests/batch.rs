//! `hjepa batch`, `merge` and `report`: resume after SIGKILL, shards merged equal the whole
//! grid, the report agrees with the database, a training stage feeds the learned runs, and
//! bad input is refused with exit 2 and the database untouched.
// Needs the world model (the default `torch` feature).
#![cfg(feature = "torch")]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{assert_ok, bin};
use rusqlite::{Connection, OpenFlags};

/// Oracle (small budgets) and random runs on two_rooms: no checkpoint needed, a few
/// seconds in all, 5 x 3 oracle runs + 3 random runs.
const GRID: &str = r#"
name = "grid_test"
description = "oracle budgets and the random floor on two_rooms"
agents = ["two_rooms"]
actors = ["oracle", "random"]
seeds = [0, 1, 2]
episodes = 3
[overrides]
"planning.planner.samples" = [8, 16, 24, 32, 48]
"planning.planner.iterations" = [2]
"planning.planner.replan_every" = [1]
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn batch(experiment: &Path, db: &Path, extra: &[&str]) -> std::process::Output {
    bin()
        .arg("batch")
        .arg(experiment)
        .arg("--db")
        .arg(db)
        .args(extra)
        .output()
        .unwrap()
}

fn open(db: &Path) -> Connection {
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// Everything a run determines, without timings, hosts or paths: runs, then episodes.
fn outcome(db: &Path) -> (Vec<String>, Vec<String>) {
    let c = open(db);
    let runs = c
        .prepare(
            "SELECT id, kind, actor, scene, agent, variant, overrides, seed, episodes, config_hash, status
             FROM runs ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok(format!(
                "{}|{}|{:?}|{}|{}|{}|{}|{:?}|{:?}|{}|{}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, Option<i64>>(7)?,
                r.get::<_, Option<i64>>(8)?,
                r.get::<_, String>(9)?,
                r.get::<_, String>(10)?
            ))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let episodes = c
        .prepare(
            "SELECT run_id, idx, seed, success, steps, final_goal_distance, final_cost, distance_bin, replans
             FROM episodes ORDER BY run_id, idx",
        )
        .unwrap()
        .query_map([], |r| {
            Ok(format!(
                "{}|{}|{}|{}|{}|{:?}|{:?}|{:?}|{}",
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, bool>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<f64>>(5)?,
                r.get::<_, Option<f64>>(6)?,
                r.get::<_, Option<i64>>(7)?,
                r.get::<_, i64>(8)?
            ))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (runs, episodes)
}

fn done_runs(db: &Path) -> i64 {
    if !db.exists() {
        return 0;
    }
    let Ok(c) = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return 0;
    };
    c.query_row("SELECT COUNT(*) FROM runs WHERE status = 'done'", [], |r| {
        r.get(0)
    })
    .unwrap_or(0)
}

fn unique_runs_in_grid(db: &Path) -> i64 {
    open(db)
        .query_row("SELECT COUNT(DISTINCT run_id) FROM grid", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn resume_after_sigkill_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let exp = write(dir.path(), "grid.toml", GRID);
    let reference = dir.path().join("reference.sqlite");
    assert_ok(&batch(&exp, &reference, &["--jobs", "1"]));
    let total = unique_runs_in_grid(&reference);
    assert_eq!(
        total, 18,
        "15 oracle runs + 3 random runs shared by the cells"
    );
    assert_eq!(done_runs(&reference), total);

    // Kill -9 once a few runs are committed, while the rest are still to come.
    let killed = dir.path().join("killed.sqlite");
    let mut child = bin()
        .arg("batch")
        .arg(&exp)
        .arg("--db")
        .arg(&killed)
        .args(["--jobs", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while done_runs(&killed) < 3 {
        assert!(t.elapsed() < Duration::from_secs(120), "no run finished");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = done_runs(&killed);
    assert!(
        at_kill < total,
        "the kill should land mid-grid ({at_kill} of {total} done)"
    );

    let out = batch(&exp, &killed, &["--jobs", "2"]);
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{at_kill} already done")),
        "resume skips the finished runs: {stdout}"
    );
    assert_eq!(outcome(&killed), outcome(&reference));
    // A third invocation has nothing left to do and changes nothing.
    let out = batch(&exp, &killed, &[]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 to run"));
    assert_eq!(outcome(&killed), outcome(&reference));

    // Kills while the database is being created (as soon as its temporary file appears, then
    // a little later each time): after each there is either no database or a whole one (its
    // grid complete), never a half-made file that the next run would refuse; then a run
    // beside the killed ones' leftovers gives the same results.
    let early = dir.path().join("early.sqlite");
    let creating = |pid: u32| {
        dir.path()
            .join(format!("early.sqlite.creating-{pid}"))
            .exists()
    };
    let mut seen_creating = 0;
    for after_us in [0, 200, 500, 1000, 2000, 5000] {
        let mut child = bin()
            .arg("batch")
            .arg(&exp)
            .arg("--db")
            .arg(&early)
            .args(["--jobs", "1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let (t, pid) = (Instant::now(), child.id());
        while !creating(pid) && !early.exists() && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_micros(100));
        }
        seen_creating += usize::from(creating(pid));
        std::thread::sleep(Duration::from_micros(after_us));
        child.kill().unwrap();
        child.wait().unwrap();
        if early.exists() {
            // What the next run checks first: the database is this experiment's (a hot
            // journal left by the kill is rolled back on the way).
            hjepa::run::batch::store::read_meta(&early)
                .unwrap_or_else(|e| panic!("killed {after_us} us into creation: {e}"));
            assert_eq!(
                unique_runs_in_grid(&early),
                total,
                "killed {after_us} us into creation: a half-made database"
            );
            // Start the next try from no database again.
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", early.display()));
            }
        }
    }
    assert!(
        seen_creating > 0,
        "no kill landed while the database was being created"
    );
    assert_ok(&batch(&exp, &early, &["--jobs", "2"]));
    assert_eq!(outcome(&early), outcome(&reference));
}

#[test]
fn shards_merged_equal_the_whole_grid_and_the_report_matches_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let exp = write(dir.path(), "grid.toml", GRID);
    let whole = dir.path().join("whole.sqlite");
    assert_ok(&batch(&exp, &whole, &[]));
    // Runs record the revision the binary was built from (baked in by build.rs).
    let head = std::process::Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short=12",
            "HEAD",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let revs: Vec<String> = open(&whole)
        .prepare("SELECT DISTINCT git_rev FROM runs")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    match head {
        Some(head) => assert!(
            revs.len() == 1 && revs[0].starts_with(&head),
            "{revs:?} against HEAD {head}"
        ),
        None => assert_eq!(revs, ["unknown"]),
    }
    let mut shards = Vec::new();
    for i in 0..3 {
        let db = dir.path().join(format!("shard{i}.sqlite"));
        assert_ok(&batch(&exp, &db, &["--shard", &format!("{i}/3")]));
        assert!(done_runs(&db) > 0 && done_runs(&db) < 18);
        shards.push(db);
    }
    let merged = dir.path().join("merged.sqlite");
    let out = bin()
        .arg("merge")
        .arg("--out")
        .arg(&merged)
        .args(&shards)
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(outcome(&merged), outcome(&whole));
    // Databases are made on a temporary file and linked into place; none is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".creating-") || n.contains(".merging-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Merging a shard again adds nothing and duplicates nothing.
    assert_ok(
        &bin()
            .arg("merge")
            .arg("--out")
            .arg(&merged)
            .arg(&shards[0])
            .output()
            .unwrap(),
    );
    assert_eq!(outcome(&merged), outcome(&whole));

    // A merge that fails midway (the second input's episodes no longer fit the table) is all
    // or nothing: the first input's runs do not land either, and no copy is left behind.
    let partial = dir.path().join("partial.sqlite");
    assert_ok(
        &bin()
            .arg("merge")
            .arg("--out")
            .arg(&partial)
            .arg(&shards[0])
            .output()
            .unwrap(),
    );
    let before = std::fs::read(&partial).unwrap();
    let odd = dir.path().join("odd.sqlite");
    std::fs::copy(&shards[2], &odd).unwrap();
    Connection::open(&odd)
        .unwrap()
        .execute_batch("ALTER TABLE episodes ADD COLUMN extra INTEGER;")
        .unwrap();
    let out = bin()
        .arg("merge")
        .arg("--out")
        .arg(&partial)
        .arg(&shards[1])
        .arg(&odd)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        std::fs::read(&partial).unwrap(),
        before,
        "a failed merge changed its output"
    );
    let copies = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".merging-")
        })
        .count();
    assert_eq!(copies, 0);

    // The report's numbers against a direct query.
    let report_dir = dir.path().join("report");
    let out = bin()
        .arg("report")
        .arg(&merged)
        .arg("--out")
        .arg(&report_dir)
        .output()
        .unwrap();
    assert_ok(&out);
    let csv = std::fs::read_to_string(report_dir.join("cells.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let c = open(&merged);
    let mut rows = 0;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let (successes, episodes): (i64, i64) = c
            .query_row(
                "SELECT SUM(e.success), COUNT(*) FROM grid g JOIN episodes e ON e.run_id = g.run_id
                 WHERE g.scene = ?1 AND g.agent = ?2 AND g.variant = ?3 AND g.overrides = ?4 AND g.actor = ?5",
                rusqlite::params![f[col("scene")], f[col("agent")], f[col("variant")], f[col("overrides")], f[col("actor")]],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            f[col("successes")].parse::<i64>().unwrap(),
            successes,
            "{line}"
        );
        assert_eq!(
            f[col("episodes")].parse::<i64>().unwrap(),
            episodes,
            "{line}"
        );
        assert_eq!(episodes, 9, "3 seeds x 3 episodes per cell and actor");
        let rate: f64 = f[col("success_rate")].parse().unwrap();
        assert!((rate - successes as f64 / episodes as f64).abs() < 1e-6);
        rows += 1;
    }
    assert_eq!(rows, 10, "5 cells x (oracle, random)");
    let md = std::fs::read_to_string(report_dir.join("report.md")).unwrap();
    assert!(md.contains("planning.planner.samples=48"), "{md}");
    for plot in [
        "success_vs_planning_time.png",
        "success_vs_planning_planner_samples.png",
        "planning_time.png",
    ] {
        let p = report_dir.join(plot);
        assert!(
            std::fs::metadata(&p).unwrap().len() > 1000,
            "{}",
            p.display()
        );
    }
}

#[test]
fn a_training_stage_feeds_the_learned_runs() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_planning_agent.toml");
    let exp = write(
        dir.path(),
        "train.toml",
        &format!(
            r#"
name = "train_test"
agents = ["{}"]
actors = ["learned", "random"]
seeds = [0]
episodes = 2
[overrides]
"train.steps" = [20, 40]
[train]
collect_episodes = 6
"#,
            agent.display()
        ),
    );
    let db = dir.path().join("train.sqlite");
    let out = batch(&exp, &db, &[]);
    assert_ok(&out);
    let c = open(&db);
    let trained: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM runs WHERE kind = 'train' AND status = 'done' AND model_errors IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(trained, 2, "one model per train.steps value");
    let learned: Vec<String> = c
        .prepare("SELECT DISTINCT model FROM runs WHERE actor = 'learned' AND status = 'done'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        learned.len(),
        2,
        "each learned cell uses its own model: {learned:?}"
    );
    for m in &learned {
        assert!(Path::new(m).join("checkpoint/model.safetensors").exists());
    }
    let report_dir = dir.path().join("report");
    assert_ok(
        &bin()
            .arg("report")
            .arg(&db)
            .arg("--out")
            .arg(&report_dir)
            .output()
            .unwrap(),
    );
    assert!(report_dir.join("prediction_error.png").exists());
    let models = std::fs::read_to_string(report_dir.join("models.csv")).unwrap();
    assert!(models.lines().count() > 2, "{models}");
}

/// Runs a bad command; asserts exit 2, a message containing each of `needles`, and the
/// database byte-for-byte as it was.
fn refused(args: &[&std::ffi::OsStr], db: Option<&Path>, needles: &[&str]) {
    let before = db.map(|d| std::fs::read(d).unwrap());
    let out = bin().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    if let (Some(d), Some(b)) = (db, before) {
        assert_eq!(std::fs::read(d).unwrap(), b, "the database was changed");
    }
}

#[test]
fn bad_input_is_refused_and_the_database_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let small = GRID
        .replace("[8, 16, 24, 32, 48]", "[8]")
        .replace("seeds = [0, 1, 2]", "seeds = [0]")
        .replace("episodes = 3", "episodes = 1");
    let exp = write(dir.path(), "good.toml", &small);
    let db = dir.path().join("good.sqlite");
    assert_ok(&batch(&exp, &db, &[]));
    let os = |s: &str| std::ffi::OsString::from(s);
    let run = |file: &Path, extra: &[&str]| -> Vec<std::ffi::OsString> {
        let mut v = vec![
            os("batch"),
            file.as_os_str().into(),
            os("--db"),
            db.as_os_str().into(),
        ];
        v.extend(extra.iter().map(|s| os(s)));
        v
    };
    let check = |args: Vec<std::ffi::OsString>, needles: &[&str]| {
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        refused(&refs, Some(&db), needles);
    };

    let malformed = write(
        dir.path(),
        "malformed.toml",
        "name = \"x\"\nagents = [\"two_rooms\"\n",
    );
    check(run(&malformed, &[]), &["malformed.toml", "line"]);

    let unknown = write(
        dir.path(),
        "unknown.toml",
        &small.replace("planning.planner.samples", "planning.planner.sampels"),
    );
    check(
        run(&unknown, &[]),
        &[
            "unknown.toml",
            "planning.planner.sampels",
            "unknown agent-file key",
        ],
    );

    let bad_value = write(
        dir.path(),
        "bad_value.toml",
        &small.replace(
            "\"planning.planner.samples\" = [8]",
            "\"planning.planner.samples\" = [0]",
        ),
    );
    check(
        run(&bad_value, &[]),
        &["bad_value.toml", "planning.planner.samples"],
    );

    let zero = write(
        dir.path(),
        "zero.toml",
        &small.replace("seeds = [0]", "seeds = []"),
    );
    check(run(&zero, &[]), &["zero.toml", "seeds", "zero runs"]);

    let dup = write(
        dir.path(),
        "dup.toml",
        &small.replace("seeds = [0]", "seeds = [0, 0]"),
    );
    check(run(&dup, &[]), &["dup.toml", "seeds", "listed twice"]);

    let other = write(
        dir.path(),
        "other.toml",
        &small.replace("name = \"grid_test\"", "name = \"another\""),
    );
    check(run(&other, &[]), &["good.sqlite", "grid_test", "another"]);

    let changed = write(
        dir.path(),
        "changed.toml",
        &small.replace("episodes = 1", "episodes = 2"),
    );
    check(run(&changed, &[]), &["good.sqlite", "another grid"]);

    check(run(&exp, &["--shard", "3/2"]), &["3/2", "i/n"]);

    // A merge that mixes experiments writes nothing.
    let other_db = dir.path().join("other.sqlite");
    let ok_other = write(
        dir.path(),
        "other_ok.toml",
        &small.replace("name = \"grid_test\"", "name = \"another\""),
    );
    assert_ok(&batch(&ok_other, &other_db, &[]));
    let merged = dir.path().join("merged.sqlite");
    refused(
        &[
            std::ffi::OsStr::new("merge"),
            std::ffi::OsStr::new("--out"),
            merged.as_os_str(),
            db.as_os_str(),
            other_db.as_os_str(),
        ],
        Some(&db),
        &["other.sqlite", "another"],
    );
    assert!(!merged.exists(), "a refused merge creates no database");

    // A file that is not a results database.
    let junk = write(dir.path(), "junk.sqlite", "not a database");
    refused(
        &[std::ffi::OsStr::new("report"), junk.as_os_str()],
        Some(&junk),
        &["junk.sqlite", "not an hjepa results database"],
    );

    // Damaged copies: a dropped table, then text where the report reads a number. Each is
    // named (table, column) with the fix, and left as it was.
    let damaged = |name: &str, sql: &str, needles: &[&str]| {
        let copy = dir.path().join(name);
        std::fs::copy(&db, &copy).unwrap();
        Connection::open(&copy).unwrap().execute_batch(sql).unwrap();
        let mut all = vec![name];
        all.extend(needles);
        all.push("pass a new --db");
        refused(
            &[std::ffi::OsStr::new("report"), copy.as_os_str()],
            Some(&copy),
            &all,
        );
    };
    damaged(
        "no_grid.sqlite",
        "DROP TABLE grid;",
        &["table \"grid\" is missing"],
    );
    damaged(
        "text_cell.sqlite",
        "UPDATE grid SET cell = 'x';",
        &["Invalid column type Text", "damaged"],
    );
}

#[test]
fn ctrl_c_finishes_the_runs_in_flight_and_starts_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let exp = write(dir.path(), "grid.toml", GRID);
    let db = dir.path().join("interrupted.sqlite");
    let child = bin()
        .arg("batch")
        .arg(&exp)
        .arg("--db")
        .arg(&db)
        .args(["--jobs", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while done_runs(&db) < 2 {
        assert!(t.elapsed() < Duration::from_secs(120), "no run finished");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Runs record when they start (unix seconds, taken right after the worker checks for
    // Ctrl-C): none may start after the signal (half a second allows for the check that
    // passed just before it).
    let signalled = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let last_start: f64 = open(&db)
        .query_row("SELECT MAX(started_at) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert!(
        last_start <= signalled + 0.5,
        "a run started {:.2} s after Ctrl-C",
        last_start - signalled
    );
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = open(&db);
    let (done, running): (i64, i64) = c
        .query_row(
            "SELECT SUM(status = 'done'), SUM(status = 'running') FROM runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        running, 0,
        "the runs in flight were finished, not abandoned"
    );
    assert!(
        done < 18,
        "no new runs were started after Ctrl-C ({done} done)"
    );
    drop(c);
    assert_ok(&batch(&exp, &db, &[]));
    assert_eq!(done_runs(&db), 18);
}

#[test]
fn shipped_experiments_expand() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            let grid = hjepa::run::batch::expand_file(&p).unwrap_or_else(|e| panic!("{e}"));
            assert!(!grid.runs.is_empty(), "{}", p.display());
            n += 1;
        }
    }
    assert!(n >= 2);
    let pq = hjepa::run::batch::expand_file(&dir.join("planning_quality.toml")).unwrap();
    // 3 models trained, then learned + random + oracle for each of the 3 scenes.
    assert_eq!(pq.runs.len(), 3 + 9);
    let budget = hjepa::run::batch::expand_file(&dir.join("planner_budget.toml")).unwrap();
    // Both cost variants share one model; random is shared by all 6 cells per seed.
    assert_eq!(budget.runs.len(), 1 + 2 * 6 + 2);
    let hierarchy = hjepa::run::batch::expand_file(&dir.join("maze_large_hierarchy.toml")).unwrap();
    // One model; the landmark agent and its flat variant on each of 2 seeds.
    assert_eq!(hierarchy.runs.len(), 1 + 2 * 2);
}

#[test]
fn the_slurm_array_script_runs_shards_that_merge() {
    let dir = tempfile::tempdir().unwrap();
    let exp = write(dir.path(), "grid.toml", GRID);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/slurm/array.sbatch");
    for task in 1..=3 {
        // As Slurm would start `sbatch --array=1-3`.
        let out = std::process::Command::new("bash")
            .arg(&script)
            .arg(&exp)
            .current_dir(dir.path())
            .env("HJEPA", env!("CARGO_BIN_EXE_hjepa"))
            .env("SLURM_ARRAY_TASK_ID", task.to_string())
            .env("SLURM_ARRAY_TASK_MIN", "1")
            .env("SLURM_ARRAY_TASK_MAX", "3")
            .env_remove("SLURM_ARRAY_TASK_COUNT")
            .env("SLURM_CPUS_PER_TASK", "1")
            .output()
            .unwrap();
        assert_ok(&out);
    }
    let shards: Vec<PathBuf> = (0..3)
        .map(|i| {
            dir.path()
                .join(format!("results/grid_test/shard-{i}-of-3.sqlite"))
        })
        .collect();
    let merged = dir.path().join("merged.sqlite");
    assert_ok(
        &bin()
            .arg("merge")
            .arg("--out")
            .arg(&merged)
            .args(&shards)
            .output()
            .unwrap(),
    );
    assert_eq!(done_runs(&merged), 18);
}
