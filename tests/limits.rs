//! The limits table: docs/limits.md lists every constant of src/limits.rs with its value, and
//! the binary refuses flags past them (or NaN, infinite, zero or negative) with exit 2 and a
//! message naming the flag, before doing any work.

mod common;

use std::path::Path;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// (name, value) of each `pub const NAME: T = VALUE;` in src/limits.rs, the value written
/// as the docs write it (no digit separators, no trailing `.0`).
fn constants() -> Vec<(String, String)> {
    let code = std::fs::read_to_string(manifest_dir().join("src/limits.rs")).unwrap();
    code.lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .map(|rest| {
            let (name, tail) = rest.split_once(':').unwrap();
            let value = tail.split_once('=').unwrap().1.trim().trim_end_matches(';');
            let value = value.replace('_', "");
            let value = value.strip_suffix(".0").unwrap_or(&value).to_string();
            (name.trim().to_string(), value)
        })
        .collect()
}

#[test]
fn every_limit_is_in_the_docs_table_with_its_value() {
    let doc = std::fs::read_to_string(manifest_dir().join("docs/limits.md")).unwrap();
    let consts = constants();
    assert!(consts.len() >= 10, "{consts:?}");
    for (name, value) in consts {
        let row = format!("| `{name}` | {value} |");
        assert!(
            doc.contains(&row),
            "docs/limits.md has no row {row:?} (src/limits.rs says {name} = {value})"
        );
    }
}

#[test]
fn flags_past_the_limits_are_refused_with_exit_2_naming_the_flag() {
    let mut cases: Vec<(&[&str], &str)> = vec![
        (&["run", "--noise", "NaN"], "--noise"),
        (&["run", "--noise", "inf"], "--noise"),
        (&["run", "--noise=-0.5"], "--noise"),
        (&["run", "--episodes", "0"], "--episodes"),
        (&["run", "--episodes=-5"], "--episodes"),
        (
            &["collect", "--episodes", "0", "--out", "/nonexistent/x"],
            "--episodes",
        ),
        (&["bench", "sim", "--seconds=-1"], "--seconds"),
        (&["bench", "sim", "--seconds", "nan"], "--seconds"),
        (
            &["record", "--size", "100000", "--out", "/nonexistent/x.gif"],
            "--size",
        ),
    ];
    // Subcommands of the world model (the default `torch` feature).
    if cfg!(feature = "torch") {
        cases.extend([
            (&["demo", "--episodes", "0"][..], "--episodes"),
            (
                &["eval", "--agent", "two_rooms", "--episodes", "100000000"],
                "--episodes",
            ),
            (&["train", "--agent", "two_rooms", "--steps=-5"], "--steps"),
        ]);
    }
    for (args, flag) in cases {
        let out = common::bin().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains("expected"),
            "{args:?}: the message names neither {flag} nor what was expected: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
