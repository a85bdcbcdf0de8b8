//! The planning agent: receding-horizon MPC over the world model, one short-term memory per
//! sandbox it serves, warm-started from the shifted previous plan.

use std::time::Instant;

use tch::{Device, Kind, Tensor};

use crate::model::world_model::UpperLevel;
use crate::model::{TrainedModel, WorldModel};
use crate::plan::oracle::{SandboxEncoded, SandboxModel};
use crate::plan::{make_planner, shift_plan, ActionBox, Planner, Search, Unroll};
use crate::sim::{Env, Observation};

use super::config::{AgentFile, PlanningConfig, SeenBy};
use super::landmarks::*;
use super::objective::*;
use super::subgoals::*;
use super::unroll::*;
use crate::data::actor::{ActTiming, Actor};

/// Short-term memory of one sandbox the agent serves: its goal, current plans, how much of
/// each was executed, the subgoal, and its own seeded planners.
pub(super) struct Memory {
    pub(super) goal_z: Tensor,
    pub(super) goal_h: Option<Tensor>,
    /// The goal as each peer (`planning.peers`) encodes it: z, and h with level 2.
    pub(super) peer_goals: Vec<PeerGoal>,
    pub(super) plan: Option<Tensor>,
    pub(super) executed: i64,
    pub(super) upper_plan: Option<Tensor>,
    pub(super) upper_age: i64,
    pub(super) subgoal: Option<Tensor>,
    /// The upper level's way ahead `[H, dh]`, subgoal first: the states its plan predicts, or
    /// the landmarks of the path and then the goal.
    pub(super) upper_states: Option<Tensor>,
    pub(super) planner: Box<dyn Planner>,
    pub(super) upper: Option<Box<dyn Planner>>,
    /// z at the last replan (for the offset correction).
    pub(super) replanned_from: Option<Tensor>,
    /// With landmarks: each landmark's cost to this episode's goal along the graph.
    pub(super) landmarks_to_goal: Option<Vec<f32>>,
    /// The last action taken (scene units), from which the rest of the plan is drawn.
    pub(super) last_action: [f32; 2],
}

/// The goal as one peer of the committee encodes it.
pub(super) struct PeerGoal {
    pub(super) z: Tensor,
    /// Its level-2 state (with level 2).
    pub(super) h: Option<Tensor>,
}

impl Memory {
    /// The goal's level-2 state (abstracted from `goal_z` on first use when the reset did not).
    pub(super) fn goal_h(&mut self, upper: UpperLevel<'_>) -> Tensor {
        let goal_z = &self.goal_z;
        self.goal_h
            .get_or_insert_with(|| upper.abstract_state(goal_z))
            .shallow_clone()
    }

    /// Whether the lower level replans at this step (no plan yet, or `every` steps of it run).
    fn replan_due(&self, every: i64) -> bool {
        self.plan.is_none() || self.executed >= every
    }
}

/// A loaded agent: world model, cost, planner(s), and one short-term memory per sandbox it
/// serves. Observations of all sandboxes that replan in a step go through the encoder as one
/// batch (`act_batch`).
pub struct PlanningAgent {
    pub agent: AgentFile,
    pub cfg: PlanningConfig,
    pub(super) trainer: TrainedModel,
    pub(super) device: Device,
    pub(super) space: ActionBox,
    /// Where `agent.x` (then `agent.y`) sits in the observed state, when the model's actions
    /// are offsets from the agent.
    pub(super) agent_position: Option<usize>,
    pub(super) memories: Vec<Option<Memory>>,
    /// The committee's further models (`planning.peers`), in the file's order.
    pub(super) peers: Vec<TrainedModel>,
    /// A diagnostic that replaces a part of the agent by the sandbox's truth, or none.
    pub diagnostic: Diagnostic,
    /// The landmark graph (`[planning.landmarks]`).
    pub(super) landmarks: Option<Landmarks>,
    /// The sandbox at sandbox 0's last replan (with [`Diagnostic::SandboxDynamics`]).
    pub(super) sandbox: Option<SandboxModel>,
    /// The state models that predict the candidates (`planning.dynamics`), in the file's order.
    pub(super) dynamics: Vec<TrainedModel>,
}

/// Diagnostics that replace a part of the learned agent by the sandbox's truth, to tell
/// whose failure an episode is. Both read the true state in `Actor::act`, so they serve one
/// sandbox at a time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Diagnostic {
    #[default]
    None,
    /// `hjepa eval --waypoint-subgoals`: a hierarchical agent's subgoal is the abstract state
    /// of the agent at rest at the scene expert's next waypoint, instead of the upper
    /// level's plan.
    WaypointSubgoals,
    /// `hjepa eval --sandbox-dynamics`: level 1 plans on the sandbox's own dynamics
    /// (candidates replayed on it, their observations encoded) instead of the predictor's,
    /// with the agent's cost.
    SandboxDynamics,
}

impl PlanningAgent {
    pub fn model(&self) -> &WorldModel {
        &self.trainer.model
    }

    /// Level-2 states h of observations `[n, dh]` (None without level 2).
    pub fn abstract_states(&self, obs: &[&Observation]) -> Option<Tensor> {
        let upper = self.trainer.model.upper()?;
        Some(upper.abstract_state(&self.encode_batch(obs)))
    }

    /// The hierarchical planner's way ahead at level 2, subgoal first `[H, dh]`: the states
    /// its upper plan predicts, or its landmark path and the goal (sandbox 0; None for a flat
    /// planner or before the first plan).
    pub fn upper_states(&self) -> Option<Tensor> {
        self.memories
            .first()?
            .as_ref()?
            .upper_states
            .as_ref()
            .map(|t| t.shallow_clone())
    }

    /// Whether sandbox 0 replans its lower level at this step (the single-sandbox
    /// diagnostics read the env just before).
    fn first_replan_due(&self) -> bool {
        let every = self.cfg.planner.replan_every;
        self.memories
            .first()
            .and_then(|m| m.as_ref())
            .is_some_and(|m| m.replan_due(every))
    }

    /// Before a lower-level replan of sandbox 0, sets its subgoal to the abstract state of the
    /// agent at rest at the next waypoint (other bodies where the episode started them).
    fn set_waypoint_subgoal(&mut self, env: &Env) {
        if !self.first_replan_due() {
            return;
        }
        let mut layout = env.layout().clone();
        layout.agent_start = crate::data::policy::next_waypoint(env);
        let waypoint = Env::new(env.scene().clone()).reset_to(layout);
        // The eval mode is refused for a one-level agent.
        let Some(h) = self.abstract_states(&[&waypoint]) else {
            return;
        };
        if let Some(m) = self.memories[0].as_mut() {
            m.upper_states = Some(h.shallow_clone());
            m.subgoal = Some(h);
        }
    }

    /// Encodes observations `[n]` in one forward pass: `[n, D]`.
    fn encode_batch(&self, obs: &[&Observation]) -> Tensor {
        encode_observations(
            &self.trainer.model,
            self.agent.perception.observation,
            self.device,
            obs,
        )
    }

    /// Before a lower-level replan of sandbox 0, snapshots the env for planning on its
    /// dynamics ([`Diagnostic::SandboxDynamics`]).
    fn snapshot_sandbox(&mut self, env: &Env) {
        if !self.first_replan_due() {
            return;
        }
        let scratch = match self.sandbox.take() {
            Some(s) => s.into_scratch(),
            None => SandboxModel::seeing_scratch_env(env.scene()),
        };
        self.sandbox = Some(SandboxModel::new(env, scratch, self.space.clone()));
    }

    /// Starts an episode in sandbox `slot` toward the goal shown by `goal`; planners are
    /// seeded from `seed`, so an episode plans the same whatever else the agent serves.
    pub fn reset_slot(&mut self, slot: usize, goal: &Observation, seed: u64) {
        let goal_z = self.encode_batch(&[goal]);
        let goal_h = abstract_goal(&self.trainer.model, &goal_z);
        let kind = self.agent.perception.observation;
        let peer_goals = self
            .peers
            .iter()
            .map(|p| {
                let z = encode_observations(&p.model, kind, self.device, &[goal]);
                PeerGoal {
                    h: abstract_goal(&p.model, &z),
                    z,
                }
            })
            .collect();
        if self.memories.len() <= slot {
            self.memories.resize_with(slot + 1, || None);
        }
        self.memories[slot] = Some(Memory {
            goal_z,
            goal_h,
            peer_goals,
            plan: None,
            executed: 0,
            upper_plan: None,
            upper_age: 0,
            subgoal: None,
            upper_states: None,
            planner: make_planner(&self.cfg.planner, seed),
            upper: self
                .cfg
                .upper
                .as_ref()
                .map(|u| make_planner(u, seed ^ 0x0A11)),
            replanned_from: None,
            landmarks_to_goal: None,
            last_action: [0.0; 2],
        });
    }

    /// The next action of each listed sandbox (scene units) and its planning time. The
    /// sandboxes that must replan are encoded together, then planned one by one.
    pub fn act_batch(
        &mut self,
        slots: &[usize],
        obs: &[&Observation],
    ) -> Vec<([f32; 2], ActTiming)> {
        let every = self.cfg.planner.replan_every;
        let due: Vec<usize> = (0..slots.len())
            .filter(|&i| {
                self.memories[slots[i]]
                    .as_ref()
                    .is_some_and(|m| m.replan_due(every))
            })
            .collect();
        let mut timing = vec![ActTiming::default(); slots.len()];
        if !due.is_empty() {
            let t = Instant::now();
            let batch: Vec<&Observation> = due.iter().map(|&i| obs[i]).collect();
            let z = self.encode_batch(&batch);
            let kind = self.agent.perception.observation;
            let peer_z: Vec<Tensor> = self
                .peers
                .iter()
                .map(|p| encode_observations(&p.model, kind, self.device, &batch))
                .collect();
            let state_z: Vec<Tensor> = self
                .dynamics
                .iter()
                .map(|d| encode_observations(&d.model, kind, self.device, &batch))
                .collect();
            let encode_share = t.elapsed().as_secs_f64() / due.len() as f64;
            for (row, &i) in due.iter().enumerate() {
                let t = Instant::now();
                let row = row as i64;
                let peers_z0 = peer_z.iter().map(|z| z.narrow(0, row, 1)).collect();
                let s0 = state_z.iter().map(|z| z.narrow(0, row, 1)).collect();
                self.replan(slots[i], z.narrow(0, row, 1), peers_z0, s0);
                timing[i] = ActTiming {
                    planning_s: encode_share + t.elapsed().as_secs_f64(),
                    replanned: true,
                };
            }
        }
        slots
            .iter()
            .zip(obs)
            .zip(timing)
            .map(|((&slot, obs), timing)| {
                let m = self.memories[slot].as_mut().expect("reset_slot called");
                let plan = m.plan.as_ref().expect("planned");
                let x: Vec<f32> = Vec::try_from(
                    plan.get(m.executed)
                        .to_kind(Kind::Float)
                        .to_device(Device::Cpu),
                )
                .expect("float plan");
                m.executed += 1;
                m.upper_age += 1;
                // Offsets are taken from the agent's observed position (its proprioception).
                let at = self
                    .agent_position
                    .map_or([0.0; 2], |i| [obs.state[i], obs.state[i + 1]]);
                let a = self.space.to_scene(&x, at);
                m.last_action = [a[0], a[1]];
                (m.last_action, timing)
            })
            .collect()
    }

    /// Replans sandbox `slot` from its encoded observation `z0` `[1, D]` (both levels when
    /// due), each peer's encoding of it `peers_z0`, and each state model's `s0` (with
    /// `planning.dynamics`).
    fn replan(&mut self, slot: usize, z0: Tensor, peers_z0: Vec<Tensor>, s0: Vec<Tensor>) {
        let model = &self.trainer.model;
        let m = self.memories[slot].as_mut().expect("reset_slot called");
        // Sandbox 0 under the diagnostic plans on the sandbox's own dynamics, which need no
        // correction.
        let sandbox = self
            .sandbox
            .as_ref()
            .filter(|_| self.diagnostic == Diagnostic::SandboxDynamics && slot == 0);
        let correct = self.cfg.offset_correction && sandbox.is_none();
        let offset = correct
            .then(|| offset_since_last_replan(model, &self.space, m, &z0))
            .flatten();
        m.replanned_from = Some(z0.shallow_clone());
        let latent = LatentUnroll {
            model,
            z0: z0.shallow_clone(),
            offset,
            each_member: model.members() > 1,
        };
        let (kind, device) = (self.agent.perception.observation, self.device);
        let encode = |obs: &[&Observation]| encode_observations(model, kind, device, obs);
        let (on_states, joining) = match sandbox {
            Some(_) => (None, None),
            None => state_model_unrolls(&self.cfg, model, &self.dynamics, &self.peers, s0),
        };
        // Under the sandbox diagnostic the committee's predictors are replaced too.
        let committee = (sandbox.is_none()
            && on_states.is_none()
            && (!self.peers.is_empty() || joining.is_some()))
        .then(|| committee_unroll(&latent, &self.peers, &peers_z0, joining));
        let on_sandbox;
        let (unroll, members): (&dyn Unroll, i64) = match sandbox {
            Some(sandbox) => {
                on_sandbox = SandboxEncoded {
                    sandbox,
                    encode: &encode,
                    device,
                };
                (&on_sandbox, 1)
            }
            // The cost must take the members apart exactly when the unroll returns them.
            None => match (&on_states, &committee) {
                (Some(s), _) => (s, s.rows()),
                (None, Some(c)) => (c, latent.rows()),
                (None, None) => (&latent, latent.rows()),
            },
        };
        let warm = m.plan.as_ref().map(|p| shift_plan(p, m.executed));
        let search = LowerSearch {
            unroll,
            members,
            disagreement: self.cfg.cost.disagreement,
            space: &self.space,
            warm: warm.as_ref(),
        };
        // The loader refuses a hierarchical agent whose model has no level 2.
        let upper = model.upper().filter(|_| self.cfg.hierarchical());
        let plan = if let Some(upper) = upper {
            // The upper level, at its own rate: a landmark of the graph, or the first state
            // of a macro-action plan (unless the waypoint diagnostic set the subgoal).
            if self.diagnostic != Diagnostic::WaypointSubgoals {
                if let Some(lm) = &self.landmarks {
                    lm.refresh_subgoal(upper, m, &z0);
                }
                refresh_macro_subgoal(&self.cfg, upper, m, &z0);
            }
            plan_toward_subgoal(&self.cfg, upper, m, &search)
        } else {
            let committee = Committee {
                peers: &self.peers,
                unroll: committee.as_ref(),
                on_states: on_states.as_ref(),
            };
            plan_flat(&self.cfg, model, committee, m, &search)
        };
        m.plan = Some(plan.actions);
        m.executed = 0;
    }
}

/// The committee of a flat plan: the peers, and the unroll that runs them with the state
/// models (or that runs the state models for every encoder).
struct Committee<'a> {
    peers: &'a [TrainedModel],
    unroll: Option<&'a CommitteeUnroll<'a>>,
    on_states: Option<&'a StateModelUnroll<'a>>,
}

/// A flat plan: every scorer's cost toward its encoding of the goal, mixed by the file's
/// cost, minimised by this sandbox's planner.
fn plan_flat(
    cfg: &PlanningConfig,
    model: &WorldModel,
    committee: Committee<'_>,
    m: &mut Memory,
    search: &LowerSearch,
) -> crate::plan::Plan {
    let goals = Goals {
        z: &m.goal_z,
        h: m.goal_h.as_ref(),
        peers: &m.peer_goals,
    };
    let scorers = flat_scorers(
        cfg,
        model,
        committee.peers,
        goals,
        search.members,
        committee.unroll,
        committee.on_states,
    );
    let objective = flat_objective(cfg, &scorers, search.disagreement);
    m.planner.plan(Search {
        unroll: search.unroll,
        objective: objective.as_ref(),
        space: search.space,
        warm: search.warm,
    })
}

/// The state models' unroll (`planning.dynamics`), from their states `s0`: predicting for
/// every scorer's encoder (replacing the predictors; first), or joining the committee as one
/// more model seen through the checkpoint's encoder (or, `dynamics_seen_by = "every"`,
/// through each model's; second).
fn state_model_unrolls<'a>(
    cfg: &PlanningConfig,
    model: &'a WorldModel,
    dynamics: &'a [TrainedModel],
    peers: &'a [TrainedModel],
    s0: Vec<Tensor>,
) -> (Option<StateModelUnroll<'a>>, Option<StateModelUnroll<'a>>) {
    let joined = cfg.dynamics.joined();
    let every_encoder = joined.is_none_or(|j| j.seen_by == SeenBy::Every);
    let on_states = (!dynamics.is_empty()).then(|| {
        let dynamics: Vec<&WorldModel> = dynamics.iter().map(|d| &d.model).collect();
        StateModelUnroll {
            each_member: dynamics.iter().map(|d| d.members()).sum::<i64>() > 1,
            dynamics,
            s0,
            encoders: match every_encoder {
                false => vec![model],
                true => std::iter::once(model)
                    .chain(peers.iter().map(|p| &p.model))
                    .collect(),
            },
        }
    });
    match joined.is_some() {
        true => (None, on_states),
        false => (on_states, None),
    }
}

/// The checkpoint's latent unroll, the peers' from their own encodings `peers_z0`, and the
/// state models that join them (last).
fn committee_unroll<'a>(
    latent: &LatentUnroll<'a>,
    peers: &'a [TrainedModel],
    peers_z0: &[Tensor],
    joining: Option<StateModelUnroll<'a>>,
) -> CommitteeUnroll<'a> {
    CommitteeUnroll {
        models: std::iter::once(latent.shallow())
            .chain(peers.iter().zip(peers_z0).map(|(p, z)| LatentUnroll {
                model: &p.model,
                z0: z.shallow_clone(),
                offset: None,
                each_member: p.model.members() > 1,
            }))
            .collect(),
        state_model: joining,
    }
}

/// Offset-free MPC: the gap between the observed `z0` and what the model predicted for it
/// from the last replan's z and the actions taken since (per step); None before that.
fn offset_since_last_replan(
    model: &WorldModel,
    space: &ActionBox,
    m: &Memory,
    z0: &Tensor,
) -> Option<Tensor> {
    let (Some(z_prev), Some(plan)) = (&m.replanned_from, &m.plan) else {
        return None;
    };
    if m.executed == 0 {
        return None;
    }
    let from_last = LatentUnroll {
        model,
        z0: z_prev.shallow_clone(),
        offset: None,
        each_member: false,
    };
    let taken = space.project(&plan.narrow(0, 0, m.executed));
    Some(executed_offset(&from_last, &taken, z0))
}

impl Actor for PlanningAgent {
    fn reset(&mut self, env: &mut Env, seed: u64) {
        let goal = env.goal_observation();
        self.reset_slot(0, &goal, seed);
    }

    fn act(&mut self, env: &Env, obs: &Observation) -> ([f32; 2], ActTiming) {
        match self.diagnostic {
            Diagnostic::None => {}
            Diagnostic::WaypointSubgoals => self.set_waypoint_subgoal(env),
            Diagnostic::SandboxDynamics => self.snapshot_sandbox(env),
        }
        self.act_batch(&[0], &[obs])[0]
    }

    fn planned_actions(&self) -> Vec<[f32; 2]> {
        match self.memories.first().and_then(|m| m.as_ref()) {
            Some(m) => remaining(m.plan.as_ref(), m.executed, &self.space, m.last_action),
            None => Vec::new(),
        }
    }
}

/// Rows `from..` of a plan `[H, A]` in normalised units, mapped to scene units. Offsets
/// from the agent are chained from `agent`, taking each target as where the agent will be
/// when the next is set (a PD target is reached within an env step).
pub(super) fn remaining(
    plan: Option<&Tensor>,
    from: i64,
    space: &ActionBox,
    mut agent: [f32; 2],
) -> Vec<[f32; 2]> {
    let Some(plan) = plan else { return Vec::new() };
    let rows: Vec<Vec<f32>> =
        Vec::try_from(plan.to_kind(Kind::Float).to_device(Device::Cpu)).unwrap_or_default();
    rows.iter()
        .skip(from.max(0) as usize)
        .map(|x| {
            let a = space.to_scene(x, agent);
            agent = [a[0], a[1]];
            agent
        })
        .collect()
}
