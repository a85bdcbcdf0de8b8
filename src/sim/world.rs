//! Builds a rapier2d world from a scene and an episode layout; steps it under the agent's
//! actuator; takes and restores complete snapshots.
//!
//! `PhysicsState` holds every piece of rapier state that influences the next step (bodies,
//! colliders, islands, both collision phases with their contact caches, joints, CCD), so a
//! restored snapshot continues bit-identically. `PhysicsPipeline` only holds scratch buffers
//! and is never part of a snapshot.

use rapier2d::prelude::*;

use super::geometry::{obstacle_boxes, Pose2};
use super::scene::{Actuator, Obstacle, Scene, Shape, V2};

/// Everything random about one episode, drawn at reset (recordings keep it for episodes
/// that did not start from a seed).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Door centre of each `DoorWall` obstacle, in scene order.
    pub doors: Vec<f32>,
    pub agent_start: V2,
    pub agent_goal: V2,
    /// Start pose of every body copy, in scene order.
    pub body_starts: Vec<Pose2>,
    /// Goal pose per body definition (None where the body has no goal).
    pub body_goals: Vec<Option<Pose2>>,
    /// Which `CellDistanceBins` bin the start/goal pair came from.
    pub distance_bin: Option<usize>,
    /// The values the scene's factors of variation took in this episode (empty without).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub factors: super::factors::Drawn,
}

/// The complete, cloneable rapier state.
#[derive(Clone)]
pub struct PhysicsState {
    islands: IslandManager,
    broad_phase: BroadPhaseBvh,
    narrow_phase: NarrowPhase,
    bodies: RigidBodySet,
    colliders: ColliderSet,
    impulse_joints: ImpulseJointSet,
    multibody_joints: MultibodyJointSet,
    soft_bodies: SoftBodySet,
    ccd_solver: CCDSolver,
}

/// A dynamic body copy and the scene body it comes from.
#[derive(Clone, Copy, Debug)]
pub struct BodyRef {
    pub def: usize,
    pub handle: RigidBodyHandle,
}

pub struct World {
    pipeline: PhysicsPipeline,
    params: IntegrationParameters,
    pub(crate) state: PhysicsState,
    agent: RigidBodyHandle,
    agent_collider: ColliderHandle,
    bodies: Vec<BodyRef>,
    actuator: Actuator,
    substeps: u32,
    /// Rapier quarantined a body (non-finite state) during the last control step.
    quarantined: bool,
}

/// Rapier state of a world, for `World::restore`.
#[derive(Clone)]
pub struct WorldSnapshot(PhysicsState);

impl PhysicsState {
    /// Empty rapier sets, pipeline stage state and solvers.
    fn new() -> PhysicsState {
        PhysicsState {
            islands: IslandManager::new(),
            broad_phase: BroadPhaseBvh::new(),
            narrow_phase: NarrowPhase::new(),
            bodies: RigidBodySet::new(),
            colliders: ColliderSet::new(),
            impulse_joints: ImpulseJointSet::new(),
            multibody_joints: MultibodyJointSet::new(),
            soft_bodies: SoftBodySet::new(),
            ccd_solver: CCDSolver::new(),
        }
    }

    /// A static box collider with the default material's friction.
    fn add_static_box(&mut self, center: V2, half: V2, friction: f32) {
        self.colliders.insert(
            ColliderBuilder::cuboid(half.0, half.1)
                .translation(Vector::new(center.0, center.1))
                .friction(friction),
        );
    }

    /// The arena walls, fixed obstacles, then door walls and maze cells: the static
    /// geometry, inserted in this order so collider handles match across builds.
    fn add_static_geometry(&mut self, scene: &Scene, layout: &Layout) {
        let static_friction = scene.material("default").friction;
        let (w, h) = scene.world.size;
        if scene.world.walls {
            let t = scene.world.wall_thickness;
            self.add_static_box((w / 2.0, -t / 2.0), (w / 2.0 + t, t / 2.0), static_friction);
            self.add_static_box(
                (w / 2.0, h + t / 2.0),
                (w / 2.0 + t, t / 2.0),
                static_friction,
            );
            self.add_static_box((-t / 2.0, h / 2.0), (t / 2.0, h / 2.0 + t), static_friction);
            self.add_static_box(
                (w + t / 2.0, h / 2.0),
                (t / 2.0, h / 2.0 + t),
                static_friction,
            );
        }
        for o in &scene.obstacles {
            if let Obstacle::Fixed { shape, at, angle } = o {
                let pose = Pose2::new(at.0, at.1, *angle);
                for c in colliders_for(shape) {
                    let world_pose = pose_compose(&pose, &c);
                    self.colliders
                        .insert(c.position(world_pose).friction(static_friction));
                }
            }
        }
        for (c, hf) in obstacle_boxes(scene, &layout.doors) {
            self.add_static_box(c, hf, static_friction);
        }
    }

    /// One dynamic rigid body per body copy at its layout start, in scene order.
    fn add_bodies(&mut self, scene: &Scene, layout: &Layout) -> Vec<BodyRef> {
        let mut bodies = Vec::new();
        let mut starts = layout.body_starts.iter();
        for (def, b) in scene.bodies.iter().enumerate() {
            let m = scene.material(&b.material);
            for _ in 0..b.count {
                let p = starts.next().expect("layout has one start per body copy");
                let rb = RigidBodyBuilder::dynamic()
                    .translation(Vector::new(p.x, p.y))
                    .rotation(p.angle)
                    .linear_damping(m.linear_damping)
                    .angular_damping(m.angular_damping)
                    .can_sleep(false);
                let handle = self.bodies.insert(rb);
                for c in colliders_for(&b.shape) {
                    let c = c
                        .density(m.density)
                        .friction(m.friction)
                        .restitution(m.restitution);
                    self.colliders
                        .insert_with_parent(c, handle, &mut self.bodies);
                }
                bodies.push(BodyRef { def, handle });
            }
        }
        bodies
    }

    /// The agent: a non-rotating dynamic body with CCD (it can be driven fast), and its
    /// first collider, which contact counts refer to.
    fn add_agent(&mut self, scene: &Scene, layout: &Layout) -> (RigidBodyHandle, ColliderHandle) {
        let m = scene.material(&scene.agent.material);
        let a = layout.agent_start;
        let agent = self.bodies.insert(
            RigidBodyBuilder::dynamic()
                .translation(Vector::new(a.0, a.1))
                .linear_damping(m.linear_damping)
                .lock_rotations()
                .ccd_enabled(true)
                .can_sleep(false),
        );
        let mut agent_collider = None;
        for c in colliders_for(&scene.agent.shape) {
            let c = c
                .density(m.density)
                .friction(m.friction)
                .restitution(m.restitution);
            agent_collider.get_or_insert(self.colliders.insert_with_parent(
                c,
                agent,
                &mut self.bodies,
            ));
        }
        (agent, agent_collider.expect("agent has a collider"))
    }
}

impl World {
    /// Builds the rapier world of an episode: static geometry, bodies, then the agent.
    pub fn build(scene: &Scene, layout: &Layout) -> World {
        let mut s = PhysicsState::new();
        s.add_static_geometry(scene, layout);
        let bodies = s.add_bodies(scene, layout);
        let (agent, agent_collider) = s.add_agent(scene, layout);
        let params = IntegrationParameters {
            dt: scene.physics.dt,
            num_solver_iterations: scene.physics.solver_iterations as usize,
            ..IntegrationParameters::default()
        };
        World {
            pipeline: PhysicsPipeline::new(),
            params,
            state: s,
            agent,
            agent_collider,
            bodies,
            actuator: scene.agent.actuator.clone(),
            substeps: scene.physics.substeps,
            quarantined: false,
        }
    }

    /// Runs one control step (the scene's substeps) with an already validated action.
    pub fn control_step(&mut self, action: [f32; 2]) {
        let dt = self.params.dt;
        let a = Vector::new(action[0], action[1]);
        self.quarantined = false;
        for _ in 0..self.substeps {
            let body = &mut self.state.bodies[self.agent];
            match self.actuator {
                Actuator::Velocity { gain } => body.set_linvel(a * gain, true),
                Actuator::Force { gain, .. } => {
                    body.reset_forces(true);
                    body.add_force(a * gain, true);
                }
                Actuator::PdTarget { kp, kv } => {
                    let (pos, vel) = (body.translation(), body.linvel());
                    let acc = (a - pos) * kp - vel * kv;
                    body.set_linvel(vel + acc * dt, true);
                }
            }
            self.physics_step();
            if let Actuator::Force { max_speed, .. } = self.actuator {
                let body = &mut self.state.bodies[self.agent];
                let v = body.linvel();
                if v.length() > max_speed {
                    body.set_linvel(v * (max_speed / v.length()), true);
                }
            }
        }
    }

    fn physics_step(&mut self) {
        let s = &mut self.state;
        self.pipeline.step(
            Vector::ZERO,
            &self.params,
            &mut s.islands,
            &mut s.broad_phase,
            &mut s.narrow_phase,
            &mut s.bodies,
            &mut s.colliders,
            &mut s.impulse_joints,
            &mut s.multibody_joints,
            &mut s.soft_bodies,
            &mut s.ccd_solver,
            &(),
            &(),
        );
        // Rapier disables bodies whose state went non-finite and reports them here.
        self.quarantined |= !self.pipeline.quarantine().is_empty();
    }

    pub fn agent_position(&self) -> V2 {
        let t = self.state.bodies[self.agent].translation();
        (t.x, t.y)
    }

    pub fn agent_velocity(&self) -> V2 {
        let v = self.state.bodies[self.agent].linvel();
        (v.x, v.y)
    }

    pub fn agent_mass(&self) -> f32 {
        self.state.bodies[self.agent].mass()
    }

    /// Dynamic body copies, in scene order.
    pub fn bodies(&self) -> &[BodyRef] {
        &self.bodies
    }

    pub fn body_pose(&self, b: &BodyRef) -> Pose2 {
        let rb = &self.state.bodies[b.handle];
        let t = rb.translation();
        Pose2::new(t.x, t.y, rb.rotation().angle())
    }

    /// (vx, vy, angular velocity).
    pub fn body_velocity(&self, b: &BodyRef) -> [f32; 3] {
        let rb = &self.state.bodies[b.handle];
        let v = rb.linvel();
        [v.x, v.y, rb.angvel()]
    }

    /// Active contact pairs involving the agent, and in the whole world.
    pub fn contacts(&self) -> (u32, u32) {
        let np = &self.state.narrow_phase;
        let agent = np
            .contact_pairs_with(self.agent_collider)
            .filter(|p| p.has_any_active_contact())
            .count();
        let all = np
            .contact_pairs()
            .filter(|p| p.has_any_active_contact())
            .count();
        (agent as u32, all as u32)
    }

    /// Whether rapier quarantined a body in the last control step, or any dynamic body has a
    /// non-finite pose or has left `bounds` (min, max).
    pub fn blew_up(&self, bounds: (V2, V2)) -> bool {
        let ((x0, y0), (x1, y1)) = bounds;
        self.quarantined
            || self
                .state
                .bodies
                .iter()
                .filter(|(_, b)| b.is_dynamic())
                .any(|(_, b)| {
                    let t = b.translation();
                    let v = b.linvel();
                    !(t.x.is_finite()
                        && t.y.is_finite()
                        && v.x.is_finite()
                        && v.y.is_finite()
                        && b.rotation().angle().is_finite())
                        || t.x < x0
                        || t.x > x1
                        || t.y < y0
                        || t.y > y1
                })
    }

    pub fn snapshot(&self) -> WorldSnapshot {
        WorldSnapshot(self.state.clone())
    }

    pub fn restore(&mut self, snap: &WorldSnapshot) {
        self.state = snap.0.clone();
    }

    /// Overwrites the agent's linear velocity (a viewer dragging it).
    pub fn set_agent_velocity(&mut self, v: V2) {
        self.state.bodies[self.agent].set_linvel(Vector::new(v.0, v.1), true);
    }

    /// Overwrites a body's linear velocity (used by tests and perturbations).
    pub fn set_body_velocity(&mut self, b: &BodyRef, v: V2) {
        self.state.bodies[b.handle].set_linvel(Vector::new(v.0, v.1), true);
    }
}

/// One collider builder per convex part, positioned in the body frame.
fn colliders_for(shape: &Shape) -> Vec<ColliderBuilder> {
    match shape {
        Shape::Circle { radius } => vec![ColliderBuilder::ball(*radius)],
        Shape::Box { half } => vec![ColliderBuilder::cuboid(half.0, half.1)],
        Shape::Polygon { points } => {
            let pts: Vec<Vector> = points.iter().map(|p| Vector::new(p.0, p.1)).collect();
            vec![ColliderBuilder::convex_hull(&pts).expect("validated polygon has a hull")]
        }
        Shape::Compound { parts } => parts
            .iter()
            .flat_map(|p| {
                colliders_for(&p.shape).into_iter().map(move |c| {
                    c.position(Pose::new(Vector::new(p.offset.0, p.offset.1), p.angle))
                })
            })
            .collect(),
    }
}

/// World pose of a static collider part: the obstacle pose composed with the part's offset.
fn pose_compose(pose: &Pose2, c: &ColliderBuilder) -> Pose {
    let local = c.position;
    let l = Pose2::new(
        local.translation.x,
        local.translation.y,
        local.rotation.angle(),
    );
    let w = pose.compose(&l);
    Pose::new(Vector::new(w.x, w.y), w.angle)
}
