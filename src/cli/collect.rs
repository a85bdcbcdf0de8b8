//! `hjepa collect`: record a dataset with a scripted policy, or with a planning agent.

use crate::device::Device;
use std::path::PathBuf;

use crate::data::{CollectSummary, PolicyKind};
use crate::error::InputError;
use crate::sim::Scene;

// The flags of `hjepa collect` (its --help text is the doc comment on `Command::Collect`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Scene (default: two_rooms, or the agent file's with --agent).
    #[arg(long)]
    scene: Option<String>,
    #[arg(long, value_parser = crate::limits::episodes, default_value_t = 100)]
    episodes: u64,
    /// Scripted policy (default smooth-walk); not with --agent.
    #[arg(long, value_enum)]
    policy: Option<PolicyKind>,
    /// Dataset folder (created if missing; default data/<scene>).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_parser = crate::limits::noise, default_value_t = 0.3)]
    noise: f32,
    /// Episodes per shard file.
    #[arg(long, value_parser = crate::limits::episodes, default_value_t = 50)]
    shard_episodes: u64,
    /// Worker threads (default: all cores; scripted policies).
    #[arg(long, value_parser = crate::limits::threads)]
    threads: Option<usize>,
    /// A planning agent plays instead of a scripted policy (an agent file, or a shipped
    /// agent's name).
    #[arg(long, requires = "goals_from", requires = "max_steps")]
    agent: Option<String>,
    /// With --agent: draw start/goal windows from this dataset's trajectories (the
    /// agent's training data, not the held-out data it is evaluated on).
    #[arg(long, requires = "agent")]
    goals_from: Option<PathBuf>,
    /// With --agent: control steps from a window's start to its goal.
    #[arg(long, value_parser = crate::limits::step_offset, default_value_t = crate::data::goals::DEFAULT_GOAL_OFFSET, requires = "agent")]
    goal_offset: u32,
    /// With --agent: every episode's length in control steps (it runs on after a success).
    #[arg(long, value_parser = crate::limits::steps, requires = "agent")]
    max_steps: Option<u32>,
    /// With --agent: the criterion that decides success (e.g. `tee_pose`).
    #[arg(long, requires = "agent")]
    success: Option<String>,
    /// With --agent: sandboxes the agent serves at once (see `eval --parallel`).
    #[arg(long, value_parser = crate::limits::threads, default_value_t = 1, requires = "agent")]
    parallel: usize,
    /// With --agent: cpu, cuda or cuda:N (overrides the agent file).
    #[arg(long, requires = "agent")]
    device: Option<Device>,
}

pub fn run(mut args: Args) -> anyhow::Result<()> {
    let (s, out) = match args.agent.take() {
        Some(agent) => with_agent(&agent, args)?,
        None => scripted(args)?,
    };
    println!(
        "{}: {} episodes ({} recorded now, {} steps, {} shards written) in {:.1} s",
        out.display(),
        s.episodes_total,
        s.episodes_recorded,
        s.steps_recorded,
        s.shards_written,
        s.seconds
    );
    Ok(())
}

/// `--agent`: the agent file's planner plays its own scene toward `--goals-from`'s windows.
#[cfg(feature = "torch")]
fn with_agent(agent: &str, args: Args) -> anyhow::Result<(CollectSummary, PathBuf)> {
    let agent_path = crate::agent::AgentFile::resolve_path(agent);
    if args.policy.is_some() || args.scene.is_some() {
        let flag = if args.policy.is_some() {
            "--policy"
        } else {
            "--scene"
        };
        return Err(InputError::new(
            &agent_path,
            flag,
            "--agent plays the agent file's own scene with its planner: leave out --policy and --scene",
        )
        .into());
    }
    let Some(out) = args.out else {
        return Err(InputError::new(
            &agent_path,
            "--out",
            "--agent needs an --out folder for its dataset",
        )
        .into());
    };
    let opts = crate::run::agent_data::AgentCollectOptions {
        agent_path,
        goals_from: args.goals_from.expect("clap requires it"),
        goal_offset: args.goal_offset,
        max_steps: args.max_steps.expect("clap requires it"),
        success: args.success,
        out,
        episodes: args.episodes,
        seed: args.seed,
        shard_episodes: args.shard_episodes,
        parallel: args.parallel.max(1),
        device: args.device,
        progress: true,
    };
    Ok((crate::run::agent_data::collect_with_agent(&opts)?, opts.out))
}

/// A scripted policy (default smooth-walk) on `--scene` (default two_rooms), on all cores.
/// Without torch there is no planning agent to play.
#[cfg(not(feature = "torch"))]
fn with_agent(agent: &str, _args: Args) -> anyhow::Result<(CollectSummary, PathBuf)> {
    Err(InputError::new(
        std::path::Path::new(agent),
        "--agent",
        "this hjepa was built without torch (--no-default-features): collect with a scripted --policy",
    )
    .into())
}

fn scripted(args: Args) -> anyhow::Result<(CollectSummary, PathBuf)> {
    let scene = args.scene.unwrap_or_else(|| "two_rooms".into());
    let opts = crate::data::CollectOptions {
        scene_path: Scene::resolve_path(&scene),
        out: args.out.unwrap_or_else(|| {
            let name = std::path::Path::new(&scene)
                .file_stem()
                .map_or("data".into(), |n| n.to_string_lossy());
            PathBuf::from("data").join(name.as_ref())
        }),
        episodes: args.episodes,
        policy: args.policy.unwrap_or(PolicyKind::SmoothWalk),
        noise: args.noise,
        seed: args.seed,
        shard_episodes: args.shard_episodes,
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        progress: true,
        // No hook: Ctrl-C ends the process; the listed shards stay valid and a rerun resumes.
        cancel: None,
    };
    Ok((crate::data::collect(&opts)?, opts.out))
}
