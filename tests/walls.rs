//! Walls really block: the agent never leaves the arena, enters a wall (door walls included,
//! at their doors of the episode) or a body in 10k random steps.

mod common;

use hjepa::sim::geometry::{obstacle_boxes, point_in_convex, point_in_static, shape_polygons};
use hjepa::sim::Env;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_steps(name: &str, steps: usize) {
    let scene = common::scene(name);
    let mut env = Env::new(scene.clone());
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    env.reset(0);
    let a = &scene.agent.action;
    let (w, h) = scene.world.size;
    let mut episode = 0;
    for t in 0..steps {
        let act = [
            rng.random_range(a.low.0..=a.high.0),
            rng.random_range(a.low.1..=a.high.1),
        ];
        let s = env.step(&act).unwrap();
        let p = env.world().agent_position();
        assert!(
            p.0 > 0.0 && p.1 > 0.0 && p.0 < w && p.1 < h,
            "{name} step {t}: agent left the arena at {p:?}"
        );
        // Door walls and maze walls as this episode placed them (doors where they are now).
        for (c, half) in obstacle_boxes(&scene, &env.layout().doors) {
            let inside = (p.0 - c.0).abs() < half.0 - 1e-4 && (p.1 - c.1).abs() < half.1 - 1e-4;
            assert!(
                !inside,
                "{name} step {t}: agent centre inside the wall box {c:?} ± {half:?} at {p:?}"
            );
        }
        // Fixed obstacles (point_in_static counts every door position as wall, so only
        // scenes without door walls use it).
        if scene
            .obstacles
            .iter()
            .all(|o| !matches!(o, hjepa::sim::scene::Obstacle::DoorWall { .. }))
        {
            assert!(
                !point_in_static(&scene, p),
                "{name} step {t}: agent centre inside a wall at {p:?}"
            );
        }
        // Movable bodies (push_t's tee) are solid too.
        for b in env.world().bodies() {
            let shape = &scene.bodies[b.def].shape;
            for poly in shape_polygons(shape, &env.world().body_pose(b)) {
                assert!(
                    !point_in_convex(&poly, p),
                    "{name} step {t}: agent centre inside body {} at {p:?}",
                    scene.bodies[b.def].name
                );
            }
        }
        assert!(!s.info.blew_up, "{name} step {t}: blew up");
        if s.terminated || s.truncated {
            episode += 1;
            env.reset(episode);
        }
    }
}

#[test]
fn agent_stays_in_arena_two_rooms() {
    random_steps("two_rooms", 10_000);
}

#[test]
fn agent_stays_in_arena_push_t() {
    random_steps("push_t", 10_000);
}

#[test]
fn agent_stays_in_arena_point_maze() {
    random_steps("point_maze_u", 10_000);
}

#[test]
fn door_wall_blocks_outside_the_door() {
    // Push straight at the wall, away from the door: the agent must stop at the wall's face.
    let scene = common::scene("two_rooms");
    let mut env = Env::new(scene);
    env.reset(0);
    let mut tested = 0;
    for seed in 0..50 {
        env.reset(seed);
        let y = env.world().agent_position().1;
        if (y - 3.2).abs() < 1.0 {
            continue;
        }
        tested += 1;
        let dir = if env.world().agent_position().0 < 3.2 {
            0.245
        } else {
            -0.245
        };
        for _ in 0..60 {
            env.step(&[dir, 0.0]).unwrap();
        }
        let x = env.world().agent_position().0;
        assert!(
            (x - 3.2).abs() >= 0.15 + 0.1 - 0.02,
            "seed {seed}: agent at x = {x} went into the wall"
        );
        assert_eq!(
            (x - 3.2).signum(),
            -dir.signum(),
            "seed {seed}: agent passed through the wall"
        );
    }
    // Starts near the door's height are skipped (the agent would pass); most are not.
    assert!(
        tested >= 25,
        "only {tested} of 50 seeds started away from the door"
    );
}
