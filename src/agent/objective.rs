//! The flat planner's objective: each committee model scores the candidates against its
//! own encoding of the goal.

use tch::Tensor;

use crate::cost::{CommitteeCost, CommitteePart, GoalCost};
use crate::model::{TrainedModel, WorldModel};
use crate::plan::Objective;

use super::config::PlanningConfig;
use super::planning_agent::PeerGoal;
use super::subgoals::*;
use super::unroll::{CommitteeUnroll, StateModelUnroll};

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

/// The goal as each scorer's encoder sees it (borrowed from a sandbox's memory).
#[derive(Clone, Copy)]
pub(super) struct Goals<'a> {
    pub(super) z: &'a Tensor,
    pub(super) h: Option<&'a Tensor>,
    pub(super) peers: &'a [PeerGoal],
}

/// Who scores a flat plan's candidates: the checkpoint's model, then the peers (when the
/// unroll runs them), then the state models that joined, scored by the checkpoint's
/// encoder (and the peers', seen by every one): pooled, one scorer per encoder; separate,
/// one per encoder and state model, in the unroll's order (encoder-, then model-major).
pub(super) fn flat_scorers<'a>(
    cfg: &PlanningConfig,
    model: &'a WorldModel,
    peers: &'a [TrainedModel],
    goals: Goals<'a>,
    members: i64,
    committee: Option<&CommitteeUnroll>,
    on_states: Option<&StateModelUnroll>,
) -> Vec<FlatScorer<'a>> {
    let mut scorers = vec![FlatScorer {
        model,
        goal_z: goals.z,
        goal_h: goals.h,
        rows: members,
        weight: 1.0,
    }];
    if committee.is_some() || (on_states.is_some() && !peers.is_empty()) {
        scorers.extend(peers.iter().zip(goals.peers).map(|(p, g)| FlatScorer {
            model: &p.model,
            goal_z: &g.z,
            goal_h: g.h.as_ref(),
            rows: match on_states {
                Some(s) => s.rows(),
                None => p.model.members(),
            },
            weight: 1.0,
        }));
    }
    if let Some(joined) = committee.and_then(|c| c.state_model.as_ref()) {
        let seen_by = joined.encoders.len();
        let config = cfg.dynamics.joined();
        let weight = config.map_or(1.0, |j| j.weight);
        let encoders = std::iter::once((model, goals.z, goals.h)).chain(
            peers
                .iter()
                .zip(goals.peers)
                .map(|(p, g)| (&p.model, &g.z, g.h.as_ref())),
        );
        let blocks = joined.scorer_blocks(config.is_some_and(|j| j.separate));
        for (model, goal_z, goal_h) in encoders.take(seen_by) {
            scorers.extend(blocks.iter().map(|&rows| FlatScorer {
                model,
                goal_z,
                goal_h,
                rows,
                weight,
            }));
        }
    }
    scorers
}
