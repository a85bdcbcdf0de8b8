//! Hierarchical planning (HWM's scheme): the upper planner searches macro-actions at level 2
//! toward the goal; the first abstract state it predicts becomes the subgoal that the lower
//! planner's cost pursues at level 1. The agent replans each level at its own rate.

use tch::Tensor;

use super::{ActionBox, Objective, Plan, Planner, Search, Unroll};

/// The upper level's answer: its plan, the abstract states it leads to, and the subgoal.
#[derive(Debug)]
pub struct UpperPlan {
    pub plan: Plan,
    /// The predicted level-2 states after each macro-action `[H, D2]`.
    pub states: Tensor,
    /// The one after `subgoal_jump` macro-actions `[1, D2]`: what the lower level pursues.
    pub subgoal: Tensor,
}

/// Plans at the upper level on `search` and predicts the chosen macro-actions' states with
/// `predict` (the same unroll, or the model's own where `search` adds a correction); the
/// state after `subgoal_jump` macro-actions (1 in HWM) is the subgoal.
pub fn plan_upper(
    planner: &mut dyn Planner,
    search: &dyn Unroll,
    predict: &dyn Unroll,
    objective: &dyn Objective,
    space: &ActionBox,
    warm: Option<&Tensor>,
    subgoal_jump: i64,
) -> UpperPlan {
    let plan = planner.plan(Search {
        unroll: search,
        objective,
        space,
        warm,
    });
    let states = tch::no_grad(|| predict.unroll(&plan.actions.unsqueeze(0))).squeeze_dim(0);
    let subgoal = states.get(subgoal_jump - 1).unsqueeze(0);
    UpperPlan {
        plan,
        states,
        subgoal,
    }
}

/// Plans at the lower level toward a subgoal: `objective_for(subgoal)` builds its cost.
pub fn plan_lower<'a>(
    planner: &mut dyn Planner,
    unroll: &dyn Unroll,
    objective_for: &dyn Fn(&Tensor) -> Box<dyn Objective + 'a>,
    subgoal: &Tensor,
    space: &ActionBox,
    warm: Option<&Tensor>,
) -> Plan {
    let objective = objective_for(subgoal);
    planner.plan(Search {
        unroll,
        objective: objective.as_ref(),
        space,
        warm,
    })
}
