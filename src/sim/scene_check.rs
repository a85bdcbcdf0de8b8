//! Scene validation: every field of a parsed scene checked against what the sandbox can
//! simulate, each refusal naming the file, the field and what was expected.

use std::path::Path;

use super::scene::*;
use crate::error::InputError;

impl Scene {
    pub(super) fn validate(&self, path: &Path) -> Result<(), InputError> {
        let err = |field: &str, msg: String| Err(InputError::new(path, field, msg));
        let (w, h) = self.world.size;
        if !(w.is_finite() && h.is_finite() && w > 0.0 && h > 0.0) {
            return err(
                "world.size",
                format!("expected two positive finite numbers, got ({w}, {h})"),
            );
        }
        if !(self.world.wall_thickness.is_finite() && self.world.wall_thickness > 0.0) {
            return err(
                "world.wall_thickness",
                format!(
                    "expected a positive number, got {}",
                    self.world.wall_thickness
                ),
            );
        }
        let p = &self.physics;
        if !(p.dt.is_finite() && p.dt > 0.0 && p.dt <= 0.1) {
            return err(
                "physics.dt",
                format!("expected a time step in (0, 0.1] s, got {}", p.dt),
            );
        }
        if p.substeps == 0 || p.frameskip == 0 || p.solver_iterations == 0 {
            return err(
                "physics",
                "substeps, frameskip and solver_iterations must be at least 1".into(),
            );
        }
        if self.episode_steps == 0 {
            return err("episode_steps", "expected at least 1 control step".into());
        }
        for (name, m) in &self.materials {
            let f = format!("materials.{name}");
            if !(m.density.is_finite() && m.density > 0.0) {
                return err(&f, format!("density must be positive, got {}", m.density));
            }
            for (k, v) in [
                ("friction", m.friction),
                ("restitution", m.restitution),
                ("linear_damping", m.linear_damping),
                ("angular_damping", m.angular_damping),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    return err(
                        &format!("{f}.{k}"),
                        format!("expected a finite number >= 0, got {v}"),
                    );
                }
            }
        }
        let check_material = |field: &str, m: &str| {
            if m != "default" && !self.materials.contains_key(m) {
                let known: Vec<_> = self.materials.keys().cloned().collect();
                return Err(InputError::new(
                    path,
                    field,
                    format!("unknown material {m:?}; known: {known:?}"),
                ));
            }
            Ok(())
        };
        validate_shape(&self.agent.shape, "agent.shape", path)?;
        check_material("agent.material", &self.agent.material)?;
        self.validate_action(path)?;

        let mut grids = 0;
        for (i, o) in self.obstacles.iter().enumerate() {
            let f = format!("obstacles[{i}]");
            match o {
                Obstacle::Fixed { shape, at, angle } => {
                    validate_shape(shape, &format!("{f}.shape"), path)?;
                    finite2(*at, &format!("{f}.at"), path)?;
                    finite(*angle, &format!("{f}.angle"), path)?;
                }
                Obstacle::DoorWall {
                    axis,
                    at,
                    thickness,
                    door_width,
                    door_center,
                } => {
                    let across = if *axis == Axis::Vertical { w } else { h };
                    let along = if *axis == Axis::Vertical { h } else { w };
                    if !(at.is_finite() && *at > 0.0 && *at < across) {
                        return err(
                            &format!("{f}.at"),
                            format!(
                                "expected a coordinate inside the world (0, {across}), got {at}"
                            ),
                        );
                    }
                    if !(thickness.is_finite()
                        && *thickness > 0.0
                        && door_width.is_finite()
                        && *door_width > 0.0)
                    {
                        return err(&f, "thickness and door_width must be positive".into());
                    }
                    validate_range(door_center, &format!("{f}.door_center"), path)?;
                    if door_center.0 - door_width / 2.0 < 0.0
                        || door_center.1 + door_width / 2.0 > along
                    {
                        return err(&format!("{f}.door_center"), format!("the door ({door_width} wide) must fit inside the wall's length {along}"));
                    }
                }
                Obstacle::Grid { cell, origin, rows } => {
                    grids += 1;
                    if !(cell.is_finite() && *cell > 0.0) {
                        return err(
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
                            &format!("{f}.rows"),
                            "expected a non-empty list of rows of equal length".into(),
                        );
                    }
                    let gw = origin.0 + cell * rows[0].chars().count() as f32;
                    let gh = origin.1 + cell * rows.len() as f32;
                    if gw > w + 1e-4 || gh > h + 1e-4 {
                        return err(
                            &format!("{f}.rows"),
                            format!(
                                "the maze ({gw} x {gh} m) does not fit in the world ({w} x {h} m)"
                            ),
                        );
                    }
                }
            }
        }
        if grids > 1 {
            return err("obstacles", "at most one Grid obstacle per scene".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, b) in self.bodies.iter().enumerate() {
            let f = format!("bodies[{i}]");
            if !names.insert(b.name.clone()) {
                return err(
                    &format!("{f}.name"),
                    format!("duplicate body name {:?}", b.name),
                );
            }
            validate_shape(&b.shape, &format!("{f}.shape"), path)?;
            check_material(&format!("{f}.material"), &b.material)?;
            if b.count == 0 {
                return err(&format!("{f}.count"), "expected at least 1".into());
            }
            self.validate_sample(&b.start.position, &format!("{f}.start.position"), path)?;
            validate_range(&b.start.angle, &format!("{f}.start.angle"), path)?;
            if let Some(g) = &b.goal {
                self.validate_sample(&g.position, &format!("{f}.goal.position"), path)?;
                validate_range(&g.angle, &format!("{f}.goal.angle"), path)?;
            }
        }
        match &self.start_goal {
            StartGoal::Independent {
                start,
                goal,
                min_distance,
            } => {
                self.validate_sample(start, "start_goal.start", path)?;
                self.validate_sample(goal, "start_goal.goal", path)?;
                finite(*min_distance, "start_goal.min_distance", path)?;
            }
            StartGoal::OneOf(pairs) => {
                if pairs.is_empty() {
                    return err(
                        "start_goal",
                        "OneOf needs at least one (start, goal) pair".into(),
                    );
                }
                for (i, (s, g)) in pairs.iter().enumerate() {
                    self.validate_sample(s, &format!("start_goal[{i}].0"), path)?;
                    self.validate_sample(g, &format!("start_goal[{i}].1"), path)?;
                }
            }
            StartGoal::CellDistanceBins { bins, noise } => {
                let Some(grid) = self.grid() else {
                    return err(
                        "start_goal",
                        "CellDistanceBins needs a Grid obstacle".into(),
                    );
                };
                if bins.is_empty() || bins.iter().any(|(lo, hi)| lo > hi) {
                    return err(
                        "start_goal.bins",
                        "expected non-empty (lo, hi) bins with lo <= hi".into(),
                    );
                }
                finite(*noise, "start_goal.noise", path)?;
                for (lo, hi) in bins {
                    if !grid.has_pair_in(*lo, *hi) {
                        return err(
                            "start_goal.bins",
                            format!(
                                "no pair of free cells is {lo}..={hi} cells apart in this maze"
                            ),
                        );
                    }
                }
            }
        }
        for (i, c) in self.goal.success.iter().enumerate() {
            let f = format!("goal.success[{i}]");
            let body_ok = |b: &str| -> Result<(), InputError> {
                if self.bodies.iter().any(|x| x.name == b) {
                    Ok(())
                } else {
                    Err(InputError::new(path, &f, format!("unknown body {b:?}")))
                }
            };
            match c {
                Criterion::AgentReach { radius } => {
                    positive(*radius, &format!("{f}.radius"), path)?
                }
                Criterion::BodyPose {
                    body,
                    position_tol,
                    angle_tol,
                    agent_tol,
                    joint_position,
                } => {
                    body_ok(body)?;
                    positive(*position_tol, &format!("{f}.position_tol"), path)?;
                    positive(*angle_tol, &format!("{f}.angle_tol"), path)?;
                    if let Some(a) = agent_tol {
                        positive(*a, &format!("{f}.agent_tol"), path)?;
                        if *joint_position {
                            return Err(InputError::new(
                                path,
                                &format!("{f}.agent_tol"),
                                "expected no agent_tol with joint_position: true (position_tol \
                                 then bounds the body's and the agent's errors together)",
                            ));
                        }
                    }
                    self.require_body_goal(body, &f, path)?;
                }
                Criterion::Coverage { body, threshold } => {
                    body_ok(body)?;
                    if !(*threshold > 0.0 && *threshold <= 1.0) {
                        return err(
                            &format!("{f}.threshold"),
                            format!("expected a fraction in (0, 1], got {threshold}"),
                        );
                    }
                    self.require_body_goal(body, &f, path)?;
                }
                Criterion::ParticlesIn {
                    body,
                    min,
                    max,
                    fraction,
                } => {
                    body_ok(body)?;
                    finite2(*min, &format!("{f}.min"), path)?;
                    finite2(*max, &format!("{f}.max"), path)?;
                    if !(*fraction > 0.0 && *fraction <= 1.0) {
                        return err(
                            &format!("{f}.fraction"),
                            format!("expected a fraction in (0, 1], got {fraction}"),
                        );
                    }
                }
            }
        }
        if self.goal.success.is_empty() {
            return err(
                "goal.success",
                "expected at least one success criterion".into(),
            );
        }
        for (i, s) in self.observation.state.iter().enumerate() {
            if let StateField::BodyPose(b)
            | StateField::BodyVelocity(b)
            | StateField::BodyGoalPose(b)
            | StateField::AgentInBodyFrame(b) = s
            {
                if !self.bodies.iter().any(|x| &x.name == b) {
                    return err(
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

    /// Checks a sampler's numbers, that it stays in the world, and that it can produce a
    /// point outside the obstacles (a start inside a wall is a scene error, not a hang).
    fn validate_sample(&self, s: &Sample, field: &str, path: &Path) -> Result<(), InputError> {
        let (w, h) = self.world.size;
        let inside = |p: V2| p.0 >= 0.0 && p.1 >= 0.0 && p.0 <= w && p.1 <= h;
        match s {
            Sample::Fixed(p) => {
                finite2(*p, field, path)?;
                if !inside(*p) {
                    return Err(InputError::new(
                        path,
                        field,
                        format!("({}, {}) is outside the world (0..{w}, 0..{h})", p.0, p.1),
                    ));
                }
                if super::geometry::point_in_static(self, *p) {
                    return Err(InputError::new(
                        path,
                        field,
                        format!("({}, {}) is inside an obstacle", p.0, p.1),
                    ));
                }
            }
            Sample::Uniform { min, max } => {
                finite2(*min, field, path)?;
                finite2(*max, field, path)?;
                if min.0 > max.0 || min.1 > max.1 {
                    return Err(InputError::new(
                        path,
                        field,
                        "expected min <= max in both coordinates",
                    ));
                }
                if !inside(*min) || !inside(*max) {
                    return Err(InputError::new(
                        path,
                        field,
                        format!("the box {min:?}..{max:?} leaves the world (0..{w}, 0..{h})"),
                    ));
                }
                let free = (0..=8)
                    .flat_map(|i| (0..=8).map(move |j| (i, j)))
                    .any(|(i, j)| {
                        let p = (
                            min.0 + (max.0 - min.0) * i as f32 / 8.0,
                            min.1 + (max.1 - min.1) * j as f32 / 8.0,
                        );
                        !super::geometry::point_in_static(self, p)
                    });
                if !free {
                    return Err(InputError::new(
                        path,
                        field,
                        format!("the box {min:?}..{max:?} lies inside obstacles"),
                    ));
                }
            }
            Sample::Cells { cells, noise } => {
                finite(*noise, field, path)?;
                let Some(grid) = self.grid() else {
                    return Err(InputError::new(
                        path,
                        field,
                        "Cells needs a Grid obstacle in the scene",
                    ));
                };
                if *noise < 0.0 || *noise >= grid.cell / 2.0 {
                    return Err(InputError::new(
                        path,
                        field,
                        format!("noise must be in [0, {}) (half a cell)", grid.cell / 2.0),
                    ));
                }
                for c in cells {
                    if !grid.is_free(c.0 as i64, c.1 as i64) {
                        return Err(InputError::new(
                            path,
                            field,
                            format!("cell {c:?} is a wall or outside the maze"),
                        ));
                    }
                }
                if grid.free_cells().is_empty() {
                    return Err(InputError::new(path, field, "the maze has no free cell"));
                }
            }
        }
        Ok(())
    }
}

fn finite(v: f32, field: &str, path: &Path) -> Result<(), InputError> {
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

fn finite2(v: V2, field: &str, path: &Path) -> Result<(), InputError> {
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
            if super::geometry::polygon_area(&super::geometry::convex_hull(points)) <= 1e-9 {
                return Err(InputError::new(path, field, "the polygon has zero area"));
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
