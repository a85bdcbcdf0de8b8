//! `hjepa bench plan`: milliseconds per replan for CEM, MPPI, gradient descent, MPPI on an
//! ensemble of predictors and on a committee of two such models, the hierarchical planner and the oracle (sandbox) model, at the
//! budget of the shipped two_rooms agent file. The model has fresh weights: planning cost does not depend on them.

use std::sync::Arc;

use tch::{Device, Tensor};

use super::latency_ms;
use crate::agent::AgentFile;
use crate::agent::{AbstractUnroll, CommitteeUnroll, LatentUnroll};
use crate::cost::{CommitteeCost, CommitteePart, CostConfig, EnsembleCost, GoalCost, Reduce};
use crate::model::encoder::observation_tensor;
use crate::model::world_model::{CriticNet, WorldModel};
use crate::model::Trainer;
use crate::plan::hierarchical::{plan_lower, plan_upper};
use crate::plan::oracle::{SandboxModel, TrueCost};
use crate::plan::{make_planner, ActionBox, Objective, PlannerConfig, PlannerKind};
use crate::sim::{Env, Scene};

pub fn plan_table(seconds: f64) -> anyhow::Result<String> {
    let agent_path = AgentFile::resolve_path("two_rooms");
    let agent = AgentFile::load(&agent_path)?;
    let planning = agent
        .planning
        .clone()
        .ok_or_else(|| anyhow::anyhow!("{}: no [planning] table", agent_path.display()))?;
    let scene = Arc::new(Scene::load(&Scene::resolve_path(&agent.scene))?);
    let mut env = Env::new(scene.clone());
    let obs = env.reset(1);
    let goal = env.goal_observation();
    let shapes = crate::model::world_model::ModelShapes {
        observation: match &scene.observation.image {
            Some(i)
                if agent.perception.observation
                    == crate::model::config::ObservationKind::Pixels =>
            {
                vec![i.height as i64, i.width as i64, 3]
            }
            _ => vec![obs.state.len() as i64],
        },
        angle_inputs: Vec::new(),
        action_low: [scene.agent.action.low.0, scene.agent.action.low.1],
        action_high: [scene.agent.action.high.0, scene.agent.action.high.1],
    };
    let trainer = Trainer::new(agent.model.clone(), &shapes, Device::Cpu);
    let model = &trainer.model;
    let kind = agent.perception.observation;
    let z0 = tch::no_grad(|| model.encode(&observation_tensor(&obs, kind, Device::Cpu)));
    let zg = tch::no_grad(|| model.encode(&observation_tensor(&goal, kind, Device::Cpu)));
    let space = ActionBox::of_space(&scene.agent.action);
    // Level 1 plans on the shipped cost (two_rooms: the critic's cost-to-go, with the fresh
    // critic net); the hierarchical rows on latent distances, HWM's scheme.
    let cost = planning.cost.clone();
    let distance_cost = CostConfig {
        goal_weight: 1.0,
        critic: 0.0,
        ..cost.clone()
    };
    let critic_of = |model, goal: &Tensor| critic_term(model, goal, &cost);
    let shipped = planning.planner.clone();
    let budget = |c: &PlannerConfig| {
        format!(
            "{} samples x {} iterations, horizon {}",
            c.samples, c.iterations, c.horizon
        )
    };

    let mut t = format!("hjepa bench plan ({seconds:.1} s per row; two_rooms agent budget, fresh weights, CPU, {} torch threads)\n", tch::get_num_threads());
    t += "| planner | budget | median ms per replan | p95 ms |\n|---|---|---|---|\n";
    let unroll = LatentUnroll {
        model,
        z0: z0.shallow_clone(),
        offset: None,
        each_member: false,
    };
    let objective = GoalCost {
        cfg: cost.clone(),
        goal: zg.shallow_clone(),
        abstraction: None,
        critic: critic_of(model, &zg),
    };
    for kind in [PlannerKind::Cem, PlannerKind::Mppi, PlannerKind::Gradient] {
        let cfg = match kind {
            PlannerKind::Gradient => PlannerConfig {
                kind,
                samples: 8,
                iterations: 2 * shipped.iterations,
                ..shipped.clone()
            },
            _ => PlannerConfig {
                kind,
                ..shipped.clone()
            },
        };
        let mut p = make_planner(&cfg, 0);
        let (m, p95) = latency_ms(seconds, || {
            let _ = p.plan(&unroll, &objective, &space, None);
        });
        t += &format!(
            "| {kind:?} (level 1) | {} | {m:.1} | {p95:.1} |\n",
            budget(&cfg)
        );
    }
    // The same MPPI on an ensemble of five level-1 predictors (`[level1] ensemble`): every
    // member's rollout is scored, then averaged, plus their disagreement.
    let members = 5;
    // Then a committee of two such models (`[planning] peers`), each from its own z.
    let ensembles: Vec<Trainer> = (0..2)
        .map(|seed| {
            let mut a = agent.model.clone();
            a.level1.ensemble = members;
            a.train.seed = seed;
            Trainer::new(a, &shapes, Device::Cpu)
        })
        .collect();
    let encode = |model: &WorldModel, o| {
        tch::no_grad(|| model.encode(&observation_tensor(o, kind, Device::Cpu)))
    };
    let unrolls: Vec<LatentUnroll> = ensembles
        .iter()
        .map(|e| LatentUnroll {
            model: &e.model,
            z0: encode(&e.model, &obs),
            offset: None,
            each_member: true,
        })
        .collect();
    let ensemble_cost = |i: usize| {
        let model = &ensembles[i].model;
        let goal = encode(model, &goal);
        EnsembleCost {
            inner: Box::new(GoalCost {
                cfg: cost.clone(),
                goal: goal.shallow_clone(),
                abstraction: None,
                critic: critic_term(model, &goal, &cost),
            }),
            members,
            disagreement: 1.0,
        }
    };
    let ensemble_objective = ensemble_cost(0);
    let mut p = make_planner(&shipped, 0);
    let (m, p95) = latency_ms(seconds, || {
        let _ = p.plan(&unrolls[0], &ensemble_objective, &space, None);
    });
    t += &format!(
        "| {:?} (level 1, ensemble of {members} predictors, disagreement) | {} | {m:.1} | {p95:.1} |\n",
        shipped.kind,
        budget(&shipped)
    );
    let committee = CommitteeUnroll {
        models: unrolls,
        state_model: None,
    };
    let committee_objective = CommitteeCost {
        parts: (0..ensembles.len())
            .map(|i| CommitteePart {
                objective: Box::new(ensemble_cost(i)),
                rows: members,
                weight: 1.0,
            })
            .collect(),
        disagreement: 0.0,
    };
    let mut p = make_planner(&shipped, 0);
    let (m, p95) = latency_ms(seconds, || {
        let _ = p.plan(&committee, &committee_objective, &space, None);
    });
    t += &format!(
        "| {:?} (level 1, committee of 2 such models, `peers`) | {} | {m:.1} | {p95:.1} |\n",
        shipped.kind,
        budget(&shipped)
    );
    if let Some(l2) = &model.level2 {
        let upper_cfg = planning.upper.clone().unwrap_or(PlannerConfig {
            horizon: 16,
            ..shipped.clone()
        });
        let lower_cfg = PlannerConfig {
            horizon: l2.k,
            replan_every: 1,
            ..shipped.clone()
        };
        let (mut upper, mut lower) = (make_planner(&upper_cfg, 0), make_planner(&lower_cfg, 1));
        let h0 = tch::no_grad(|| l2.abstract_state(&z0));
        let hg = tch::no_grad(|| l2.abstract_state(&zg));
        let up = AbstractUnroll {
            model,
            h0,
            offset: None,
        };
        let upper_objective = GoalCost {
            cfg: CostConfig {
                level: 2,
                ..distance_cost.clone()
            },
            goal: hg,
            abstraction: None,
            critic: None,
        };
        let lower_cost = CostConfig {
            level: 2,
            ..distance_cost.clone()
        };
        let objective_for = |sub: &Tensor| -> Box<dyn Objective + '_> {
            Box::new(GoalCost {
                cfg: lower_cost.clone(),
                goal: sub.shallow_clone(),
                abstraction: Some(l2),
                critic: None,
            })
        };
        let (m, p95) = latency_ms(seconds, || {
            let r = plan_upper(
                upper.as_mut(),
                &up,
                &up,
                &upper_objective,
                &ActionBox::unit(l2.macro_dim),
                None,
                1,
            );
            let _ = plan_lower(
                lower.as_mut(),
                &unroll,
                &objective_for,
                &r.subgoal,
                &space,
                None,
            );
        });
        t += &format!(
            "| hierarchical (upper + lower, both replanned) | upper {}, lower horizon {} | {m:.1} | {p95:.1} |\n",
            budget(&upper_cfg),
            lower_cfg.horizon
        );
    }
    let oracle_cfg = PlannerConfig {
        kind: PlannerKind::Mppi,
        ..shipped.clone()
    };
    let mut p = make_planner(&oracle_cfg, 0);
    let mut scratch = Some(SandboxModel::scratch_env(&scene));
    let (m, p95) = latency_ms(seconds, || {
        let model = SandboxModel::new(&env, scratch.take().expect("scratch"), space.clone());
        let _ = p.plan(
            &model,
            &TrueCost {
                reduce: Reduce::Sum,
            },
            &space,
            None,
        );
        scratch = Some(model.into_scratch());
    });
    t += &format!(
        "| MPPI on the oracle (sandbox) model | {} | {m:.1} | {p95:.1} |\n",
        budget(&oracle_cfg)
    );
    Ok(t)
}

/// The model's critic toward `goal`, for a cost that weighs it.
fn critic_term<'a>(
    model: &'a WorldModel,
    goal: &Tensor,
    cost: &CostConfig,
) -> Option<(&'a CriticNet, Tensor, i64)> {
    model
        .critic
        .as_ref()
        .filter(|_| cost.critic > 0.0)
        .map(|c| (c, goal.shallow_clone(), model.critic_max_steps))
}
