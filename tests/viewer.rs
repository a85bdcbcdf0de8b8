//! The Bevy viewer under a virtual X server (Xvfb, Mesa's software Vulkan): it draws the
//! agent and the goal where the sandbox puts them, draws the plan, plays recordings, and
//! refuses bad input with a message instead of a panic. Built with `--features viewer`
//! (`make test-viewer`); without the feature this file is empty.
#![cfg(feature = "viewer")]

mod common;

use std::path::Path;
use std::process::Output;
use std::sync::Mutex;

/// One virtual X server at a time (xvfb-run -a races when started in parallel).
static X: Mutex<()> = Mutex::new(());

fn have_xvfb() -> bool {
    let ok = std::process::Command::new("sh")
        .args(["-c", "command -v xvfb-run"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("HJEPA_REQUIRE_VIEWER").is_none(),
            "xvfb-run is missing (make viewer-deps installs it)"
        );
        eprintln!("skipping: xvfb-run is not installed");
    }
    ok
}

fn view(args: &[&str]) -> Output {
    std::process::Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x1024x24"])
        .arg(env!("CARGO_BIN_EXE_hjepa"))
        .arg("view")
        .args(args)
        .output()
        .unwrap()
}

fn sidecar(shot: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(shot.with_extension("json")).unwrap()).unwrap()
}

/// The mean colour of a 5x5 patch around (x, y).
fn colour_at(img: &tiny_skia::Pixmap, x: f64, y: f64) -> [f64; 3] {
    let mut sum = [0.0; 3];
    let mut n = 0.0;
    for dy in -2i32..=2 {
        for dx in -2i32..=2 {
            let (px, py) = (x.round() as i32 + dx, y.round() as i32 + dy);
            let p = img
                .pixel(px as u32, py as u32)
                .expect("inside the screenshot");
            let c = p.demultiply();
            sum[0] += c.red() as f64;
            sum[1] += c.green() as f64;
            sum[2] += c.blue() as f64;
            n += 1.0;
        }
    }
    sum.map(|s| s / n)
}

fn assert_colour(
    img: &tiny_skia::Pixmap,
    px: &serde_json::Value,
    want: &serde_json::Value,
    what: &str,
) {
    let (x, y) = (px[0].as_f64().unwrap(), px[1].as_f64().unwrap());
    let got = colour_at(img, x, y);
    let want: Vec<f64> = want
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let err = (0..3).map(|i| (got[i] - want[i]).abs()).fold(0.0, f64::max);
    assert!(
        err < 12.0,
        "{what} at ({x:.0}, {y:.0}): got {got:?}, expected {want:?}"
    );
}

#[test]
fn the_agent_and_the_goal_are_drawn_where_the_sandbox_puts_them() {
    let _x = X.lock().unwrap_or_else(|e| e.into_inner());
    if !have_xvfb() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for scene in ["two_rooms", "point_maze_u"] {
        let shot = dir.path().join(format!("{scene}.png"));
        let out = view(&[
            "--scene",
            scene,
            "--paused",
            "--frames",
            "40",
            "--width",
            "800",
            "--height",
            "600",
            "--screenshot",
            shot.to_str().unwrap(),
        ]);
        common::assert_ok(&out);
        let img = tiny_skia::Pixmap::load_png(&shot).unwrap();
        let s = sidecar(&shot);
        assert_eq!(s["scene"], scene);
        assert_eq!((img.width(), img.height()), (800, 600));
        assert_colour(&img, &s["agent_px"], &s["agent_color"], "the agent");
        assert_colour(&img, &s["agent_goal_px"], &s["goal_color"], "the goal");
    }
}

#[test]
fn the_plan_is_drawn_and_recordings_play() {
    let _x = X.lock().unwrap_or_else(|e| e.into_inner());
    if !have_xvfb() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The oracle model plans; its expected path is drawn in orange.
    let shot = dir.path().join("plan.png");
    let out = view(&[
        // Slowed down so the episode is still running (and planning) at the capture.
        "--agent",
        "two_rooms",
        "--oracle",
        "--speed",
        "0.125",
        "--frames",
        "60",
        "--width",
        "800",
        "--height",
        "600",
        "--screenshot",
        shot.to_str().unwrap(),
    ]);
    common::assert_ok(&out);
    let img = tiny_skia::Pixmap::load_png(&shot).unwrap();
    let orange = img
        .pixels()
        .iter()
        .filter(|p| {
            let c = p.demultiply();
            c.red() > 220 && (110..=170).contains(&c.green()) && c.blue() < 60
        })
        .count();
    assert!(orange > 20, "plan pixels: {orange}");

    // A recording plays, with its timeline.
    let rec = dir.path().join("ep.json");
    common::assert_ok(
        &common::bin()
            .args(["record", "--scene", "wall", "--out"])
            .arg(dir.path().join("ep.gif"))
            .arg("--recording")
            .arg(&rec)
            .output()
            .unwrap(),
    );
    let shot = dir.path().join("replay.png");
    let out = view(&[
        "--replay",
        rec.to_str().unwrap(),
        "--frames",
        "30",
        "--screenshot",
        shot.to_str().unwrap(),
    ]);
    common::assert_ok(&out);
    assert_eq!(sidecar(&shot)["scene"], "wall");
}

#[test]
fn bad_input_and_no_display_are_clear_errors() {
    let _x = X.lock().unwrap_or_else(|e| e.into_inner());
    if !have_xvfb() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let check = |out: Output, code: i32, needles: &[&str]| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{err}");
        for n in needles {
            assert!(err.contains(n), "{n:?} not in {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
    };
    let missing = dir.path().join("missing.json");
    check(
        view(&["--replay", missing.to_str().unwrap()]),
        2,
        &["missing.json", "cannot read recording"],
    );
    let corrupt = dir.path().join("corrupt.json");
    std::fs::write(&corrupt, "{\"format\": ").unwrap();
    check(
        view(&["--replay", corrupt.to_str().unwrap()]),
        2,
        &["corrupt.json"],
    );
    let scene = dir.path().join("broken.ron");
    std::fs::write(&scene, "(name: \"broken\", world: ").unwrap();
    check(
        view(&["--scene", scene.to_str().unwrap()]),
        2,
        &["broken.ron"],
    );
    // No X server at all.
    let out = common::bin()
        .args(["view", "--scene", "two_rooms", "--frames", "5"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    check(out, 1, &["no display", "xvfb-run"]);
}
