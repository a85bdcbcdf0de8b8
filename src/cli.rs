//! The `hjepa` command line: clap-derive subcommands whose doc comments are their `--help`.
//! The library does the work; this file parses, dispatches and maps errors to exit codes
//! (2 for bad input, 1 for anything else).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::data::PolicyKind;
use crate::error::InputError;
use crate::sim::Scene;

#[derive(Parser, Debug)]
#[command(
    name = "hjepa",
    version,
    about = "A 2-D physics sandbox for H-JEPA world models and planners"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The main job, no flags needed: collect a two_rooms dataset, train the agent's world
    /// model, evaluate the planning agent closed loop, and print its success rate beside the
    /// random-policy floor and the oracle model's rate (~10 min on 2 cores; a rerun reuses
    /// the dataset and the finished training run)
    Demo {
        /// Agent file (a path, or a shipped agent's name).
        #[arg(long, default_value = "two_rooms")]
        agent: String,
        /// Episodes to collect for training.
        #[arg(long, default_value_t = 400)]
        collect_episodes: u64,
        /// Training steps (default: the agent file's).
        #[arg(long)]
        train_steps: Option<i64>,
        /// Evaluation episodes (learned agent, oracle, random floor).
        #[arg(long, default_value_t = 100)]
        episodes: u64,
        /// Folder for the dataset (`data/`), the run (`run/`) and the results.
        #[arg(long, default_value = "runs/demo")]
        out: PathBuf,
    },
    /// Validate a scene file and print a summary of what it declares.
    Check {
        /// A scene file, or the name of a shipped scene (two_rooms, wall, push_t, point_maze_u,
        /// point_maze_medium, maze_large).
        scene: String,
    },
    /// Run a scene with a scripted policy and print a report (success rate with a 95% CI,
    /// steps to success, final distance, speed).
    Run {
        #[arg(long, default_value = "two_rooms")]
        scene: String,
        #[arg(long, value_enum, default_value = "waypoint")]
        policy: PolicyKind,
        #[arg(long, default_value_t = 20)]
        episodes: u64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Heading noise of the scripted policies (radians, std).
        #[arg(long, default_value_t = 0.3)]
        noise: f32,
        /// Also write the first episode's frames as PNGs into this folder.
        #[arg(long)]
        frames: Option<PathBuf>,
    },
    /// Record episodes of a scripted policy into a dataset folder: safetensors shards plus a
    /// JSON manifest (Python: `safetensors.numpy.load_file`). Shards are written atomically;
    /// rerunning the same command after an interruption records only what is missing.
    /// With `--agent` a planning agent plays instead, toward start/goal windows of
    /// `--goals-from`'s trajectories, each episode `--max-steps` long (past a success): data
    /// where the agent's own plans take it, to train its world model on as well.
    Collect {
        /// Scene (default: two_rooms, or the agent file's with --agent).
        #[arg(long)]
        scene: Option<String>,
        #[arg(long, default_value_t = 100)]
        episodes: u64,
        /// Scripted policy (default smooth-walk); not with --agent.
        #[arg(long, value_enum)]
        policy: Option<PolicyKind>,
        /// Dataset folder (created if missing; default data/<scene>).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = 0.3)]
        noise: f32,
        /// Episodes per shard file.
        #[arg(long, default_value_t = 50)]
        shard_episodes: u64,
        /// Worker threads (default: all cores; scripted policies).
        #[arg(long)]
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
        #[arg(long, default_value_t = crate::eval::DEFAULT_GOAL_OFFSET, requires = "agent")]
        goal_offset: u32,
        /// With --agent: every episode's length in control steps (it runs on after a success).
        #[arg(long, requires = "agent")]
        max_steps: Option<u32>,
        /// With --agent: the criterion that decides success (e.g. `tee_pose`).
        #[arg(long, requires = "agent")]
        success: Option<String>,
        /// With --agent: sandboxes the agent serves at once (see `eval --parallel`).
        #[arg(long, default_value_t = 1, requires = "agent")]
        parallel: usize,
        /// With --agent: cpu or cuda (overrides the agent file).
        #[arg(long, requires = "agent")]
        device: Option<String>,
    },
    /// Verify a dataset: manifest, shard sizes and SHA-256, shapes; print a summary.
    Inspect {
        /// Dataset folder.
        dataset: PathBuf,
    },
    /// Train the H-JEPA world model of an agent file on a dataset: progress bar with live
    /// losses, validation and an atomic checkpoint every `validate_every` steps, metrics in
    /// `<out>/metrics.jsonl`. `--resume` continues a run exactly where it stopped.
    Train {
        /// Agent file (a path, or a shipped agent's name such as `push_t`).
        #[arg(long, default_value = "two_rooms")]
        agent: String,
        /// Dataset folder made by `hjepa collect`; repeat it to train on several as one
        /// (`--data data/push_t --data data/push_t_agent`: scripted data plus a planning
        /// agent's episodes), each split into training and held-out episodes by itself.
        #[arg(long, required = true)]
        data: Vec<PathBuf>,
        /// Each --data's share of every batch, in order (e.g. `--shares 0.7,0.3`; normalised
        /// to sum to 1). Default: every training window equally likely, so a dataset's share
        /// is its size.
        #[arg(long, value_delimiter = ',')]
        shares: Option<Vec<f64>>,
        /// Run folder for checkpoints and metrics.
        #[arg(
            long,
            required_unless_present = "committee",
            conflicts_with = "committee"
        )]
        out: Option<PathBuf>,
        /// Train the agent file's whole committee, one model after another, each into its own
        /// run folder: `planning.checkpoint` with the training seed (train.seed, or --seed),
        /// then each `planning.peers[i]` with that seed + i + 1.
        #[arg(long)]
        committee: bool,
        /// Continue the run in --out from its checkpoint (same agent file and dataset),
        /// bit-identically on CPU; with --committee, every member's run (finished ones train
        /// no further steps, ones not begun start).
        #[arg(long)]
        resume: bool,
        /// cpu or cuda (overrides the agent file).
        #[arg(long)]
        device: Option<String>,
        /// Total steps to reach (default: the agent file's train.steps; a cosine learning-rate
        /// schedule still runs over train.steps, so --steps may not exceed it then).
        #[arg(long)]
        steps: Option<i64>,
        /// Training seed (overrides the agent file's train.seed; recorded in the checkpoint):
        /// another training of the same file, e.g. a committee's peer (`planning.peers`).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Diagnose a trained run: prediction error per horizon (both levels), embedding spread
    /// and collapse alarms, linear probes to the true state (R^2 on held-out episodes); on
    /// maze scenes, the critics mapped over the cells (correlation with the corridor
    /// distance, greedy descent).
    Probe {
        /// Run folder (holds checkpoint/).
        run: PathBuf,
        /// Dataset to probe on (default: the one the run was trained on).
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        device: Option<String>,
    },
    /// Print versions and what libtorch sees (threads, CUDA devices): checks that the binary
    /// finds the torch venv's libtorch without LD_LIBRARY_PATH.
    Info,
    /// Closed-loop evaluation of a planning agent: success rate with a 95 % CI on seeded
    /// start/goal pairs, steps to success, planning time per replan and per episode, the
    /// random-policy floor on the same pairs; per-episode results as JSON lines
    Eval {
        /// Agent file with a [planning] table (a path, or a shipped agent's name).
        #[arg(long, default_value = "two_rooms")]
        agent: String,
        /// Scene (default: the agent file's).
        #[arg(long)]
        scene: Option<String>,
        #[arg(long, default_value_t = crate::eval::DEFAULT_EPISODES)]
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
        #[arg(long, default_value_t = crate::eval::DEFAULT_GOAL_OFFSET, requires = "goals_from")]
        goal_offset: u32,
        /// Episode budget in control steps, like the scene's `episode_steps` (its default);
        /// an env step is `frameskip` control steps.
        #[arg(long)]
        max_steps: Option<u32>,
        /// The scene criterion that decides success and the reported cost, by name (e.g.
        /// `tee_pose`, DINO-WM's Push-T criterion; default: the scene's first).
        #[arg(long)]
        success: Option<String>,
    },
    /// Replay a recording made by `hjepa eval --record`: re-simulates every episode from its
    /// seed and actions, checks that the outcome matches, and writes one episode's frames as
    /// PNGs
    Replay {
        recording: PathBuf,
        /// Episode whose frames to write.
        #[arg(long, default_value_t = 0)]
        episode: u64,
        /// Folder for the frames as PNGs.
        #[arg(long)]
        frames: Option<PathBuf>,
        /// Animated GIF of the episode, at the scene's real-time rate.
        #[arg(long)]
        gif: Option<PathBuf>,
    },
    /// Run an experiment file's grid (scenes x agents x overrides x seeds x actors) on worker
    /// threads; each finished run is committed to an SQLite database in one transaction.
    /// Rerunning the same command resumes: finished runs are skipped, interrupted ones rerun.
    /// Ctrl-C finishes the runs in flight; a second Ctrl-C abandons them. Exits 1 when a run
    /// failed (its error is in the database), 130 when interrupted
    Batch {
        /// Experiment file (experiments/*.toml).
        experiment: PathBuf,
        /// Results database (default: results/<name>/results.sqlite, or
        /// results/<name>/shard-<i>-of-<n>.sqlite with --shard).
        #[arg(long)]
        db: Option<PathBuf>,
        /// Worker threads, each running one evaluation; torch gets max(1, cores / jobs)
        /// intra-op threads so the two never oversubscribe the cores (default: the cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Run the deterministic slice i of n (runs at positions i mod n), e.g. a Slurm array
        /// task: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT.
        #[arg(long)]
        shard: Option<String>,
    },
    /// Combine shard databases of one experiment into one (created, or an existing database
    /// of the same experiment); databases of another experiment or grid are refused
    Merge {
        /// The merged database.
        #[arg(long)]
        out: PathBuf,
        /// Shard databases.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Summarise a results database: report.md, CSV tables (success with 95 % CI per cell
    /// and actor, per distance bin, model errors) and PNG plots (success vs planning budget,
    /// per distance bin, planning-time distributions, prediction error vs horizon)
    Report {
        /// Results database made by `hjepa batch` or `hjepa merge`.
        db: PathBuf,
        /// Output folder (default: <db folder>/report).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Play one episode headless and write it as an animated GIF (software rasteriser at a
    /// viewing size, goal drawn; no window or GPU), optionally PNG frames and a recording
    Record {
        /// Scene (default: the agent's, else two_rooms).
        #[arg(long)]
        scene: Option<String>,
        /// Agent file with a [planning] table (a path, or a shipped agent's name); without
        /// one, --policy acts.
        #[arg(long)]
        agent: Option<String>,
        #[arg(long, value_enum, default_value = "waypoint")]
        policy: PolicyKind,
        /// Plan with the sandbox as the model (with --agent).
        #[arg(long)]
        oracle: bool,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Episode of the seeded sequence (the pairs `hjepa eval --seed` plays).
        #[arg(long, default_value_t = 0)]
        episode: u64,
        /// The GIF to write.
        #[arg(long)]
        out: PathBuf,
        /// Also write the frames as PNGs into this folder.
        #[arg(long)]
        frames: Option<PathBuf>,
        /// Also save the episode as a recording (for `hjepa replay` / `hjepa view --replay`).
        #[arg(long)]
        recording: Option<PathBuf>,
        /// Longest side of the frames, pixels.
        #[arg(long, default_value_t = 320)]
        size: u32,
        #[arg(long)]
        device: Option<String>,
    },
    /// Watch a scene live in a window (build with `--features viewer`): the bodies, the goal,
    /// the path the agent's plan expects, cost over time, counters. Space pause, Right step,
    /// Backspace reset, N new seed, +/- speed, drag bodies with the mouse, W A S D drive
    /// (no agent), P screenshot, H help. `--replay FILE` plays a recording with a timeline
    View {
        #[arg(long)]
        scene: Option<String>,
        /// Agent file with a [planning] table (a path, or a shipped agent's name); without
        /// one, you drive the agent.
        #[arg(long)]
        agent: Option<String>,
        /// Run the agent file's planner with the sandbox as its model.
        #[arg(long)]
        oracle: bool,
        /// A recording to play (hjepa eval --record, hjepa record --recording).
        #[arg(long)]
        replay: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Start paused.
        #[arg(long)]
        paused: bool,
        /// Simulation speed relative to real time (0.125 to 16; + and - change it).
        #[arg(long, default_value_t = 1.0)]
        speed: f32,
        /// Exit after this many frames (scripted captures, tests).
        #[arg(long)]
        frames: Option<u32>,
        /// With --frames: save a screenshot (PNG) and a JSON sidecar with the projection.
        #[arg(long)]
        screenshot: Option<PathBuf>,
        #[arg(long, default_value_t = 960)]
        width: u32,
        #[arg(long, default_value_t = 720)]
        height: u32,
        #[arg(long)]
        device: Option<String>,
    },
    /// Benchmarks that print a table.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Env steps/s on one core (push_t state and 96x96 pixels, two_rooms 64x64 pixels), the
    /// vector env on all cores, a bare rapier loop for comparison, and memory per env.
    Sim {
        /// Seconds to run each row.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// Milliseconds per replan for CEM, MPPI, gradient descent, the hierarchical planner and
    /// the oracle model, at the shipped two_rooms agent's budget.
    Plan {
        /// Seconds to run each row.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// The batch runner's overhead: the same episodes (oracle and random actors on
    /// two_rooms) through `hjepa batch` with one worker, and in a bare loop.
    Batch {
        /// Episodes per run (4 runs).
        #[arg(long, default_value_t = 20)]
        episodes: u64,
        /// Repetitions of each side; the fastest is kept.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// World-model speed for the shipped two_rooms (pixels) and push_t (state) agents:
    /// training samples/s, encode latency, and level-1 / level-2 rollout latency at planning
    /// batch sizes (300 and 2000 sequences x horizon 16).
    Model {
        /// Seconds to run each row.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// cpu or cuda (default: the agent file's).
        #[arg(long)]
        device: Option<String>,
    },
}

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HJEPA_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if is_input_error(&e) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Whether the error (or any cause) is bad input the user can fix.
pub fn is_input_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<InputError>())
}

/// Loads a scene by path or shipped name.
pub fn load_scene(arg: &str) -> anyhow::Result<Arc<Scene>> {
    Ok(Arc::new(Scene::load(&Scene::resolve_path(arg))?))
}

fn dispatch(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Demo {
            agent,
            collect_episodes,
            train_steps,
            episodes,
            out,
        } => {
            let opts = crate::demo::DemoOptions {
                agent_path: crate::model::AgentFile::resolve_path(&agent),
                collect_episodes,
                train_steps,
                episodes,
                out,
            };
            crate::demo::demo(&opts).map(|_| ())
        }
        Command::Train {
            agent,
            data,
            shares,
            out,
            committee,
            resume,
            device,
            steps,
            seed,
        } => {
            let agent_path = crate::model::AgentFile::resolve_path(&agent);
            // One run, or the committee's members one after another.
            let runs: Vec<(PathBuf, Option<u64>)> = match out {
                Some(out) => vec![(out, seed)],
                None => crate::agent::committee_members(&agent_path, seed)?
                    .into_iter()
                    .map(|m| (m.run, Some(m.seed)))
                    .collect(),
            };
            let count = runs.len();
            for (i, (out, seed)) in runs.into_iter().enumerate() {
                if committee {
                    println!(
                        "committee member {}/{count}: {} (training seed {})",
                        i + 1,
                        out.display(),
                        seed.expect("members have seeds")
                    );
                }
                let opts = crate::model::TrainOptions {
                    agent_path: agent_path.clone(),
                    data: data.clone(),
                    shares: shares.clone(),
                    out: out.clone(),
                    resume,
                    device: device.clone(),
                    steps,
                    seed,
                    progress: true,
                };
                print_trained(&out, &crate::model::train(&opts)?);
            }
            Ok(())
        }
        Command::Probe { run, data, device } => {
            let d = crate::model::train::probe(&run, data.as_deref(), device.as_deref())?;
            println!("{}", d.summary());
            // The curves over training come from the run's metrics log, when it has one.
            if run.join("metrics.jsonl").exists() {
                let plots = crate::model::plots::write_run_plots(&run)?;
                let names: Vec<String> = plots.iter().map(|p| p.display().to_string()).collect();
                println!("plots: {}", names.join(", "));
            }
            Ok(())
        }
        Command::Info => {
            // A real op through libtorch, not just a symbol lookup.
            let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
            let sum = t.sum(tch::Kind::Float).double_value(&[]);
            println!("hjepa {}", env!("CARGO_PKG_VERSION"));
            println!(
                "libtorch: ok (sum of [1, 2, 3] = {sum}), {} intra-op threads",
                tch::get_num_threads()
            );
            let backend = crate::model::device::load_cuda_backend();
            println!(
                "cuda: available {}, {} device(s){}",
                crate::model::device::cuda_available(),
                tch::Cuda::device_count(),
                backend.err().map(|e| format!(" ({e})")).unwrap_or_default()
            );
            Ok(())
        }
        Command::Check { scene } => {
            let path = Scene::resolve_path(&scene);
            let s = Scene::load(&path)?;
            println!("{}: ok\n{}", path.display(), s.describe());
            Ok(())
        }
        Command::Run {
            scene,
            policy,
            episodes,
            seed,
            noise,
            frames,
        } => {
            let scene = load_scene(&scene)?;
            if let Some(dir) = frames {
                crate::episodes::write_frames(scene.clone(), policy, noise, seed, &dir)?;
                println!("frames of the first episode written to {}", dir.display());
            }
            let report = crate::episodes::run_episodes(scene, policy, noise, episodes, seed);
            println!("{}", report.summary());
            Ok(())
        }
        Command::Collect {
            scene,
            episodes,
            policy,
            out,
            seed,
            noise,
            shard_episodes,
            threads,
            agent,
            goals_from,
            goal_offset,
            max_steps,
            success,
            parallel,
            device,
        } => {
            let (s, out) = if let Some(agent) = agent {
                let agent_path = crate::model::AgentFile::resolve_path(&agent);
                if policy.is_some() || scene.is_some() {
                    return Err(InputError::new(
                        &agent_path,
                        if policy.is_some() { "--policy" } else { "--scene" },
                        "--agent plays the agent file's own scene with its planner: leave out --policy and --scene",
                    )
                    .into());
                }
                let Some(out) = out.clone() else {
                    return Err(InputError::new(
                        &agent_path,
                        "--out",
                        "--agent needs an --out folder for its dataset",
                    )
                    .into());
                };
                let opts = crate::agent_data::AgentCollectOptions {
                    agent_path,
                    goals_from: goals_from.expect("clap requires it"),
                    goal_offset,
                    max_steps: max_steps.expect("clap requires it"),
                    success,
                    out,
                    episodes,
                    seed,
                    shard_episodes,
                    parallel: parallel.max(1),
                    device,
                    progress: true,
                };
                (crate::agent_data::collect_with_agent(&opts)?, opts.out)
            } else {
                let scene = scene.unwrap_or_else(|| "two_rooms".into());
                let opts = crate::data::CollectOptions {
                    scene_path: Scene::resolve_path(&scene),
                    out: out.clone().unwrap_or_else(|| {
                        let name = std::path::Path::new(&scene)
                            .file_stem()
                            .map_or("data".into(), |n| n.to_string_lossy());
                        PathBuf::from("data").join(name.as_ref())
                    }),
                    episodes,
                    policy: policy.unwrap_or(PolicyKind::SmoothWalk),
                    noise,
                    seed,
                    shard_episodes,
                    threads: threads.unwrap_or_else(|| {
                        std::thread::available_parallelism().map_or(1, |n| n.get())
                    }),
                    progress: true,
                };
                (crate::data::collect(&opts)?, opts.out)
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
        Command::Inspect { dataset } => {
            let d = crate::data::Dataset::open(&dataset)?;
            d.verify()?;
            let eps = d.episodes()?;
            let m = &d.manifest;
            let steps: usize = eps.iter().map(|e| e.action.len()).sum();
            let succ = eps.iter().filter(|e| e.success).count();
            println!(
                "{}: ok, scene {}, policy {:?}, {} / {} episodes in {} shards, {} steps, success {}/{}\nobservation state {:?}\nimage {:?}\nphysical state {:?}",
                dataset.display(), m.scene, m.policy, eps.len(), m.episodes, m.shards.len(), steps, succ, eps.len(),
                m.obs_state_names, m.image_shape, m.state_names
            );
            if (eps.len() as u64) < m.episodes {
                println!("incomplete: rerun the collect command to record the missing episodes");
            }
            Ok(())
        }
        Command::Replay {
            recording,
            episode,
            frames,
            gif: gif_path,
        } => {
            let out = crate::recording::FrameOutput {
                png_dir: frames.clone(),
                gif: gif_path.clone(),
            };
            let r = crate::recording::replay(&recording, Some(episode), &out)?;
            let matching = r.iter().filter(|e| e.matches).count();
            let wins = r.iter().filter(|e| e.success).count();
            println!("{}: {} episodes replayed, {wins} successful, {matching}/{} identical to the recording", recording.display(), r.len(), r.len());
            if let Some(dir) = frames {
                println!("frames of episode {episode}: {}", dir.display());
            }
            if let Some(g) = gif_path {
                println!("GIF of episode {episode}: {}", g.display());
            }
            anyhow::ensure!(
                matching == r.len(),
                "some replays differ from the recording (was the simulator changed?)"
            );
            Ok(())
        }
        Command::Eval {
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
        } => {
            let opts = crate::eval::EvalOptions {
                agent_path: crate::model::AgentFile::resolve_path(&agent),
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
            };
            println!("{}", crate::eval::eval(&opts)?.report());
            Ok(())
        }
        Command::Batch {
            experiment,
            db,
            jobs,
            shard,
        } => {
            let shard = shard
                .map(|s| {
                    s.parse::<crate::batch::Shard>()
                        .map_err(|m| InputError::new(std::path::Path::new("--shard"), "", m))
                })
                .transpose()?;
            if jobs == Some(0) {
                return Err(InputError::new(
                    std::path::Path::new("--jobs"),
                    "",
                    "expected at least 1 worker",
                )
                .into());
            }
            let s = crate::batch::batch(&crate::batch::BatchOptions {
                experiment,
                db,
                jobs,
                shard,
                progress: true,
                quiet: false,
            })?;
            println!(
                "{}: {} runs finished now, {} were done already, {} failed; {:.1} s. Report: hjepa report {}",
                s.experiment,
                s.finished,
                s.already_done,
                s.failed.len(),
                s.seconds,
                s.db.display()
            );
            for (id, label, err) in &s.failed {
                eprintln!("failed run {id} ({label}): {err}");
            }
            if s.interrupted {
                eprintln!("interrupted: rerun the same command to finish the remaining runs");
                std::process::exit(130);
            }
            anyhow::ensure!(
                s.failed.is_empty(),
                "{} runs failed (they rerun next time)",
                s.failed.len()
            );
            Ok(())
        }
        Command::Record {
            scene,
            agent,
            policy,
            oracle,
            seed,
            episode,
            out,
            frames,
            recording,
            size,
            device,
        } => {
            let s = crate::record::record(&crate::record::RecordOptions {
                scene,
                agent: agent.map(|a| crate::model::AgentFile::resolve_path(&a)),
                policy,
                oracle,
                seed,
                episode,
                gif: out.clone(),
                frames,
                recording,
                size,
                device,
            })?;
            println!(
                "{}: {} on {}, episode {episode} of seed {seed}: {} after {} steps; {} frames",
                out.display(),
                s.actor,
                s.scene,
                if s.success { "success" } else { "no success" },
                s.steps,
                s.frames
            );
            Ok(())
        }
        Command::View {
            scene,
            agent,
            oracle,
            replay,
            seed,
            paused,
            speed,
            frames,
            screenshot,
            width,
            height,
            device,
        } => {
            anyhow::ensure!(
                screenshot.is_none() || frames.is_some(),
                "--screenshot needs --frames N (the frame to capture)"
            );
            crate::view::view(&crate::view::ViewOptions {
                scene,
                agent: agent.map(|a| crate::model::AgentFile::resolve_path(&a)),
                oracle,
                replay,
                seed,
                paused,
                speed,
                frames,
                screenshot,
                width,
                height,
                device,
            })
        }
        Command::Merge { out, inputs } => {
            let m = crate::batch::merge(&out, &inputs)?;
            println!(
                "{}: {} runs added, {} already there; {} runs done of {} evaluations in the grid (shards {})",
                out.display(),
                m.runs_added,
                m.duplicates,
                m.runs_done,
                m.eval_runs_in_grid,
                m.shards.join(", ")
            );
            Ok(())
        }
        Command::Report { db, out } => {
            if !db.is_file() {
                return Err(InputError::new(&db, "", "no such results database").into());
            }
            let out = out.unwrap_or_else(|| {
                db.parent()
                    .unwrap_or(std::path::Path::new("."))
                    .join("report")
            });
            let r = crate::batch::report::load(&db)?;
            let w = crate::batch::report::write(&r, &out)?;
            println!("{}", std::fs::read_to_string(&w.markdown)?);
            println!(
                "written: {}, {}, {} plots in {}",
                w.markdown.display(),
                w.csv
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                w.plots.len(),
                out.display()
            );
            Ok(())
        }
        Command::Bench {
            what: BenchCommand::Batch { episodes, repeats },
        } => {
            println!("{}", crate::bench::batch_table(episodes, repeats)?);
            Ok(())
        }
        Command::Bench {
            what: BenchCommand::Sim { seconds },
        } => {
            println!("{}", crate::bench::sim_table(seconds)?);
            Ok(())
        }
        Command::Bench {
            what: BenchCommand::Plan { seconds },
        } => {
            println!("{}", crate::bench::plan_table(seconds)?);
            Ok(())
        }
        Command::Bench {
            what: BenchCommand::Model { seconds, device },
        } => {
            println!("{}", crate::bench::model_table(seconds, device.as_deref())?);
            Ok(())
        }
    }
}

/// The one-paragraph summary `hjepa train` prints for a finished run.
fn print_trained(out: &Path, s: &crate::model::train::TrainSummary) {
    let trained = if s.steps_this_run > 0 {
        format!(
            "{} steps trained, {:.0} training samples/s",
            s.steps_this_run, s.samples_per_second
        )
    } else {
        "no steps trained".to_string()
    };
    let critic = s.critic_fit.as_ref().map_or(String::new(), |f| {
        format!(
            "\ncritic fitted in {:.1} s: {} nodes, {} edges, final loss {:.5}",
            f.seconds, f.nodes, f.edges, f.final_loss
        )
    });
    println!(
        "{}: {} steps ({trained}), {:.1} s{critic}\n{}\nplots: {}/{{losses,probes,horizon,spread}}.png",
        out.display(),
        s.steps,
        s.seconds,
        s.diagnostics.summary(),
        out.display()
    );
}
