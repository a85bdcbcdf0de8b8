//! `hjepa bench plan`: milliseconds per replan for CEM, MPPI, gradient descent, MPPI on an
//! ensemble of predictors and on a committee of two such models, the hierarchical planner and the oracle (sandbox) model, at the
//! budget of the shipped two_rooms agent file. The model has fresh weights: planning cost does not depend on them.

use std::sync::Arc;

use tch::{Device, Tensor};

use super::latency_ms;
use crate::agent::{AbstractUnroll, CommitteeUnroll, LatentUnroll};
use crate::agent::{AgentFile, PlanningConfig};
use crate::cost::{CommitteeCost, CommitteePart, CostConfig, EnsembleCost, GoalCost, Reduce};
use crate::model::config::ObservationKind;
use crate::model::encoder::observation_tensor;
use crate::model::world_model::{CriticNet, Level2Nets, ModelShapes, WorldModel};
use crate::model::Trainer;
use crate::plan::hierarchical::{plan_lower, plan_upper};
use crate::plan::oracle::{SandboxModel, TrueCost};
use crate::plan::{make_planner, ActionBox, Objective, PlannerConfig, PlannerKind, Search};
use crate::sim::{Env, Observation, Scene};

/// Level-1 predictors in each model of the ensemble and committee rows (`[level1] ensemble`).
const MEMBERS: i64 = 5;

pub fn plan_table(seconds: f64) -> anyhow::Result<String> {
    let s = Setup::load()?;
    let mut t = format!("hjepa bench plan ({seconds:.1} s per row; two_rooms agent budget, fresh weights, CPU, {} torch threads)\n", tch::get_num_threads());
    t += "| planner | budget | median ms per replan | p95 ms |\n|---|---|---|---|\n";
    let unroll = s.level1_unroll();
    let objective = s.level1_objective();
    for kind in [PlannerKind::Cem, PlannerKind::Mppi, PlannerKind::Gradient] {
        t += &level1_row(&s, kind, &unroll, &objective, seconds).line();
    }
    // The same MPPI on an ensemble of level-1 predictors, then on a committee of two such
    // models (`[planning] peers`), each from its own z.
    let peers = Peers::new(&s);
    let unrolls = peers.unrolls(&s);
    t += &ensemble_row(&s, &peers, &unrolls[0], seconds).line();
    t += &committee_row(&s, &peers, unrolls, seconds).line();
    if let Some(l2) = &s.trainer.model.level2 {
        t += &hierarchical_row(&s, l2, &unroll, seconds).line();
    }
    t += &oracle_row(&s, seconds).line();
    Ok(t)
}

/// One row of the table: what plans, at what budget, and its milliseconds per replan.
struct Row {
    planner: String,
    budget: String,
    median_ms: f64,
    p95_ms: f64,
}

impl Row {
    /// A row from `latency_ms`'s (median, p95).
    fn new(planner: String, budget: String, (median_ms, p95_ms): (f64, f64)) -> Row {
        Row {
            planner,
            budget,
            median_ms,
            p95_ms,
        }
    }

    /// The row as a markdown table line.
    fn line(&self) -> String {
        format!(
            "| {} | {} | {:.1} | {:.1} |\n",
            self.planner, self.budget, self.median_ms, self.p95_ms
        )
    }
}

/// The shipped two_rooms agent and what every row plans from: a fresh model on the CPU, the
/// scene reset with seed 1, and the start and goal observations with their encodings.
struct Setup {
    agent: AgentFile,
    planning: PlanningConfig,
    scene: Arc<Scene>,
    env: Env,
    obs: Observation,
    goal: Observation,
    shapes: ModelShapes,
    trainer: Trainer,
    z0: Tensor,
    zg: Tensor,
    space: ActionBox,
}

impl Setup {
    /// Loads the agent file, its scene and a freshly initialised model of its config.
    fn load() -> anyhow::Result<Setup> {
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
        let shapes = model_shapes(&agent, &scene, &obs);
        let trainer = Trainer::new(agent.model.clone(), &shapes, Device::Cpu);
        let model = &trainer.model;
        let kind = agent.perception.observation;
        let z0 = tch::no_grad(|| model.encode(&observation_tensor(&obs, kind, Device::Cpu)));
        let zg = tch::no_grad(|| model.encode(&observation_tensor(&goal, kind, Device::Cpu)));
        let space = ActionBox::of_space(&scene.agent.action);
        Ok(Setup {
            agent,
            planning,
            scene,
            env,
            obs,
            goal,
            shapes,
            trainer,
            z0,
            zg,
            space,
        })
    }

    /// The agent file's own planner config, which every row's budget starts from.
    fn shipped(&self) -> &PlannerConfig {
        &self.planning.planner
    }

    /// The level-1 model's unroll from the start's encoding (members averaged).
    fn level1_unroll(&self) -> LatentUnroll<'_> {
        LatentUnroll {
            model: &self.trainer.model,
            z0: self.z0.shallow_clone(),
            offset: None,
            each_member: false,
        }
    }

    /// Level 1 plans on the shipped cost (two_rooms: the critic's cost-to-go, with the
    /// fresh critic net).
    fn level1_objective(&self) -> GoalCost<'_> {
        GoalCost {
            cfg: self.planning.cost.clone(),
            goal: self.zg.shallow_clone(),
            abstraction: None,
            critic: critic_term(&self.trainer.model, &self.zg, &self.planning.cost),
        }
    }

    /// The hierarchical rows plan on latent distances instead, HWM's scheme.
    fn distance_cost(&self) -> CostConfig {
        CostConfig {
            goal_weight: 1.0,
            critic: 0.0,
            ..self.planning.cost.clone()
        }
    }
}

/// The model's input shapes: an image when the agent perceives pixels, else the state.
fn model_shapes(agent: &AgentFile, scene: &Scene, obs: &Observation) -> ModelShapes {
    ModelShapes {
        observation: match &scene.observation.image {
            Some(i) if agent.perception.observation == ObservationKind::Pixels => {
                vec![i.height as i64, i.width as i64, 3]
            }
            _ => vec![obs.state.len() as i64],
        },
        angle_inputs: Vec::new(),
        action_low: [scene.agent.action.low.0, scene.agent.action.low.1],
        action_high: [scene.agent.action.high.0, scene.agent.action.high.1],
    }
}

/// A planner config's budget as the table shows it.
fn budget(c: &PlannerConfig) -> String {
    format!(
        "{} samples x {} iterations, horizon {}",
        c.samples, c.iterations, c.horizon
    )
}

/// The flat planner `kind` at the shipped budget (gradient descent: 8 samples, twice the
/// iterations).
fn level1_row(
    s: &Setup,
    kind: PlannerKind,
    unroll: &LatentUnroll,
    objective: &GoalCost,
    seconds: f64,
) -> Row {
    let shipped = s.shipped();
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
    let latency = latency_ms(seconds, || {
        let _ = p.plan(Search {
            unroll,
            objective,
            space: &s.space,
            warm: None,
        });
    });
    Row::new(format!("{kind:?} (level 1)"), budget(&cfg), latency)
}

/// Two fresh models of `MEMBERS` level-1 predictors each (train seeds 0 and 1): the
/// ensemble row plans on the first, the committee row on both.
struct Peers {
    trainers: Vec<Trainer>,
}

impl Peers {
    /// Builds the two models.
    fn new(s: &Setup) -> Peers {
        let trainers = (0..2)
            .map(|seed| {
                let mut a = s.agent.model.clone();
                a.level1.ensemble = MEMBERS;
                a.train.seed = seed;
                Trainer::new(a, &s.shapes, Device::Cpu)
            })
            .collect();
        Peers { trainers }
    }

    /// Each model's unroll from its own encoding of the start, every member's rollout kept.
    fn unrolls(&self, s: &Setup) -> Vec<LatentUnroll<'_>> {
        self.trainers
            .iter()
            .map(|e| LatentUnroll {
                model: &e.model,
                z0: encode(&e.model, &s.obs, s.agent.perception.observation),
                offset: None,
                each_member: true,
            })
            .collect()
    }

    /// Model `i`'s cost: every member's rollout scored toward its own encoding of the goal,
    /// then averaged, plus their disagreement.
    fn cost(&self, s: &Setup, i: usize) -> EnsembleCost<'_> {
        let model = &self.trainers[i].model;
        let goal = encode(model, &s.goal, s.agent.perception.observation);
        EnsembleCost {
            inner: Box::new(GoalCost {
                cfg: s.planning.cost.clone(),
                goal: goal.shallow_clone(),
                abstraction: None,
                critic: critic_term(model, &goal, &s.planning.cost),
            }),
            members: MEMBERS,
            disagreement: 1.0,
        }
    }
}

/// `o` encoded by `model`, as the agent perceives it.
fn encode(model: &WorldModel, o: &Observation, kind: ObservationKind) -> Tensor {
    tch::no_grad(|| model.encode(&observation_tensor(o, kind, Device::Cpu)))
}

/// The shipped planner on the first peer's ensemble of predictors.
fn ensemble_row(s: &Setup, peers: &Peers, unroll: &LatentUnroll, seconds: f64) -> Row {
    let shipped = s.shipped();
    let ensemble_objective = peers.cost(s, 0);
    let mut p = make_planner(shipped, 0);
    let latency = latency_ms(seconds, || {
        let _ = p.plan(Search {
            unroll,
            objective: &ensemble_objective,
            space: &s.space,
            warm: None,
        });
    });
    Row::new(
        format!(
            "{:?} (level 1, ensemble of {} predictors, disagreement)",
            shipped.kind, MEMBERS
        ),
        budget(shipped),
        latency,
    )
}

/// The shipped planner on a committee of both peers (`[planning] peers`).
fn committee_row(s: &Setup, peers: &Peers, unrolls: Vec<LatentUnroll>, seconds: f64) -> Row {
    let shipped = s.shipped();
    let committee = CommitteeUnroll {
        models: unrolls,
        state_model: None,
    };
    let committee_objective = CommitteeCost {
        parts: (0..peers.trainers.len())
            .map(|i| CommitteePart {
                objective: Box::new(peers.cost(s, i)),
                rows: MEMBERS,
                weight: 1.0,
            })
            .collect(),
        disagreement: 0.0,
    };
    let mut p = make_planner(shipped, 0);
    let latency = latency_ms(seconds, || {
        let _ = p.plan(Search {
            unroll: &committee,
            objective: &committee_objective,
            space: &s.space,
            warm: None,
        });
    });
    Row::new(
        format!(
            "{:?} (level 1, committee of 2 such models, `peers`)",
            shipped.kind
        ),
        budget(shipped),
        latency,
    )
}

/// One replan of the hierarchical planner: the upper plan toward the goal's abstract
/// state, then the lower plan toward its first subgoal.
fn hierarchical_row(s: &Setup, l2: &Level2Nets, unroll: &LatentUnroll, seconds: f64) -> Row {
    let shipped = s.shipped();
    let upper_cfg = s.planning.upper.clone().unwrap_or(PlannerConfig {
        horizon: 16,
        ..shipped.clone()
    });
    let lower_cfg = PlannerConfig {
        horizon: l2.k,
        replan_every: 1,
        ..shipped.clone()
    };
    let (mut upper, mut lower) = (make_planner(&upper_cfg, 0), make_planner(&lower_cfg, 1));
    let h0 = tch::no_grad(|| l2.abstract_state(&s.z0));
    let hg = tch::no_grad(|| l2.abstract_state(&s.zg));
    let up = AbstractUnroll {
        level2: l2,
        h0,
        offset: None,
    };
    let distance_cost = s.distance_cost();
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
    let latency = latency_ms(seconds, || {
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
            unroll,
            &objective_for,
            &r.subgoal,
            &s.space,
            None,
        );
    });
    Row::new(
        "hierarchical (upper + lower, both replanned)".to_string(),
        format!(
            "upper {}, lower horizon {}",
            budget(&upper_cfg),
            lower_cfg.horizon
        ),
        latency,
    )
}

/// MPPI at the shipped budget with the sandbox itself as its model.
fn oracle_row(s: &Setup, seconds: f64) -> Row {
    let oracle_cfg = PlannerConfig {
        kind: PlannerKind::Mppi,
        ..s.shipped().clone()
    };
    let mut p = make_planner(&oracle_cfg, 0);
    let mut scratch = Some(SandboxModel::scratch_env(&s.scene));
    let latency = latency_ms(seconds, || {
        let model = SandboxModel::new(&s.env, scratch.take().expect("scratch"), s.space.clone());
        let _ = p.plan(Search {
            unroll: &model,
            objective: &TrueCost {
                reduce: Reduce::Sum,
            },
            space: &s.space,
            warm: None,
        });
        scratch = Some(model.into_scratch());
    });
    Row::new(
        "MPPI on the oracle (sandbox) model".to_string(),
        budget(&oracle_cfg),
        latency,
    )
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
