//! Factors of variation (`factors` in scene files, `hjepa eval --vary`): drawn per episode
//! from its seed, leaving the layout's draws alone, applied to physics and pixels, recorded
//! in datasets, shown by `hjepa check`, and bad ones refused naming file, line and key.

mod common;

use std::path::Path;
use std::sync::Arc;

use hjepa::data::{collect, CollectOptions, Dataset, PolicyKind};
use hjepa::sim::factors::Value;
use hjepa::sim::{Env, Scene};

/// push_t with these entries as its `factors` table.
fn push_t_with(factors: &str) -> String {
    common::scene_text_with(
        "push_t",
        "    observation: ObservationSpec(",
        &format!("    factors: {{\n{factors}\n    }},\n    observation: ObservationSpec("),
    )
}

fn load(text: &str) -> Arc<Scene> {
    Arc::new(Scene::parse(text, Path::new("varied.ron")).unwrap())
}

#[test]
fn factors_are_drawn_per_episode_and_change_pixels_and_physics_only() {
    let plain = common::scene("push_t");
    let colours = load(&push_t_with(
        r#"        "background": Set([(0, 0, 0), (40, 80, 120)]),"#,
    ));
    let (mut a, mut b) = (Env::new(plain.clone()), Env::new(colours.clone()));
    let mut backgrounds = std::collections::BTreeSet::new();
    for seed in 0..12 {
        let (oa, ob) = (a.reset(seed), b.reset(seed));
        // The layout's draws are the plain scene's: factors draw from a stream of their own.
        let mut layout = b.layout().clone();
        let Value::Color(r, g, bl) = layout.factors.remove("background").unwrap() else {
            panic!("a colour")
        };
        assert_eq!(&layout, a.layout(), "seed {seed}");
        assert_eq!(oa.state, ob.state);
        // The corner pixel is the drawn background.
        let px = &ob.image.unwrap().rgb[..3];
        assert_eq!(px, [r as u8, g as u8, bl as u8], "seed {seed}");
        assert_ne!(px, &oa.image.unwrap().rgb[..3]);
        backgrounds.insert(px.to_vec());
        // The same seed again: the same values.
        b.reset(seed);
        assert_eq!(b.layout().factors["background"], Value::Color(r, g, bl));
    }
    assert_eq!(backgrounds.len(), 2, "both colours of the set are drawn");
    assert_eq!(
        b.scene().factors.len(),
        1,
        "scene() is the scene as written"
    );

    // A heavier, larger tee moves less under the same pushes.
    let heavy = load(&push_t_with(
        r#"        "body.tee.size": Range(1.5, 1.5),
        "material.block.density": Range(50.0, 50.0),"#,
    ));
    let mut c = Env::new(heavy);
    let moved = |env: &mut Env| {
        env.reset(3);
        let start = env.physical_state();
        // Aim through the tee's origin, 0.5 m beyond it.
        for _ in 0..10 {
            let s = env.physical_state();
            let (dx, dy) = (s[4] - s[0], s[5] - s[1]);
            let n = dx.hypot(dy).max(1e-3);
            let target = [s[4] + 0.5 * dx / n, s[5] + 0.5 * dy / n];
            env.step(&target.map(|v| v.clamp(0.0, 5.12))).unwrap();
        }
        let end = env.physical_state();
        (start[4] - end[4]).hypot(start[5] - end[5])
    };
    let (light, heavy) = (moved(&mut a), moved(&mut c));
    assert!(light > 0.05, "the plain tee is pushed: {light}");
    assert!(heavy < light, "heavy {heavy} against {light}");
}

#[test]
fn check_shows_factors_and_refuses_bad_ones_naming_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = |factors: &str| {
        let path = dir.path().join("s.ron");
        std::fs::write(&path, push_t_with(factors)).unwrap();
        common::bin().arg("check").arg(&path).output().unwrap()
    };
    let ok = run(r#"        "body.tee.size": Range(0.8, 1.2),
        "agent.color": Set([(255, 0, 0)]),"#);
    common::assert_ok(&ok);
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        text.contains("varies per episode: body.tee.size in [0.8, 1.2]"),
        "{text}"
    );
    assert!(text.contains("agent.color one of {(255, 0, 0)}"), "{text}");

    let line = push_t_with("")
        .lines()
        .position(|l| l.contains("factors: {"))
        .unwrap()
        + 2;
    for (factor, why) in [
        (r#""body.tee.size": Range(1.2, 0.8),"#, "low is above high"),
        (r#""body.tee.size": Set([]),"#, "empty Set"),
        (r#""background": Set([(0, 300, 0)]),"#, "outside 0-255"),
        (r#""body.ball.size": Range(1.0, 2.0),"#, "valid keys"),
    ] {
        let out = run(&format!("        {factor}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{factor}: {err}");
        let key = factor.split('"').nth(1).unwrap();
        for needle in ["s.ron", &format!("line {line}"), key, why] {
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
    }
}

#[test]
fn datasets_record_each_episodes_values() {
    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("varied.ron");
    std::fs::write(
        &scene,
        push_t_with(r#"        "material.block.friction": Range(0.2, 2.0),"#),
    )
    .unwrap();
    let out = dir.path().join("data");
    collect(&CollectOptions {
        scene_path: scene.clone(),
        out: out.clone(),
        episodes: 5,
        policy: PolicyKind::SmoothWalk,
        noise: 0.3,
        seed: 4,
        shard_episodes: 2,
        threads: 1,
        progress: false,
        cancel: None,
    })
    .unwrap();
    let episodes = Dataset::open(&out).unwrap().episodes().unwrap();
    let varied = load(&std::fs::read_to_string(&scene).unwrap());
    let mut env = Env::new(varied);
    for ep in &episodes {
        env.reset(ep.seed);
        assert_eq!(ep.factors, env.layout().factors, "episode {}", ep.index);
        let Value::Number(f) = ep.factors["material.block.friction"] else {
            panic!("a number")
        };
        assert!((0.2..=2.0).contains(&f));
    }
}
