//! The hierarchical planner's two levels: the upper plan (macro-actions or landmarks) hands
//! a subgoal down, the lower level plans toward it.

use tch::Tensor;

use crate::cost::{CostConfig, EnsembleCost, GoalCost, SubgoalCost};
use crate::model::world_model::UpperLevel;
use crate::model::WorldModel;
use crate::plan::hierarchical::{plan_lower, plan_upper};
use crate::plan::{shift_plan, ActionBox, Objective, Plan, Unroll};

use super::config::PlanningConfig;
use super::planning_agent::*;
use super::unroll::*;

/// What the level-1 planner searches: its model of the dynamics (the predictor, or the
/// sandbox), the action box, and the warm start.
pub(super) struct LowerSearch<'a> {
    pub(super) unroll: &'a dyn Unroll,
    /// Predictions per candidate the unroll returns: the ensemble's members, or 1.
    pub(super) members: i64,
    /// `planning.cost.disagreement`.
    pub(super) disagreement: f64,
    pub(super) space: &'a ActionBox,
    pub(super) warm: Option<&'a Tensor>,
}

impl LowerSearch<'_> {
    /// The level-1 cost on this search's unroll: `cost` itself, or its mean over the
    /// ensemble's members plus their disagreement.
    fn objective<'b>(&self, cost: Box<dyn Objective + 'b>) -> Box<dyn Objective + 'b> {
        over_members(cost, self.members, self.disagreement)
    }
}

/// `cost` itself for one prediction per candidate, or its mean over `members` plus their
/// disagreement.
pub(super) fn over_members<'b>(
    cost: Box<dyn Objective + 'b>,
    members: i64,
    disagreement: f64,
) -> Box<dyn Objective + 'b> {
    if members == 1 {
        return cost;
    }
    Box::new(EnsembleCost {
        inner: cost,
        members,
        disagreement,
    })
}

/// The goal's level-2 state under `model` (None without level 2).
pub(super) fn abstract_goal(model: &WorldModel, goal_z: &Tensor) -> Option<Tensor> {
    Some(model.upper()?.abstract_state(goal_z))
}

/// HWM's upper level: when due, plans macro-actions toward the goal at level 2, and the
/// first state they predict (`subgoal_jump`) becomes the subgoal of `m`.
pub(super) fn refresh_macro_subgoal(
    cfg: &PlanningConfig,
    upper: UpperLevel<'_>,
    m: &mut Memory,
    z0: &Tensor,
) {
    let Some(upper_cfg) = &cfg.upper else {
        return;
    };
    if m.subgoal.is_some() && m.upper_age < upper_cfg.replan_every {
        return;
    }
    let l2 = upper.nets;
    let goal_h = m.goal_h(upper);
    let h0 = upper.abstract_state(z0);
    // Where the last upper plan said we would be by now, once a jump has passed.
    let jumps = m.upper_age / l2.k;
    let offset = match &m.upper_states {
        Some(states) if cfg.upper_offset_correction && jumps > 0 => {
            let j = jumps.min(states.size()[0]);
            Some((&h0 - states.get(j - 1).unsqueeze(0)) / j as f64)
        }
        _ => None,
    };
    let search = AbstractUnroll {
        level2: l2,
        h0: h0.shallow_clone(),
        offset,
    };
    let objective = GoalCost {
        cfg: CostConfig {
            level: 2,
            ..cfg.cost.clone()
        },
        goal: goal_h.shallow_clone(),
        abstraction: None,
        // The loader refuses a critic weight without a level-2 critic.
        critic: upper
            .critic
            .filter(|_| cfg.cost.critic > 0.0)
            .map(|critic2| (critic2, goal_h.shallow_clone(), upper.critic_max_steps)),
    };
    let warm = m.upper_plan.as_ref().map(|p| shift_plan(p, jumps));
    // The subgoal is the model's own prediction of the chosen macro-actions (uncorrected),
    // and the next correction compares against it.
    let predict = AbstractUnroll {
        level2: l2,
        h0,
        offset: None,
    };
    let Some(planner) = m.upper.as_mut() else {
        return;
    };
    let r = plan_upper(
        planner.as_mut(),
        &search,
        &predict,
        &objective,
        &ActionBox::unit(l2.macro_dim),
        warm.as_ref(),
        cfg.subgoal_jump,
    );
    m.subgoal = Some(r.subgoal);
    m.upper_states = Some(r.states);
    m.upper_plan = Some(r.plan.actions);
    m.upper_age = 0;
}

/// The hierarchical lower level: plans toward the subgoal of `m` by latent distance at
/// level 2 (plus `subgoal_critic` x the level-2 critic's steps to it). The goal's own terms
/// (distance, critic) weigh only the upper level's plans. Without a subgoal yet, the lower
/// level plans toward the goal.
pub(super) fn plan_toward_subgoal(
    cfg: &PlanningConfig,
    upper: UpperLevel<'_>,
    m: &mut Memory,
    search: &LowerSearch,
) -> Plan {
    let l2 = upper.nets;
    let cost_cfg = CostConfig {
        level: 2,
        goal_weight: 1.0,
        ..cfg.cost.clone()
    };
    // The loader refuses `subgoal_critic` without a level-2 critic.
    let subgoal_critic = upper.critic.filter(|_| cfg.subgoal_critic > 0.0);
    let objective_for = |sub: &Tensor| -> Box<dyn Objective + '_> {
        let distance = |abstraction| GoalCost {
            cfg: cost_cfg.clone(),
            goal: sub.shallow_clone(),
            abstraction,
            critic: None,
        };
        search.objective(match subgoal_critic {
            Some(critic2) => Box::new(SubgoalCost {
                distance: distance(None),
                level2: l2,
                critic2,
                subgoal: sub.shallow_clone(),
                max_steps: upper.critic_max_steps,
                weight: cfg.subgoal_critic,
            }),
            None => Box::new(distance(Some(l2))),
        })
    };
    let subgoal = match &m.subgoal {
        Some(s) => s.shallow_clone(),
        None => m.goal_h(upper),
    };
    plan_lower(
        m.planner.as_mut(),
        search.unroll,
        &objective_for,
        &subgoal,
        search.space,
        search.warm,
    )
}
