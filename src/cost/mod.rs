//! The cost module: intrinsic cost terms that planners minimise, as [`Objective`]s over a
//! model's predicted representations.
//!
//! - distance to the goal's encoding in representation space (L1 or L2; at level 1 on z, or
//!   at level 2 on h = E2(z)), summed over the predicted steps or taken at the last one
//!   (eb_jepa found the sum ~8 points better);
//! - action magnitude and smoothness, each with its weight;
//! - with an ensemble of level-1 predictors, the mean cost over its members and their
//!   disagreement ([`EnsembleCost`]);
//! - with a committee of separately trained models, the mean of each model's own cost
//!   ([`CommitteeCost`]).

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::model::world_model::{CriticNet, Level2Nets};

/// Scores candidates: predicted states `[N, H, D]` and actions `[N, H, A]` -> cost `[N]`.
/// Planners (`crate::plan`) see a cost only through this.
pub trait Objective {
    fn cost(&self, states: &Tensor, actions: &Tensor) -> Tensor;
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Distance {
    L1,
    L2,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Reduce {
    /// Sum of the distance over every predicted step.
    Sum,
    /// The distance at the last predicted step only.
    Last,
}

/// The `[cost]` table of an agent file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    /// 1: distance between z's; 2: between h = E2(z)'s.
    #[serde(default = "one")]
    pub level: u8,
    #[serde(default = "l2")]
    pub distance: Distance,
    #[serde(default = "sum")]
    pub reduce: Reduce,
    /// With `reduce = "sum"`, step t (from 0) of the plan weighs `discount^t`: below 1 the
    /// near steps, whose predictions have compounded less error, count more (TD-MPC's
    /// discounted return); above 1 the far ones. Left out when 1.
    #[serde(default = "unit", skip_serializing_if = "is_one")]
    pub discount: f64,
    /// Weight of the latent distance to the goal. With `[planning.upper]` it weighs the
    /// upper level's plan; the lower level weighs the distance to its subgoal 1.
    #[serde(default = "unit")]
    pub goal_weight: f64,
    /// Weight of the mean squared normalised action.
    #[serde(default)]
    pub action_magnitude: f64,
    /// Weight of the mean squared change between consecutive actions.
    #[serde(default)]
    pub action_smoothness: f64,
    /// Weight of the critic's cost-to-go (in data steps, see `[critic]`) from each predicted z to the
    /// goal, reduced over the steps like the distance (needs `[critic] enabled = true` in the
    /// model). Lets short horizons see past walls. With `[planning.upper]` it scores the upper
    /// level's predicted level-2 states instead (needs `[critic] level2 = true`), and the
    /// lower level pursues the subgoal by latent distance (plus, with `[planning]
    /// subgoal_critic`, the level-2 critic's steps to it).
    #[serde(default)]
    pub critic: f64,
    /// Weight of the level-1 ensemble's disagreement (needs `[level1] ensemble` >= 2): the
    /// norm of the members' per-dimension standard deviation of z, summed over the predicted
    /// steps whatever `reduce` says, in the units of the level-1 L2 distance (also for the
    /// hierarchical lower level, whose distances are at level 2). Penalises plans whose
    /// outcome the members predict differently. Left out when 0, so files (and batch run
    /// ids) from before it read the same.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub disagreement: f64,
    /// Weight of a committee's disagreement (needs `[planning] peers`): the standard deviation
    /// over the models of each one's own cost of a candidate, added to their mean. With two
    /// models, weight 1 makes the cost the larger of the two. Left out when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub peer_disagreement: f64,
}

fn one() -> u8 {
    1
}
fn l2() -> Distance {
    Distance::L2
}
fn sum() -> Reduce {
    Reduce::Sum
}
fn unit() -> f64 {
    1.0
}
fn is_zero(w: &f64) -> bool {
    *w == 0.0
}
fn is_one(w: &f64) -> bool {
    *w == 1.0
}

impl Default for CostConfig {
    fn default() -> Self {
        CostConfig {
            level: 1,
            distance: Distance::L2,
            reduce: Reduce::Sum,
            discount: 1.0,
            goal_weight: 1.0,
            action_magnitude: 0.0,
            action_smoothness: 0.0,
            critic: 0.0,
            disagreement: 0.0,
            peer_disagreement: 0.0,
        }
    }
}

/// Per-step distance `[N, H]` between predicted states `[N, H, D]` and a target `[1, D]`.
pub fn distance(states: &Tensor, target: &Tensor, d: Distance) -> Tensor {
    let diff = states - target.view([1, 1, -1]);
    match d {
        Distance::L1 => diff.abs().mean_dim([-1i64].as_slice(), false, Kind::Float),
        Distance::L2 => diff
            .square()
            .sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)
            .clamp_min(1e-12)
            .sqrt(),
    }
}

/// `[N, H]` per-step costs -> `[N]` as `r` says.
pub fn reduce(per_step: &Tensor, r: Reduce) -> Tensor {
    reduce_discounted(per_step, r, 1.0)
}

/// [`reduce`], step t of a sum weighted by `discount^t` (see `CostConfig::discount`).
pub fn reduce_discounted(per_step: &Tensor, r: Reduce, discount: f64) -> Tensor {
    match r {
        Reduce::Sum if discount != 1.0 => {
            let h = per_step.size()[1];
            let weights: Vec<f32> = (0..h).map(|t| discount.powi(t as i32) as f32).collect();
            let w = Tensor::from_slice(&weights).to_device(per_step.device());
            (per_step * w).sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)
        }
        Reduce::Sum => per_step.sum_dim_intlist([-1i64].as_slice(), false, Kind::Float),
        Reduce::Last => per_step.select(-1, per_step.size()[1] - 1),
    }
}

/// Action terms `[N]` of a cost configuration.
pub fn action_terms(actions: &Tensor, cfg: &CostConfig) -> Tensor {
    let mut c = Tensor::zeros([actions.size()[0]], (Kind::Float, actions.device()));
    if cfg.action_magnitude > 0.0 {
        c = c + actions
            .square()
            .mean_dim([1i64, 2].as_slice(), false, Kind::Float)
            * cfg.action_magnitude;
    }
    if cfg.action_smoothness > 0.0 && actions.size()[1] > 1 {
        let h = actions.size()[1];
        let d = actions.narrow(1, 1, h - 1) - actions.narrow(1, 0, h - 1);
        c = c + d
            .square()
            .mean_dim([1i64, 2].as_slice(), false, Kind::Float)
            * cfg.action_smoothness;
    }
    c
}

/// Distance to a goal representation, optionally mapped to level 2 first, plus action terms.
pub struct GoalCost<'a> {
    pub cfg: CostConfig,
    /// The goal's encoding `[1, D]` in the space the states are compared in.
    pub goal: Tensor,
    /// When set, predicted z's are mapped through E2 before comparing (level-2 goal cost).
    pub abstraction: Option<&'a Level2Nets>,
    /// A critic, the goal in the critic's space, and the critic's `max_steps` (`cfg.critic`
    /// weighs it): the model's critic on z's, or its `critic2` on level-2 states.
    pub critic: Option<(&'a CriticNet, Tensor, i64)>,
}

/// The hierarchical lower level's cost: `distance` (a [`GoalCost`] toward the subgoal,
/// applied to the predicted states' level-2 abstractions, so without an `abstraction` of its
/// own) plus `weight` times the level-2 critic's cost-to-go from those abstractions to the
/// subgoal, which knows the walls a straight distance ignores.
pub struct SubgoalCost<'a> {
    pub distance: GoalCost<'a>,
    pub level2: &'a Level2Nets,
    pub critic2: &'a CriticNet,
    /// The subgoal `[1, dh]`.
    pub subgoal: Tensor,
    pub max_steps: i64,
    pub weight: f64,
}

impl Objective for SubgoalCost<'_> {
    fn cost(&self, states: &Tensor, actions: &Tensor) -> Tensor {
        let (n, h) = (states.size()[0], states.size()[1]);
        let abstracted = self.level2.abstract_state(&states.flatten(0, 1));
        let steps = self
            .critic2
            .distance(&abstracted, &self.subgoal)
            .view([n, h])
            * self.max_steps as f64;
        self.distance.cost(&abstracted.view([n, h, -1]), actions)
            + reduce_discounted(&steps, self.distance.cfg.reduce, self.distance.cfg.discount)
                * self.weight
    }
}

impl Objective for GoalCost<'_> {
    fn cost(&self, states: &Tensor, actions: &Tensor) -> Tensor {
        let mut c = action_terms(actions, &self.cfg);
        if self.cfg.goal_weight != 0.0 {
            // Skipped when weightless: at level 2 it costs an abstraction pass per candidate.
            let s = match self.abstraction {
                Some(l2) => l2.abstract_state(states),
                None => states.shallow_clone(),
            };
            c = c + reduce_discounted(
                &distance(&s, &self.goal, self.cfg.distance),
                self.cfg.reduce,
                self.cfg.discount,
            ) * self.cfg.goal_weight;
        }
        if let Some((critic, goal, max_steps)) = &self.critic {
            let (n, h) = (states.size()[0], states.size()[1]);
            let steps =
                critic.distance(&states.flatten(0, 1), goal).view([n, h]) * *max_steps as f64;
            c = c + reduce_discounted(&steps, self.cfg.reduce, self.cfg.discount) * self.cfg.critic;
        }
        c
    }
}

/// A level-1 cost under an ensemble of predictors: the unroll stacks its `members`
/// predictions member-major (`[K * N, H, D]`, see `WorldModel::rollout_members`); a
/// candidate costs the mean of `inner` over the members (PETS's expected cost) plus
/// `disagreement` times their spread (see `CostConfig::disagreement`).
pub struct EnsembleCost<'a> {
    pub inner: Box<dyn Objective + 'a>,
    pub members: i64,
    pub disagreement: f64,
}

impl Objective for EnsembleCost<'_> {
    fn cost(&self, states: &Tensor, actions: &Tensor) -> Tensor {
        let (k, n, h) = (self.members, actions.size()[0], actions.size()[1]);
        assert_eq!(
            states.size()[0],
            k * n,
            "an ensemble cost needs every member's states (LatentUnroll::each_member)"
        );
        let each = self
            .inner
            .cost(states, &actions.repeat([k, 1, 1]))
            .view([k, n]);
        let mut c = each.mean_dim([0i64].as_slice(), false, Kind::Float);
        if self.disagreement > 0.0 {
            let spread = states
                .view([k, n, h, -1])
                .var_correction([0i64].as_slice(), 0, false)
                .sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)
                .clamp_min(1e-12)
                .sqrt()
                .sum_dim_intlist([-1i64].as_slice(), false, Kind::Float);
            c = c + spread * self.disagreement;
        }
        c
    }
}

/// One model's share of a [`CommitteeCost`]: its cost, how many predictions per candidate
/// its unroll returns (its ensemble's members, or 1), and its weight among the models.
pub struct CommitteePart<'a> {
    pub objective: Box<dyn Objective + 'a>,
    pub rows: i64,
    pub weight: f64,
}

/// A cost under a committee of separately trained models, each in its own latent space: the
/// unroll stacks their predictions model-major (`[sum(rows) * N, H, D]`, see
/// `agent::CommitteeUnroll`); a candidate costs the weighted mean of the models' own costs
/// plus `disagreement` times their (weighted) standard deviation over the models.
pub struct CommitteeCost<'a> {
    pub parts: Vec<CommitteePart<'a>>,
    pub disagreement: f64,
}

impl Objective for CommitteeCost<'_> {
    fn cost(&self, states: &Tensor, actions: &Tensor) -> Tensor {
        let n = actions.size()[0];
        let sizes: Vec<i64> = self.parts.iter().map(|p| p.rows * n).collect();
        assert_eq!(
            states.size()[0],
            sizes.iter().sum::<i64>(),
            "a committee cost needs every model's states, model-major"
        );
        let costs: Vec<Tensor> = states
            .split_with_sizes(sizes.as_slice(), 0)
            .iter()
            .zip(&self.parts)
            .map(|(s, p)| p.objective.cost(s, actions))
            .collect();
        let costs = Tensor::stack(&costs, 0);
        // Equal weights (the usual committee): the plain mean and spread, as before weights
        // existed, so results measured then stay bit-identical.
        if self.parts.iter().all(|p| p.weight == self.parts[0].weight) {
            let mean = costs.mean_dim([0i64].as_slice(), false, costs.kind());
            if self.disagreement == 0.0 {
                return mean;
            }
            let spread = costs.std_dim([0i64].as_slice(), false, false);
            return mean + spread * self.disagreement;
        }
        let total: f64 = self.parts.iter().map(|p| p.weight).sum();
        let weights: Vec<f32> = self
            .parts
            .iter()
            .map(|p| (p.weight / total) as f32)
            .collect();
        let weights = Tensor::from_slice(&weights)
            .to_device(costs.device())
            .to_kind(costs.kind())
            .view([-1, 1]);
        let mean = (&costs * &weights).sum_dim_intlist([0i64].as_slice(), false, costs.kind());
        if self.disagreement == 0.0 {
            return mean;
        }
        let spread = ((&costs - &mean).square() * &weights)
            .sum_dim_intlist([0i64].as_slice(), false, costs.kind())
            .sqrt();
        mean + spread * self.disagreement
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn each_reduction_weighs_the_steps_as_documented() {
        let per_step =
            Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 8.0]).view([2, 4]);
        let got = |r, g| Vec::<f32>::try_from(reduce_discounted(&per_step, r, g)).unwrap();
        assert_eq!(got(Reduce::Sum, 1.0), vec![10.0, 8.0]);
        assert_eq!(got(Reduce::Last, 1.0), vec![4.0, 8.0]);
        // Weights 1, 1/2, 1/4, 1/8; the last step alone ignores the discount.
        assert_eq!(got(Reduce::Sum, 0.5), vec![3.25, 1.0]);
        assert_eq!(got(Reduce::Last, 0.5), vec![4.0, 8.0]);
    }

    /// Sums each candidate's states: a cost that tells members apart.
    struct SumOfStates;
    impl Objective for SumOfStates {
        fn cost(&self, states: &Tensor, _actions: &Tensor) -> Tensor {
            states.sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Float)
        }
    }

    #[test]
    fn ensemble_cost_is_the_members_mean_plus_their_spread() {
        // 2 members, 3 candidates, 2 steps, 2 dims; member-major.
        let opts = (Kind::Float, Device::Cpu);
        let first = Tensor::zeros([3, 2, 2], opts);
        let second = Tensor::ones([3, 2, 2], opts) * 2.0;
        let states = Tensor::cat(&[&first, &second], 0);
        let actions = Tensor::zeros([3, 2, 2], opts);
        let cost = |disagreement| {
            let c = EnsembleCost {
                inner: Box::new(SumOfStates),
                members: 2,
                disagreement,
            }
            .cost(&states, &actions);
            Vec::<f32>::try_from(c).unwrap()
        };
        // Member costs 0 and 8: mean 4.
        assert_eq!(cost(0.0), vec![4.0; 3]);
        // Per dimension the members are 0 and 2: std 1, norm sqrt(2) per step, two steps.
        let spread = 2.0 * 2f32.sqrt();
        for c in cost(0.5) {
            assert!((c - (4.0 + 0.5 * spread)).abs() < 1e-5, "{c}");
        }
        // Members that agree have no spread.
        let agree = Tensor::cat(&[&second, &second], 0);
        let c = EnsembleCost {
            inner: Box::new(SumOfStates),
            members: 2,
            disagreement: 1.0,
        }
        .cost(&agree, &actions);
        assert!((c - 8.0).abs().max().double_value(&[]) < 1e-4);
    }

    #[test]
    fn committee_cost_is_the_mean_of_each_models_own_cost() {
        // 2 candidates; model A returns 1 row per candidate, model B (2 members) 2 rows.
        let opts = (Kind::Float, Device::Cpu);
        let a = Tensor::from_slice(&[1.0f32, 2.0]).view([2, 1, 1]);
        let b = Tensor::from_slice(&[10.0f32, 20.0, 30.0, 40.0]).view([4, 1, 1]);
        let states = Tensor::cat(&[&a, &b], 0);
        let actions = Tensor::zeros([2, 1, 2], opts);
        let committee = CommitteeCost {
            parts: vec![
                CommitteePart {
                    objective: Box::new(SumOfStates),
                    rows: 1,
                    weight: 1.0,
                },
                CommitteePart {
                    objective: Box::new(EnsembleCost {
                        inner: Box::new(SumOfStates),
                        members: 2,
                        disagreement: 0.0,
                    }),
                    rows: 2,
                    weight: 1.0,
                },
            ],
            disagreement: 0.0,
        };
        let c = Vec::<f32>::try_from(committee.cost(&states, &actions)).unwrap();
        // Model B's members are rows (10, 20) and (30, 40): candidate means 20 and 30.
        assert_eq!(c, vec![(1.0 + 20.0) / 2.0, (2.0 + 30.0) / 2.0]);
        // Their disagreement: the (population) standard deviation of the two models' costs,
        // half their gap, so at weight 1 the larger cost.
        let spread = CommitteeCost {
            disagreement: 0.5,
            ..committee
        };
        let c = Vec::<f32>::try_from(spread.cost(&states, &actions)).unwrap();
        assert_eq!(c, vec![10.5 + 0.5 * 9.5, 16.0 + 0.5 * 14.0]);
        // Model B weighing three times model A: means (1 + 3 * 20) / 4 and (2 + 3 * 30) / 4,
        // and a weighted spread sqrt(1/4 * 3/4) times the gap.
        let mut weighted = spread;
        weighted.parts[1].weight = 3.0;
        let c = Vec::<f32>::try_from(weighted.cost(&states, &actions)).unwrap();
        let spread = |gap: f32| 0.5 * gap * (0.75f32 * 0.25).sqrt();
        let want = [15.25 + spread(19.0), 23.0 + spread(28.0)];
        assert!(
            c.iter().zip(want).all(|(c, w)| (c - w).abs() < 1e-4),
            "{c:?} vs {want:?}"
        );
    }
}
