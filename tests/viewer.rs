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
fn colour_at(img: &tiny_skia::Pixmap, (x, y): (f64, f64)) -> [f64; 3] {
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

fn assert_colour(img: &tiny_skia::Pixmap, px: (f64, f64), want: [u8; 3], what: &str) {
    let got = colour_at(img, px);
    let err = (0..3)
        .map(|i| (got[i] - want[i] as f64).abs())
        .fold(0.0, f64::max);
    assert!(
        err < 12.0,
        "{what} at ({:.0}, {:.0}): got {got:?}, expected {want:?}",
        px.0,
        px.1
    );
}

/// Where the screenshot shows the arena, found from its pixels alone (not from the
/// viewer's own projection): the box around the long horizontal runs of floor- and
/// wall-coloured pixels (long, so the HUD's dark text does not count).
struct ArenaInPixels {
    left: f64,
    bottom: f64,
    px_per_m: (f64, f64),
}

impl ArenaInPixels {
    fn find(img: &tiny_skia::Pixmap, scene: &hjepa::sim::Scene, colours: &[[u8; 3]]) -> Self {
        const MIN_RUN: u32 = 40;
        let close = |c: tiny_skia::ColorU8| {
            colours.iter().any(|w| {
                (c.red() as i32 - w[0] as i32).abs() <= 3
                    && (c.green() as i32 - w[1] as i32).abs() <= 3
                    && (c.blue() as i32 - w[2] as i32).abs() <= 3
            })
        };
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
        for y in 0..img.height() {
            let mut run_start = None;
            for x in 0..=img.width() {
                let inside = x < img.width() && close(img.pixel(x, y).unwrap().demultiply());
                match (inside, run_start) {
                    (true, None) => run_start = Some(x),
                    (false, Some(s)) => {
                        if x - s >= MIN_RUN {
                            (x0, y0, x1, y1) = (x0.min(s), y0.min(y), x1.max(x - 1), y1.max(y));
                        }
                        run_start = None;
                    }
                    _ => {}
                }
            }
        }
        assert!(x0 < x1 && y0 < y1, "no arena pixels of {colours:?}");
        let (w, h) = scene.world.size;
        // Pixel edges: the box spans from the left edge of x0 to the right edge of x1.
        let (span_x, span_y) = ((x1 + 1 - x0) as f64, (y1 + 1 - y0) as f64);
        ArenaInPixels {
            left: x0 as f64,
            bottom: (y1 + 1) as f64,
            px_per_m: (span_x / w as f64, span_y / h as f64),
        }
    }

    fn to_px(&self, (x, y): (f32, f32)) -> (f64, f64) {
        (
            self.left + x as f64 * self.px_per_m.0,
            self.bottom - y as f64 * self.px_per_m.1,
        )
    }
}

#[test]
fn the_agent_and_the_goal_are_drawn_where_the_sandbox_puts_them() {
    let _x = X.lock().unwrap_or_else(|e| e.into_inner());
    if !have_xvfb() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for name in ["two_rooms", "point_maze_u"] {
        let shot = dir.path().join(format!("{name}.png"));
        let out = view(&[
            "--scene",
            name,
            "--paused",
            "--seed",
            "3",
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
        assert_eq!((img.width(), img.height()), (800, 600));
        assert_eq!(sidecar(&shot)["scene"], name);
        // The sandbox's own first episode of `--seed 3`, reset here, not read from the viewer.
        let scene = common::scene(name);
        let mut env = hjepa::sim::Env::new(scene.clone());
        env.reset(hjepa::data::episodes::episode_seed(3, 0));
        let style = scene
            .observation
            .image
            .clone()
            .unwrap_or_else(|| hjepa::sim::scene::ImageSpec::default_with_size(1, 1));
        let arena = ArenaInPixels::find(&img, &scene, &[style.background, style.obstacle_color]);
        // The arena keeps its aspect ratio.
        let (sx, sy) = arena.px_per_m;
        assert!((sx - sy).abs() / sx < 0.02, "pixels per metre {sx} x {sy}");
        let agent = env.world().agent_position();
        assert_colour(&img, arena.to_px(agent), scene.agent.color, "the agent");
        let goal = env.layout().agent_goal;
        assert_colour(&img, arena.to_px(goal), style.goal_color, "the goal");
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
