//! Scene validation, continued: the seeded samplers where the agent and the bodies start
//! and aim, each refusal naming the file, the field and what was expected.

use std::path::Path;

use super::scene::*;
use super::scene_check::{err, finite, finite2};
use crate::error::InputError;

impl Scene {
    /// The agent's start/goal samplers.
    pub(super) fn validate_start_goal(&self, path: &Path) -> Result<(), InputError> {
        match &self.start_goal {
            StartGoal::Independent {
                start,
                goal,
                min_distance,
            } => {
                self.validate_sample(start, "start_goal.start", path)?;
                self.validate_sample(goal, "start_goal.goal", path)?;
                finite(*min_distance, "start_goal.min_distance", path)?;
                self.check_min_distance(start, goal, *min_distance, path)?;
            }
            StartGoal::OneOf(pairs) => {
                if pairs.is_empty() {
                    return err(
                        path,
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
                self.validate_bins(bins, *noise, path)?;
            }
        }
        Ok(())
    }

    /// Refuses a `min_distance` that no start and goal the samplers can draw are apart
    /// (the farthest corners of their bounding boxes), instead of silently dropping it.
    fn check_min_distance(
        &self,
        start: &Sample,
        goal: &Sample,
        min_distance: f32,
        path: &Path,
    ) -> Result<(), InputError> {
        let (Some(a), Some(b)) = (self.sample_bounds(start), self.sample_bounds(goal)) else {
            return Ok(());
        };
        let dx = (b.1 .0 - a.0 .0).max(a.1 .0 - b.0 .0);
        let dy = (b.1 .1 - a.0 .1).max(a.1 .1 - b.0 .1);
        let farthest = dx.hypot(dy);
        if min_distance > farthest {
            return err(
                path,
                "start_goal.min_distance",
                format!(
                    "no start and goal these samplers draw are {min_distance} m apart (the farthest pair is {farthest:.3} m): lower it or widen the samplers"
                ),
            );
        }
        Ok(())
    }

    /// The box (min, max corners) a sampler draws in; None for cells without a grid.
    fn sample_bounds(&self, s: &Sample) -> Option<(V2, V2)> {
        match s {
            Sample::Fixed(p) => Some((*p, *p)),
            Sample::Uniform { min, max } => Some((*min, *max)),
            Sample::Cells { cells, noise } => {
                let grid = self.grid()?;
                let cells = grid.cells_or_free(cells);
                let centres = cells.iter().map(|&(r, c)| grid.cell_center(r, c));
                let (mut lo, mut hi) = ((f32::MAX, f32::MAX), (f32::MIN, f32::MIN));
                for p in centres {
                    lo = (lo.0.min(p.0 - noise), lo.1.min(p.1 - noise));
                    hi = (hi.0.max(p.0 + noise), hi.1.max(p.1 + noise));
                }
                (lo.0 <= hi.0).then_some((lo, hi))
            }
        }
    }

    /// Maze distance bins: a grid, ordered bins, and a free cell pair in every bin.
    fn validate_bins(
        &self,
        bins: &[(u32, u32)],
        noise: f32,
        path: &Path,
    ) -> Result<(), InputError> {
        let Some(grid) = self.grid() else {
            return err(
                path,
                "start_goal",
                "CellDistanceBins needs a Grid obstacle".into(),
            );
        };
        if bins.is_empty() || bins.iter().any(|(lo, hi)| lo > hi) {
            return err(
                path,
                "start_goal.bins",
                "expected non-empty (lo, hi) bins with lo <= hi".into(),
            );
        }
        finite(noise, "start_goal.noise", path)?;
        if noise < 0.0 || noise >= grid.cell / 2.0 {
            return err(
                path,
                "start_goal.noise",
                format!(
                    "expected a jitter from 0 to under half a cell ({} m), got {noise}",
                    grid.cell / 2.0
                ),
            );
        }
        for (lo, hi) in bins {
            if !grid.has_pair_in(*lo, *hi) {
                return err(
                    path,
                    "start_goal.bins",
                    format!("no pair of free cells is {lo}..={hi} cells apart in this maze"),
                );
            }
        }
        Ok(())
    }

    /// Checks a sampler's numbers, that it stays in the world, and that it can produce a
    /// point outside the obstacles (a start inside a wall is a scene error, not a hang).
    pub(super) fn validate_sample(
        &self,
        s: &Sample,
        field: &str,
        path: &Path,
    ) -> Result<(), InputError> {
        match s {
            Sample::Fixed(p) => self.validate_fixed(*p, field, path),
            Sample::Uniform { min, max } => self.validate_uniform(*min, *max, field, path),
            Sample::Cells { cells, noise } => self.validate_cells(cells, *noise, field, path),
        }
    }

    /// Whether a point lies in the world (borders included).
    fn inside(&self, p: V2) -> bool {
        let (w, h) = self.world.size;
        p.0 >= 0.0 && p.1 >= 0.0 && p.0 <= w && p.1 <= h
    }

    /// A fixed point: finite, in the world, outside the obstacles.
    fn validate_fixed(&self, p: V2, field: &str, path: &Path) -> Result<(), InputError> {
        let (w, h) = self.world.size;
        finite2(p, field, path)?;
        if !self.inside(p) {
            return Err(InputError::new(
                path,
                field,
                format!("({}, {}) is outside the world (0..{w}, 0..{h})", p.0, p.1),
            ));
        }
        if super::geometry::point_in_static(self, p) {
            return Err(InputError::new(
                path,
                field,
                format!("({}, {}) is inside an obstacle", p.0, p.1),
            ));
        }
        Ok(())
    }

    /// A uniform box: finite, ordered, in the world, and not wholly inside obstacles (a 9 x 9
    /// lattice of its points is probed).
    fn validate_uniform(
        &self,
        min: V2,
        max: V2,
        field: &str,
        path: &Path,
    ) -> Result<(), InputError> {
        let (w, h) = self.world.size;
        finite2(min, field, path)?;
        finite2(max, field, path)?;
        if min.0 > max.0 || min.1 > max.1 {
            return Err(InputError::new(
                path,
                field,
                "expected min <= max in both coordinates",
            ));
        }
        if !self.inside(min) || !self.inside(max) {
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
        Ok(())
    }

    /// Maze cells: a grid, noise under half a cell, listed cells free, some free cell.
    fn validate_cells(
        &self,
        cells: &[(u32, u32)],
        noise: f32,
        field: &str,
        path: &Path,
    ) -> Result<(), InputError> {
        finite(noise, field, path)?;
        let Some(grid) = self.grid() else {
            return Err(InputError::new(
                path,
                field,
                "Cells needs a Grid obstacle in the scene",
            ));
        };
        if noise < 0.0 || noise >= grid.cell / 2.0 {
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
        Ok(())
    }
}
