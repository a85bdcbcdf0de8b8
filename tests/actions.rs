//! Property tests for action checking: whatever comes in, what reaches the physics is finite
//! and inside the action space.

mod common;

use hjepa::sim::check_action;
use proptest::prelude::*;

proptest! {
    #[test]
    fn checked_actions_are_finite_and_in_bounds(x in prop::num::f32::ANY, y in prop::num::f32::ANY) {
        for name in ["two_rooms", "push_t", "point_maze_u"] {
            let scene = common::scene(name);
            let space = &scene.agent.action;
            match check_action(space, &[x, y]) {
                Ok((a, clipped)) => {
                    prop_assert!(x.is_finite() && y.is_finite());
                    prop_assert!(a[0] >= space.low.0 && a[0] <= space.high.0 && a[1] >= space.low.1 && a[1] <= space.high.1);
                    if let Some(n) = space.max_norm {
                        prop_assert!((a[0] * a[0] + a[1] * a[1]).sqrt() <= n * (1.0 + 1e-5));
                    }
                    prop_assert_eq!(clipped, a != [x, y] && ((a[0] - x).abs() > 1e-6 * (1.0 + x.abs()) || (a[1] - y).abs() > 1e-6 * (1.0 + y.abs())));
                }
                Err(_) => prop_assert!(!(x.is_finite() && y.is_finite())),
            }
        }
    }
}
