//! `hjepa eval`: closed-loop evaluation of a planning agent.

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
    #[arg(long, default_value_t = crate::run::eval::DEFAULT_EPISODES)]
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
    /// cpu or cuda (overrides the agent file).
    #[arg(long)]
    device: Option<String>,
    /// Per-episode results file (JSON lines).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Save the episodes (scene, seeds, actions) for `hjepa replay`.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Sandboxes one agent serves at once, their observations batched through the
    /// encoder (pays off on a GPU). Each episode keeps its seeds.
    #[arg(long, default_value_t = 1)]
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
    #[arg(long, default_value_t = crate::data::goals::DEFAULT_GOAL_OFFSET, requires = "goals_from")]
    goal_offset: u32,
    /// Episode budget in control steps, like the scene's `episode_steps` (its default);
    /// an env step is `frameskip` control steps.
    #[arg(long)]
    max_steps: Option<u32>,
    /// The scene criterion that decides success and the reported cost, by name (e.g.
    /// `tee_pose`, DINO-WM's Push-T criterion; default: the scene's first).
    #[arg(long)]
    success: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    println!("{}", crate::run::eval::eval(&options(args))?.report());
    Ok(())
}

/// The evaluation the flags ask for, with a progress bar.
fn options(args: Args) -> crate::run::eval::EvalOptions {
    let Args {
        agent,
        scene,
        episodes,
        seed,
        oracle,
        waypoint_subgoals,
        sandbox_dynamics,
        only,
        no_random_floor,
        device,
        out,
        record,
        parallel,
        goals_from,
        goal_offset,
        max_steps,
        success,
    } = args;
    crate::run::eval::EvalOptions {
        agent_path: crate::agent::AgentFile::resolve_path(&agent),
        scene,
        episodes,
        seed,
        oracle,
        waypoint_subgoals,
        sandbox_dynamics,
        only,
        checkpoint: None,
        device,
        out,
        random_floor: !no_random_floor,
        record,
        parallel: parallel.max(1),
        progress: true,
        goals_from,
        goal_offset,
        max_steps,
        success,
    }
}
