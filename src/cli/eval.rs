//! `hjepa eval`: closed-loop evaluation of a planning agent.

use crate::agent::Diagnostic;
use crate::device::Device;
use crate::run::eval::{EvalMode, EvalOptions};
use std::path::PathBuf;

// The flags of `hjepa eval` (its --help text is the doc comment on `Command::Eval`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Agent file with a [planning] table (a path, or a shipped agent's name).
    #[arg(long, default_value = "two_rooms")]
    agent: String,
    /// Scene (default: the agent file's).
    #[arg(long)]
    scene: Option<String>,
    #[arg(long, value_parser = crate::limits::episodes, default_value_t = crate::run::eval::DEFAULT_EPISODES)]
    episodes: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Plan with the sandbox itself as the model (same planner and budget): the upper
    /// bound that separates planner failures from world-model failures.
    #[arg(long)]
    oracle: bool,
    /// Diagnostic for a hierarchical agent: replace its upper level by the scene's
    /// waypoint expert. The subgoal is the abstract state of the agent at rest at the next
    /// waypoint on the shortest path (next maze cell, door); the learned lower level
    /// pursues it. Tells the upper level's failures from the lower level's.
    #[arg(long, conflicts_with = "oracle")]
    waypoint_subgoals: bool,
    /// Diagnostic: plan level 1 on the sandbox's own dynamics (each candidate replayed
    /// on a copy of the sandbox, its observations encoded) with the agent's own cost and
    /// budget. The predictor's errors are gone; what still fails is the cost's (the
    /// encoder's distances, the critic), or the upper level's.
    #[arg(long, conflicts_with_all = ["oracle", "waypoint_subgoals"])]
    sandbox_dynamics: bool,
    /// Play only these of the episodes (indices from 0, comma-separated; each below
    /// --episodes), e.g. an earlier run's failures under a diagnostic. Each keeps its seed.
    #[arg(long, value_delimiter = ',')]
    only: Vec<u64>,
    /// Skip the random-policy floor.
    #[arg(long)]
    no_random_floor: bool,
    /// cpu, cuda or cuda:N (overrides the agent file).
    #[arg(long)]
    device: Option<Device>,
    /// Per-episode results file (JSON lines).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Save the episodes (scene, seeds, actions) for `hjepa replay`.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Sandboxes one agent serves at once, their observations batched through the
    /// encoder (pays off on a GPU). Each episode keeps its seeds.
    #[arg(long, value_parser = crate::limits::threads, default_value_t = 1)]
    parallel: usize,
    /// Take start/goal pairs from this dataset's trajectories (DINO-WM's and
    /// stable-worldmodel's protocol): episode i starts at frame t of a held-out episode,
    /// at rest, and aims at the frame --goal-offset control steps later (the agent's
    /// position and the pose of every body that has a goal; at rest). Collect it with
    /// another seed than the training data.
    #[arg(long)]
    goals_from: Option<PathBuf>,
    /// Control steps between start and goal, with --goals-from (DINO-WM: 25); a multiple
    /// of the scene's frameskip, since recorded frames are env steps.
    #[arg(long, value_parser = crate::limits::step_offset, default_value_t = crate::data::goals::DEFAULT_GOAL_OFFSET, requires = "goals_from")]
    goal_offset: u32,
    /// Episode budget in control steps, like the scene's `episode_steps` (its default);
    /// an env step is `frameskip` control steps.
    #[arg(long, value_parser = crate::limits::steps)]
    max_steps: Option<u32>,
    /// The scene criterion that decides success and the reported cost, by name (e.g.
    /// `tee_pose`, DINO-WM's Push-T criterion; default: the scene's first).
    #[arg(long)]
    success: Option<String>,
    /// Vary a scene property per episode, over the scene file's factors: KEY=VALUE where
    /// VALUE is `Range(LOW, HIGH)`, `Set([V, ...])` or one value (a number, or a colour
    /// `(r, g, b)`), e.g. `--vary 'background=(0, 0, 0)' --vary
    /// 'material.block.friction=Range(0.5, 2.0)'` (repeatable; docs/scenes.md lists the keys).
    #[arg(long, value_parser = crate::sim::factors::parse_vary)]
    vary: Vec<(String, crate::sim::factors::Factor)>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    println!("{}", crate::run::eval::eval(&options(args))?.report());
    Ok(())
}

/// The evaluation the flags ask for, with a progress bar.
fn options(args: Args) -> EvalOptions {
    let mode = match (args.oracle, args.waypoint_subgoals, args.sandbox_dynamics) {
        (true, _, _) => EvalMode::Oracle,
        (_, true, _) => EvalMode::Diagnose(Diagnostic::WaypointSubgoals),
        (_, _, true) => EvalMode::Diagnose(Diagnostic::SandboxDynamics),
        _ => EvalMode::Learned,
    };
    EvalOptions {
        agent_path: crate::agent::AgentFile::resolve_path(&args.agent),
        scene: args.scene,
        episodes: args.episodes,
        seed: args.seed,
        mode,
        only: args.only,
        checkpoint: None,
        device: args.device,
        out: args.out,
        random_floor: !args.no_random_floor,
        record: args.record,
        parallel: args.parallel.max(1),
        progress: true,
        goals_from: args.goals_from,
        goal_offset: args.goal_offset,
        max_steps: args.max_steps,
        success: args.success,
        vary: args.vary,
    }
}
