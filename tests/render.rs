//! Pixel observations show the sandbox state: the agent, walls and goal are drawn where the
//! physics says they are.

mod common;

use hjepa::sim::Env;

/// Whether a pixel is closer to colour `a` than to colour `b` (edges are anti-aliased).
fn closer(p: [u8; 3], a: [u8; 3], b: [u8; 3]) -> bool {
    let d = |x: [u8; 3], y: [u8; 3]| {
        (0..3)
            .map(|i| (x[i] as i32 - y[i] as i32).pow(2))
            .sum::<i32>()
    };
    d(p, a) < d(p, b)
}

/// Pixel (column, row) of a world point, for an image of `w` x `h` over a world of `size`.
fn to_pixel(p: (f32, f32), size: (f32, f32), w: u32, h: u32) -> (u32, u32) {
    (
        (p.0 / size.0 * w as f32) as u32,
        ((1.0 - p.1 / size.1) * h as f32) as u32,
    )
}

#[test]
fn agent_and_walls_are_drawn_where_the_world_has_them() {
    let scene = common::scene("two_rooms");
    let mut env = Env::new(scene.clone());
    for seed in 0..10 {
        let obs = env.reset(seed);
        let img = obs.image.unwrap();
        let (x, y) = to_pixel(
            env.world().agent_position(),
            scene.world.size,
            img.width,
            img.height,
        );
        let white = [255, 255, 255];
        assert!(
            closer(img.pixel(x, y), scene.agent.color, white),
            "seed {seed}: agent not at ({x}, {y}): {:?}",
            img.pixel(x, y)
        );
        // The wall column far from the door is dark; the rooms are background.
        assert_eq!(img.pixel(32, 5), [40, 40, 40]);
        assert_eq!(img.pixel(32, 32), [255, 255, 255], "the door is open");
        // Moving the agent moves its pixels.
        let s = env.step(&[0.2, 0.0]).unwrap();
        let (x2, y2) = to_pixel(
            env.world().agent_position(),
            scene.world.size,
            img.width,
            img.height,
        );
        let moved = s.observation.image.unwrap();
        assert!(closer(moved.pixel(x2, y2), scene.agent.color, white));
    }
}

#[test]
fn push_t_draws_the_goal_pose_and_the_block() {
    let scene = common::scene("push_t");
    let mut env = Env::new(scene.clone());
    let img = env.reset(0).image.unwrap();
    // A point inside the T's stem, in the current pose.
    let stem = |pose: hjepa::sim::geometry::Pose2| pose.apply((0.0, 0.75));
    let tee = env.world().bodies()[0];
    let (bx, by) = to_pixel(stem(env.world().body_pose(&tee)), scene.world.size, 96, 96);
    assert_eq!(
        img.pixel(bx, by),
        scene.bodies[0].color,
        "block stem not drawn at ({bx}, {by})"
    );
    // Points of the goal T that neither the block nor the agent covers (5 px clear of both)
    // are the goal colour exactly: over a few episodes, every such point of the stem's and
    // the bar's centre lines.
    use hjepa::sim::geometry::{point_in_convex, shape_polygons};
    let goal_color = scene.observation.image.as_ref().unwrap().goal_color;
    let px = scene.world.size.0 / 96.0;
    let mut checked = 0;
    for seed in 0..5 {
        let img = env.reset(seed).image.unwrap();
        let goal = env.layout().body_goals[0].unwrap();
        let tee = env.world().bodies()[0];
        let block = shape_polygons(&scene.bodies[0].shape, &env.world().body_pose(&tee));
        let agent = env.world().agent_position();
        let near_block = |p: (f32, f32)| {
            (-5..=5).any(|dx| {
                (-5..=5).any(|dy| {
                    let q = (p.0 + dx as f32 * px, p.1 + dy as f32 * px);
                    block.iter().any(|poly| point_in_convex(poly, q))
                })
            })
        };
        let near_agent = |p: (f32, f32)| (p.0 - agent.0).hypot(p.1 - agent.1) < 0.15 + 5.0 * px;
        let centre_lines = (0..=8)
            .map(|i| (0.0, 0.1 + 0.1 * i as f32))
            .chain((0..=8).map(|i| (-0.4 + 0.1 * i as f32, 0.15)));
        for local in centre_lines {
            let p = goal.apply(local);
            if near_block(p) || near_agent(p) {
                continue;
            }
            let (x, y) = to_pixel(p, scene.world.size, 96, 96);
            assert_eq!(
                img.pixel(x, y),
                goal_color,
                "seed {seed}: goal T not drawn at local {local:?} = pixel ({x}, {y})"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} goal points were uncovered");
}
