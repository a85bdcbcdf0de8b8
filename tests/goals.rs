//! Start/goal pairs from recorded trajectories (`hjepa eval --goals-from`, DINO-WM's
//! protocol): windows start and aim exactly at recorded frames, are reproducible, never
//! start at their goal, and bad datasets or criteria are named.
// Needs the world model (the default `torch` feature).
#![cfg(feature = "torch")]

mod common;

use std::path::Path;

use hjepa::data::{dataset_goals, Dataset, PolicyKind};
use hjepa::run::eval::{EvalActor, Starts};
use hjepa::sim::geometry::Pose2;
use hjepa::sim::scene::eval_scene;
use hjepa::sim::{Env, Scene};

fn collect_random(scene: &str, out: &Path, episodes: u64) {
    common::collect_random(&common::scene_path(scene), out, episodes);
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4)
}

#[test]
fn windows_start_and_aim_at_recorded_frames() {
    let dir = tempfile::tempdir().unwrap();
    collect_random("push_t", dir.path(), 3);
    let scene = common::scene("push_t");
    let episodes = Dataset::open(dir.path()).unwrap().episodes().unwrap();
    let windows = dataset_goals(&scene, dir.path(), 25, 12, 7).unwrap();
    assert_eq!(windows.len(), 12);
    // The offset counts control steps; recorded frames are env steps of `frameskip` each.
    let frames = 25 / scene.physics.frameskip as usize;
    assert_eq!(frames * scene.physics.frameskip as usize, 25);
    let mut env = Env::new(scene.clone());
    let names = env.observation_state_names();
    assert_eq!(names[2..4], ["agent.vx", "agent.vy"]);
    // Windows start at rest: the recorded frame with the agent's velocity zeroed.
    let at_rest = |s: &[f32]| [&s[..2], &[0.0, 0.0], &s[4..]].concat();
    for w in &windows {
        let rec = &episodes[w.episode as usize];
        let t = w.frame as usize;
        let obs = env.reset_to(w.layout.clone());
        // The observation (agent position, T pose) is the recorded frame's; the goal
        // observation is the frame 25 control steps later.
        assert!(
            close(&obs.state, &at_rest(&rec.obs_state[t])),
            "window {w:?}: start frame"
        );
        let goal = env.goal_observation();
        assert!(
            close(&goal.state, &at_rest(&rec.obs_state[t + frames])),
            "window {w:?}: goal frame"
        );
        assert!(!env.info().success, "window {w:?} starts at its goal");
        let moved = {
            let (a, b) = (&rec.state[t], &rec.state[t + frames]);
            // push_t's pose tolerances: 0.2 m, pi/9.
            (a[4] - b[4]).hypot(a[5] - b[5]) > 0.2
                || hjepa::sim::geometry::wrap_angle(a[6] - b[6]).abs() > 0.34906585
        };
        assert_eq!(w.body_moves, moved, "window {w:?}");
    }
    assert!(
        windows.iter().any(|w| w.body_moves) && windows.iter().any(|w| !w.body_moves),
        "both kinds of goal among {windows:?}"
    );
    // Reproducible in the seed, different across seeds.
    assert_eq!(
        windows,
        dataset_goals(&scene, dir.path(), 25, 12, 7).unwrap()
    );
    assert_ne!(
        windows,
        dataset_goals(&scene, dir.path(), 25, 12, 8).unwrap()
    );
}

#[test]
fn episodes_played_from_windows_are_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    collect_random("push_t", dir.path(), 2);
    let path = common::scene_path("push_t");
    let scene = std::sync::Arc::new(
        eval_scene(
            Scene::load(&path).unwrap(),
            &path,
            Some(50),
            Some("tee_pose"),
        )
        .unwrap(),
    );
    let windows = dataset_goals(&scene, dir.path(), 25, 6, 3).unwrap();
    let play = || {
        let mut out = Vec::new();
        let starts = Starts {
            count: 6,
            seed: 3,
            windows: Some(&windows),
            only: None,
        };
        EvalActor::random()
            .play_from(&scene, starts, 1, |e| {
                out.push(e);
                Ok(())
            })
            .unwrap();
        out
    };
    let (a, b) = (play(), play());
    assert_eq!(a.len(), 6);
    let mut env = Env::new(scene.clone());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x.goal_window.as_ref(), Some(&windows[i]));
        assert!(x.steps <= 50, "the budget is --max-steps");
        // The episode started from its window: its actions replayed from there end alike.
        env.reset_to(windows[i].layout.clone());
        let mut last = None;
        for act in &x.actions {
            last = Some(env.step(act).unwrap());
        }
        let last = last.unwrap();
        assert_eq!(
            (last.info.goal_distance.to_bits(), last.info.success),
            (x.final_goal_distance.to_bits(), x.success)
        );
        assert_eq!(
            (x.actions.clone(), x.final_goal_distance.to_bits()),
            (y.actions.clone(), y.final_goal_distance.to_bits())
        );
    }
}

#[test]
fn success_criterion_and_budget_are_chosen_by_name() {
    let path = common::scene_path("push_t");
    let scene = Scene::load(&path).unwrap();
    assert_eq!(scene.goal.success[0].name(), "tee_coverage");
    let dino = eval_scene(scene.clone(), &path, Some(50), Some("tee_pose")).unwrap();
    assert_eq!(dino.episode_steps, 50);
    let names: Vec<String> = dino.goal.success.iter().map(|c| c.name()).collect();
    assert_eq!(names, ["tee_pose", "tee_coverage"]);
    let err = eval_scene(scene.clone(), &path, None, Some("tee_angle")).unwrap_err();
    assert_eq!(err.location, "goal.success");
    assert!(err.message.contains("tee_coverage, tee_pose"), "{err}");
    assert!(eval_scene(scene, &path, Some(0), None).is_err());
}

#[test]
fn a_dataset_of_another_scene_or_too_short_is_named() {
    let dir = tempfile::tempdir().unwrap();
    collect_random("two_rooms", dir.path(), 1);
    let err = dataset_goals(&common::scene("push_t"), dir.path(), 25, 4, 0).unwrap_err();
    assert!(err.file.ends_with("manifest.json"), "{err}");
    assert_eq!(err.location, "scene");
    let err = dataset_goals(&common::scene("two_rooms"), dir.path(), 500, 4, 0).unwrap_err();
    assert_eq!(err.location, "episodes");
    assert!(err.message.contains("500"), "{err}");
    // A dataset recorded at another frameskip (push_t's before it planned at 5) is refused.
    let old = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(common::scene_path("push_t")).unwrap();
    assert!(text.contains("frameskip: 5,"));
    let old_scene = old.path().join("push_t.ron");
    std::fs::write(&old_scene, text.replace("frameskip: 5,", "frameskip: 1,")).unwrap();
    let old_data = old.path().join("data");
    common::collect_random(&old_scene, &old_data, 1);
    let err = dataset_goals(&common::scene("push_t"), &old_data, 25, 4, 0).unwrap_err();
    assert_eq!(err.location, "scene_source.physics.frameskip", "{err}");
    assert!(err.message.contains("frameskip 1"), "{err}");
    // push_t records every 5th control step: an offset between frames is refused.
    let dir = tempfile::tempdir().unwrap();
    collect_random("push_t", dir.path(), 1);
    let err = dataset_goals(&common::scene("push_t"), dir.path(), 7, 4, 0).unwrap_err();
    assert_eq!(err.location, "goal offset");
    assert!(err.message.contains("frameskip (5)"), "{err}");
}

/// How a policy's episodes touch the T, over eight seeded episodes.
#[derive(Debug, PartialEq)]
struct TeeContact {
    /// Fraction of env steps in which the T moves by more than 2 mm.
    moving: f64,
    /// Mean distance from the agent to the T's origin (metres).
    agent_distance: f64,
}

fn tee_contact(kind: PolicyKind) -> TeeContact {
    let mut env = Env::new(common::scene("push_t"));
    let mut policy = hjepa::data::make_policy(kind, 0.3);
    let env_steps = env.scene().episode_steps / env.scene().physics.frameskip;
    let (mut moving, mut distance, mut steps) = (0, 0.0, 0);
    for seed in 1..=8 {
        env.reset(seed);
        policy.reset(&env, seed);
        let tee = |env: &Env| {
            let b = env.world().bodies()[0];
            let p = env.world().body_pose(&b);
            (p.x, p.y)
        };
        let mut before = tee(&env);
        for _ in 0..env_steps {
            let a = policy.act(&env);
            env.step(&a).unwrap();
            let now = tee(&env);
            moving += ((now.0 - before.0).hypot(now.1 - before.1) > 0.002) as usize;
            let agent = env.world().agent_position();
            distance += (agent.0 - now.0).hypot(agent.1 - now.1) as f64;
            steps += 1;
            before = now;
        }
    }
    TeeContact {
        moving: moving as f64 / steps as f64,
        agent_distance: distance / steps as f64,
    }
}

#[test]
fn near_body_data_keeps_pushing_the_t() {
    let (near, random) = (
        tee_contact(PolicyKind::NearBody),
        tee_contact(PolicyKind::Random),
    );
    assert!(
        near.agent_distance < 0.5 * random.agent_distance && near.moving > random.moving,
        "near-body {near:?}, random {random:?}"
    );
    assert_eq!(near, tee_contact(PolicyKind::NearBody), "seeded");
}

#[test]
fn episodes_from_dataset_goals_are_recorded_and_replay_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    collect_random("push_t", &data, 2);
    // The shipped push_t agent with a tiny budget, planning on the sandbox (no checkpoint).
    let text = std::fs::read_to_string(hjepa::agent::AgentFile::resolve_path("push_t")).unwrap();
    let agent = dir.path().join("tiny.toml");
    std::fs::write(
        &agent,
        text.replace("samples = 300", "samples = 8")
            .replace("iterations = 6", "iterations = 1"),
    )
    .unwrap();
    let (rec, results) = (dir.path().join("rec.json"), dir.path().join("eval.jsonl"));
    let out = common::bin()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("eval")
        .arg("--agent")
        .arg(&agent)
        .args(["--oracle", "--episodes", "3", "--max-steps", "50"])
        .args(["--success", "tee_pose", "--no-random-floor", "--goals-from"])
        .arg(&data)
        .arg("--record")
        .arg(&rec)
        .arg("--out")
        .arg(&results)
        .output()
        .unwrap();
    common::assert_ok(&out);
    let recording = hjepa::data::recording::Recording::load(&rec).unwrap();
    assert_eq!(recording.overrides.max_steps, Some(50));
    assert_eq!(recording.overrides.success.as_deref(), Some("tee_pose"));
    let scene = recording.scene(&rec).unwrap();
    assert_eq!(scene.episode_steps, 50);
    assert_eq!(scene.goal.success[0].name(), "tee_pose");
    // Each recorded episode starts where its window did: replaying its actions from the
    // recorded start ends exactly where the evaluation did.
    let evaluated: Vec<serde_json::Value> = std::fs::read_to_string(&results)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recording.episodes.len(), 3);
    let mut env = Env::new(scene.clone());
    for (ep, row) in recording.episodes.iter().zip(&evaluated) {
        assert!(ep.start.is_some(), "episode {} keeps its start", ep.index);
        ep.reset(&mut env);
        let mut info = None;
        for a in &ep.actions {
            info = Some(env.step(a).unwrap().info);
        }
        let info = info.unwrap();
        assert_eq!(
            info.goal_distance,
            row["final_goal_distance"].as_f64().unwrap() as f32,
            "episode {}",
            ep.index
        );
        // Each criterion's last status (the T's angle error with tee_pose) is in the line.
        let criteria: Vec<hjepa::sim::CriterionStatus> =
            serde_json::from_value(row["final_criteria"].clone()).unwrap();
        assert_eq!(criteria, info.criteria, "episode {}", ep.index);
        assert!(criteria[0].angle_error.is_some(), "episode {}", ep.index);
    }
    let out = common::bin().arg("replay").arg(&rec).output().unwrap();
    common::assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3/3 identical"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A start that does not fit the scene is named, not a panic.
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&rec).unwrap()).unwrap();
    json["episodes"][1]["start"]["body_starts"]
        .as_array_mut()
        .unwrap()
        .clear();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, json.to_string()).unwrap();
    let out = common::bin().arg("replay").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.json")
            && err.contains("episodes[1].start")
            && err.contains("body_starts"),
        "{err}"
    );
}

/// `tee_pose` is DINO-WM's and stable-worldmodel's Push-T test: the norm of the agent's and
/// the T's position errors together under 20 px (0.2 m), not each one alone.
#[test]
fn tee_pose_bounds_agent_and_t_errors_together() {
    let scene = common::scene("push_t");
    let mut env = Env::new(scene.clone());
    let mut layout = hjepa::sim::env::sample_layout(&scene, 3);
    let tee_pose = |env: &Env| {
        let info = env.info();
        let c = info.criteria.iter().find(|c| c.name == "tee_pose").unwrap();
        (c.success, c.value, c.angle_error)
    };
    // The agent is moved off its goal away from the T, the T along x.
    let goal = layout.body_goals[0].unwrap();
    let (gx, gy) = layout.agent_goal;
    let away = (
        (gx - goal.x) / (gx - goal.x).hypot(gy - goal.y),
        (gy - goal.y) / (gx - goal.x).hypot(gy - goal.y),
    );
    // Each error 0.12 m (< 0.2 alone), together 0.17: success.
    layout.body_starts[0] = Pose2::new(goal.x + 0.12, goal.y, goal.angle + 0.1);
    layout.agent_start = (gx + 0.12 * away.0, gy + 0.12 * away.1);
    env.reset_to(layout.clone());
    let (ok, value, angle) = tee_pose(&env);
    assert!(ok && (value - 0.12f32.hypot(0.12)).abs() < 1e-3, "{value}");
    // The angle error is reported beside the position error (why a failure failed).
    assert!((angle.unwrap() - 0.1).abs() < 1e-3, "{angle:?}");
    // Each 0.15 m (< 0.2 alone), together 0.21: not yet.
    layout.body_starts[0] = Pose2::new(goal.x + 0.15, goal.y, goal.angle);
    layout.agent_start = (gx + 0.15 * away.0, gy + 0.15 * away.1);
    env.reset_to(layout);
    let (ok, value, angle) = tee_pose(&env);
    assert!(!ok && (value - 0.15f32.hypot(0.15)).abs() < 1e-3, "{value}");
    assert!(angle.unwrap().abs() < 1e-3, "{angle:?}");
    // A separate agent tolerance beside the joint one is refused, naming the field.
    let text = std::fs::read_to_string(common::scene_path("push_t"))
        .unwrap()
        .replace(
            "agent_tol: None, joint_position: true",
            "agent_tol: Some(0.2), joint_position: true",
        );
    let err = Scene::parse(&text, Path::new("bad.ron")).unwrap_err();
    assert!(err.location.ends_with("agent_tol"), "{err}");
}

#[test]
fn agent_in_body_frame_is_the_agent_seen_from_the_body() {
    let text = std::fs::read_to_string(common::scene_path("push_t"))
        .unwrap()
        .replace(
            r#"BodyPose("tee")],"#,
            r#"BodyPose("tee"), AgentInBodyFrame("tee")],"#,
        );
    let scene = std::sync::Arc::new(Scene::parse(&text, Path::new("rel.ron")).unwrap());
    let mut env = Env::new(scene.clone());
    let names = env.observation_state_names();
    assert_eq!(
        names[7..],
        [
            "agent_in_tee.x",
            "agent_in_tee.y",
            "agent_in_tee.vx",
            "agent_in_tee.vy"
        ]
    );
    env.reset(5);
    // Moving: one env step toward the far corner.
    let p = env.world().agent_position();
    let far = |x: f32| if x < 2.56 { 5.0 } else { 0.1 };
    env.step(&[far(p.0), far(p.1)]).unwrap();
    let s = env.observe().state;
    let (p, v) = (env.world().agent_position(), env.world().agent_velocity());
    let tee = env.world().body_pose(&env.world().bodies()[0]);
    assert!(v.0.hypot(v.1) > 0.1, "the agent moves: {v:?}");
    // Rotating the body-frame offset and velocity back by the T's angle gives the world's.
    let (c, sn) = (tee.angle.cos(), tee.angle.sin());
    let world = |x: f32, y: f32| (c * x - sn * y, sn * x + c * y);
    let (ox, oy) = world(s[7], s[8]);
    let (vx, vy) = world(s[9], s[10]);
    assert!(
        (ox - (p.0 - tee.x)).abs() < 1e-4 && (oy - (p.1 - tee.y)).abs() < 1e-4,
        "{s:?}"
    );
    assert!((vx - v.0).abs() < 1e-3 && (vy - v.1).abs() < 1e-3, "{s:?}");
    // An unknown body is named.
    let bad = text.replace(r#"AgentInBodyFrame("tee")"#, r#"AgentInBodyFrame("cup")"#);
    let err = Scene::parse(&bad, Path::new("bad.ron")).unwrap_err();
    assert!(err.location.ends_with("observation.state[3]"), "{err}");
}
