//! Shipped models (`hjepa export`, `planning.model`): an agent file plans with one when no
//! trained run is at its `planning.checkpoint`, a trained run takes precedence, and a
//! damaged, changed or mismatched model is refused with exit 2 naming the file.
// Needs the world model (the default `torch` feature).
#![cfg(feature = "torch")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

const PLANNING: &str = r#"
[planning]
checkpoint = "CHECKPOINT"
model = "tiny"
[planning.planner]
kind = "mppi"
samples = 32
elites = 4
iterations = 1
horizon = 4
replan_every = 4
"#;

fn agent(dir: &Path, file: &str, checkpoint: &Path, edit: &dyn Fn(String) -> String) -> PathBuf {
    let text = include_str!("data/tiny_agent.toml").to_string()
        + &PLANNING.replace("CHECKPOINT", checkpoint.to_str().unwrap());
    let path = dir.join(file);
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// One tiny trained run, exported as `models/tiny` under `dir`.
fn trained_and_exported(dir: &Path) -> PathBuf {
    let data = common::collect_two_rooms(dir, 20, 4);
    let run = dir.join("trained");
    let tiny = agent(dir, "train.toml", &run, &|t| t);
    common::assert_ok(
        &common::bin()
            .arg("train")
            .arg("--agent")
            .arg(&tiny)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&run)
            .args(["--steps", "6"])
            .output()
            .unwrap(),
    );
    export_tiny(dir, &run);
    let model = dir.join("models/tiny");
    assert!(model.join("manifest.json").is_file());
    assert!(
        !model.join("checkpoint/optimizer.safetensors").exists(),
        "no optimizer state"
    );
    run
}

/// `hjepa export RUN` (trained with `dir/train.toml`) as `dir/models/tiny`.
fn export_tiny(dir: &Path, run: &Path) {
    let out = common::bin()
        .current_dir(dir)
        .arg("export")
        .arg(run)
        .args(["--agent", "train.toml", "--name", "tiny"])
        .args([
            "--data-command",
            "hjepa collect --scene two_rooms --episodes 20 --seed 4",
        ])
        .output()
        .unwrap();
    common::assert_ok(&out);
}

fn eval(dir: &Path, agent: &Path) -> Output {
    common::bin()
        .current_dir(dir)
        .arg("eval")
        .arg("--agent")
        .arg(agent)
        .args([
            "--episodes",
            "1",
            "--no-random-floor",
            "--out",
            "eval.jsonl",
        ])
        .output()
        .unwrap()
}

fn refused(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_shipped_model_plans_when_no_run_is_trained_and_damage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let trained = trained_and_exported(d);
    let no_run = d.join("runs/never_trained");
    let shipped = agent(d, "shipped.toml", &no_run, &|t| t);
    common::assert_ok(&eval(d, &shipped));
    assert_eq!(
        std::fs::read_to_string(d.join("eval.jsonl"))
            .unwrap()
            .lines()
            .count(),
        1
    );

    let weights = d.join("models/tiny/checkpoint/model.safetensors");
    let manifest = d.join("models/tiny/manifest.json");
    let original = std::fs::read(&weights).unwrap();
    // Truncated weights.
    std::fs::write(&weights, &original[..original.len() / 2]).unwrap();
    refused(
        &eval(d, &shipped),
        &["model.safetensors", "SHA-256", "damaged"],
    );
    // A trained run at planning.checkpoint takes precedence: the damaged model is not read.
    let with_run = agent(d, "with_run.toml", &trained, &|t| t);
    common::assert_ok(&eval(d, &with_run));
    std::fs::write(&weights, &original).unwrap();
    common::assert_ok(&eval(d, &shipped));

    // A manifest whose hash was changed, one of another format, one missing.
    let text = std::fs::read_to_string(&manifest).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    let hash = m["files"]["meta.json"].as_str().unwrap();
    std::fs::write(&manifest, text.replace(hash, &"0".repeat(64))).unwrap();
    refused(
        &eval(d, &shipped),
        &["meta.json", "differs from the manifest"],
    );
    std::fs::write(&manifest, text.replace("hjepa-model/1", "hjepa-model/9")).unwrap();
    refused(
        &eval(d, &shipped),
        &["manifest.json", "format", "hjepa-model/9"],
    );
    std::fs::remove_file(&manifest).unwrap();
    refused(&eval(d, &shipped), &["manifest.json", "cannot read"]);
    std::fs::write(&manifest, &text).unwrap();

    // A model for another scene: an agent file for `wall` naming the two_rooms model.
    let wall = agent(d, "wall.toml", &no_run, &|t| {
        t.replace("scene = \"two_rooms\"", "scene = \"wall\"")
    });
    refused(&eval(d, &wall), &["scene"]);
    // `hjepa demo` plays the shipped model first, before it trains, and compares at the end.
    let out = common::bin()
        .current_dir(d)
        .arg("demo")
        .arg("--agent")
        .arg(&shipped)
        .args(["--shipped-episodes", "2", "--collect-episodes", "8"])
        .args(["--train-steps", "4", "--episodes", "2", "--out", "demo"])
        .output()
        .unwrap();
    common::assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    let (first, collect) = (
        text.find("== 0/4 the shipped model")
            .expect("the shipped model plays"),
        text.find("== 1/4 collect").unwrap(),
    );
    assert!(
        first < collect,
        "the shipped model plays before anything is collected:\n{text}"
    );
    assert!(
        text.contains("on the 2 episodes the shipped model played first"),
        "{text}"
    );
    // A model that does not exist.
    let missing = agent(d, "missing.toml", &no_run, &|t| {
        t.replace("model = \"tiny\"", "model = \"nope\"")
    });
    refused(
        &eval(d, &missing),
        &["planning.model", "nope", "no trained run"],
    );
}

/// A results file with one row whose shipped model is `models/tiny` (the agent `agent`):
/// the file's headline `runs` and the shipped model's figure `shipped`, seed 0, 2 episodes.
fn results_file(dir: &Path, agent: &Path, runs: (u32, u32), shipped: (u32, u32)) -> PathBuf {
    let text = format!(
        r#"
[[row]]
task = "tiny"
page = "two_rooms.md"
observation = "64×64 pixels"
runs = [[{}, {}]]
runs_are = "one evaluation"
note = ""
random_floor = ""
oracle = ""
planning = ""
machine = ""
command = ""

[row.reproduce]
id = "tiny"
agent = "{}"
model = "tiny"
seeds = [0]
episodes = 2
shipped = [[{}, {}]]
train = {{ collect_episodes = 6, collect_seed = 4, policy = "smooth_walk" }}
"#,
        runs.0,
        runs.1,
        agent.display(),
        shipped.0,
        shipped.1
    );
    let path = dir.join(format!("table-{}-{}.toml", shipped.0, shipped.1));
    std::fs::write(&path, text).unwrap();
    path
}

fn reproduce(dir: &Path, args: &[&str]) -> Output {
    common::bin()
        .current_dir(dir)
        .arg("reproduce")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn reproduce_compares_a_shipped_models_figure_with_todays_and_fails_when_they_differ() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    trained_and_exported(d);
    let shipped = agent(d, "shipped.toml", &d.join("runs/never_trained"), &|t| t);
    // Out of 2 episodes, any count's interval overlaps 1 of 2's.
    let loose = results_file(d, &shipped, (1, 2), (1, 2));
    let out = reproduce(d, &["tiny", "--table", loose.to_str().unwrap()]);
    common::assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("| tiny | shipped model `tiny` |"),
        "{stdout}"
    );
    assert!(stdout.contains("| yes |"), "{stdout}");
    let rows =
        std::fs::read_to_string(d.join("results/reproduce/tiny/eval-seed0-n2.jsonl")).unwrap();
    assert_eq!(rows.lines().count(), 2, "2 episodes of seed 0");
    let k = rows
        .lines()
        .filter(|l| l.contains("\"success\":true"))
        .count();
    assert!(stdout.contains(&format!("seed 0: {k}/2")), "{stdout}");

    // A figure today's interval cannot reach: exit 1, the row named.
    let far = if k > 0 { (0, 1000) } else { (1000, 1000) };
    let strict = results_file(d, &shipped, (1, 2), far);
    let out = reproduce(d, &["--table", strict.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not reproduced") && err.contains("tiny"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("| **no** |"));

    // An unknown row: exit 2, the valid ones listed.
    refused(
        &reproduce(d, &["nope", "--table", loose.to_str().unwrap()]),
        &["ROW", "no row \"nope\"", "expected one of: tiny"],
    );
}

#[test]
fn reproduce_from_scratch_collects_trains_and_evaluates_as_a_batch_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fresh = agent(d, "fresh.toml", &d.join("runs/unused"), &|t| t);
    let table = results_file(d, &fresh, (1, 2), (1, 2));
    let out = reproduce(
        d,
        &["tiny", "--from-scratch", "--table", table.to_str().unwrap()],
    );
    common::assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("trained from scratch"), "{stdout}");
    let experiment =
        std::fs::read_to_string(d.join("results/reproduce/tiny/experiment.toml")).unwrap();
    for line in [
        "name = \"reproduce-tiny\"",
        "collect_episodes = 6",
        "policy = \"smooth_walk\"",
        "sbatch",
    ] {
        assert!(experiment.contains(line), "{line:?} not in:\n{experiment}");
    }
    assert!(d.join("results/reproduce/tiny/results.sqlite").is_file());
}

#[test]
fn reproduce_checks_the_shipped_two_rooms_row_from_an_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = reproduce(dir.path(), &["two_rooms", "--episodes", "2"]);
    common::assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("| two_rooms | shipped model `two_rooms` | 193/200"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Not checked (no shipped model yet)"),
        "{stdout}"
    );
}

/// The eval rows of `dir/eval.jsonl` without their clocks (planning time).
fn eval_rows_without_clock(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("eval.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let row = v.as_object_mut().unwrap();
            row.remove("planning_s");
            row.remove("replan_ms");
            v
        })
        .collect()
}

#[test]
fn a_shipped_model_keeps_its_landmarks_and_plans_without_the_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The tiny model with a level-2 critic, planning hierarchically on 6 landmarks.
    let with_landmarks = |t: String| {
        t.replace(
            "[train]",
            "[critic]\nenabled = true\nlevel2 = true\nhidden = 32\nmetric_dim = 4\nmax_steps = 40\nsources = 16\nsteps = 20\n\n[train]",
        ) + "[planning.landmarks]\ncount = 6\nmax_edge = 20.0\nreach = 20.0\n"
    };
    let data = common::collect_two_rooms(d, 20, 4);
    let run = d.join("trained");
    let train = agent(d, "train.toml", &run, &with_landmarks);
    common::assert_ok(&common::train_cli(&train, &data, &run, &["--steps", "6"]));
    let played_on_the_run = {
        common::assert_ok(&eval(d, &train));
        eval_rows_without_clock(d)
    };
    export_tiny(d, &run);
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("models/tiny/manifest.json")).unwrap(),
    )
    .unwrap();
    assert!(
        manifest["files"]["landmarks.safetensors"].is_string(),
        "{manifest}"
    );

    // Without the dataset (and without the run) the shipped model plans exactly as the run did.
    std::fs::rename(&data, d.join("elsewhere")).unwrap();
    let shipped = agent(
        d,
        "shipped.toml",
        &d.join("runs/never_trained"),
        &with_landmarks,
    );
    common::assert_ok(&eval(d, &shipped));
    assert_eq!(eval_rows_without_clock(d), played_on_the_run);

    // Landmarks placed otherwise than stored need the dataset: refused, naming the key.
    let more = agent(d, "more.toml", &d.join("runs/never_trained"), &|t| {
        with_landmarks(t).replace("count = 6", "count = 7")
    });
    refused(
        &eval(d, &more),
        &[
            "planning.landmarks",
            "landmarks.safetensors",
            "count: 6",
            "count: 7",
        ],
    );
    // With the dataset back, they are placed again.
    std::fs::rename(d.join("elsewhere"), &data).unwrap();
    common::assert_ok(&eval(d, &more));
    // A damaged landmarks file is refused like any other shipped file.
    let stored = d.join("models/tiny/checkpoint/landmarks.safetensors");
    let bytes = std::fs::read(&stored).unwrap();
    std::fs::write(&stored, &bytes[..bytes.len() - 4]).unwrap();
    refused(&eval(d, &shipped), &["landmarks.safetensors", "damaged"]);
}
