//! Assembling a planning agent from an agent file: its checkpoint (inference weights only),
//! the committee's peers, the state models, and the checks that they fit together.

use std::path::{Path, PathBuf};

use tch::Device;

use crate::error::InputError;
use crate::model::checkpoint::check_scene_matches;
use crate::model::config::{ActionFrame, EncoderKind, ObservationKind};
use crate::model::{ModelConfig, TrainedModel};
use crate::plan::ActionBox;
use crate::sim::{Env, Scene};

use super::config::{AgentFile, PlanningConfig};
use super::landmarks::*;
use super::planning_agent::*;

/// Resolves and checks an agent file for planning in a scene; `checkpoint` overrides the
/// file's `planning.checkpoint` run folder.
pub fn load_planning_agent(
    agent_path: &Path,
    scene: &Scene,
    device: Option<crate::device::Device>,
    checkpoint: Option<&Path>,
) -> Result<PlanningAgent, InputError> {
    assemble_planning_agent(
        AgentFile::load(agent_path)?,
        agent_path,
        scene,
        device,
        checkpoint,
    )
}

/// Assembles an agent from a parsed (possibly overridden) agent file; `agent_path` names it
/// in errors and anchors a relative `planning.checkpoint`.
pub fn assemble_planning_agent(
    agent: AgentFile,
    agent_path: &Path,
    scene: &Scene,
    device: Option<crate::device::Device>,
    checkpoint: Option<&Path>,
) -> Result<PlanningAgent, InputError> {
    let Some(cfg) = agent.planning.clone() else {
        return Err(InputError::new(
            agent_path,
            "planning",
            "the agent file has no [planning] table (checkpoint, cost, planner)",
        ));
    };
    cfg.check_horizons(&agent, scene, agent_path)?;
    let run = match checkpoint {
        Some(c) => c.to_path_buf(),
        None => planning_run(&cfg, agent_path)?,
    };
    let device = agent.device(agent_path, device)?;
    let trainer = load_checkpoint(&run, &cfg, &agent, agent_path, device)?;
    let meta = trainer.meta.clone();
    check_scene_matches(scene, &agent, &meta, &run)?;
    let peers = load_peers(&cfg, &agent, agent_path, scene, device)?;
    let dynamics = load_dynamics(&cfg, &agent, agent_path, scene, device)?;
    let landmarks = match &cfg.landmarks {
        Some(l) => Some(Landmarks::load(
            l,
            &agent,
            agent_path,
            &run,
            &meta,
            &trainer.model,
            device,
        )?),
        None => None,
    };
    agent.level1.action_frame.check_scene(scene, agent_path)?;
    agent
        .level1
        .state_frame
        .check_scene(&agent, scene, agent_path)?;
    let (space, agent_position) = action_space(&agent, scene);
    Ok(PlanningAgent {
        agent,
        cfg,
        trainer,
        device,
        space,
        agent_position,
        memories: Vec::new(),
        peers,
        diagnostic: Diagnostic::None,
        landmarks,
        sandbox: None,
        dynamics,
    })
}

/// `LANDMARKS_FILE`'s bytes for the agent file's landmarks on the checkpoint in `run` (placed
/// among its training data, as planning would place them), or None when the agent file plans
/// without landmarks. `hjepa export` ships them beside the weights.
pub fn stored_landmarks(agent_path: &Path, run: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    let agent = AgentFile::load(agent_path)?;
    if agent
        .planning
        .as_ref()
        .and_then(|p| p.landmarks.as_ref())
        .is_none()
    {
        return Ok(None);
    }
    let scene = Scene::load(&Scene::resolve_path(&agent.scene))?;
    let planner = assemble_planning_agent(
        agent,
        agent_path,
        &scene,
        Some(crate::device::Device::Cpu),
        Some(run),
    )?;
    match &planner.landmarks {
        Some(l) => Ok(Some(l.stored_bytes(&planner.trainer.meta)?)),
        None => Ok(None),
    }
}

/// The checkpoint of `run` (the agent file's, or the one given), weights only, with the
/// critic the planning table asks for.
fn load_checkpoint(
    run: &Path,
    cfg: &PlanningConfig,
    agent: &AgentFile,
    agent_path: &Path,
    device: Device,
) -> Result<TrainedModel, InputError> {
    if !run.join("checkpoint/meta.json").exists() && !run.join("checkpoint.old/meta.json").exists()
    {
        return Err(InputError::new(
            agent_path,
            "planning.checkpoint",
            format!(
                "no checkpoint at {} (train one with `hjepa train --agent {} --out {}`)",
                run.display(),
                agent_path.display(),
                run.display()
            ),
        ));
    }
    let trainer = TrainedModel::load(run, Some(&agent.model), device)?;
    if (cfg.cost.critic > 0.0 || cfg.subgoal_critic > 0.0) && trainer.meta.critic.is_none() {
        return Err(InputError::new(
            agent_path,
            if cfg.cost.critic > 0.0 {
                "planning.cost.critic"
            } else {
                "planning.subgoal_critic"
            },
            format!(
                "the critic of {} was never fitted (training stopped before its fitting stage): finish it with `hjepa train --resume`",
                run.display()
            ),
        ));
    }
    Ok(trainer)
}

/// The box plans are searched in, and (acting in the agent's frame) where the agent's
/// position sits in the observed state.
fn action_space(agent: &AgentFile, scene: &Scene) -> (ActionBox, Option<usize>) {
    match agent.level1.action_frame {
        ActionFrame::World => (ActionBox::of_space(&scene.agent.action), None),
        ActionFrame::Agent => {
            let names = Env::new(std::sync::Arc::new(scene.clone())).observation_state_names();
            let x = names.iter().position(|n| n == "agent.x");
            (
                ActionBox::agent_offsets(&scene.agent.action),
                Some(x.expect("checked: AgentPosition observed")),
            )
        }
    }
}

/// Loads the state models of `planning.dynamics` and checks that each can predict for the
/// checkpoint's encoder: a state model (identity encoder) of this scene's state, with the
/// same action frame.
pub(super) fn load_dynamics(
    cfg: &PlanningConfig,
    agent: &AgentFile,
    agent_path: &Path,
    scene: &Scene,
    device: Device,
) -> Result<Vec<TrainedModel>, InputError> {
    let runs = cfg.dynamics.runs();
    let mut models = Vec::with_capacity(runs.len());
    for (i, run) in runs.iter().enumerate() {
        let key = match runs.len() {
            1 => "planning.dynamics".to_string(),
            _ => format!("planning.dynamics[{i}]"),
        };
        models.push(load_state_model(
            run, &key, cfg, agent, agent_path, scene, device,
        )?);
    }
    Ok(models)
}

/// One state model of `planning.dynamics` (named `key` in the agent file).
pub(super) fn load_state_model(
    run: &str,
    key: &str,
    cfg: &PlanningConfig,
    agent: &AgentFile,
    agent_path: &Path,
    scene: &Scene,
    device: Device,
) -> Result<TrainedModel, InputError> {
    let run = resolve_run(run, agent_path);
    if !run.join("checkpoint/meta.json").exists() && !run.join("checkpoint.old/meta.json").exists()
    {
        return Err(InputError::new(
            agent_path,
            key,
            format!(
                "no checkpoint at {} (train a state model there: an agent file with [perception] encoder = \"identity\")",
                run.display()
            ),
        ));
    }
    let trainer = TrainedModel::load(&run, None, device)?;
    let meta = trainer.meta.clone();
    let own = &trainer.config;
    let mismatch = if own.perception.encoder != EncoderKind::Identity {
        Some(
            "has a learned encoder; a dynamics model predicts the state itself ([perception] encoder = \"identity\")"
                .to_string(),
        )
    } else if agent.perception.observation != ObservationKind::State {
        Some(format!(
            "predicts states, but the checkpoint's encoder reads {:?} observations",
            agent.perception.observation
        ))
    } else {
        predicts_beside(own, agent, cfg)
    };
    if let Some(why) = mismatch {
        return Err(InputError::new(
            agent_path,
            key,
            format!("the model at {} {why}", run.display()),
        ));
    }
    check_scene_matches(scene, own, &meta, &run)?;
    Ok(trainer)
}

/// One model of an agent file's committee, as `hjepa train --committee` trains it.
#[derive(Clone, Debug, PartialEq)]
pub struct CommitteeMember {
    /// Where the agent file names it: `planning.checkpoint` or `planning.peers[i]`.
    pub key: String,
    pub run: PathBuf,
    pub seed: u64,
}

/// The models of an agent file's committee: `planning.checkpoint` trained with `seed` (the
/// file's `train.seed` unless given), then each `planning.peers[i]` with `seed + i + 1`, so
/// that the members are trainings of the same file that differ in seed only.
pub fn committee_members(
    agent_path: &Path,
    seed: Option<u64>,
) -> Result<Vec<CommitteeMember>, InputError> {
    let agent = AgentFile::load(agent_path)?;
    let Some(planning) = &agent.planning else {
        return Err(InputError::new(
            agent_path,
            "planning",
            "expected a [planning] section naming the committee's checkpoint and peers",
        ));
    };
    if planning.peers.is_empty() {
        return Err(InputError::new(
            agent_path,
            "planning.peers",
            "expected at least one peer to train beside the checkpoint (without peers, train \
             the checkpoint alone with --out)",
        ));
    }
    let base = seed.unwrap_or(agent.train.seed);
    let checkpoint = ("planning.checkpoint".to_string(), &planning.checkpoint);
    let peers = planning
        .peers
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("planning.peers[{i}]"), p));
    let members = std::iter::once(checkpoint)
        .chain(peers)
        .zip(0u64..)
        .map(|((key, run), i)| CommitteeMember {
            key,
            run: resolve_run(run, agent_path),
            seed: base + i,
        })
        .collect::<Vec<_>>();
    // Two members in one folder: the second training would overwrite the first.
    for (i, m) in members.iter().enumerate() {
        if let Some(first) = members[..i].iter().find(|o| o.run == m.run) {
            return Err(InputError::new(
                agent_path,
                &m.key,
                format!(
                    "{} is also {}: expected a run folder of its own",
                    m.run.display(),
                    first.key
                ),
            ));
        }
    }
    Ok(members)
}

/// Loads the committee's further models (`planning.peers`) and checks that each can plan
/// beside the checkpoint's: same observations, latent size and action frame, trained for
/// this scene, with what the cost asks of it.
pub(super) fn load_peers(
    cfg: &PlanningConfig,
    agent: &AgentFile,
    agent_path: &Path,
    scene: &Scene,
    device: Device,
) -> Result<Vec<TrainedModel>, InputError> {
    let mut peers = Vec::with_capacity(cfg.peers.len());
    for (i, peer) in cfg.peers.iter().enumerate() {
        let key = format!("planning.peers[{i}]");
        let run = resolve_run(peer, agent_path);
        if !run.join("checkpoint/meta.json").exists()
            && !run.join("checkpoint.old/meta.json").exists()
        {
            return Err(InputError::new(
                agent_path,
                &key,
                format!(
                    "no checkpoint at {} (train one with `hjepa train --agent {} --seed <another seed> --out {}`)",
                    run.display(),
                    agent_path.display(),
                    run.display()
                ),
            ));
        }
        // Its own agent file: a peer may differ in seed, data or architecture.
        let trainer = TrainedModel::load(&run, None, device)?;
        let meta = trainer.meta.clone();
        let own = &trainer.config;
        let mismatch = if own.perception.observation != agent.perception.observation {
            Some(format!(
                "reads {:?} observations, the checkpoint's model {:?}",
                own.perception.observation, agent.perception.observation
            ))
        } else if own.perception.latent_dim != agent.perception.latent_dim {
            Some(format!(
                "has latent_dim {}, the checkpoint's model {} (the committee stacks their predictions)",
                own.perception.latent_dim, agent.perception.latent_dim
            ))
        } else if cfg.cost.level == 2 && !own.level2.enabled {
            Some("has no level 2, which planning.cost.level = 2 needs".into())
        } else if cfg.cost.critic > 0.0 && meta.critic.is_none() {
            Some("has no fitted critic, which planning.cost.critic needs".into())
        } else {
            predicts_beside(own, agent, cfg)
        };
        if let Some(why) = mismatch {
            return Err(InputError::new(
                agent_path,
                &key,
                format!("the model at {} {why}", run.display()),
            ));
        }
        check_scene_matches(scene, own, &meta, &run)?;
        peers.push(trainer);
    }
    Ok(peers)
}

/// Why a further model (a peer, the state model) cannot predict beside the checkpoint's
/// `agent`, if it cannot: another action frame, or no ensemble for the disagreement term.
pub(super) fn predicts_beside(
    own: &ModelConfig,
    agent: &ModelConfig,
    cfg: &PlanningConfig,
) -> Option<String> {
    if own.level1.action_frame != agent.level1.action_frame {
        Some(format!(
            "takes actions in the {:?} frame, the checkpoint's model in the {:?} frame",
            own.level1.action_frame, agent.level1.action_frame
        ))
    } else if cfg.cost.disagreement > 0.0 && own.level1.ensemble < 2 {
        Some(format!(
            "has [level1] ensemble = {}; planning.cost.disagreement needs >= 2",
            own.level1.ensemble
        ))
    } else {
        None
    }
}

/// The run folder an agent plans with: `planning.checkpoint` when it holds a trained run,
/// else the shipped model `planning.model` names (its files checked against its manifest),
/// else `planning.checkpoint` (whose missing checkpoint the loader then reports).
pub fn planning_run(cfg: &PlanningConfig, agent_path: &Path) -> Result<PathBuf, InputError> {
    let run = resolve_run(&cfg.checkpoint, agent_path);
    let trained =
        run.join("checkpoint/meta.json").exists() || run.join("checkpoint.old/meta.json").exists();
    match &cfg.model {
        Some(name) if !trained => {
            let dir = crate::model::shipped::model_dir(name);
            if !dir.is_dir() {
                return Err(InputError::new(
                    agent_path,
                    "planning.model",
                    format!(
                        "no trained run at {} and no shipped model {name:?} at {}",
                        run.display(),
                        dir.display()
                    ),
                ));
            }
            crate::model::shipped::verify(&dir)?;
            Ok(dir)
        }
        _ => Ok(run),
    }
}

/// `checkpoint` paths are taken relative to the working directory, then to the agent file.
pub fn resolve_run(checkpoint: &str, agent_path: &Path) -> PathBuf {
    let p = PathBuf::from(checkpoint);
    if p.is_absolute() || p.exists() {
        return p;
    }
    agent_path
        .parent()
        .map(|d| d.join(&p))
        .filter(|q| q.exists())
        .unwrap_or(p)
}
