//! Bad scenes and bad actions: clear errors naming the file, the place and what was
//! expected; exit code 2 from the binary; nothing non-finite ever reaches the physics.

mod common;

use std::path::Path;
use std::sync::Arc;

use hjepa::sim::{Env, Scene};

/// (what, scene, replace, with, expected substrings of the error)
const CASES: &[(&str, &str, &str, &str, &[&str])] = &[
    (
        "syntax error",
        "two_rooms",
        "episode_steps: 200,",
        "episode_steps: 200",
        &["line", "column"],
    ),
    (
        "unknown field",
        "two_rooms",
        "walls: true,",
        "walls: true, colour: 3,",
        &["colour"],
    ),
    (
        "negative size",
        "two_rooms",
        "size: (6.4, 6.4)",
        "size: (-6.4, 6.4)",
        &["world.size", "positive"],
    ),
    ("NaN", "push_t", "dt: 0.01", "dt: NaN", &["physics.dt"]),
    (
        "start inside a wall",
        "two_rooms",
        "(Uniform(min: (0.3, 0.3), max: (2.8, 6.1)), Uniform(min: (3.6, 0.3), max: (6.1, 6.1))),",
        "(Fixed((3.2, 1.0)), Uniform(min: (3.6, 0.3), max: (6.1, 6.1))),",
        &["start_goal[0].0", "inside an obstacle"],
    ),
    (
        "start in a maze wall cell",
        "point_maze_u",
        "start: Cells(cells: []",
        "start: Cells(cells: [(2, 1)]",
        &["start_goal.start", "wall"],
    ),
    (
        "goal outside the world",
        "push_t",
        "goal: Fixed((2.673, 2.447))",
        "goal: Fixed((7.0, 2.447))",
        &["start_goal.goal", "outside the world"],
    ),
    (
        "unknown material",
        "push_t",
        "material: \"block\"",
        "material: \"rubber\"",
        &["bodies[0].material", "rubber"],
    ),
    (
        "unknown body in a criterion",
        "push_t",
        "Coverage(body: \"tee\"",
        "Coverage(body: \"tea\"",
        &["goal.success[0]", "tea"],
    ),
    (
        "empty action box",
        "two_rooms",
        "low: (-0.245, -0.245)",
        "low: (0.5, -0.245)",
        &["agent.action"],
    ),
    (
        "a billion substeps",
        "two_rooms",
        "substeps: 5",
        "substeps: 1000000000",
        &[
            "physics.substeps",
            "1000000000 x 1 = 1000000000 physics steps per env step",
            "at most 1000",
        ],
    ),
    (
        "a billion bodies",
        "push_t",
        "shape: Compound(parts: [",
        "count: 1000000000, shape: Compound(parts: [",
        &["bodies", "at most 10000"],
    ),
    (
        "non-convex polygon",
        "two_rooms",
        "shape: Circle(radius: 0.1)",
        "shape: Polygon(points: [(0.0, 0.0), (0.2, 0.1), (0.0, 0.2), (0.06, 0.1)])",
        &["agent.shape.points[3]", "not convex"],
    ),
    (
        "unsatisfiable minimum distance",
        "point_maze_u",
        "min_distance: 1.0",
        "min_distance: 100.0",
        &["start_goal.min_distance", "farthest pair"],
    ),
    (
        "negative jitter of the distance bins",
        "maze_large",
        "noise: 0.25)",
        "noise: -0.5)",
        &["start_goal.noise", "from 0"],
    ),
];

#[test]
fn bad_scenes_are_reported_with_file_and_field() {
    for (what, name, from, to, expect) in CASES {
        let text = common::scene_text_with(name, from, to);
        let path = Path::new("scenes/bad.ron");
        let err = Scene::parse(&text, path).expect_err(what).to_string();
        assert!(
            err.starts_with("scenes/bad.ron: "),
            "{what}: error does not name the file: {err}"
        );
        for e in *expect {
            assert!(err.contains(e), "{what}: expected {e:?} in: {err}");
        }
    }
}

#[test]
fn binary_exits_2_on_bad_scenes_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    for (what, name, from, to, expect) in CASES {
        let path = dir.path().join("bad.ron");
        std::fs::write(&path, common::scene_text_with(name, from, to)).unwrap();
        let out = common::bin()
            .args(["check", path.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(
            stderr.contains("bad.ron") && stderr.contains(expect[0]),
            "{what}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    }
    let out = common::bin()
        .args(["check", "/no/such/scene.ron"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/scene.ron"));
}

#[test]
fn non_finite_actions_are_rejected_and_never_reach_the_physics() {
    let mut env = Env::new(common::scene("two_rooms"));
    env.reset(0);
    let before = env.physical_state();
    for bad in [
        [f32::NAN, 0.0],
        [0.0, f32::INFINITY],
        [f32::NEG_INFINITY, f32::NAN],
    ] {
        let err = env.step(&bad).expect_err("non-finite action");
        assert!(err.to_string().contains("finite"));
    }
    assert_eq!(
        env.physical_state(),
        before,
        "a rejected action changed the world"
    );
    assert_eq!(env.steps(), 0);
}

#[test]
fn out_of_range_actions_are_clipped_or_rejected_as_the_scene_declares() {
    let mut env = Env::new(common::scene("two_rooms"));
    env.reset(0);
    let p0 = env.world().agent_position();
    let s = env.step(&[5.0, 0.0]).unwrap();
    assert!(s.info.action_clipped);
    let p1 = env.world().agent_position();
    assert!(
        (p1.0 - p0.0).abs() <= 0.245 + 1e-3,
        "clipped step moved {}",
        p1.0 - p0.0
    );
    assert!(!env.step(&[0.1, 0.1]).unwrap().info.action_clipped);

    let text = common::scene_text_with("two_rooms", "out_of_range: Clip", "out_of_range: Reject");
    let mut env = Env::new(Arc::new(
        Scene::parse(&text, Path::new("reject.ron")).unwrap(),
    ));
    env.reset(0);
    let err = env.step(&[0.3, 0.0]).expect_err("out of range").to_string();
    assert!(err.contains("Reject"), "{err}");
    assert!(env.step(&[0.2, 0.0]).is_ok());
}

#[test]
fn a_body_that_blows_up_ends_the_episode_with_a_flag() {
    let mut env = Env::new(common::scene("push_t"));
    env.reset(0);
    let tee = env.world().bodies()[0];
    env.world_mut().set_body_velocity(&tee, (f32::NAN, 1.0e30));
    let s = env.step(&[2.0, 2.0]).unwrap();
    assert!(s.info.blew_up);
    assert!(s.terminated);
    assert!(!s.info.success);
}

#[test]
fn an_output_folder_under_a_file_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a_file");
    std::fs::write(&file, b"x").unwrap();
    let (data, gif) = (file.join("data"), file.join("gif/ep.gif"));
    for args in [
        vec![
            "collect",
            "--episodes",
            "1",
            "--out",
            data.to_str().unwrap(),
        ],
        vec!["record", "--out", gif.to_str().unwrap()],
    ] {
        let out = common::bin().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(file.to_str().unwrap()) && stderr.contains("is a file, not a folder"),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}
