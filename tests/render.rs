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
    let goal = env.layout().body_goals[0].unwrap();
    // A point inside the T's stem, in the goal pose and in the current pose.
    let stem = |pose: hjepa::sim::geometry::Pose2| pose.apply((0.0, 0.75));
    let (gx, gy) = to_pixel(stem(goal), scene.world.size, 96, 96);
    let tee = env.world().bodies()[0];
    let (bx, by) = to_pixel(stem(env.world().body_pose(&tee)), scene.world.size, 96, 96);
    assert_eq!(
        img.pixel(bx, by),
        scene.bodies[0].color,
        "block stem not drawn at ({bx}, {by})"
    );
    let goal_color = scene.observation.image.as_ref().unwrap().goal_color;
    let g = img.pixel(gx, gy);
    assert!(
        g == goal_color || g == scene.bodies[0].color || g == scene.agent.color,
        "goal pose not drawn: {g:?}"
    );
}
