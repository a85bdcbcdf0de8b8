//! Who acts in an episode: an agent file's planning agent, its planner on the sandbox (the
//! oracle), or a scripted policy. Without the `torch` feature only scripted policies act.

use std::path::PathBuf;
use std::sync::Arc;

#[cfg(feature = "torch")]
use crate::agent::{AgentFile, OracleAgent};
use crate::error::InputError;
use crate::sim::Scene;

use super::episode::EvalActor;

/// The oracle actor for an agent file's planner: the same planner and budget, the sandbox as
/// its model.
#[cfg(feature = "torch")]
pub fn oracle_actor(
    agent: &AgentFile,
    path: &std::path::Path,
    scene: &Scene,
) -> anyhow::Result<EvalActor> {
    let planning = agent.planning.as_ref().ok_or_else(|| {
        InputError::new(
            path,
            "planning",
            "the agent file has no [planning] table (checkpoint, cost, planner)",
        )
    })?;
    planning.check_horizons(agent, scene, path)?;
    Ok(EvalActor::Oracle(
        OracleAgent::new(planning.planner.clone(), planning.cost.reduce, scene)
            .map_err(|m| InputError::new(path, "planning.planner.kind", m))?,
    ))
}

/// What `--agent A [--oracle] [--scene S]` asks for: the scene (the given one, else the
/// agent's, else two_rooms) and, with an agent file, its actor and a name for it: the
/// planning agent, or with `oracle` its planner on the sandbox. `--oracle` without an agent
/// is an error.
pub struct AgentChoice {
    pub scene_path: PathBuf,
    pub scene: Arc<Scene>,
    pub actor: Option<(EvalActor, String)>,
}

/// Who acts in a watched or recorded episode, as the command line names it.
#[derive(Clone, Debug, Default)]
pub struct ActorSpec {
    /// Scene (default: the agent file's, else two_rooms).
    pub scene: Option<String>,
    /// Agent file with a [planning] table; without one, a scripted policy or the user acts.
    pub agent: Option<PathBuf>,
    /// Run the agent file's planner with the sandbox as its model.
    pub oracle: bool,
    /// Overrides the agent file's device.
    pub device: Option<crate::device::Device>,
}

#[cfg(feature = "torch")]
pub fn choose_agent(spec: &ActorSpec) -> anyhow::Result<AgentChoice> {
    let (scene, oracle, device) = (spec.scene.as_deref(), spec.oracle, spec.device);
    let agent = spec
        .agent
        .as_deref()
        .map(|p| AgentFile::load(p).map(|a| (p.to_path_buf(), a)))
        .transpose()?;
    let scene_arg = scene
        .map(str::to_string)
        .or_else(|| agent.as_ref().map(|(_, a)| a.scene.clone()))
        .unwrap_or_else(|| "two_rooms".into());
    let scene_path = Scene::resolve_path(&scene_arg);
    let scene = Arc::new(Scene::load(&scene_path)?);
    let actor = match agent {
        Some((path, a)) if oracle => {
            Some((oracle_actor(&a, &path, &scene)?, "oracle model".into()))
        }
        Some((path, a)) => Some((
            EvalActor::Learned(crate::agent::assemble_planning_agent(
                a, &path, &scene, device, None,
            )?),
            path.file_stem()
                .map_or("agent".into(), |s| s.to_string_lossy().to_string()),
        )),
        None => {
            anyhow::ensure!(
                !oracle,
                "--oracle needs --agent (the planner to run on the sandbox)"
            );
            None
        }
    };
    Ok(AgentChoice {
        scene_path,
        scene,
        actor,
    })
}

/// Without torch, only a scripted policy can act: `--agent` and `--oracle` are refused.
#[cfg(not(feature = "torch"))]
pub fn choose_agent(spec: &ActorSpec) -> anyhow::Result<AgentChoice> {
    let (scene, oracle) = (spec.scene.as_deref(), spec.oracle);
    if let Some(path) = &spec.agent {
        return Err(InputError::new(
            path,
            "--agent",
            "this hjepa was built without torch (--no-default-features): only scripted policies can act",
        )
        .into());
    }
    anyhow::ensure!(
        !oracle,
        "--oracle needs --agent (the planner to run on the sandbox)"
    );
    let scene_path = Scene::resolve_path(scene.unwrap_or("two_rooms"));
    let scene = Arc::new(Scene::load(&scene_path)?);
    Ok(AgentChoice {
        scene_path,
        scene,
        actor: None,
    })
}
