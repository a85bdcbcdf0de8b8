//! Planning quality cannot regress unnoticed: every shipped model whose manifest sets a
//! check (`regression`: episodes, seed, minimum successes under the interval of its measured
//! success) is evaluated with its agent file, from a folder without trained runs, so the
//! shipped weights plan.
// Needs the world model (the default `torch` feature).
#![cfg(feature = "torch")]

mod common;

use hjepa::model::shipped::{shipped_models, verify};

#[test]
fn every_shipped_model_still_plans_as_well_as_it_did() {
    let models = shipped_models();
    let checked: Vec<_> = models
        .iter()
        .map(|dir| (dir, verify(dir).unwrap_or_else(|e| panic!("{e}"))))
        .filter(|(_, m)| m.regression.is_some())
        .collect();
    assert!(
        !checked.is_empty(),
        "no shipped model sets a planning-quality check (models: {models:?})"
    );
    for (dir, m) in checked {
        let r = m.regression.as_ref().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        let rows = cwd.path().join("eval.jsonl");
        let out = common::bin()
            .current_dir(cwd.path())
            .args(["eval", "--agent", &m.agent, "--no-random-floor"])
            .args([
                "--episodes",
                &r.episodes.to_string(),
                "--seed",
                &r.seed.to_string(),
            ])
            .arg("--out")
            .arg(&rows)
            .output()
            .unwrap();
        common::assert_ok(&out);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let successes = std::fs::read_to_string(&rows)
            .unwrap()
            .lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["success"] == true)
            .count() as u64;
        assert!(
            successes >= r.min_successes,
            "{}: {successes}/{} successes, below the {} the check asks ({}):\n{stdout}",
            dir.display(),
            r.episodes,
            r.min_successes,
            r.why
        );
    }
}
