//! The oracle: the same planner and budget with the sandbox as the model and the true cost.

use std::time::Instant;

use tch::Tensor;

use crate::cost::Reduce;
use crate::plan::oracle::{SandboxModel, TrueCost};
use crate::plan::{
    make_planner, shift_plan, ActionBox, Planner, PlannerConfig, PlannerKind, Search,
};
use crate::sim::{Env, Observation, Scene};

use super::planning_agent::*;
use crate::data::actor::{ActTiming, Actor};

/// The same planner and budget with the sandbox as the model and the true cost.
pub struct OracleAgent {
    pub(super) cfg: PlannerConfig,
    pub(super) reduce: Reduce,
    pub(super) planner: Box<dyn Planner>,
    pub(super) space: ActionBox,
    pub(super) scratch: Option<Env>,
    pub(super) plan: Option<Tensor>,
    pub(super) executed: i64,
}

impl OracleAgent {
    /// The sandbox is not differentiable: the planner must sample (cem, mppi, shooting).
    pub fn new(cfg: PlannerConfig, reduce: Reduce, scene: &Scene) -> Result<OracleAgent, String> {
        if cfg.kind == PlannerKind::Gradient {
            return Err("the oracle model (the sandbox) is not differentiable: plan it with cem, mppi or shooting".into());
        }
        Ok(OracleAgent {
            planner: make_planner(&cfg, 0),
            cfg,
            reduce,
            space: ActionBox::of_space(&scene.agent.action),
            scratch: None,
            plan: None,
            executed: 0,
        })
    }
}

impl Actor for OracleAgent {
    fn reset(&mut self, _env: &mut Env, seed: u64) {
        self.planner = make_planner(&self.cfg, seed);
        self.plan = None;
        self.executed = 0;
    }

    fn act(&mut self, env: &Env, _obs: &Observation) -> ([f32; 2], ActTiming) {
        let mut timing = ActTiming::default();
        if self.plan.is_none() || self.executed >= self.cfg.replan_every {
            let t = Instant::now();
            let scratch = self
                .scratch
                .take()
                .unwrap_or_else(|| SandboxModel::scratch_env(env.scene()));
            let model = SandboxModel::new(env, scratch, self.space.clone());
            let warm = self.plan.as_ref().map(|p| shift_plan(p, self.executed));
            let plan = self.planner.plan(Search {
                unroll: &model,
                objective: &TrueCost {
                    reduce: self.reduce,
                },
                space: &self.space,
                warm: warm.as_ref(),
            });
            self.scratch = Some(model.into_scratch());
            self.plan = Some(plan.actions);
            self.executed = 0;
            timing = ActTiming {
                planning_s: t.elapsed().as_secs_f64(),
                replanned: true,
            };
        }
        let x: Vec<f32> = Vec::try_from(self.plan.as_ref().expect("planned").get(self.executed))
            .expect("float plan");
        self.executed += 1;
        let a = self.space.to_scene(&x, env.world().agent_position().into());
        ([a[0], a[1]], timing)
    }

    fn planned_actions(&self) -> Vec<[f32; 2]> {
        remaining(self.plan.as_ref(), self.executed, &self.space, [0.0; 2])
    }
}
