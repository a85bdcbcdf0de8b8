//! The command line: every subcommand has --help, and the main commands run end to end.

mod common;

#[test]
fn every_subcommand_has_help() {
    for sub in [
        vec!["--help"],
        vec!["check", "--help"],
        vec!["run", "--help"],
        vec!["collect", "--help"],
        vec!["inspect", "--help"],
        vec!["bench", "sim", "--help"],
    ] {
        let out = common::bin().args(&sub).output().unwrap();
        assert!(out.status.success(), "{sub:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{sub:?}"
        );
    }
}

#[test]
fn check_summarises_every_shipped_scene() {
    for name in common::SCENES {
        let out = common::bin().args(["check", name]).output().unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(": ok") && text.contains(name), "{text}");
    }
}

#[test]
fn run_prints_a_report() {
    let out = common::bin()
        .args(["run", "--scene", "two_rooms", "--episodes", "5"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("success 5/5"), "{text}");
    assert!(text.contains("95% CI"), "{text}");
}

#[test]
fn bad_arguments_exit_2() {
    let out = common::bin()
        .args(["run", "--episodes", "many"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let out = common::bin()
        .args([
            "collect",
            "--episodes",
            "0",
            "--out",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--episodes"));
}

#[test]
fn the_binary_finds_libtorch_without_ld_library_path() {
    let out = common::bin()
        .arg("info")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("libtorch: ok (sum of [1, 2, 3] = 6)"),
        "{text}"
    );
}

#[test]
fn demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("demo");
    let out = common::bin()
        .args([
            "demo",
            "--episodes",
            "10",
            "--out",
            out_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("success 10/10") && text.contains("verified"),
        "{text}"
    );
    assert!(
        hjepa::data::Dataset::open(&out_dir)
            .unwrap()
            .episodes()
            .unwrap()
            .len()
            == 10
    );
}
