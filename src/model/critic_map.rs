//! The critics mapped over a maze (`hjepa probe` on scenes with a grid): the agent at rest at
//! every free cell's centre, every free cell in turn as the goal, each level's estimate
//! against the corridor distance in cells. Correlation says whether the estimate ranks
//! states right overall; greedy descent says whether it points the right way locally: from
//! each cell, the free neighbour it rates best should lie on a shortest path. A planner that
//! follows the critic stalls at the cells where it does not.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use super::config::ObservationKind;
use super::encoder::observation_tensor;
use super::world_model::WorldModel;
use crate::sim::env::sample_layout;
use crate::sim::{Env, Scene};

/// One critic's map.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LevelMap {
    /// 1: C(z, z_goal); 2: the level-2 critic on h = E2(z).
    pub level: u8,
    /// Pearson correlation with the corridor distance, per goal: mean and worst.
    pub correlation_mean: f64,
    pub correlation_min: f64,
    /// (cells whose best-rated neighbour is on a shortest path, cells scored), over all goals.
    pub greedy: (usize, usize),
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CriticMap {
    pub free_cells: usize,
    pub levels: Vec<LevelMap>,
}

impl CriticMap {
    pub fn summary(&self) -> String {
        self.levels
            .iter()
            .map(|l| {
                format!(
                    "critic level {} vs corridor distance over {} maze cells at rest (each cell as goal): correlation {:.3} (worst goal {:.3}); greedy descent {}/{} = {:.1} % of cells",
                    l.level,
                    self.free_cells,
                    l.correlation_mean,
                    l.correlation_min,
                    l.greedy.0,
                    l.greedy.1,
                    100.0 * l.greedy.0 as f64 / l.greedy.1.max(1) as f64
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The map of `model`'s critics over `scene`'s grid (None when the scene has no grid or the
/// model no critic).
pub fn critic_map(
    model: &WorldModel,
    scene: &Arc<Scene>,
    observation: ObservationKind,
    device: Device,
) -> Option<CriticMap> {
    let critic = model.critic.as_ref()?;
    let mut env = Env::new(scene.clone());
    let grid = env.grid()?.clone();
    let cells = grid.free_cells();
    let mut layout = sample_layout(scene, 0);
    let obs: Vec<Tensor> = cells
        .iter()
        .map(|&(r, c)| {
            layout.agent_start = grid.cell_center(r, c);
            observation_tensor(&env.reset_to(layout.clone()), observation, device)
        })
        .collect();
    let distances: Vec<Vec<f64>> = cells
        .iter()
        .map(|&goal| {
            let d = grid.distances_from(goal);
            cells
                .iter()
                .map(|&(r, c)| match d[r as usize][c as usize] {
                    u32::MAX => f64::INFINITY,
                    n => n as f64,
                })
                .collect()
        })
        .collect();
    let neighbours = neighbours(&cells);
    let (z, h) = tch::no_grad(|| {
        let z = model.encode(&Tensor::cat(&obs, 0));
        let h = model.level2.as_ref().map(|l2| l2.abstract_state(&z));
        (z, h)
    });
    let estimates = |net: &super::world_model::CriticNet, x: &Tensor| -> Vec<Vec<f64>> {
        (0..cells.len() as i64)
            .map(|g| {
                let e = tch::no_grad(|| net.distance(x, &x.get(g).unsqueeze(0)));
                Vec::<f64>::try_from(e.to_kind(tch::Kind::Double).to_device(Device::Cpu))
                    .expect("estimates")
            })
            .collect()
    };
    let mut levels = vec![score(1, &distances, &estimates(critic, &z), &neighbours)];
    if let (Some(c2), Some(h)) = (model.critic2.as_ref(), h.as_ref()) {
        levels.push(score(2, &distances, &estimates(c2, h), &neighbours));
    }
    Some(CriticMap {
        free_cells: cells.len(),
        levels,
    })
}

/// Indices of each cell's free 4-neighbours.
fn neighbours(cells: &[(u32, u32)]) -> Vec<Vec<usize>> {
    let index: HashMap<(u32, u32), usize> =
        cells.iter().enumerate().map(|(i, &c)| (c, i)).collect();
    cells
        .iter()
        .map(|&(r, c)| {
            [(-1i64, 0i64), (1, 0), (0, -1), (0, 1)]
                .iter()
                .filter_map(|&(dr, dc)| {
                    let (nr, nc) = (r as i64 + dr, c as i64 + dc);
                    (nr >= 0 && nc >= 0)
                        .then(|| index.get(&(nr as u32, nc as u32)).copied())
                        .flatten()
                })
                .collect()
        })
        .collect()
}

/// Scores one critic: `distances[g][i]` is the corridor distance from cell i to goal g
/// (infinite where unreachable: left out), `estimates[g][i]` the critic's; `neighbours[i]` the
/// cells next to i.
pub fn score(
    level: u8,
    distances: &[Vec<f64>],
    estimates: &[Vec<f64>],
    neighbours: &[Vec<usize>],
) -> LevelMap {
    let mut correlations = Vec::new();
    let (mut ok, mut scored) = (0, 0);
    for (d, e) in distances.iter().zip(estimates) {
        let reachable: Vec<usize> = (0..d.len()).filter(|&i| d[i].is_finite()).collect();
        let pick = |v: &[f64]| reachable.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        correlations.push(pearson(&pick(d), &pick(e)));
        for &i in &reachable {
            let near = &neighbours[i];
            if d[i] == 0.0 || near.is_empty() {
                continue;
            }
            let best = near
                .iter()
                .copied()
                .min_by(|&a, &b| e[a].total_cmp(&e[b]))
                .expect("not empty");
            scored += 1;
            if d[best] < d[i] {
                ok += 1;
            }
        }
    }
    LevelMap {
        level,
        correlation_mean: correlations.iter().sum::<f64>() / correlations.len().max(1) as f64,
        correlation_min: correlations.iter().copied().fold(f64::INFINITY, f64::min),
        greedy: (ok, scored),
    }
}

/// Pearson correlation of two equally long series.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt().max(1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A corridor of 4 cells in a row, goal at each end in turn.
    fn corridor() -> (Vec<Vec<f64>>, Vec<Vec<usize>>) {
        let cells: Vec<(u32, u32)> = (0..4).map(|c| (0, c)).collect();
        let distances = (0..4)
            .map(|g: i64| (0..4).map(|i: i64| (i - g).abs() as f64).collect())
            .collect();
        (distances, neighbours(&cells))
    }

    #[test]
    fn an_exact_critic_correlates_fully_and_always_descends() {
        let (d, n) = corridor();
        let m = score(1, &d, &d, &n);
        assert!((m.correlation_mean - 1.0).abs() < 1e-9 && (m.correlation_min - 1.0).abs() < 1e-9);
        assert_eq!(m.greedy, (12, 12));
    }

    #[test]
    fn unreachable_cells_are_left_out() {
        let (mut d, n) = corridor();
        let mut e = d.clone();
        // A fifth cell, walled off from the rest, that the critic rates anything at all.
        d.iter_mut().for_each(|row| row.push(f64::INFINITY));
        e.iter_mut().for_each(|row| row.push(-100.0));
        let mut n = n;
        n.push(vec![]);
        let m = score(1, &d, &e, &n);
        assert!((m.correlation_min - 1.0).abs() < 1e-9, "{m:?}");
        assert_eq!(m.greedy, (12, 12));
    }

    #[test]
    fn a_critic_with_a_false_minimum_is_caught_by_greedy_descent() {
        let (d, n) = corridor();
        // Toward goal 0 the critic rates the far end (cell 3) closer than cell 1: from cell 2
        // its best neighbour is 3, the wrong way; every other step is right.
        let mut e = d.clone();
        e[0] = vec![0.0, 2.5, 1.0, 0.5];
        let m = score(2, &d, &e, &n);
        assert_eq!(m.level, 2);
        assert_eq!(m.greedy, (11, 12));
        assert!(m.correlation_min < 0.9, "{m:?}");
    }
}
