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
        vec!["replay", "--help"],
        vec!["record", "--help"],
        vec!["view", "--help"],
    ]
    .into_iter()
    // The commands on the world model exist in the default (torch) build only.
    .chain(
        cfg!(feature = "torch")
            .then_some([
                vec!["bench", "model", "--help"],
                vec!["bench", "plan", "--help"],
                vec!["train", "--help"],
                vec!["probe", "--help"],
                vec!["eval", "--help"],
                vec!["demo", "--help"],
                vec!["batch", "--help"],
                vec!["merge", "--help"],
                vec!["report", "--help"],
                vec!["bench", "batch", "--help"],
                vec!["info", "--help"],
            ])
            .into_iter()
            .flatten(),
    ) {
        let out = common::bin().args(&sub).output().unwrap();
        assert!(out.status.success(), "{sub:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{sub:?}"
        );
    }
}

/// `hjepa bench plan` runs every planner's row (a short run: the table, not the numbers).
#[test]
#[cfg(feature = "torch")]
fn bench_plan_prints_every_row() {
    let out = common::bin()
        .args(["bench", "plan", "--seconds", "0.05"])
        .output()
        .unwrap();
    common::assert_ok(&out);
    let table = String::from_utf8_lossy(&out.stdout);
    for row in [
        "Cem",
        "Mppi",
        "Gradient",
        "ensemble of 5",
        "committee of 2",
        "hierarchical",
        "oracle",
    ] {
        assert!(table.contains(row), "no {row} row:\n{table}");
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
#[cfg(feature = "torch")]
fn the_binary_finds_libtorch_without_ld_library_path() {
    let out = common::bin()
        .arg("info")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    common::assert_ok(&out);
    assert!(
        text.contains("libtorch: ok (sum of [1, 2, 3] = 6)"),
        "{text}"
    );
}

#[test]
#[cfg(feature = "torch")]
fn demo_runs_end_to_end() {
    // The full pipeline at toy sizes: collect -> train -> eval (learned, oracle, floor).
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("demo");
    let agent = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tiny_planning_agent.toml");
    let run = |steps: &str| {
        common::bin()
            .args([
                "demo",
                "--collect-episodes",
                "8",
                "--train-steps",
                steps,
                "--episodes",
                "2",
                "--out",
            ])
            .arg(&out_dir)
            .arg("--agent")
            .arg(&agent)
            .output()
            .unwrap()
    };
    let out = run("6");
    let text = String::from_utf8_lossy(&out.stdout);
    common::assert_ok(&out);
    for needle in [
        "== 1/4 collect",
        "verified",
        "== 2/4 train",
        "== 3/4",
        "random policy on the same pairs",
        "== 4/4",
        "(oracle model)",
        "summary on two_rooms",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert_eq!(
        hjepa::data::Dataset::open(&out_dir.join("data"))
            .unwrap()
            .episodes()
            .unwrap()
            .len(),
        8
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("eval.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    // A rerun reuses the dataset and the finished run.
    let out = run("6");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("0 recorded now") && text.contains("6 steps; "),
        "{text}"
    );
}

#[test]
fn record_writes_a_gif_frames_and_a_replayable_recording() {
    let dir = tempfile::tempdir().unwrap();
    let gif = dir.path().join("ep.gif");
    let frames = dir.path().join("frames");
    let rec = dir.path().join("ep.json");
    let out = common::bin()
        .args(["record", "--scene", "wall", "--size", "200", "--out"])
        .arg(&gif)
        .arg("--frames")
        .arg(&frames)
        .arg("--recording")
        .arg(&rec)
        .output()
        .unwrap();
    common::assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("waypoint on wall"), "{text}");
    let bytes = std::fs::read(&gif).unwrap();
    assert!(bytes.starts_with(b"GIF89a"));
    let pngs = std::fs::read_dir(&frames).unwrap().count();
    assert!(pngs >= 2, "{pngs} frames");
    // The frames are drawn at the viewing size, not the 64x64 observation size.
    let first = image_size(&frames.join("frame_0000.png"));
    assert_eq!(first.0.max(first.1), 200);
    let replay = common::bin().arg("replay").arg(&rec).output().unwrap();
    common::assert_ok(&replay);
    assert!(String::from_utf8_lossy(&replay.stdout).contains("1/1 identical"));

    // A recording whose 5th action was nudged (as a changed simulator would go elsewhere):
    // the replay names the episode and the first step whose state differs.
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&rec).unwrap()).unwrap();
    let ep = &mut json["episodes"][0];
    assert!(ep["state_digests"].as_array().unwrap().len() > 5);
    let x = ep["actions"][4][0].as_f64().unwrap();
    ep["actions"][4][0] = (x + 0.01).into();
    let nudged = dir.path().join("nudged.json");
    std::fs::write(&nudged, serde_json::to_vec(&json).unwrap()).unwrap();
    let replay = common::bin().arg("replay").arg(&nudged).output().unwrap();
    let err = String::from_utf8_lossy(&replay.stderr);
    assert!(!replay.status.success());
    assert!(
        err.contains("nudged.json") && err.contains("episode 0 from step 5"),
        "{err}"
    );

    // --oracle without an agent is refused with a clear message.
    let out = common::bin()
        .args(["record", "--oracle", "--out"])
        .arg(dir.path().join("x.gif"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--oracle needs --agent"));
}

/// Width and height from a PNG header.
fn image_size(path: &std::path::Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

#[cfg(not(feature = "viewer"))]
#[test]
fn view_without_the_viewer_feature_says_how_to_build_it() {
    let out = common::bin()
        .args(["view", "--scene", "two_rooms"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features viewer"), "{err}");
    // Bad input is still found first.
    let out = common::bin()
        .args(["view", "--replay", "no/such/recording.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// An installed binary (`cargo install --path .` copies it into ~/.cargo/bin) knows the
/// shipped scenes and agent files without the source checkout: run from an empty folder,
/// it checks a scene, collects on it and starts training an agent file, all by name.
#[test]
fn an_installed_binary_finds_the_shipped_files_from_an_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let installed = dir.path().join("bin/hjepa");
    std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_hjepa"), &installed).unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let run = |args: &[&str]| {
        // Another test thread may fork while the copy's write handle is open: the child holds
        // it until its own exec, and exec-ing the copy meanwhile fails with ETXTBSY. Retry.
        let mut tries = 0;
        loop {
            match std::process::Command::new(&installed)
                .args(args)
                .current_dir(&work)
                .output()
            {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                result => break result.unwrap(),
            }
        }
    };
    let out = run(&["check", "push_t"]);
    common::assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("push_t"));
    common::assert_ok(&run(&[
        "collect",
        "--scene",
        "point_maze_u",
        "--episodes",
        "8",
        "--threads",
        "1",
        "--out",
        "d",
    ]));
    let out = run(&[
        "train",
        "--agent",
        "point_maze_u",
        "--data",
        "d",
        "--out",
        "r",
        "--steps",
        "2",
    ]);
    if cfg!(feature = "torch") {
        common::assert_ok(&out);
        assert!(work.join("r/checkpoint/agent.toml").exists());
    }
    // A name that is neither on disk nor shipped is still an error naming the file.
    let out = run(&["check", "no_such_scene"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("scenes/no_such_scene.ron"));
}
