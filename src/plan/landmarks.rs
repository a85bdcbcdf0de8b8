//! Landmark subgoals: an upper level that searches long-term memory instead of macro-actions
//! (after Search on the Replay Buffer, Eysenbach et al. 2019). The nodes are level-2 states
//! placed among the frames the data visited: farthest-point samples, by default moved to the
//! centres of their clusters (k-means), which keeps them off the walls the frames pile up
//! against. An edge joins two landmarks whose cost-to-go (the level-2 critic, in data steps)
//! is at most `max_edge`. Each landmark's cost to the goal is its cheapest path through the
//! graph, the last hop being the critic's direct estimate. The subgoal handed down is the
//! landmark within `reach` of the agent that is nearest the goal along the graph.
//!
//! Unlike a predicted abstract state, a landmark is where the data has been (`frames`) or the
//! average of a cluster of such states (`centroids`): not a guess of the predictor that may
//! sit inside a wall. This module sees only numbers (costs between landmarks, from the agent,
//! to the goal), so it is tested with hand-made costs.

use petgraph::algo::dijkstra;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::error::ConfigError;

/// The `[planning.landmarks]` table of an agent file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LandmarkConfig {
    /// Dataset whose training episodes' frames are the candidates (default: the one the
    /// checkpoint was trained on).
    #[serde(default)]
    pub data: Option<String>,
    /// Landmarks kept (farthest-point sampling over the frames' level-2 states).
    #[serde(default = "default_count")]
    pub count: i64,
    /// Longest edge of the graph, in data steps of the level-2 critic.
    #[serde(default = "default_max_edge")]
    pub max_edge: f64,
    /// How far (data steps) a landmark may be from the agent to be handed down. Below
    /// `max_edge` the next landmark of a path can lie out of reach of the one the agent is at,
    /// and it stalls there.
    #[serde(default = "default_reach")]
    pub reach: f64,
    /// Env steps between choices of subgoal; a choice is made when the lower level replans,
    /// so this rounds up to a multiple of `planning.planner.replan_every`.
    #[serde(default = "default_replan_every")]
    pub replan_every: i64,
    /// Where the landmarks sit: `centroids` of the frames' clusters (k-means from
    /// farthest-point seeds), or the seed `frames` themselves (SoRB's).
    #[serde(default)]
    pub placement: Placement,
}

/// How landmarks are placed among the data's level-2 states.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Cluster centres: averages of nearby states, away from the edges of the visited set
    /// (walls), where farthest-point sampling puts its picks.
    #[default]
    Centroids,
    /// Frames picked by farthest-point sampling.
    Frames,
}

/// The most landmarks an agent file may ask for.
pub const MAX_LANDMARKS: i64 = 5000;

fn default_count() -> i64 {
    400
}
fn default_max_edge() -> f64 {
    40.0
}
fn default_reach() -> f64 {
    40.0
}
fn default_replan_every() -> i64 {
    10
}

impl LandmarkConfig {
    /// Checks the numbers; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(2..=MAX_LANDMARKS).contains(&self.count) {
            return Err(ConfigError::expected(
                "planning.landmarks.count",
                format!("2..={MAX_LANDMARKS} landmarks (their costs are a count x count matrix)"),
                self.count,
            ));
        }
        for (key, v) in [("max_edge", self.max_edge), ("reach", self.reach)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(ConfigError::expected(
                    format!("planning.landmarks.{key}"),
                    "a length > 0 (data steps)",
                    v,
                ));
            }
        }
        if self.replan_every < 1 {
            return Err(ConfigError::expected(
                "planning.landmarks.replan_every",
                "at least 1 env step",
                self.replan_every,
            ));
        }
        Ok(())
    }
}

/// Rows of `points` `[N, D]` chosen by farthest-point sampling, starting from row 0: each
/// next one is the point farthest from all chosen so far. Deterministic; fewer than `count`
/// when the points run out of distinct values.
pub fn farthest_points(points: &Tensor, count: i64) -> Vec<i64> {
    let n = points.size()[0];
    let count = count.min(n);
    if count <= 0 {
        return Vec::new();
    }
    let points = points.to_kind(Kind::Float);
    let mut chosen = vec![0i64];
    let mut nearest = (&points - points.get(0).unsqueeze(0))
        .square()
        .sum_dim_intlist([-1i64].as_slice(), false, Kind::Float);
    while (chosen.len() as i64) < count {
        let next = nearest.argmax(0, false).int64_value(&[]);
        if nearest.double_value(&[next]) <= 0.0 {
            break;
        }
        chosen.push(next);
        let d = (&points - points.get(next).unsqueeze(0))
            .square()
            .sum_dim_intlist([-1i64].as_slice(), false, Kind::Float);
        nearest = nearest.minimum(&d);
    }
    chosen
}

/// Lloyd's k-means on `points` `[N, D]` from the centres `init` `[K, D]`: `[K, D]`. A
/// centre that loses all its points stays where it was. Deterministic.
pub fn kmeans(points: &Tensor, init: &Tensor, iterations: i64) -> Tensor {
    let points = points.to_kind(Kind::Float);
    let mut centres = init.to_kind(Kind::Float);
    let k = centres.size()[0];
    let ones = Tensor::ones([points.size()[0]], (Kind::Float, points.device()));
    for _ in 0..iterations {
        let nearest = Tensor::cdist(&points, &centres, 2.0, None::<i64>).argmin(1, false);
        let sums = centres.zeros_like().index_add(0, &nearest, &points);
        let counts =
            Tensor::zeros([k], (Kind::Float, points.device())).index_add(0, &nearest, &ones);
        let mean = sums / counts.clamp_min(1.0).unsqueeze(1);
        centres = mean.where_self(&counts.gt(0.0).unsqueeze(1), &centres);
    }
    centres
}

/// What the upper level hands down.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Subgoal {
    /// The goal itself is within reach.
    Goal,
    /// This landmark.
    Landmark(usize),
}

/// The landmarks' graph: edge i -> j where the cost from landmark i to landmark j is at
/// most `max_edge`.
#[derive(Debug)]
pub struct LandmarkGraph {
    graph: DiGraph<(), f32>,
}

impl LandmarkGraph {
    /// `cost[i][j]`: the cost from landmark i to landmark j (data steps).
    pub fn new(cost: &[Vec<f32>], max_edge: f32) -> LandmarkGraph {
        let n = cost.len();
        let mut graph = DiGraph::with_capacity(n, 0);
        for _ in 0..n {
            graph.add_node(());
        }
        for (i, row) in cost.iter().enumerate() {
            for (j, &c) in row.iter().enumerate() {
                // A NaN estimate fails the comparison: no edge.
                if i != j && c <= max_edge {
                    graph.add_edge(NodeIndex::new(i), NodeIndex::new(j), c.max(0.0));
                }
            }
        }
        LandmarkGraph { graph }
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }

    /// Each landmark's cost to the goal: the shortest path through the graph, finished by a
    /// last hop of `direct[i]` (the critic's estimate from landmark i to the goal, uncapped
    /// so a goal far from every landmark still ranks them).
    pub fn to_goal(&self, direct: &[f32]) -> Vec<f32> {
        let n = self.len();
        assert_eq!(direct.len(), n, "one direct cost per landmark");
        // Reversed edges plus a goal node joined to every landmark: Dijkstra from the goal.
        let mut reversed = DiGraph::<(), f32>::with_capacity(n + 1, self.edge_count() + n);
        for _ in 0..=n {
            reversed.add_node(());
        }
        for e in self.graph.raw_edges() {
            reversed.add_edge(e.target(), e.source(), e.weight);
        }
        let goal = NodeIndex::new(n);
        for (i, &c) in direct.iter().enumerate() {
            // A NaN estimate must not read as 0 (`NaN.max(0.0)` is 0).
            let c = if c.is_nan() {
                f32::INFINITY
            } else {
                c.max(0.0)
            };
            reversed.add_edge(goal, NodeIndex::new(i), c);
        }
        let dist = dijkstra(&reversed, goal, None, |e| *e.weight());
        (0..n)
            .map(|i| {
                dist.get(&NodeIndex::new(i))
                    .copied()
                    .unwrap_or(f32::INFINITY)
            })
            .collect()
    }

    /// The subgoal for an agent whose costs to the landmarks are `from` and to the goal
    /// `direct`, given the landmarks' `to_goal`: the goal if within `reach`; else the
    /// landmark within reach nearest the goal; else the first landmark of the cheapest path.
    pub fn choose(&self, from: &[f32], direct: f32, to_goal: &[f32], reach: f32) -> Subgoal {
        if direct <= reach {
            return Subgoal::Goal;
        }
        // Ties go to the landmark nearer the agent; NaN estimates rank last.
        let rank = |x: f32| if x.is_nan() { f32::INFINITY } else { x };
        let best = |score: &dyn Fn(usize) -> f32, allowed: &dyn Fn(usize) -> bool| {
            (0..from.len()).filter(|&i| allowed(i)).min_by(|&a, &b| {
                rank(score(a))
                    .total_cmp(&rank(score(b)))
                    .then(rank(from[a]).total_cmp(&rank(from[b])))
            })
        };
        best(&|i| to_goal[i], &|i| from[i] <= reach)
            .or_else(|| best(&|i| from[i] + to_goal[i], &|_| true))
            .map_or(Subgoal::Goal, Subgoal::Landmark)
    }

    /// The landmarks from `start` to the goal along the cheapest path (for display): edges
    /// are followed while one of them accounts for the landmark's cost to the goal; where
    /// none does, the path's last hop is the direct one.
    pub fn path(&self, start: usize, to_goal: &[f32]) -> Vec<usize> {
        let mut path = vec![start];
        let mut at = start;
        while path.len() <= self.len() {
            let next = self
                .graph
                .edges(NodeIndex::new(at))
                .map(|e| {
                    (
                        e.target().index(),
                        *e.weight() + to_goal[e.target().index()],
                    )
                })
                .filter(|&(j, _)| to_goal[j] < to_goal[at])
                .min_by(|a, b| a.1.total_cmp(&b.1));
            match next {
                Some((j, via)) if via <= to_goal[at] * (1.0 + 1e-5) => {
                    path.push(j);
                    at = j;
                }
                _ => break,
            }
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Landmarks on a U-shaped corridor: 0..=4 up the left arm, 5..=9 down the right one;
    /// the arms touch in straight-line distance but the way round is through 4 -> 5.
    fn u_corridor() -> (Vec<Vec<f32>>, Vec<f32>) {
        let along = |i: usize| i as f32 * 10.0;
        let cost: Vec<Vec<f32>> = (0..10)
            .map(|i| (0..10).map(|j| (along(i) - along(j)).abs()).collect())
            .collect();
        (cost, (0..10).map(|i| 90.0 - along(i)).collect())
    }

    #[test]
    fn to_goal_follows_the_graph_and_never_exceeds_the_direct_estimate() {
        let (cost, mut direct) = u_corridor();
        // A critic that wrongly rates landmark 0 (across the wall) close to the goal.
        direct[0] = 5.0;
        let g = LandmarkGraph::new(&cost, 15.0);
        let d = g.to_goal(&direct);
        assert_eq!(d[0], 5.0, "the direct hop is always allowed");
        assert_eq!(d[1], 15.0, "via landmark 0");
        assert_eq!(d[9], 0.0);
        assert_eq!(d[8], 10.0);
    }

    #[test]
    fn choose_hands_down_the_landmark_in_reach_nearest_the_goal() {
        let (cost, direct) = u_corridor();
        let g = LandmarkGraph::new(&cost, 15.0);
        let d = g.to_goal(&direct);
        // The agent at landmark 2: 3 and 4 are within 25 steps; 4 is nearer the goal.
        let from = &cost[2];
        assert_eq!(g.choose(from, direct[2], &d, 25.0), Subgoal::Landmark(4));
        // At landmark 8 the goal (landmark 9's place, 10 steps on) is within reach.
        assert_eq!(g.choose(&cost[8], direct[8], &d, 25.0), Subgoal::Goal);
        // Nothing within reach: the first landmark of the cheapest path (on a straight run
        // every landmark ahead ties; the nearest wins).
        let far: Vec<f32> = cost[2].iter().map(|c| c + 100.0).collect();
        assert_eq!(g.choose(&far, 1000.0, &d, 25.0), Subgoal::Landmark(2));
    }

    #[test]
    fn path_walks_the_graph_to_the_goal() {
        let (cost, direct) = u_corridor();
        let g = LandmarkGraph::new(&cost, 15.0);
        let d = g.to_goal(&direct);
        assert_eq!(g.path(3, &d), vec![3, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn farthest_points_spread_over_the_data() {
        // A dense cluster at 0 and three outliers: the outliers are chosen first.
        let mut rows = vec![[0.0f32, 0.0]; 20];
        rows.extend([[10.0, 0.0], [0.0, 10.0], [-10.0, -10.0]]);
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let points = Tensor::from_slice(&flat).view([23, 2]);
        let chosen = farthest_points(&points, 4);
        assert_eq!(chosen[0], 0);
        let mut rest = chosen[1..].to_vec();
        rest.sort();
        assert_eq!(rest, vec![20, 21, 22]);
        // Only 4 distinct points: no repeats however many are asked for.
        assert_eq!(farthest_points(&points, 100).len(), 4);
    }

    #[test]
    fn kmeans_finds_the_clusters_centres() {
        // Two tight clusters around (0, 0) and (10, 0); both centres start in the first.
        let rows: Vec<f32> = [
            [-1.0f32, 0.0],
            [1.0, 0.0],
            [9.0, 0.0],
            [11.0, 0.0],
            [10.0, 1.0],
            [10.0, -1.0],
        ]
        .iter()
        .flatten()
        .copied()
        .collect();
        let points = Tensor::from_slice(&rows).view([6, 2]);
        let init = Tensor::from_slice(&[-1.0f32, 0.0, 1.0, 0.0]).view([2, 2]);
        let c = Vec::<f32>::try_from(kmeans(&points, &init, 10).flatten(0, -1)).unwrap();
        let mut xs = [c[0], c[2]];
        xs.sort_by(f32::total_cmp);
        assert!(
            (xs[0] - 0.0).abs() < 1e-5 && (xs[1] - 10.0).abs() < 1e-5,
            "{c:?}"
        );
    }

    #[test]
    fn bad_numbers_name_their_key() {
        let ok = LandmarkConfig {
            data: None,
            count: 400,
            max_edge: 40.0,
            reach: 25.0,
            replan_every: 10,
            placement: Placement::Centroids,
        };
        assert!(ok.validate().is_ok());
        let e = LandmarkConfig {
            count: 1,
            ..ok.clone()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.key(), "planning.landmarks.count");
        let e = LandmarkConfig {
            reach: 0.0,
            ..ok.clone()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.key(), "planning.landmarks.reach");
        let e = LandmarkConfig {
            replan_every: 0,
            ..ok
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.key(), "planning.landmarks.replan_every");
    }
}
