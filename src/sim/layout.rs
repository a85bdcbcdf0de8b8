//! Episode layouts: everything random about an episode (door centres, the agent's start and
//! goal, every body's start and goal) drawn from the scene's seeded distributions, and the
//! check that a given layout fits its scene.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::geometry::{point_in_static, shape_polygons, Grid, Pose2};
use super::scene::{Body, Obstacle, PoseSample, Range, Sample, Scene, Shape, StartGoal, V2};
use super::world::Layout;

/// Samples tried before giving up on a collision-free start.
const MAX_SAMPLE_TRIES: usize = 1000;

/// Draws an episode layout from the scene's distributions; deterministic in `seed`. The
/// factors of variation are drawn first (on their own stream) and the rest is placed in the
/// scene they make (a larger body starts clear of the walls).
pub fn sample_layout(scene: &Scene, seed: u64) -> Layout {
    let factors = super::factors::draw(scene, seed);
    if factors.is_empty() {
        return sample_in(scene, seed, factors);
    }
    sample_in(&super::factors::apply(scene, &factors), seed, factors)
}

fn sample_in(scene: &Scene, seed: u64, factors: super::factors::Drawn) -> Layout {
    let mut sampler = LayoutSampler {
        scene,
        grid: scene.grid(),
        rng: ChaCha8Rng::seed_from_u64(seed),
    };
    // The stages draw in this fixed order: a seed must keep giving the same layout.
    let doors = sampler.doors();
    let (agent_start, agent_goal, distance_bin) = sampler.start_goal();
    let (body_starts, body_goals) = sampler.bodies(agent_start);
    Layout {
        doors,
        agent_start,
        agent_goal,
        body_starts,
        body_goals,
        distance_bin,
        factors,
    }
}

/// One layout draw in progress: the scene, its maze grid and the seeded generator.
struct LayoutSampler<'a> {
    scene: &'a Scene,
    grid: Option<Grid>,
    rng: ChaCha8Rng,
}

impl LayoutSampler<'_> {
    /// One door centre per `DoorWall` obstacle, in scene order.
    fn doors(&mut self) -> Vec<f32> {
        let (scene, rng) = (self.scene, &mut self.rng);
        scene
            .obstacles
            .iter()
            .filter_map(|o| match o {
                Obstacle::DoorWall { door_center, .. } => Some(sample_range(rng, door_center)),
                _ => None,
            })
            .collect()
    }

    /// The agent's start and goal points, and the distance bin they came from.
    fn start_goal(&mut self) -> (V2, V2, Option<usize>) {
        // A copy of the scene reference, so its borrows do not hold `self`.
        let scene = self.scene;
        match &scene.start_goal {
            StartGoal::Independent {
                start,
                goal,
                min_distance,
            } => {
                let (s, g) = self.independent(start, goal, *min_distance);
                (s, g, None)
            }
            StartGoal::OneOf(pairs) => {
                let (s, g) = self.one_of(pairs);
                (s, g, None)
            }
            StartGoal::CellDistanceBins { bins, noise } => self.binned(bins, *noise),
        }
    }

    /// Start and goal redrawn together until the start is clear, the goal outside static
    /// geometry and the two at least `min_distance` apart (the last pair when none is).
    fn independent(&mut self, start: &Sample, goal: &Sample, min_distance: f32) -> (V2, V2) {
        let scene = self.scene;
        let (grid, rng) = (self.grid.as_ref(), &mut self.rng);
        let mut pair = (
            sample_point(rng, start, grid),
            sample_point(rng, goal, grid),
        );
        for _ in 0..MAX_SAMPLE_TRIES {
            if agent_clear(scene, pair.0)
                && point_ok(scene, pair.1)
                && dist(pair.0, pair.1) >= min_distance
            {
                break;
            }
            pair = (
                sample_point(rng, start, grid),
                sample_point(rng, goal, grid),
            );
        }
        pair
    }

    /// One of the (start, goal) sampler pairs picked uniformly, each point redrawn until free.
    fn one_of(&mut self, pairs: &[(Sample, Sample)]) -> (V2, V2) {
        let scene = self.scene;
        let (grid, rng) = (self.grid.as_ref(), &mut self.rng);
        let (s, g) = &pairs[rng.random_range(0..pairs.len())];
        (
            sample_until(rng, |r| sample_point(r, s, grid), |p| agent_clear(scene, p)),
            sample_until(rng, |r| sample_point(r, g, grid), |p| point_ok(scene, p)),
        )
    }

    /// A uniformly picked bin, then a maze cell pair that far apart, both jittered.
    fn binned(&mut self, bins: &[(u32, u32)], noise: f32) -> (V2, V2, Option<usize>) {
        let scene = self.scene;
        let g = self.grid.as_ref().expect("validated: bins need a grid");
        let rng = &mut self.rng;
        let bin = rng.random_range(0..bins.len());
        let pairs = g.pairs_in(bins[bin].0, bins[bin].1);
        let (s, t) = pairs[rng.random_range(0..pairs.len())];
        let start = sample_until(
            rng,
            |r| jitter(r, g.cell_center(s.0, s.1), noise),
            |p| agent_clear(scene, p),
        );
        let goal = jitter(rng, g.cell_center(t.0, t.1), noise);
        (start, goal, Some(bin))
    }

    /// Every body copy's start, clear of walls, of the agent and of each other (bounding
    /// discs), and each body definition's goal, in scene order.
    fn bodies(&mut self, agent_start: V2) -> (Vec<Pose2>, Vec<Option<Pose2>>) {
        let scene = self.scene;
        let agent_r = scene.agent.shape.bounding_radius();
        let mut placed: Vec<(V2, f32)> = vec![(agent_start, agent_r)];
        let mut body_starts = Vec::new();
        let mut body_goals = Vec::new();
        for b in &scene.bodies {
            let r = b.shape.bounding_radius();
            for _ in 0..b.count {
                let pose = self.body_start(b, &placed, r);
                placed.push(((pose.x, pose.y), r));
                body_starts.push(pose);
            }
            body_goals.push(b.goal.as_ref().map(|g| self.pose(g)));
        }
        (body_starts, body_goals)
    }

    /// One body copy's start (bounding radius `r`), redrawn until clear of the static
    /// geometry and of the discs already `placed` (the last draw when none is).
    fn body_start(&mut self, b: &Body, placed: &[(V2, f32)], r: f32) -> Pose2 {
        let scene = self.scene;
        let mut pose = Pose2::default();
        for _ in 0..MAX_SAMPLE_TRIES {
            pose = self.pose(&b.start);
            let p = (pose.x, pose.y);
            let free = placed.iter().all(|(q, rq)| dist(p, *q) > r + rq);
            if free && clear_of_static(scene, &b.shape, &pose) {
                break;
            }
        }
        pose
    }

    /// A pose from its sampler: the position drawn first, then the angle.
    fn pose(&mut self, s: &PoseSample) -> Pose2 {
        let grid = self.grid.as_ref();
        let p = sample_point(&mut self.rng, &s.position, grid);
        Pose2::new(p.0, p.1, sample_range(&mut self.rng, &s.angle))
    }
}

/// Euclidean distance between two points.
pub(super) fn dist(a: V2, b: V2) -> f32 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
}

fn sample_range(rng: &mut ChaCha8Rng, r: &Range) -> f32 {
    if r.0 == r.1 {
        r.0
    } else {
        rng.random_range(r.0..=r.1)
    }
}

fn sample_point(rng: &mut ChaCha8Rng, s: &Sample, grid: Option<&Grid>) -> V2 {
    match s {
        Sample::Fixed(p) => *p,
        Sample::Uniform { min, max } => (
            sample_range(rng, &Range(min.0, max.0)),
            sample_range(rng, &Range(min.1, max.1)),
        ),
        Sample::Cells { cells, noise } => {
            let g = grid.expect("validated: Cells needs a grid");
            let choices = g.cells_or_free(cells);
            let (r, c) = choices[rng.random_range(0..choices.len())];
            jitter(rng, g.cell_center(r, c), *noise)
        }
    }
}

fn jitter(rng: &mut ChaCha8Rng, p: V2, noise: f32) -> V2 {
    if noise == 0.0 {
        return p;
    }
    (
        p.0 + rng.random_range(-noise..=noise),
        p.1 + rng.random_range(-noise..=noise),
    )
}

/// Whether a shape placed at `pose` keeps clear of the static geometry (its vertices and
/// centre tested against every obstacle, doorways counted as walls).
fn clear_of_static(scene: &Scene, shape: &Shape, pose: &Pose2) -> bool {
    let (w, h) = scene.world.size;
    shape_polygons(shape, pose)
        .iter()
        .flatten()
        .chain(std::iter::once(&(pose.x, pose.y)))
        .all(|p| p.0 >= 0.0 && p.1 >= 0.0 && p.0 <= w && p.1 <= h && !point_in_static(scene, *p))
}

/// Whether the agent, unrotated at `p`, keeps clear of the static geometry.
fn agent_clear(scene: &Scene, p: V2) -> bool {
    clear_of_static(scene, &scene.agent.shape, &Pose2::new(p.0, p.1, 0.0))
}

fn point_ok(scene: &Scene, p: V2) -> bool {
    !point_in_static(scene, p)
}

fn sample_until(
    rng: &mut ChaCha8Rng,
    mut draw: impl FnMut(&mut ChaCha8Rng) -> V2,
    ok: impl Fn(V2) -> bool,
) -> V2 {
    let mut p = draw(rng);
    for _ in 0..MAX_SAMPLE_TRIES {
        if ok(p) {
            break;
        }
        p = draw(rng);
    }
    p
}

/// Whether `layout` fits `scene` (a door per door wall, a start per body copy, a goal where
/// a body has one): the first mismatch, named.
pub fn check_layout(scene: &Scene, layout: &Layout) -> Result<(), String> {
    let doors = scene
        .obstacles
        .iter()
        .filter(|o| matches!(o, Obstacle::DoorWall { .. }))
        .count();
    let copies: usize = scene.bodies.iter().map(|b| b.count as usize).sum();
    let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
    if layout.doors.len() != doors {
        return Err(format!(
            "doors: expected {doors} (one per door wall), found {}",
            layout.doors.len()
        ));
    }
    if layout.body_starts.len() != copies {
        return Err(format!(
            "body_starts: expected {copies} (one per body copy), found {}",
            layout.body_starts.len()
        ));
    }
    if layout.body_goals.len() != scene.bodies.len() {
        return Err(format!(
            "body_goals: expected {} (one per body), found {}",
            scene.bodies.len(),
            layout.body_goals.len()
        ));
    }
    for (i, (b, g)) in scene.bodies.iter().zip(&layout.body_goals).enumerate() {
        if b.goal.is_some() != g.is_some() {
            return Err(format!(
                "body_goals[{i}]: expected {} for body {:?}",
                if b.goal.is_some() { "a goal" } else { "none" },
                b.name
            ));
        }
    }
    let poses = layout
        .body_starts
        .iter()
        .chain(layout.body_goals.iter().flatten());
    let numbers: Vec<f32> = layout
        .doors
        .iter()
        .copied()
        .chain([
            layout.agent_start.0,
            layout.agent_start.1,
            layout.agent_goal.0,
            layout.agent_goal.1,
        ])
        .chain(poses.flat_map(|p| [p.x, p.y, p.angle]))
        .collect();
    if !finite(&numbers) {
        return Err("expected finite positions and angles".into());
    }
    Ok(())
}
