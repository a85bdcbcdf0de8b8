//! Plain 2-D geometry shared by the world builder, the rasteriser and the goal checks:
//! shapes as convex polygons, polygon overlap areas (Push-T coverage), and maze grids.

use std::collections::VecDeque;

use super::scene::{Axis, Obstacle, Scene, Shape, V2};

/// Circles become regular polygons with this many sides for areas and hit tests.
pub const CIRCLE_SEGMENTS: usize = 32;

/// A rigid transform: translation and angle.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pose2 {
    pub x: f32,
    pub y: f32,
    pub angle: f32,
}

impl Pose2 {
    pub fn new(x: f32, y: f32, angle: f32) -> Self {
        Pose2 { x, y, angle }
    }
    pub fn apply(&self, p: V2) -> V2 {
        let (s, c) = self.angle.sin_cos();
        (self.x + c * p.0 - s * p.1, self.y + s * p.0 + c * p.1)
    }
    pub fn compose(&self, local: &Pose2) -> Pose2 {
        let (x, y) = self.apply((local.x, local.y));
        Pose2 {
            x,
            y,
            angle: self.angle + local.angle,
        }
    }
}

/// Wraps an angle to (-pi, pi].
pub fn wrap_angle(a: f32) -> f32 {
    let t = std::f32::consts::TAU;
    let mut r = a.rem_euclid(t);
    if r > std::f32::consts::PI {
        r -= t;
    }
    r
}

/// The shape as convex polygons (counter-clockwise) in world coordinates at `pose`.
pub fn shape_polygons(shape: &Shape, pose: &Pose2) -> Vec<Vec<V2>> {
    match shape {
        Shape::Circle { radius } => vec![(0..CIRCLE_SEGMENTS)
            .map(|i| {
                let t = std::f32::consts::TAU * i as f32 / CIRCLE_SEGMENTS as f32;
                pose.apply((radius * t.cos(), radius * t.sin()))
            })
            .collect()],
        Shape::Box { half } => vec![[
            (-half.0, -half.1),
            (half.0, -half.1),
            (half.0, half.1),
            (-half.0, half.1),
        ]
        .iter()
        .map(|p| pose.apply(*p))
        .collect()],
        Shape::Polygon { points } => {
            vec![convex_hull(points).iter().map(|p| pose.apply(*p)).collect()]
        }
        Shape::Compound { parts } => parts
            .iter()
            .flat_map(|p| {
                shape_polygons(
                    &p.shape,
                    &pose.compose(&Pose2::new(p.offset.0, p.offset.1, p.angle)),
                )
            })
            .collect(),
    }
}

/// Area of a simple polygon (positive when counter-clockwise).
pub fn polygon_area(poly: &[V2]) -> f32 {
    let n = poly.len();
    let mut a = 0.0;
    for i in 0..n {
        let (p, q) = (poly[i], poly[(i + 1) % n]);
        a += p.0 * q.1 - q.0 * p.1;
    }
    a / 2.0
}

/// Convex hull, counter-clockwise (Andrew's monotone chain).
pub fn convex_hull(points: &[V2]) -> Vec<V2> {
    let mut pts: Vec<V2> = points.to_vec();
    pts.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let cross = |o: V2, a: V2, b: V2| (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0);
    let mut lower: Vec<V2> = Vec::new();
    for &p in &pts {
        while lower.len() >= 2 && cross(lower[lower.len() - 2], lower[lower.len() - 1], p) <= 0.0 {
            lower.pop();
        }
        lower.push(p);
    }
    let mut upper: Vec<V2> = Vec::new();
    for &p in pts.iter().rev() {
        while upper.len() >= 2 && cross(upper[upper.len() - 2], upper[upper.len() - 1], p) <= 0.0 {
            upper.pop();
        }
        upper.push(p);
    }
    lower.pop();
    upper.pop();
    lower.extend(upper);
    lower
}

/// Intersection of two convex counter-clockwise polygons (Sutherland-Hodgman).
pub fn clip_convex(subject: &[V2], clip: &[V2]) -> Vec<V2> {
    let mut out = subject.to_vec();
    let n = clip.len();
    for i in 0..n {
        if out.is_empty() {
            break;
        }
        let (a, b) = (clip[i], clip[(i + 1) % n]);
        let side = |p: V2| (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0);
        let input = std::mem::take(&mut out);
        for j in 0..input.len() {
            let (p, q) = (input[j], input[(j + 1) % input.len()]);
            let (sp, sq) = (side(p), side(q));
            if sp >= 0.0 {
                out.push(p);
            }
            if (sp >= 0.0) != (sq >= 0.0) {
                let t = sp / (sp - sq);
                out.push((p.0 + t * (q.0 - p.0), p.1 + t * (q.1 - p.1)));
            }
        }
    }
    out
}

/// Area shared by two unions of non-overlapping convex polygons.
pub fn overlap_area(a: &[Vec<V2>], b: &[Vec<V2>]) -> f32 {
    a.iter()
        .flat_map(|p| {
            b.iter()
                .map(move |q| polygon_area(&clip_convex(p, q)).max(0.0))
        })
        .sum()
}

pub fn point_in_convex(poly: &[V2], p: V2) -> bool {
    let n = poly.len();
    (0..n).all(|i| {
        let (a, b) = (poly[i], poly[(i + 1) % n]);
        (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0) >= 0.0
    })
}

/// Axis-aligned boxes `(center, half)` of a door wall with its door centred at `door`.
pub fn door_wall_boxes(
    axis: Axis,
    at: f32,
    thickness: f32,
    door_width: f32,
    door: f32,
    world: V2,
) -> Vec<(V2, V2)> {
    let along = if axis == Axis::Vertical {
        world.1
    } else {
        world.0
    };
    let (d0, d1) = (door - door_width / 2.0, door + door_width / 2.0);
    [(0.0, d0), (d1, along)]
        .into_iter()
        .filter(|(lo, hi)| hi - lo > 1e-6)
        .map(|(lo, hi)| {
            let (mid, half) = ((lo + hi) / 2.0, (hi - lo) / 2.0);
            match axis {
                Axis::Vertical => ((at, mid), (thickness / 2.0, half)),
                Axis::Horizontal => ((mid, at), (half, thickness / 2.0)),
            }
        })
        .collect()
}

/// The axis-aligned boxes `(center, half)` of the scene's door walls (with these door
/// centres, in scene order) and maze walls. `Fixed` obstacles are not included.
pub fn obstacle_boxes(scene: &Scene, doors: &[f32]) -> Vec<(V2, V2)> {
    let mut doors = doors.iter();
    let mut boxes = Vec::new();
    for o in &scene.obstacles {
        match o {
            Obstacle::Fixed { .. } => {}
            Obstacle::DoorWall {
                axis,
                at,
                thickness,
                door_width,
                ..
            } => {
                let d = *doors.next().expect("one door per DoorWall");
                boxes.extend(door_wall_boxes(
                    *axis,
                    *at,
                    *thickness,
                    *door_width,
                    d,
                    scene.world.size,
                ));
            }
            Obstacle::Grid { cell, origin, rows } => {
                boxes.extend(Grid::new(*cell, *origin, rows).wall_boxes())
            }
        }
    }
    boxes
}

/// Whether a point lies in static geometry, for any door position (so a start cannot be
/// placed in a doorway either). Used to validate samplers and to reject samples.
pub fn point_in_static(scene: &Scene, p: V2) -> bool {
    scene.obstacles.iter().any(|o| match o {
        Obstacle::Fixed { shape, at, angle } => {
            shape_polygons(shape, &Pose2::new(at.0, at.1, *angle))
                .iter()
                .any(|poly| point_in_convex(poly, p))
        }
        Obstacle::DoorWall {
            axis,
            at,
            thickness,
            ..
        } => {
            let c = if *axis == Axis::Vertical { p.0 } else { p.1 };
            (c - at).abs() <= thickness / 2.0
        }
        Obstacle::Grid { cell, origin, rows } => {
            let g = Grid::new(*cell, *origin, rows);
            match g.cell_of(p) {
                Some((r, c)) => !g.is_free(r, c),
                None => false,
            }
        }
    })
}

/// A maze: a grid of wall and free cells.
#[derive(Clone, Debug)]
pub struct Grid {
    pub cell: f32,
    pub origin: V2,
    pub walls: Vec<Vec<bool>>,
}

impl Grid {
    pub fn new(cell: f32, origin: V2, rows: &[String]) -> Grid {
        Grid {
            cell,
            origin,
            walls: rows
                .iter()
                .map(|r| r.chars().map(|c| c == '#').collect())
                .collect(),
        }
    }
    pub fn rows(&self) -> usize {
        self.walls.len()
    }
    pub fn cols(&self) -> usize {
        self.walls.first().map_or(0, |r| r.len())
    }
    pub fn is_free(&self, r: i64, c: i64) -> bool {
        r >= 0
            && c >= 0
            && (r as usize) < self.rows()
            && (c as usize) < self.cols()
            && !self.walls[r as usize][c as usize]
    }
    pub fn free_cells(&self) -> Vec<(u32, u32)> {
        let mut v = Vec::new();
        for r in 0..self.rows() {
            for c in 0..self.cols() {
                if !self.walls[r][c] {
                    v.push((r as u32, c as u32));
                }
            }
        }
        v
    }
    /// The cells a `Cells` sampler draws from: `cells`, or every free cell when it is empty.
    pub fn cells_or_free<'a>(&self, cells: &'a [(u32, u32)]) -> std::borrow::Cow<'a, [(u32, u32)]> {
        if cells.is_empty() {
            std::borrow::Cow::Owned(self.free_cells())
        } else {
            std::borrow::Cow::Borrowed(cells)
        }
    }

    pub fn cell_center(&self, r: u32, c: u32) -> V2 {
        (
            self.origin.0 + (c as f32 + 0.5) * self.cell,
            self.origin.1 + (self.rows() as f32 - r as f32 - 0.5) * self.cell,
        )
    }
    pub fn cell_of(&self, p: V2) -> Option<(i64, i64)> {
        let c = ((p.0 - self.origin.0) / self.cell).floor() as i64;
        let rf = ((p.1 - self.origin.1) / self.cell).floor() as i64;
        let r = self.rows() as i64 - 1 - rf;
        (r >= 0 && c >= 0 && (r as usize) < self.rows() && (c as usize) < self.cols())
            .then_some((r, c))
    }
    /// Shortest path lengths (4-connected, in cells) from one free cell to all others;
    /// unreachable cells get `u32::MAX`.
    pub fn distances_from(&self, from: (u32, u32)) -> Vec<Vec<u32>> {
        let mut d = vec![vec![u32::MAX; self.cols()]; self.rows()];
        let mut q = VecDeque::new();
        d[from.0 as usize][from.1 as usize] = 0;
        q.push_back(from);
        while let Some((r, c)) = q.pop_front() {
            let here = d[r as usize][c as usize];
            for (dr, dc) in [(-1i64, 0i64), (1, 0), (0, -1), (0, 1)] {
                let (nr, nc) = (r as i64 + dr, c as i64 + dc);
                if self.is_free(nr, nc) && d[nr as usize][nc as usize] == u32::MAX {
                    d[nr as usize][nc as usize] = here + 1;
                    q.push_back((nr as u32, nc as u32));
                }
            }
        }
        d
    }
    /// All (start, goal) free-cell pairs whose shortest path is within `lo..=hi` cells.
    pub fn pairs_in(&self, lo: u32, hi: u32) -> Vec<((u32, u32), (u32, u32))> {
        let mut pairs = Vec::new();
        for s in self.free_cells() {
            let d = self.distances_from(s);
            for g in self.free_cells() {
                let x = d[g.0 as usize][g.1 as usize];
                if x != u32::MAX && x >= lo && x <= hi {
                    pairs.push((s, g));
                }
            }
        }
        pairs
    }
    pub fn has_pair_in(&self, lo: u32, hi: u32) -> bool {
        !self.pairs_in(lo, hi).is_empty()
    }
    /// Wall cells merged into horizontal runs, as boxes `(center, half)`: fewer colliders.
    pub fn wall_boxes(&self) -> Vec<(V2, V2)> {
        let mut boxes = Vec::new();
        for r in 0..self.rows() {
            let mut c = 0;
            while c < self.cols() {
                if self.walls[r][c] {
                    let start = c;
                    while c < self.cols() && self.walls[r][c] {
                        c += 1;
                    }
                    let (x0, x1) = (
                        self.origin.0 + start as f32 * self.cell,
                        self.origin.0 + c as f32 * self.cell,
                    );
                    let y = self.cell_center(r as u32, 0).1;
                    boxes.push((((x0 + x1) / 2.0, y), ((x1 - x0) / 2.0, self.cell / 2.0)));
                } else {
                    c += 1;
                }
            }
        }
        boxes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_of_identical_squares_is_their_area() {
        let s = Shape::Box { half: (1.0, 0.5) };
        let p = shape_polygons(&s, &Pose2::new(0.3, 0.2, 0.7));
        assert!((overlap_area(&p, &p) - 2.0).abs() < 1e-4);
        let q = shape_polygons(&s, &Pose2::new(0.3 + 1.0, 0.2, 0.0));
        let r = shape_polygons(&s, &Pose2::new(0.3, 0.2, 0.0));
        assert!((overlap_area(&q, &r) - 1.0).abs() < 1e-4);
    }

    #[test]
    fn grid_distances_follow_corridors() {
        let rows: Vec<String> = ["#####", "#...#", "###.#", "#...#", "#####"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let g = Grid::new(1.0, (0.0, 0.0), &rows);
        let d = g.distances_from((1, 1));
        assert_eq!(d[3][1], 6);
        assert_eq!(g.cell_of(g.cell_center(3, 1)), Some((3, 1)));
        assert!(g.has_pair_in(6, 6) && !g.has_pair_in(7, 9));
    }
}

/// The walls of an episode as convex polygons (fixed obstacles, and door walls with this
/// episode's doors cut out), in world coordinates.
pub fn wall_polygons(scene: &Scene, doors: &[f32]) -> Vec<Vec<V2>> {
    let mut polys: Vec<Vec<V2>> = Vec::new();
    for o in &scene.obstacles {
        if let Obstacle::Fixed { shape, at, angle } = o {
            polys.extend(shape_polygons(shape, &Pose2::new(at.0, at.1, *angle)));
        }
    }
    for (c, hf) in obstacle_boxes(scene, doors) {
        polys.push(vec![
            (c.0 - hf.0, c.1 - hf.1),
            (c.0 + hf.0, c.1 - hf.1),
            (c.0 + hf.0, c.1 + hf.1),
            (c.0 - hf.0, c.1 + hf.1),
        ]);
    }
    polys
}

/// The bodies' goal poses as convex polygons.
pub fn body_goal_polygons(scene: &Scene, layout: &super::world::Layout) -> Vec<Vec<V2>> {
    let mut polys = Vec::new();
    for (b, g) in scene.bodies.iter().zip(&layout.body_goals) {
        if let Some(g) = g {
            polys.extend(shape_polygons(&b.shape, g));
        }
    }
    polys
}

/// Whether a success criterion asks the agent itself to reach its goal point.
pub fn has_agent_goal(scene: &Scene) -> bool {
    scene
        .goal
        .success
        .iter()
        .any(|c| matches!(c, super::scene::Criterion::AgentReach { .. }))
}

/// The goal as convex polygons: each body's goal pose, and a disc of the agent's size at its
/// goal when a criterion asks the agent to reach it.
pub fn goal_polygons(scene: &Scene, layout: &super::world::Layout) -> Vec<Vec<V2>> {
    let mut polys = body_goal_polygons(scene, layout);
    if has_agent_goal(scene) {
        let g = layout.agent_goal;
        let r = scene.agent.shape.bounding_radius();
        polys.extend(shape_polygons(
            &Shape::Circle { radius: r },
            &Pose2::new(g.0, g.1, 0.0),
        ));
    }
    polys
}
