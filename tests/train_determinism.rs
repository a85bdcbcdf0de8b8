//! Determinism where it holds (docs/world-model.md#determinism): on one machine, the same
//! data, seed and thread count train the same weights and log the same metrics, bit for
//! bit; another seed trains other weights.
// Needs the world model (the default `torch` feature).
#![cfg(feature = "torch")]

mod common;

use std::path::{Path, PathBuf};

use tch::Tensor;

/// The tests' tiny agent on `threads` torch threads, training seed `seed`.
fn agent(dir: &Path, threads: u32, seed: u32) -> PathBuf {
    let text = include_str!("data/tiny_agent.toml")
        .replace("threads = 1", &format!("threads = {threads}"))
        .replace("seed = 3", &format!("seed = {seed}"));
    assert!(
        text.contains(&format!("threads = {threads}")) && text.contains(&format!("seed = {seed}"))
    );
    let path = dir.join(format!("tiny-{threads}-{seed}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn trained(dir: &Path, data: &Path, threads: u32, seed: u32, name: &str) -> PathBuf {
    let run = dir.join(name);
    let out = common::train_cli(&agent(dir, threads, seed), data, &run, &["--steps", "12"]);
    common::assert_ok(&out);
    run
}

fn weights(run: &Path) -> Vec<(String, Tensor)> {
    let mut v = Tensor::read_safetensors(run.join("checkpoint/model.safetensors")).unwrap();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn identical(a: &Path, b: &Path) -> bool {
    let (wa, wb) = (weights(a), weights(b));
    wa.len() == wb.len()
        && wa
            .iter()
            .zip(&wb)
            .all(|((na, ta), (nb, tb))| na == nb && ta.equal(tb))
}

/// The metrics log without its wall-clock fields.
fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if let Some(o) = v.as_object_mut() {
                o.remove("elapsed_s");
            }
            v
        })
        .collect()
}

#[test]
fn the_same_seed_and_thread_count_train_identical_weights_and_another_seed_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = common::collect_two_rooms(d, 20, 6);
    for threads in [1, 2] {
        let a = trained(d, &data, threads, 3, &format!("a{threads}"));
        let b = trained(d, &data, threads, 3, &format!("b{threads}"));
        assert!(identical(&a, &b), "{threads} threads: two trainings differ");
        assert_eq!(
            metrics(&a),
            metrics(&b),
            "{threads} threads: metrics differ"
        );
    }
    let other = trained(d, &data, 1, 4, "seed4");
    assert!(
        !identical(&d.join("a1"), &other),
        "seed 4 trained seed 3's weights"
    );
}
