//! A training killed with SIGKILL at any moment, its checkpoint writes included, loses
//! nothing: `hjepa train --resume` goes on from the last checkpoint and ends with the
//! weights and the metrics log of a run that was never interrupted.
// Needs the world model (the default `torch` feature).
#![cfg(feature = "torch")]

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime};

/// The tests' tiny agent, checkpointing every 2 steps (of the 12 trained).
fn agent(dir: &Path) -> std::path::PathBuf {
    let text =
        include_str!("data/tiny_agent.toml").replace("validate_every = 20", "validate_every = 2");
    assert!(text.contains("validate_every = 2"));
    let path = dir.join("tiny.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn train(agent: &Path, data: &Path, out: &Path, resume: bool) -> Command {
    let mut c = common::bin();
    c.arg("train")
        .arg("--agent")
        .arg(agent)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(["--steps", "12"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if resume {
        c.arg("--resume");
    }
    c
}

/// The step of the run's last complete checkpoint (0 before the first).
fn checkpoint_step(run: &Path) -> i64 {
    ["checkpoint", "checkpoint.old"]
        .iter()
        .find_map(|d| std::fs::read_to_string(run.join(d).join("meta.json")).ok())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|m| m["step"].as_i64())
        .unwrap_or(0)
}

/// Whether the metrics log, written to since `since`, holds a validation line past
/// `step`: the run writes it just before the checkpoint of that step. (A resumed run first
/// drops the lines a killed one logged past its checkpoint, rewriting the file.)
fn validated_after(run: &Path, step: i64, since: SystemTime) -> bool {
    let log = run.join("metrics.jsonl");
    let fresh = std::fs::metadata(&log)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t > since);
    fresh
        && std::fs::read_to_string(&log).is_ok_and(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|l| l.get("validation").is_some() && l["step"].as_i64() > Some(step))
        })
}

/// Kills `child` `delay` after it logs a validation past the run's last checkpoint, that
/// is while it writes its next checkpoint (or when it ends first); true when killed.
fn kill_during_a_checkpoint(
    child: &mut Child,
    spawned: SystemTime,
    run: &Path,
    delay: Duration,
) -> bool {
    let t = Instant::now();
    let last = checkpoint_step(run);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if validated_after(run, last, spawned) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "no checkpoint written"
        );
        std::thread::yield_now();
    }
    std::thread::sleep(delay);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    status.code().is_none()
}

#[test]
fn a_training_killed_during_its_checkpoints_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let (agent, data) = (
        agent(dir.path()),
        common::collect_two_rooms(dir.path(), 30, 5),
    );
    let whole = dir.path().join("whole");
    common::assert_ok(&train(&agent, &data, &whole, false).output().unwrap());

    // Kill the run just after it logs a validation, that is while it writes the checkpoint
    // that follows, a little later each time; then resume.
    let killed = dir.path().join("killed");
    let mut kills = 0;
    let mut checkpoints_kept = 0;
    for round in 0..8u64 {
        let spawned = SystemTime::now();
        let mut child = train(&agent, &data, &killed, round > 0).spawn().unwrap();
        // A checkpoint takes about 6 ms to write here: the first kills land inside it, the
        // later ones after it (in the plots), so the run also resumes from checkpoints.
        let delay = Duration::from_micros(round * 1200);
        if !kill_during_a_checkpoint(&mut child, spawned, &killed, delay) {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            break;
        }
        kills += 1;
        checkpoints_kept = checkpoints_kept.max(checkpoint_step(&killed));
    }
    assert!(kills >= 4, "only {kills} kills landed");
    assert!(
        checkpoints_kept > 0,
        "no kill came after a complete checkpoint"
    );
    common::assert_ok(&train(&agent, &data, &killed, true).output().unwrap());

    let (a, b) = (common::weights(&whole), common::weights(&killed));
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs after {kills} kills and resumes");
    }
    let (ma, mb) = (
        common::metrics_without_clock(&whole),
        common::metrics_without_clock(&killed),
    );
    let steps = |m: &[serde_json::Value]| {
        m.iter()
            .map(|l| l["step"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(steps(&ma), steps(&mb), "metrics steps after {kills} kills");
    for (la, lb) in ma.iter().zip(&mb) {
        assert_eq!(
            la, lb,
            "metrics line of step {} after {kills} kills",
            la["step"]
        );
    }
    assert!(!killed.join("checkpoint.tmp").exists() && !killed.join("checkpoint.old").exists());
}
