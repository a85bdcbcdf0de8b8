//! Hierarchical planning (HWM's scheme): the upper planner searches macro-actions at level 2
//! toward the goal; the first abstract state it predicts becomes the subgoal that the lower
//! planner's cost pursues at level 1. The agent replans each level at its own rate.

use tch::Tensor;

use super::{ActionBox, Objective, Plan, Planner, Unroll};

/// The upper level's answer: its plan and the subgoal handed down.
#[derive(Debug)]
pub struct UpperPlan {
    pub plan: Plan,
    /// The predicted level-2 state after the first macro-action `[1, D2]`.
    pub subgoal: Tensor,
}

/// Plans at the upper level and extracts the subgoal (the first predicted upper state).
pub fn plan_upper(
    planner: &mut dyn Planner,
    unroll: &dyn Unroll,
    objective: &dyn Objective,
    space: &ActionBox,
    warm: Option<&Tensor>,
) -> UpperPlan {
    let plan = planner.plan(unroll, objective, space, warm);
    let subgoal = tch::no_grad(|| unroll.unroll(&plan.actions.unsqueeze(0)).select(1, 0));
    UpperPlan { plan, subgoal }
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
    planner.plan(unroll, objective.as_ref(), space, warm)
}
