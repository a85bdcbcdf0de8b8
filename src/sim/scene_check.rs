//! Scene validation: every field of a parsed scene checked against what the sandbox can
//! simulate, each refusal naming the file, the field and what was expected.

use std::path::Path;

use super::scene::*;
use crate::error::InputError;

impl Scene {
    /// Checks every part of the scene in file order; the first failing check is reported.
    pub(super) fn validate(&self, path: &Path) -> Result<(), InputError> {
        self.validate_world(path)?;
        self.validate_physics(path)?;
        self.validate_materials(path)?;
        validate_shape(&self.agent.shape, "agent.shape", path)?;
        self.check_material("agent.material", &self.agent.material, path)?;
        self.validate_action(path)?;
        self.validate_obstacles(path)?;
        self.validate_bodies(path)?;
        self.validate_start_goal(path)?;
        self.validate_goal(path)?;
        self.validate_observation(path)
    }

    /// The arena's size and wall thickness.
    fn validate_world(&self, path: &Path) -> Result<(), InputError> {
        let (w, h) = self.world.size;
        if !(w.is_finite() && h.is_finite() && w > 0.0 && h > 0.0) {
            return err(
                path,
                "world.size",
                format!("expected two positive finite numbers, got ({w}, {h})"),
            );
        }
        if !(self.world.wall_thickness.is_finite() && self.world.wall_thickness > 0.0) {
            return err(
                path,
                "world.wall_thickness",
                format!(
                    "expected a positive number, got {}",
                    self.world.wall_thickness
                ),
            );
        }
        Ok(())
    }

    /// The time step, the step counts and the episode length.
    fn validate_physics(&self, path: &Path) -> Result<(), InputError> {
        let p = &self.physics;
        if !(p.dt.is_finite() && p.dt > 0.0 && p.dt <= 0.1) {
            return err(
                path,
                "physics.dt",
                format!("expected a time step in (0, 0.1] s, got {}", p.dt),
            );
        }
        if p.substeps == 0 || p.frameskip == 0 || p.solver_iterations == 0 {
            return err(
                path,
                "physics",
                "substeps, frameskip and solver_iterations must be at least 1".into(),
            );
        }
        use crate::limits::{MAX_EPISODE_STEPS, MAX_SUBSTEPS};
        // Each env step runs substeps x frameskip physics steps.
        let per_step = p.substeps as u64 * p.frameskip as u64;
        if per_step > MAX_SUBSTEPS as u64 {
            return err(
                path,
                if p.substeps > p.frameskip {
                    "physics.substeps"
                } else {
                    "physics.frameskip"
                },
                format!(
                    "substeps x frameskip = {} x {} = {per_step} physics steps per env step, expected at most {MAX_SUBSTEPS}",
                    p.substeps, p.frameskip
                ),
            );
        }
        if p.solver_iterations > 100 {
            return err(
                path,
                "physics.solver_iterations",
                format!("expected at most 100, got {}", p.solver_iterations),
            );
        }
        if self.episode_steps == 0 || self.episode_steps > MAX_EPISODE_STEPS {
            return err(
                path,
                "episode_steps",
                format!(
                    "expected 1 to {MAX_EPISODE_STEPS} control steps, got {}",
                    self.episode_steps
                ),
            );
        }
        Ok(())
    }

    /// Every named material's density and coefficients.
    fn validate_materials(&self, path: &Path) -> Result<(), InputError> {
        for (name, m) in &self.materials {
            let f = format!("materials.{name}");
            if !(m.density.is_finite() && m.density > 0.0) {
                return err(
                    path,
                    &f,
                    format!("density must be positive, got {}", m.density),
                );
            }
            for (k, v) in [
                ("friction", m.friction),
                ("restitution", m.restitution),
                ("linear_damping", m.linear_damping),
                ("angular_damping", m.angular_damping),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    return err(
                        path,
                        &format!("{f}.{k}"),
                        format!("expected a finite number >= 0, got {v}"),
                    );
                }
            }
        }
        Ok(())
    }

    /// A material name must be `default` or one the scene declares.
    fn check_material(&self, field: &str, m: &str, path: &Path) -> Result<(), InputError> {
        if m != "default" && !self.materials.contains_key(m) {
            let known: Vec<_> = self.materials.keys().cloned().collect();
            return Err(InputError::new(
                path,
                field,
                format!("unknown material {m:?}; known: {known:?}"),
            ));
        }
        Ok(())
    }

    /// Every obstacle, and at most one maze grid.
    fn validate_obstacles(&self, path: &Path) -> Result<(), InputError> {
        let mut grids = 0;
        for (i, o) in self.obstacles.iter().enumerate() {
            let f = format!("obstacles[{i}]");
            match o {
                Obstacle::Fixed { shape, at, angle } => {
                    validate_shape(shape, &format!("{f}.shape"), path)?;
                    finite2(*at, &format!("{f}.at"), path)?;
                    finite(*angle, &format!("{f}.angle"), path)?;
                }
                Obstacle::DoorWall { .. } => self.validate_door_wall(o, &f, path)?,
                Obstacle::Grid { .. } => {
                    grids += 1;
                    self.validate_grid(o, &f, path)?;
                }
            }
        }
        if grids > 1 {
            return err(
                path,
                "obstacles",
                "at most one Grid obstacle per scene".into(),
            );
        }
        Ok(())
    }

    /// A door wall (field `f`) inside the world, its door inside the wall (other obstacles
    /// have nothing to check here).
    fn validate_door_wall(&self, o: &Obstacle, f: &str, path: &Path) -> Result<(), InputError> {
        let Obstacle::DoorWall {
            axis,
            at,
            thickness,
            door_width,
            door_center,
        } = o
        else {
            return Ok(());
        };
        let (w, h) = self.world.size;
        let across = if *axis == Axis::Vertical { w } else { h };
        let along = if *axis == Axis::Vertical { h } else { w };
        if !(at.is_finite() && *at > 0.0 && *at < across) {
            return err(
                path,
                &format!("{f}.at"),
                format!("expected a coordinate inside the world (0, {across}), got {at}"),
            );
        }
        if !(thickness.is_finite()
            && *thickness > 0.0
            && door_width.is_finite()
            && *door_width > 0.0)
        {
            return err(path, f, "thickness and door_width must be positive".into());
        }
        validate_range(door_center, &format!("{f}.door_center"), path)?;
        if door_center.0 - door_width / 2.0 < 0.0 || door_center.1 + door_width / 2.0 > along {
            return err(
                path,
                &format!("{f}.door_center"),
                format!("the door ({door_width} wide) must fit inside the wall's length {along}"),
            );
        }
        Ok(())
    }

    /// A maze grid (field `f`): positive cells, equal rows, inside the world (other obstacles
    /// have nothing to check here).
    fn validate_grid(&self, o: &Obstacle, f: &str, path: &Path) -> Result<(), InputError> {
        let Obstacle::Grid { cell, origin, rows } = o else {
            return Ok(());
        };
        let (w, h) = self.world.size;
        if !(cell.is_finite() && *cell > 0.0) {
            return err(
                path,
                &format!("{f}.cell"),
                format!("expected a positive cell size, got {cell}"),
            );
        }
        finite2(*origin, &format!("{f}.origin"), path)?;
        if rows.is_empty()
            || rows
                .iter()
                .any(|r| r.chars().count() != rows[0].chars().count())
        {
            return err(
                path,
                &format!("{f}.rows"),
                "expected a non-empty list of rows of equal length".into(),
            );
        }
        let gw = origin.0 + cell * rows[0].chars().count() as f32;
        let gh = origin.1 + cell * rows.len() as f32;
        if gw > w + 1e-4 || gh > h + 1e-4 {
            return err(
                path,
                &format!("{f}.rows"),
                format!("the maze ({gw} x {gh} m) does not fit in the world ({w} x {h} m)"),
            );
        }
        Ok(())
    }

    /// Every body: a unique name, then its shape, material, count and samplers.
    fn validate_bodies(&self, path: &Path) -> Result<(), InputError> {
        let mut names = std::collections::BTreeSet::new();
        for (i, b) in self.bodies.iter().enumerate() {
            let f = format!("bodies[{i}]");
            if !names.insert(b.name.clone()) {
                return err(
                    path,
                    &format!("{f}.name"),
                    format!("duplicate body name {:?}", b.name),
                );
            }
            self.validate_body(b, &f, path)?;
        }
        let total: u64 = self.bodies.iter().map(|b| b.count as u64).sum();
        if total > crate::limits::MAX_BODIES {
            return err(
                path,
                "bodies",
                format!(
                    "expected at most {} bodies, copies (count) included; got {total}",
                    crate::limits::MAX_BODIES
                ),
            );
        }
        Ok(())
    }

    /// One body (field `f`) past its name.
    fn validate_body(&self, b: &Body, f: &str, path: &Path) -> Result<(), InputError> {
        validate_shape(&b.shape, &format!("{f}.shape"), path)?;
        self.check_material(&format!("{f}.material"), &b.material, path)?;
        if b.count == 0 {
            return err(path, &format!("{f}.count"), "expected at least 1".into());
        }
        self.validate_sample(&b.start.position, &format!("{f}.start.position"), path)?;
        validate_range(&b.start.angle, &format!("{f}.start.angle"), path)?;
        if let Some(g) = &b.goal {
            self.validate_sample(&g.position, &format!("{f}.goal.position"), path)?;
            validate_range(&g.angle, &format!("{f}.goal.angle"), path)?;
        }
        Ok(())
    }

    /// Every success criterion, then that there is at least one.
    fn validate_goal(&self, path: &Path) -> Result<(), InputError> {
        for (i, c) in self.goal.success.iter().enumerate() {
            self.validate_criterion(c, &format!("goal.success[{i}]"), path)?;
        }
        if self.goal.success.is_empty() {
            return err(
                path,
                "goal.success",
                "expected at least one success criterion".into(),
            );
        }
        Ok(())
    }

    /// One success criterion (field `f`): its body, tolerances and the goal pose it needs.
    fn validate_criterion(&self, c: &Criterion, f: &str, path: &Path) -> Result<(), InputError> {
        match c {
            Criterion::AgentReach { radius } => positive(*radius, &format!("{f}.radius"), path)?,
            Criterion::BodyPose {
                body,
                position_tol,
                angle_tol,
                agent_tol,
                joint_position,
            } => {
                self.known_body(body, f, path)?;
                positive(*position_tol, &format!("{f}.position_tol"), path)?;
                positive(*angle_tol, &format!("{f}.angle_tol"), path)?;
                if let Some(a) = agent_tol {
                    positive(*a, &format!("{f}.agent_tol"), path)?;
                    if *joint_position {
                        return Err(InputError::new(
                            path,
                            format!("{f}.agent_tol"),
                            "expected no agent_tol with joint_position: true (position_tol \
                             then bounds the body's and the agent's errors together)",
                        ));
                    }
                }
                self.require_body_goal(body, f, path)?;
            }
            Criterion::Coverage { body, threshold } => {
                self.known_body(body, f, path)?;
                if !(*threshold > 0.0 && *threshold <= 1.0) {
                    return err(
                        path,
                        &format!("{f}.threshold"),
                        format!("expected a fraction in (0, 1], got {threshold}"),
                    );
                }
                self.require_body_goal(body, f, path)?;
            }
            Criterion::ParticlesIn {
                body,
                min,
                max,
                fraction,
            } => {
                self.known_body(body, f, path)?;
                finite2(*min, &format!("{f}.min"), path)?;
                finite2(*max, &format!("{f}.max"), path)?;
                if !(*fraction > 0.0 && *fraction <= 1.0) {
                    return err(
                        path,
                        &format!("{f}.fraction"),
                        format!("expected a fraction in (0, 1], got {fraction}"),
                    );
                }
            }
        }
        Ok(())
    }

    /// A criterion (field `f`) must name a declared body.
    fn known_body(&self, b: &str, f: &str, path: &Path) -> Result<(), InputError> {
        if self.bodies.iter().any(|x| x.name == b) {
            Ok(())
        } else {
            Err(InputError::new(path, f, format!("unknown body {b:?}")))
        }
    }

    /// State fields naming declared bodies (with goals where needed), and the image size.
    fn validate_observation(&self, path: &Path) -> Result<(), InputError> {
        for (i, s) in self.observation.state.iter().enumerate() {
            if let StateField::BodyPose(b)
            | StateField::BodyVelocity(b)
            | StateField::BodyGoalPose(b)
            | StateField::AgentInBodyFrame(b) = s
            {
                if !self.bodies.iter().any(|x| &x.name == b) {
                    return err(
                        path,
                        &format!("observation.state[{i}]"),
                        format!("unknown body {b:?}"),
                    );
                }
                if let StateField::BodyGoalPose(_) = s {
                    self.require_body_goal(b, &format!("observation.state[{i}]"), path)?;
                }
            }
        }
        if let Some(img) = &self.observation.image {
            if img.width == 0 || img.height == 0 || img.width > 1024 || img.height > 1024 {
                return err(
                    path,
                    "observation.image",
                    format!(
                        "expected a size in 1..=1024 pixels, got {}x{}",
                        img.width, img.height
                    ),
                );
            }
        }
        Ok(())
    }

    fn require_body_goal(&self, body: &str, field: &str, path: &Path) -> Result<(), InputError> {
        if self
            .bodies
            .iter()
            .any(|b| b.name == body && b.goal.is_some())
        {
            Ok(())
        } else {
            Err(InputError::new(
                path,
                field,
                format!("body {body:?} needs a `goal` pose for this criterion"),
            ))
        }
    }

    fn validate_action(&self, path: &Path) -> Result<(), InputError> {
        let a = &self.agent.action;
        finite2(a.low, "agent.action.low", path)?;
        finite2(a.high, "agent.action.high", path)?;
        if a.low.0 > a.high.0 || a.low.1 > a.high.1 {
            return Err(InputError::new(
                path,
                "agent.action",
                "expected low <= high in both coordinates",
            ));
        }
        if let Some(n) = a.max_norm {
            positive(n, "agent.action.max_norm", path)?;
        }
        match &self.agent.actuator {
            Actuator::Velocity { gain } => positive(*gain, "agent.actuator.gain", path),
            Actuator::Force { gain, max_speed } => {
                positive(*gain, "agent.actuator.gain", path)?;
                positive(*max_speed, "agent.actuator.max_speed", path)
            }
            Actuator::PdTarget { kp, kv } => {
                positive(*kp, "agent.actuator.kp", path)?;
                finite(*kv, "agent.actuator.kv", path)
            }
        }
    }
}

/// Refuses with `msg` at `field`.
pub(super) fn err(path: &Path, field: &str, msg: String) -> Result<(), InputError> {
    Err(InputError::new(path, field, msg))
}

pub(super) fn finite(v: f32, field: &str, path: &Path) -> Result<(), InputError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(InputError::new(
            path,
            field,
            format!("expected a finite number, got {v}"),
        ))
    }
}

fn positive(v: f32, field: &str, path: &Path) -> Result<(), InputError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(InputError::new(
            path,
            field,
            format!("expected a positive finite number, got {v}"),
        ))
    }
}

pub(super) fn finite2(v: V2, field: &str, path: &Path) -> Result<(), InputError> {
    finite(v.0, field, path)?;
    finite(v.1, field, path)
}

fn validate_range(r: &Range, field: &str, path: &Path) -> Result<(), InputError> {
    finite2((r.0, r.1), field, path)?;
    if r.0 > r.1 {
        return Err(InputError::new(
            path,
            field,
            format!("expected lo <= hi, got ({}, {})", r.0, r.1),
        ));
    }
    Ok(())
}

fn validate_shape(s: &Shape, field: &str, path: &Path) -> Result<(), InputError> {
    match s {
        Shape::Circle { radius } => positive(*radius, &format!("{field}.radius"), path),
        Shape::Box { half } => {
            positive(half.0, &format!("{field}.half"), path)?;
            positive(half.1, &format!("{field}.half"), path)
        }
        Shape::Polygon { points } => {
            if points.len() < 3 {
                return Err(InputError::new(
                    path,
                    field,
                    "a polygon needs at least 3 points",
                ));
            }
            for p in points {
                finite2(*p, &format!("{field}.points"), path)?;
            }
            let hull = super::geometry::convex_hull(points);
            if super::geometry::polygon_area(&hull) <= 1e-9 {
                return Err(InputError::new(path, field, "the polygon has zero area"));
            }
            // The collider is the points' hull, so a dent would be silently filled in.
            if let Some(i) = points.iter().position(|&p| strictly_inside(&hull, p)) {
                return Err(InputError::new(
                    path,
                    format!("{field}.points[{i}]"),
                    format!(
                        "the polygon is not convex: point {:?} lies inside the hull of the others; describe the shape as a Compound of convex parts",
                        points[i]
                    ),
                ));
            }
            Ok(())
        }
        Shape::Compound { parts } => {
            if parts.is_empty() {
                return Err(InputError::new(
                    path,
                    field,
                    "a compound shape needs at least one part",
                ));
            }
            for (i, p) in parts.iter().enumerate() {
                if let Shape::Compound { .. } = p.shape {
                    return Err(InputError::new(
                        path,
                        format!("{field}.parts[{i}]"),
                        "compound parts cannot be compounds",
                    ));
                }
                validate_shape(&p.shape, &format!("{field}.parts[{i}].shape"), path)?;
                finite2(p.offset, &format!("{field}.parts[{i}].offset"), path)?;
                finite(p.angle, &format!("{field}.parts[{i}].angle"), path)?;
            }
            Ok(())
        }
    }
}

/// Whether `p` lies inside the convex counter-clockwise `hull`, off its edges by more than
/// a tolerance relative to the edge (points on an edge keep a polygon convex).
fn strictly_inside(hull: &[V2], p: V2) -> bool {
    let n = hull.len();
    (0..n).all(|i| {
        let (a, b) = (hull[i], hull[(i + 1) % n]);
        let len = (b.0 - a.0).hypot(b.1 - a.1);
        (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0) > 1e-5 * len * len.max(1.0)
    })
}
