//! Determinism where it holds (docs/world-model.md#determinism): on one machine, the same
//! data, seed and thread count train the same weights and log the same metrics, bit for
//! bit; another seed trains other weights.
// Needs the world model (the default `torch` feature).
#![cfg(feature = "torch")]

mod common;

use std::path::{Path, PathBuf};

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

fn identical(a: &Path, b: &Path) -> bool {
    let (wa, wb) = (common::weights(a), common::weights(b));
    wa.len() == wb.len()
        && wa
            .iter()
            .zip(&wb)
            .all(|((na, ta), (nb, tb))| na == nb && ta.equal(tb))
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
            common::metrics_without_clock(&a),
            common::metrics_without_clock(&b),
            "{threads} threads: metrics differ"
        );
    }
    let other = trained(d, &data, 1, 4, "seed4");
    assert!(
        !identical(&d.join("a1"), &other),
        "seed 4 trained seed 3's weights"
    );
}
