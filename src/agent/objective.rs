//! The flat planner's objective: each committee model scores the candidates against its
//! own encoding of the goal.

use tch::Tensor;

use crate::cost::{CommitteeCost, CommitteePart, GoalCost};
use crate::model::WorldModel;
use crate::plan::Objective;

use super::config::PlanningConfig;
use super::subgoals::*;

/// One model's view of the flat planner's goal: the goal as it encodes it, and how many
/// predictions per candidate its unroll returns.
pub(super) struct FlatScorer<'a> {
    pub(super) model: &'a WorldModel,
    pub(super) goal_z: &'a Tensor,
    pub(super) goal_h: Option<&'a Tensor>,
    pub(super) rows: i64,
    /// Its weight in the committee's mean (`planning.dynamics_weight` for a joined state
    /// model, else 1).
    pub(super) weight: f64,
}

/// The flat planner's cost: the goal terms at its level (latent distance, critic) under
/// each scorer's model, over its ensemble's members; with several models (a committee), the
/// weighted mean of their costs.
pub(super) fn flat_objective<'a>(
    cfg: &PlanningConfig,
    scorers: &[FlatScorer<'a>],
    disagreement: f64,
) -> Box<dyn Objective + 'a> {
    let mut parts: Vec<CommitteePart<'a>> = scorers
        .iter()
        .map(|s| {
            // The loader refuses a level-2 cost, or a critic weight, that the model lacks.
            let upper = s.model.upper().filter(|_| cfg.cost.level == 2);
            let (goal, abstraction) = match upper {
                Some(u) => (
                    s.goal_h
                        .map_or_else(|| u.abstract_state(s.goal_z), Tensor::shallow_clone),
                    Some(u.nets),
                ),
                None => (s.goal_z.shallow_clone(), None),
            };
            let cost = GoalCost {
                cfg: cfg.cost.clone(),
                goal,
                abstraction,
                critic: s
                    .model
                    .critic
                    .as_ref()
                    .filter(|_| cfg.cost.critic > 0.0)
                    .map(|critic| (critic, s.goal_z.shallow_clone(), s.model.critic_max_steps)),
            };
            CommitteePart {
                objective: over_members(Box::new(cost), s.rows, disagreement),
                rows: s.rows,
                weight: s.weight,
            }
        })
        .collect();
    if parts.len() == 1 {
        return parts.pop().expect("one").objective;
    }
    Box::new(CommitteeCost {
        parts,
        disagreement: cfg.cost.peer_disagreement,
    })
}
