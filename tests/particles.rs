//! Particle bodies (`count`) and the `ParticlesIn` goal: the fraction of copies inside a
//! region is measured and decides success.

use std::path::Path;
use std::sync::Arc;

use hjepa::sim::{Env, Scene};

const SCENE: &str = r#"
Scene(
    name: "sweep",
    world: World(size: (4.0, 4.0)),
    physics: Physics(dt: 0.01, substeps: 10),
    episode_steps: 100,
    bodies: [
        Body(name: "grain", shape: Polygon(points: [(-0.05, -0.05), (0.05, -0.05), (0.0, 0.06)]), count: 12,
             start: PoseSample(position: Uniform(min: (0.5, 0.5), max: (1.5, 3.5)), angle: Range(-3.0, 3.0))),
    ],
    agent: Agent(shape: Box(half: (0.1, 0.4)), actuator: Velocity(gain: 1.0), action: ActionSpace(low: (-1.0, -1.0), high: (1.0, 1.0))),
    goal: Goal(success: [ParticlesIn(body: "grain", min: (2.0, 0.0), max: (4.0, 4.0), fraction: 0.5)], cost: Sparse),
    start_goal: Independent(start: Fixed((0.2, 2.0)), goal: Fixed((3.0, 2.0))),
    observation: ObservationSpec(state: [AgentPosition, BodyPose("grain")], image: Some(ImageSpec(width: 32, height: 32))),
)
"#;

#[test]
fn particle_fraction_is_measured() {
    let scene = Arc::new(Scene::parse(SCENE, Path::new("sweep.ron")).unwrap());
    let mut env = Env::new(scene);
    let obs = env.reset(1);
    assert_eq!(obs.state.len(), 2 + 12 * 3);
    assert_eq!(env.observation_state_names()[2], "grain[0].x");
    let info = env.info();
    assert_eq!(info.criteria[0].value, 0.0, "all grains start on the left");
    assert!(!info.success);
    // Move half of the grains to the right by hand: the fraction follows.
    let grains: Vec<_> = env.world().bodies().to_vec();
    for g in &grains[..6] {
        env.world_mut().set_body_velocity(g, (20.0, 0.0));
    }
    let s = env.step(&[0.0, 0.0]).unwrap();
    let f = s.info.criteria[0].value;
    assert!((0.4..=0.6).contains(&f), "fraction {f}");
    assert_eq!(s.info.success, f >= 0.5);
    assert_eq!(s.cost, if s.info.success { 0.0 } else { 1.0 });
}
