//! Planners against mock models with known minima, the hierarchical hand-down, warm start,
//! MPC with the oracle model, the configurator's errors, and eval reproducibility.
// Needs the world model (the default `torch` feature).
#![cfg(feature = "torch")]

mod common;

use std::path::Path;

use hjepa::agent::{executed_offset, Actor, OracleAgent};
use hjepa::cost::Reduce;
use hjepa::plan::hierarchical::{plan_lower, plan_upper};
use hjepa::plan::oracle::{SandboxEncoded, SandboxModel};
use hjepa::plan::{make_planner, ActionBox, Objective, PlannerConfig, PlannerKind, Search, Unroll};
use hjepa::run::eval::run_episode;
use hjepa::sim::{Env, Observation};
use tch::{Kind, Tensor};

/// A point that moves by `gain * a` per step from `x0`: states are the running positions.
struct Integrator {
    x0: Tensor,
    gain: f64,
}

impl Unroll for Integrator {
    fn unroll(&self, actions: &Tensor) -> Tensor {
        self.x0.view([1, 1, -1]) + actions.cumsum(1, Kind::Float) * self.gain
    }
}

/// What `PlanningAgent::replan` feeds offset-free MPC: when the world drifts by d per step
/// beyond what the model knows, the offset measured over the actions executed since the last
/// replan is d, however many there were.
#[test]
fn executed_offset_recovers_a_constant_drift() {
    let kind = (Kind::Float, tch::Device::Cpu);
    let x_prev = Tensor::from_slice(&[0.5f32, -1.0]).view([1, 2]);
    let drift = Tensor::from_slice(&[0.03f32, -0.02]).view([1, 2]);
    let model = Integrator {
        x0: x_prev.shallow_clone(),
        gain: 1.0,
    };
    for executed in [1i64, 2, 5] {
        // Fixed, uneven actions (the property holds for any).
        let taken = Tensor::linspace(-0.9, 0.7, executed * 2, kind).view([executed, 2]);
        let world_now =
            &x_prev + taken.sum_dim_intlist(0, true, Kind::Float) + &drift * executed as f64;
        let offset = executed_offset(&model, &taken, &world_now);
        assert_eq!(offset.size(), vec![1, 2]);
        let err = (offset - &drift).abs().max().double_value(&[]);
        assert!(
            err < 1e-6,
            "{executed} executed: offset off the drift by {err}"
        );
    }
}

/// Squared distance of the last state to a target.
struct ReachLast {
    target: Tensor,
}

impl Objective for ReachLast {
    fn cost(&self, states: &Tensor, _actions: &Tensor) -> Tensor {
        let last = states.select(1, states.size()[1] - 1);
        (last - self.target.view([1, -1])).square().sum_dim_intlist(
            [-1i64].as_slice(),
            false,
            Kind::Float,
        )
    }
}

/// Distance to a target summed over every step: moving straight at full speed is the
/// unique optimum.
struct ReachSum {
    target: Tensor,
}

impl Objective for ReachSum {
    fn cost(&self, states: &Tensor, _actions: &Tensor) -> Tensor {
        let d = (states - self.target.view([1, 1, -1]))
            .square()
            .sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)
            .sqrt();
        d.sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)
    }
}

/// Squared distance of every action to a fixed sequence: the unique minimum is that sequence.
struct MatchSequence {
    wanted: Tensor,
}

impl Objective for MatchSequence {
    fn cost(&self, _states: &Tensor, actions: &Tensor) -> Tensor {
        (actions - self.wanted.unsqueeze(0))
            .square()
            .sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Float)
    }
}

fn config(kind: PlannerKind, samples: i64, iterations: i64, horizon: i64) -> PlannerConfig {
    PlannerConfig {
        kind,
        samples,
        elites: (samples / 10).max(2),
        iterations,
        horizon,
        replan_every: 1,
        init_std: 0.7,
        min_std: 0.01,
        temperature: 0.5,
        learning_rate: 0.1,
    }
}

const KINDS: [PlannerKind; 3] = [PlannerKind::Cem, PlannerKind::Mppi, PlannerKind::Gradient];

#[test]
fn random_shooting_the_extension_example_reaches_a_target() {
    // The extension example: it runs its rounds and gets near a reachable target.
    let target = Tensor::from_slice(&[0.6f32, -0.4]);
    let unroll = Integrator {
        x0: Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)),
        gain: 0.5,
    };
    let mut p = make_planner(&config(PlannerKind::Shooting, 500, 8, 3), 11);
    let plan = p.plan(Search {
        unroll: &unroll,
        objective: &ReachLast { target },
        space: &ActionBox::unit(2),
        warm: None,
    });
    // Each round is an independent draw (random shooting keeps no distribution), so only
    // the end result is a claim: it gets near the target.
    assert_eq!(plan.cost_trace.len(), 8);
    assert!(plan.cost < 0.05, "cost {}", plan.cost);
}

/// Plans with each kind: sampling planners get 300 samples, the gradient planner a few
/// restarts and more steps.
fn plan_each(
    horizon: i64,
    sampling_iterations: i64,
    gradient: (i64, i64),
    unroll: &dyn Unroll,
    objective: &dyn Objective,
) -> Vec<(PlannerKind, hjepa::plan::Plan)> {
    KINDS
        .iter()
        .map(|&kind| {
            let (samples, iterations) = if kind == PlannerKind::Gradient {
                gradient
            } else {
                (300, sampling_iterations)
            };
            let mut p = make_planner(&config(kind, samples, iterations, horizon), 7);
            let search = Search {
                unroll,
                objective,
                space: &ActionBox::unit(2),
                warm: None,
            };
            (kind, p.plan(search))
        })
        .collect()
}

#[test]
fn every_planner_finds_the_minimum_of_an_analytic_cost() {
    let wanted = Tensor::from_slice(&[0.5f32, -0.3, -0.8, 0.1, 0.2, 0.9, -0.4, -0.6]).view([4, 2]);
    let unroll = Integrator {
        x0: Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)),
        gain: 1.0,
    };
    for (kind, plan) in plan_each(
        4,
        30,
        (4, 200),
        &unroll,
        &MatchSequence {
            wanted: wanted.shallow_clone(),
        },
    ) {
        let err = (&plan.actions - &wanted).abs().max().double_value(&[]);
        assert!(
            err < 0.05,
            "{kind:?}: largest action error {err:.3} (cost {:.4})",
            plan.cost
        );
        // The iterations refined the first one's best (the trace is the best so far, so
        // only a planner that never improves leaves it flat).
        let (first, last) = (plan.cost_trace[0], *plan.cost_trace.last().unwrap());
        assert!(
            last < first,
            "{kind:?}: no iteration improved on the first: {:?}",
            plan.cost_trace
        );
    }
}

#[test]
fn every_planner_steers_a_point_to_a_reachable_target() {
    let target = Tensor::from_slice(&[1.2f32, -0.9]);
    let unroll = Integrator {
        x0: Tensor::from_slice(&[0.1f32, 0.2]),
        gain: 0.5,
    };
    for (kind, plan) in plan_each(
        6,
        20,
        (8, 150),
        &unroll,
        &ReachLast {
            target: target.shallow_clone(),
        },
    ) {
        let last = unroll.unroll(&plan.actions.unsqueeze(0)).get(0).get(5);
        let miss = (&last - &target)
            .square()
            .sum(Kind::Float)
            .sqrt()
            .double_value(&[]);
        assert!(miss < 0.05, "{kind:?}: ends {miss:.3} from the target");
    }
}

#[test]
fn the_norm_ball_is_respected() {
    let space = ActionBox {
        dim: 2,
        center: vec![0.0, 0.0],
        scale: vec![0.245, 0.245],
        max_norm: Some(0.245),
        targets_within: None,
    };
    let x = Tensor::from_slice(&[1.0f32, 1.0, 0.3, -0.2, -1.0, 0.0]).view([3, 2]);
    let p = space.project(&x);
    let norms: Vec<f32> = Vec::try_from(
        p.square()
            .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
            .sqrt(),
    )
    .unwrap();
    assert!(
        (norms[0] - 1.0).abs() < 1e-5,
        "corner scaled onto the ball: {norms:?}"
    );
    assert!(
        (norms[1] - (0.13f32).sqrt()).abs() < 1e-5,
        "inside points unchanged: {norms:?}"
    );
    assert!((norms[2] - 1.0).abs() < 1e-5);
}

#[test]
fn the_hierarchical_planner_hands_the_right_subgoal_down() {
    // Upper level: h moves by u per jump; the goal is 3 jumps away along +x, so the only
    // optimal plan moves by (1, 0) each jump and the first predicted state is (1, 0).
    let upper_unroll = Integrator {
        x0: Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)),
        gain: 1.0,
    };
    let goal = Tensor::from_slice(&[3.0f32, 0.0]);
    let mut upper = make_planner(&config(PlannerKind::Cem, 400, 30, 3), 1);
    let up = plan_upper(
        upper.as_mut(),
        &upper_unroll,
        &upper_unroll,
        &ReachSum { target: goal },
        &ActionBox::unit(2),
        None,
        1,
    );
    let sub: Vec<f32> = Vec::try_from(up.subgoal.view([-1])).unwrap();
    assert!(
        (sub[0] - 1.0).abs() < 0.05 && sub[1].abs() < 0.05,
        "subgoal {sub:?}, expected (1, 0)"
    );

    // Lower level: small steps; its cost pursues the subgoal it is handed.
    let lower_unroll = Integrator {
        x0: Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)),
        gain: 0.25,
    };
    let mut lower = make_planner(&config(PlannerKind::Mppi, 300, 20, 5), 2);
    let objective_for = |s: &Tensor| -> Box<dyn Objective> {
        Box::new(ReachLast {
            target: s.view([-1]),
        })
    };
    let plan = plan_lower(
        lower.as_mut(),
        &lower_unroll,
        &objective_for,
        &up.subgoal,
        &ActionBox::unit(2),
        None,
    );
    let end: Vec<f32> = Vec::try_from(
        lower_unroll
            .unroll(&plan.actions.unsqueeze(0))
            .get(0)
            .get(4),
    )
    .unwrap();
    assert!(
        (end[0] - sub[0]).abs() < 0.05 && (end[1] - sub[1]).abs() < 0.05,
        "lower plan ends at {end:?}, subgoal {sub:?}"
    );
}

/// An unroll that adds a constant drift per step to another's predictions (what offset
/// correction does to the upper level's search).
struct Drifted<'a> {
    inner: &'a dyn Unroll,
    drift: Tensor,
}

impl Unroll for Drifted<'_> {
    fn unroll(&self, actions: &Tensor) -> Tensor {
        let h = actions.size()[1];
        let t = Tensor::arange_start(1, h + 1, (Kind::Float, tch::Device::Cpu)).view([1, h, 1]);
        self.inner.unroll(actions) + t * self.drift.view([1, 1, -1])
    }
}

#[test]
fn the_upper_level_searches_a_corrected_model_but_hands_down_its_own_prediction() {
    // The search sees +x moves cancelled (as after a macro-action a wall blocked); the goal
    // is still along +x, so the plan pushes +x, and the subgoal is where the model itself
    // says that leads (1, 0), not the corrected (0, 0).
    let model = Integrator {
        x0: Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)),
        gain: 1.0,
    };
    let search = Drifted {
        inner: &model,
        drift: Tensor::from_slice(&[-1.0f32, 0.0]),
    };
    let mut upper = make_planner(&config(PlannerKind::Cem, 400, 30, 3), 1);
    let up = plan_upper(
        upper.as_mut(),
        &search,
        &model,
        &ReachSum {
            target: Tensor::from_slice(&[3.0f32, 0.0]),
        },
        &ActionBox::unit(2),
        None,
        1,
    );
    assert_eq!(up.states.size(), vec![3, 2]);
    let sub: Vec<f32> = Vec::try_from(up.subgoal.view([-1])).unwrap();
    assert!(
        (sub[0] - 1.0).abs() < 0.05 && sub[1].abs() < 0.05,
        "subgoal {sub:?}, expected the model's (1, 0)"
    );
    let last: Vec<f32> = Vec::try_from(up.states.get(2)).unwrap();
    assert!((last[0] - 3.0).abs() < 0.15, "third jump at {last:?}");
}

#[test]
fn a_warm_start_needs_fewer_iterations_on_a_smooth_problem() {
    // Replanning after one executed step: the shifted previous plan is nearly optimal.
    let wanted = Tensor::linspace(-0.8, 0.8, 16, (Kind::Float, tch::Device::Cpu)).view([8, 2]);
    let unroll = Integrator {
        x0: Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)),
        gain: 1.0,
    };
    let objective = MatchSequence {
        wanted: wanted.shallow_clone(),
    };
    let iterations_to = |warm: Option<&Tensor>| {
        let mut p = make_planner(&config(PlannerKind::Cem, 100, 40, 8), 5);
        let plan = p.plan(Search {
            unroll: &unroll,
            objective: &objective,
            space: &ActionBox::unit(2),
            warm,
        });
        plan.cost_trace
            .iter()
            .position(|c| *c < 0.05)
            .map_or(41, |i| i + 1)
    };
    let previous = (&wanted + 0.02).clamp(-1.0, 1.0);
    let cold = iterations_to(None);
    let warm = iterations_to(Some(&previous));
    assert!(
        warm * 3 <= cold,
        "warm start took {warm} iterations, cold {cold}"
    );
}

#[test]
fn mpc_with_the_oracle_model_solves_two_rooms() {
    let scene = common::scene("two_rooms");
    let cfg = PlannerConfig {
        replan_every: 4,
        ..config(PlannerKind::Mppi, 100, 4, 16)
    };
    let mut agent = OracleAgent::new(cfg, Reduce::Sum, &scene).unwrap();
    let mut env = Env::new(scene.clone());
    let mut solved = 0;
    for i in 0..6 {
        let ep = run_episode(
            &mut agent as &mut dyn Actor,
            &mut env,
            i,
            hjepa::data::episodes::episode_seed(9, i),
        )
        .unwrap();
        solved += ep.success as usize;
    }
    assert_eq!(solved, 6, "the oracle solved {solved}/6 two_rooms episodes");
}

/// `--sandbox-dynamics`' unroll: each candidate is replayed on the sandbox from the
/// snapshot and what it shows goes through the encoder in order; once the episode ends (here
/// truncated after 2 of 4 steps) its final observation repeats.
#[test]
fn the_sandbox_unroll_encodes_what_the_sandbox_shows() {
    let scene = common::scene("point_maze_u");
    let frameskip = scene.physics.frameskip;
    let mut env = Env::new(scene.clone());
    env.reset(3);
    while env.steps() < scene.episode_steps - 2 * frameskip {
        env.step(&[0.3, 0.1]).unwrap();
    }
    let space = ActionBox::of_space(&scene.agent.action);
    let sandbox = SandboxModel::new(
        &env,
        SandboxModel::seeing_scratch_env(&scene),
        space.clone(),
    );
    // The "encoder" reads the state vector as it is.
    let encode = |obs: &[&Observation]| {
        let flat: Vec<f32> = obs.iter().flat_map(|o| o.state.clone()).collect();
        Tensor::from_slice(&flat).view([obs.len() as i64, -1])
    };
    let unroll = SandboxEncoded {
        sandbox: &sandbox,
        encode: &encode,
        device: tch::Device::Cpu,
    };
    tch::manual_seed(5);
    let actions = Tensor::rand([3, 4, 2], (Kind::Float, tch::Device::Cpu)) * 2.0 - 1.0;
    let z = unroll.unroll(&actions);
    let width = env.observe().state.len() as i64;
    assert_eq!(z.size(), [3, 4, width]);
    for i in 0..3 {
        let mut copy = Env::new(scene.clone());
        copy.restore(&env.snapshot());
        let mut last = Vec::new();
        for t in 0..4 {
            if t < 2 {
                let x: Vec<f32> = Vec::try_from(actions.get(i).get(t)).unwrap();
                let a = space.to_scene(&x, copy.world().agent_position().into());
                let step = copy.step(&[a[0], a[1]]).unwrap();
                assert_eq!(step.truncated, t == 1);
                last = step.observation.state;
            }
            let got: Vec<f32> = Vec::try_from(z.get(i).get(t)).unwrap();
            assert_eq!(got, last, "candidate {i}, step {t}");
        }
    }
    // The planner sees different candidates as different futures.
    assert!(
        z.get(0)
            .get(1)
            .not_equal_tensor(&z.get(1).get(1))
            .any()
            .int64_value(&[])
            == 1
    );
}

fn eval_cli(agent: &Path, extra: &[&str]) -> std::process::Output {
    common::bin()
        .args(["eval", "--episodes", "2", "--no-random-floor", "--agent"])
        .arg(agent)
        .args(extra)
        .output()
        .unwrap()
}

fn assert_exit_2(out: &std::process::Output, mentions: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for m in mentions {
        assert!(
            stderr.contains(m),
            "stderr does not mention {m:?}:\n{stderr}"
        );
    }
}

const PLANNING: &str = r#"
[planning]
checkpoint = "CHECKPOINT"
[planning.planner]
kind = "mppi"
samples = 64
elites = 8
iterations = 2
horizon = 8
replan_every = 4
"#;

fn agent_with_planning(
    dir: &Path,
    name: &str,
    checkpoint: &Path,
    edit: &dyn Fn(String) -> String,
) -> std::path::PathBuf {
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_agent.toml"),
    )
    .unwrap();
    let text = edit(base + &PLANNING.replace("CHECKPOINT", checkpoint.to_str().unwrap()));
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// An eval's per-episode rows without their timings, which differ from run to run.
fn rows_without_timings(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let row = v.as_object_mut().unwrap();
            row.remove("planning_s");
            row.remove("replan_ms");
            v
        })
        .collect()
}

/// A tiny trained run on a tiny two_rooms dataset (a few seconds).
fn tiny_run(dir: &Path) -> std::path::PathBuf {
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_agent.toml");
    common::tiny_run_of(dir, &agent)
}

const LEVEL2_CRITIC: &str = "[critic]\nenabled = true\nlevel2 = true\nhidden = 16\nmetric_dim = 4\nsources = 8\nsteps = 50\nbatch_size = 32\n\n";

/// `[critic] level2 = true` fits a critic on level-2 states, and a hierarchical agent with a
/// critic cost plans its upper level on it (closed loop, through the binary).
#[test]
fn a_hierarchical_agent_plans_its_upper_level_on_the_level2_critic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_agent.toml"),
    )
    .unwrap();
    let model_agent = d.join("model.toml");
    // The critic is fitted once training reaches the file's step count (4 here).
    let with_critic = |t: String| {
        t.replace("steps = 40", "steps = 4")
            .replace("[train]", &format!("{LEVEL2_CRITIC}[train]"))
    };
    std::fs::write(&model_agent, with_critic(base)).unwrap();
    let run = common::tiny_run_of(d, &model_agent);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint/meta.json")).unwrap())
            .unwrap();
    assert!(
        meta["critic"]["level2"]["nodes"].as_u64().unwrap() > 0,
        "{meta}"
    );
    let agent = agent_with_planning(d, "upper.toml", &run, &|t| {
        with_critic(t)
            + "[planning.cost]\ngoal_weight = 0.0\ncritic = 1.0\n"
            + "[planning.upper]\nkind = \"mppi\"\nsamples = 16\niterations = 1\nhorizon = 2\nreplan_every = 4\n"
    });
    let out_path = d.join("upper.jsonl");
    let out = eval_cli(&agent, &["--out", out_path.to_str().unwrap()]);
    common::assert_ok(&out);
    assert_eq!(
        std::fs::read_to_string(&out_path).unwrap().lines().count(),
        2
    );
    // The diagnostic that replaces the upper level by the scene's waypoints: the learned
    // lower level pursues them; its results go to a file of their own.
    let out = eval_cli(&agent, &["--waypoint-subgoals"]);
    common::assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("(waypoint subgoals)"), "{stdout}");
    let default_out = run.join("eval-upper-on-two_rooms-0-n2-waypoint-subgoals.jsonl");
    assert_eq!(
        std::fs::read_to_string(&default_out)
            .unwrap_or_else(|e| panic!("{}: {e}\n{stdout}", default_out.display()))
            .lines()
            .count(),
        2
    );
    // Another episode count writes its own file: the two-episode results stay.
    let out = common::bin()
        .args([
            "eval",
            "--episodes",
            "1",
            "--no-random-floor",
            "--waypoint-subgoals",
        ])
        .arg("--agent")
        .arg(&agent)
        .output()
        .unwrap();
    common::assert_ok(&out);
    let one = run.join("eval-upper-on-two_rooms-0-n1-waypoint-subgoals.jsonl");
    assert_eq!(std::fs::read_to_string(&one).unwrap().lines().count(), 1);
    assert_eq!(
        std::fs::read_to_string(&default_out)
            .unwrap()
            .lines()
            .count(),
        2
    );
    // The diagnostic that plans level 1 on the sandbox's dynamics (rendering every candidate's
    // frames, so on short episodes): its own results file.
    let out = eval_cli(&agent, &["--sandbox-dynamics", "--max-steps", "24"]);
    common::assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("(sandbox dynamics)"), "{stdout}");
    let default_out = run.join("eval-upper-on-two_rooms-0-n2-max24-sandbox-dynamics.jsonl");
    assert_eq!(
        std::fs::read_to_string(&default_out)
            .unwrap_or_else(|e| panic!("{}: {e}\n{stdout}", default_out.display()))
            .lines()
            .count(),
        2
    );
    assert_exit_2(
        &eval_cli(&agent, &["--sandbox-dynamics", "--oracle"]),
        &["--oracle"],
    );
    assert_exit_2(
        &eval_cli(&agent, &["--sandbox-dynamics", "--waypoint-subgoals"]),
        &["--waypoint-subgoals"],
    );
    // The lower level can weigh the level-2 critic's steps to the subgoal as well.
    let text = std::fs::read_to_string(&agent).unwrap();
    assert!(text.contains("[planning]\n"), "{text}");
    // Variants of the same agent through the binary: each runs its two episodes, and each
    // plays them differently from the base agent (an option that was ignored would replay
    // the base agent's episodes exactly: evaluation is deterministic).
    let runs_two_episodes = |agent: &Path, name: &str| -> Vec<serde_json::Value> {
        let out_path = d.join(format!("{name}.jsonl"));
        common::assert_ok(&eval_cli(agent, &["--out", out_path.to_str().unwrap()]));
        let rows = rows_without_timings(&out_path);
        assert_eq!(rows.len(), 2, "{name}");
        rows
    };
    let base = runs_two_episodes(&agent, "base");
    let changes_the_episodes = |agent: &Path, name: &str| {
        let rows = runs_two_episodes(agent, name);
        assert_ne!(rows, base, "{name}: the option changed nothing");
    };
    let variant = |name: &str, planning: &str| {
        let agent = d.join(format!("{name}.toml"));
        std::fs::write(
            &agent,
            text.replace("[planning]\n", &format!("[planning]\n{planning}")),
        )
        .unwrap();
        changes_the_episodes(&agent, name);
    };
    variant("subgoal_critic", "subgoal_critic = 1.0\n");
    // Offset-free MPC at both levels, and the subgoal taken from the second jump.
    variant(
        "offsets",
        "offset_correction = true\nupper_offset_correction = true\nsubgoal_jump = 2\n",
    );

    // Landmark subgoals instead of the upper planner: landmarks placed among the frames of
    // the checkpoint's own dataset (the default) or of a named one, in either placement.
    let flat_text = text.split("[planning.upper]").next().unwrap().to_string();
    let landmarks = |name: &str, table: &str| {
        let agent = d.join(format!("{name}.toml"));
        std::fs::write(&agent, format!("{flat_text}[planning.landmarks]\n{table}")).unwrap();
        agent
    };
    for (name, table) in [
        (
            "landmarks",
            "count = 6\nreach = 5.0\nreplan_every = 3\n".to_string(),
        ),
        (
            "landmark_frames",
            format!(
                "count = 6\nplacement = \"frames\"\ndata = {:?}\n",
                d.join("data").to_str().unwrap()
            ),
        ),
    ] {
        changes_the_episodes(&landmarks(name, &table), name);
    }
    // Through the library: the landmark level ran, its way ahead (the path's landmarks, then
    // the goal) ends at the goal's level-2 state, where an upper plan's would end at a
    // predicted state.
    {
        use hjepa::agent::Actor;
        let scene = std::sync::Arc::new(
            hjepa::sim::Scene::load(&hjepa::sim::Scene::resolve_path("two_rooms")).unwrap(),
        );
        let path = landmarks("landmarks", "count = 6\nreach = 5.0\n");
        let mut agent = hjepa::agent::load_planning_agent(&path, &scene, None, None).unwrap();
        let mut env = hjepa::sim::Env::new(scene.clone());
        let obs = env.reset(3);
        agent.reset(&mut env, 3);
        agent.act(&env, &obs);
        let way = agent
            .upper_states()
            .expect("a hierarchical agent has a way ahead");
        let goal_h = agent.abstract_states(&[&env.goal_observation()]).unwrap();
        let gap = (way.get(way.size()[0] - 1) - goal_h.get(0))
            .abs()
            .max()
            .double_value(&[]);
        assert!(gap < 1e-6, "the way ahead ends {gap} from the goal");
    }
    // The waypoint diagnostic replaces the landmark level as it does the planner.
    common::assert_ok(&eval_cli(
        &landmarks("landmarks", "count = 6\n"),
        &["--waypoint-subgoals"],
    ));
    // Bad landmark tables: a dataset that is not there, too few landmarks, both upper levels.
    assert_exit_2(
        &eval_cli(&landmarks("no_data", "data = \"no-such-data\"\n"), &[]),
        &["no_data.toml", "planning.landmarks.data", "no-such-data"],
    );
    assert_exit_2(
        &eval_cli(&landmarks("one", "count = 1\n"), &[]),
        &["one.toml", "planning.landmarks.count", "found 1"],
    );
    let both = d.join("both.toml");
    std::fs::write(&both, format!("{text}\n[planning.landmarks]\n")).unwrap();
    assert_exit_2(
        &eval_cli(&both, &[]),
        &["both.toml", "planning.landmarks", "not both"],
    );
}

/// An agent on an ensemble of level-1 predictors plays through the binary, flat (with the
/// offset correction, which compares against the members' mean) and hierarchical (whose
/// lower level scores each member's states at level 2), and replays its episodes exactly.
#[test]
fn an_ensemble_agent_plans_on_every_member() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_agent.toml"),
    )
    .unwrap();
    let model = d.join("ensemble_model.toml");
    std::fs::write(
        &model,
        base.replace("horizon = 3", "horizon = 3\nensemble = 3"),
    )
    .unwrap();
    let run = common::tiny_run_of(d, &model);
    let ensemble = |t: String| t.replace("horizon = 3", "horizon = 3\nensemble = 3");
    let upper = "\n[planning.upper]\nkind = \"mppi\"\nsamples = 16\niterations = 1\nhorizon = 2\nreplan_every = 4\n";
    for (name, edit) in [
        ("flat", "[planning]\noffset_correction = true\n"),
        ("hierarchical", "[planning]\n"),
    ] {
        let with_disagreement = |file: &str, weight: f64| {
            agent_with_planning(d, file, &run, &|t| {
                let t = ensemble(t).replace("[planning]\n", edit)
                    + &format!("[planning.cost]\ndisagreement = {weight}\n");
                if name == "hierarchical" {
                    t + upper
                } else {
                    t
                }
            })
        };
        let agent = with_disagreement(&format!("{name}.toml"), 1.0);
        // The members' spread steers the plans: without the ensemble's every member in the
        // unroll, the disagreement would be 0 and its weight would change nothing.
        let (heavy, none) = (
            d.join(format!("{name}-heavy.jsonl")),
            d.join(format!("{name}-none.jsonl")),
        );
        let no_disagreement = with_disagreement(&format!("{name}-none.toml"), 0.0);
        let heavy_agent = with_disagreement(&format!("{name}-heavy.toml"), 100.0);
        common::assert_ok(&eval_cli(&heavy_agent, &["--out", heavy.to_str().unwrap()]));
        common::assert_ok(&eval_cli(
            &no_disagreement,
            &["--out", none.to_str().unwrap()],
        ));
        assert_ne!(
            rows_without_timings(&heavy),
            rows_without_timings(&none),
            "{name}: the members' disagreement changed nothing"
        );
        let results = |tag: &str| {
            let path = d.join(format!("{name}-{tag}.jsonl"));
            common::assert_ok(&eval_cli(&agent, &["--out", path.to_str().unwrap()]));
            std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    (v["seed"].clone(), v["success"].clone(), v["steps"].clone())
                })
                .collect::<Vec<_>>()
        };
        let first = results("a");
        assert_eq!(first.len(), 2, "{name}");
        assert_eq!(first, results("b"), "{name}: not reproducible");
    }
}

/// `planning.peers`: a committee of separately trained models. A model beside itself plans
/// exactly as alone (the mean of two equal costs); another training changes the plans and
/// still replays exactly; peers that cannot plan beside the checkpoint are refused.
#[test]
fn a_committee_averages_its_models_costs_and_refuses_mismatched_peers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = tiny_run(d);
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_agent.toml");
    let base = std::fs::read_to_string(&tiny).unwrap();
    let train_variant = |name: &str, from: &str, to: &str| {
        let agent = d.join(format!("{name}.toml"));
        std::fs::write(&agent, base.replace(from, to)).unwrap();
        let out = d.join(name);
        common::assert_ok(&common::train_cli(
            &agent,
            &d.join("data"),
            &out,
            &["--steps", "4"],
        ));
        out
    };
    // Another training of the same file: `--seed` overrides train.seed, and the checkpoint
    // records it.
    let other_seed = d.join("seed4");
    common::assert_ok(&common::train_cli(
        &tiny,
        &d.join("data"),
        &other_seed,
        &["--steps", "4", "--seed", "4"],
    ));
    let recorded = std::fs::read_to_string(other_seed.join("checkpoint/agent.toml")).unwrap();
    assert!(recorded.contains("seed = 4"), "{recorded}");
    let with_peers = |name: &str, peers: &[&Path]| {
        let list: Vec<String> = peers.iter().map(|p| format!("{p:?}")).collect();
        agent_with_planning(d, name, &run, &|t| {
            t.replace(
                "[planning]\n",
                &format!("[planning]\npeers = [{}]\n", list.join(", ")),
            )
        })
    };
    let results = |agent: &Path, tag: &str| {
        let path = d.join(format!("{tag}.jsonl"));
        let out = eval_cli(
            agent,
            &["--max-steps", "40", "--out", path.to_str().unwrap()],
        );
        common::assert_ok(&out);
        rows_without_timings(&path)
    };
    let alone = results(&with_peers("alone.toml", &[]), "alone");
    assert_eq!(alone.len(), 2);
    // The same file plans with the other training alone: the checkpoint's seed is not
    // held against the file's.
    let peer_alone = results(
        &agent_with_planning(d, "peer_alone.toml", &other_seed, &|t| t),
        "peer-alone",
    );
    assert_ne!(alone, peer_alone, "the two trainings planned alike");
    // Resuming it is another matter: without `--seed 4` it would continue another training.
    assert_exit_2(
        &common::train_cli(
            &tiny,
            &d.join("data"),
            &other_seed,
            &["--steps", "4", "--resume"],
        ),
        &["train.seed"],
    );
    assert_eq!(alone, results(&with_peers("self.toml", &[&run]), "self"));
    let committee = with_peers("committee.toml", &[&other_seed]);
    let first = results(&committee, "committee-a");
    assert_ne!(alone, first, "the peer's cost changed nothing");
    assert_eq!(
        first,
        results(&committee, "committee-b"),
        "not reproducible"
    );
    // The models' disagreement (`peer_disagreement`): here the larger of the two costs.
    let weighing_disagreement = |name: &str, base: &Path| {
        let path = d.join(name);
        let text = std::fs::read_to_string(base).unwrap();
        std::fs::write(&path, text + "\n[planning.cost]\npeer_disagreement = 1.0\n").unwrap();
        path
    };
    let cautious = weighing_disagreement("cautious_committee.toml", &committee);
    assert_ne!(
        first,
        results(&cautious, "cautious"),
        "the models' disagreement changed nothing"
    );
    let lonely = weighing_disagreement("lonely.toml", &with_peers("no_peers.toml", &[]));
    assert_exit_2(
        &eval_cli(&lonely, &[]),
        &["lonely.toml", "planning.cost.peer_disagreement", "peers"],
    );

    assert_exit_2(
        &eval_cli(
            &with_peers("missing_peer.toml", &[&d.join("no-such-run")]),
            &[],
        ),
        &["missing_peer.toml", "planning.peers[0]", "no-such-run"],
    );
    let narrow = train_variant("narrow", "latent_dim = 16", "latent_dim = 8");
    assert_exit_2(
        &eval_cli(
            &with_peers("narrow_peer.toml", &[&other_seed, &narrow]),
            &[],
        ),
        &["narrow_peer.toml", "planning.peers[1]", "latent_dim 8"],
    );
    let upper = "\n[planning.upper]\nkind = \"mppi\"\nsamples = 16\niterations = 1\nhorizon = 2\nreplan_every = 4\n";
    let hierarchical = d.join("hierarchical_committee.toml");
    std::fs::write(
        &hierarchical,
        std::fs::read_to_string(&committee).unwrap() + upper,
    )
    .unwrap();
    assert_exit_2(
        &eval_cli(&hierarchical, &[]),
        &[
            "hierarchical_committee.toml",
            "planning.peers",
            "plans flat",
        ],
    );
}

#[test]
fn the_configurator_refuses_bad_agent_files_and_eval_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(dir.path());
    let d = dir.path();

    let missing = agent_with_planning(d, "missing.toml", &d.join("no-such-run"), &|t| t);
    assert_exit_2(
        &eval_cli(&missing, &[]),
        &["missing.toml", "planning.checkpoint", "no-such-run"],
    );

    let zero = agent_with_planning(d, "zero.toml", &run, &|t| {
        t.replace("samples = 64", "samples = 0")
    });
    assert_exit_2(
        &eval_cli(&zero, &[]),
        &["zero.toml", "planning.planner", "samples"],
    );

    let long = agent_with_planning(d, "long.toml", &run, &|t| {
        t.replace("horizon = 8", "horizon = 500")
    });
    assert_exit_2(
        &eval_cli(&long, &[]),
        &["long.toml", "planning.planner.horizon", "500"],
    );

    let gradient = agent_with_planning(d, "gradient.toml", &run, &|t| {
        t.replace("kind = \"mppi\"", "kind = \"gradient\"")
    });
    for diagnostic in ["--oracle", "--sandbox-dynamics"] {
        assert_exit_2(
            &eval_cli(&gradient, &[diagnostic]),
            &[
                "gradient.toml",
                "planning.planner.kind",
                "not differentiable",
            ],
        );
    }

    // The upper level's replan interval counts env steps, its horizon jumps of k = 2.
    let upper = "\n[planning.upper]\nkind = \"mppi\"\nsamples = 16\niterations = 1\nhorizon = 2\n";
    let upper_late =
        agent_with_planning(d, "upper.toml", &run, &|t| t + upper + "replan_every = 5\n");
    assert_exit_2(
        &eval_cli(&upper_late, &[]),
        &[
            "upper.toml",
            "planning.upper.replan_every",
            "2 jumps of k = 2",
        ],
    );
    // The subgoal is one of the upper plan's jumps.
    let far_subgoal = agent_with_planning(d, "far_subgoal.toml", &run, &|t| {
        t.replace("[planning]\n", "[planning]\nsubgoal_jump = 3\n") + upper + "replan_every = 4\n"
    });
    assert_exit_2(
        &eval_cli(&far_subgoal, &[]),
        &[
            "far_subgoal.toml",
            "planning.subgoal_jump",
            "1..=planning.upper.horizon (2), found 3",
        ],
    );
    // A hierarchical agent's critic scores level-2 states: it needs the level-2 critic.
    let upper_critic = agent_with_planning(d, "upper_critic.toml", &run, &|t| {
        t.replace("[planning]", "[critic]\nenabled = true\n\n[planning]")
            + "[planning.cost]\ncritic = 1.0\n"
            + upper
            + "replan_every = 4\n"
    });
    assert_exit_2(
        &eval_cli(&upper_critic, &[]),
        &["upper_critic.toml", "planning.cost.critic", "level2 = true"],
    );

    // The subgoal critic weighs the lower level of a hierarchical agent only.
    let flat_subgoal = agent_with_planning(d, "flat_subgoal.toml", &run, &|t| {
        t.replace("[planning]\n", "[planning]\nsubgoal_critic = 1.0\n")
    });
    assert_exit_2(
        &eval_cli(&flat_subgoal, &[]),
        &[
            "flat_subgoal.toml",
            "planning.subgoal_critic",
            "[planning.upper]",
        ],
    );

    let flat_offsets = agent_with_planning(d, "flat_offsets.toml", &run, &|t| {
        t.replace(
            "[planning]\n",
            "[planning]\nupper_offset_correction = true\n",
        )
    });
    assert_exit_2(
        &eval_cli(&flat_offsets, &[]),
        &[
            "flat_offsets.toml",
            "planning.upper_offset_correction",
            "[planning.upper]",
        ],
    );

    // The disagreement of level-1 predictors needs more than one of them.
    let lone = agent_with_planning(d, "lone.toml", &run, &|t| {
        t + "[planning.cost]\ndisagreement = 1.0\n"
    });
    assert_exit_2(
        &eval_cli(&lone, &[]),
        &["lone.toml", "planning.cost.disagreement", "ensemble >= 2"],
    );

    // Landmarks are joined by the level-2 critic: a model without one cannot have them.
    let no_critic = agent_with_planning(d, "no_critic.toml", &run, &|t| {
        t + "\n[planning.landmarks]\ncount = 4\n"
    });
    assert_exit_2(
        &eval_cli(&no_critic, &[]),
        &["no_critic.toml", "planning.landmarks", "level2 = true"],
    );

    let flat_waypoints = agent_with_planning(d, "flat_waypoints.toml", &run, &|t| t);
    assert_exit_2(
        &eval_cli(&flat_waypoints, &["--waypoint-subgoals"]),
        &[
            "flat_waypoints.toml",
            "planning.upper",
            "--waypoint-subgoals",
        ],
    );

    let other_scene = agent_with_planning(d, "scene.toml", &run, &|t| t);
    assert_exit_2(
        &eval_cli(&other_scene, &["--scene", "push_t"]),
        &["meta.json", "push_t", "[64, 64, 3]"],
    );

    // A checkpoint trained at another frameskip than the scene now steps with.
    let stale_run = d.join("stale-run");
    std::fs::create_dir_all(stale_run.join("checkpoint")).unwrap();
    for f in std::fs::read_dir(run.join("checkpoint")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(
            &f,
            stale_run.join("checkpoint").join(f.file_name().unwrap()),
        )
        .unwrap();
    }
    let meta_path = stale_run.join("checkpoint/meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    assert_eq!(meta["env_step"]["frameskip"], 1, "{meta}");
    meta["env_step"]["frameskip"] = 5.into();
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    let stale = agent_with_planning(d, "stale.toml", &stale_run, &|t| t);
    assert_exit_2(
        &eval_cli(&stale, &[]),
        &["meta.json", "env_step.frameskip", "5", "two_rooms"],
    );

    // Same seed, same per-episode results (timings aside).
    let good = agent_with_planning(d, "good.toml", &run, &|t| t);
    let results = |name: &str| {
        let out_path = d.join(name);
        let out = eval_cli(&good, &["--seed", "4", "--out", out_path.to_str().unwrap()]);
        common::assert_ok(&out);
        rows_without_timings(&out_path)
    };
    let (a, b) = (results("a.jsonl"), results("b.jsonl"));
    assert_eq!(a.len(), 2);
    assert_eq!(a, b);

    // One agent serving three sandboxes at once (observations batched through the encoder)
    // plays the same episodes as one at a time (same indices and seeds) and is reproducible.
    // Outcomes may differ from the sequential run: a batched convolution rounds differently.
    let eval_cmd = |path: &Path, extra: &[&str]| {
        common::bin()
            .args([
                "eval",
                "--episodes",
                "4",
                "--no-random-floor",
                "--seed",
                "4",
            ])
            .args(extra)
            .arg("--agent")
            .arg(&good)
            .arg("--out")
            .arg(path)
            .output()
            .unwrap()
    };
    let eval_to = |name: &str, extra: &[&str]| {
        let path = d.join(name);
        common::assert_ok(&eval_cmd(&path, extra));
        let mut v: Vec<(u64, u64, bool, u64)> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| {
                let j: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    j["index"].as_u64().unwrap(),
                    j["seed"].as_u64().unwrap(),
                    j["success"].as_bool().unwrap(),
                    j["steps"].as_u64().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let (p1, p2, seq) = (
        eval_to("parallel-1.jsonl", &["--parallel", "3"]),
        eval_to("parallel-2.jsonl", &["--parallel", "3"]),
        eval_to("sequential.jsonl", &[]),
    );
    assert_eq!(p1, p2, "a parallel evaluation is reproducible");
    let episodes = |v: &[(u64, u64, bool, u64)]| v.iter().map(|e| (e.0, e.1)).collect::<Vec<_>>();
    assert_eq!(
        episodes(&p1),
        episodes(&seq),
        "same episodes and seeds as one at a time"
    );
    // `--only` plays the listed episodes as the full run played them; an index past
    // --episodes is refused.
    assert_eq!(
        eval_to("only.jsonl", &["--only", "3,1"]),
        vec![seq[1], seq[3]]
    );
    assert_eq!(
        episodes(&eval_to(
            "only-parallel.jsonl",
            &["--only", "3,1", "--parallel", "3"]
        )),
        episodes(&[seq[1], seq[3]]),
        "the batched loop plays the same subset"
    );
    assert_exit_2(
        &eval_cmd(&d.join("only-bad.jsonl"), &["--only", "1,4"]),
        &["--only", "episode 4", "4 episodes"],
    );
    assert_exit_2(
        &eval_cmd(&d.join("only-twice.jsonl"), &["--only", "2,2"]),
        &["--only", "episode 2 is listed twice"],
    );

    // A recording replays to the same outcomes and writes frames; a broken one is refused.
    let rec = d.join("episodes.json");
    let out = eval_cli(
        &good,
        &[
            "--seed",
            "4",
            "--out",
            d.join("c.jsonl").to_str().unwrap(),
            "--record",
            rec.to_str().unwrap(),
        ],
    );
    common::assert_ok(&out);
    let frames = d.join("frames");
    let out = common::bin()
        .arg("replay")
        .arg(&rec)
        .arg("--frames")
        .arg(&frames)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("2/2 identical to the recording"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(frames.join("frame_0000.png").exists());
    let gif = d.join("episode.gif");
    let out = common::bin()
        .arg("replay")
        .arg(&rec)
        .arg("--gif")
        .arg(&gif)
        .output()
        .unwrap();
    common::assert_ok(&out);
    let pngs = std::fs::read_dir(&frames).unwrap().count();
    let mut decoder = gif::DecodeOptions::new()
        .read_info(std::fs::File::open(&gif).unwrap())
        .unwrap();
    let mut gif_frames = 0;
    while decoder.read_next_frame().unwrap().is_some() {
        gif_frames += 1;
    }
    assert_eq!(gif_frames, pngs, "GIF frames vs PNG frames");
    let out = common::bin()
        .arg("replay")
        .arg(&rec)
        .args(["--episode", "9", "--gif"])
        .arg(d.join("none.gif"))
        .output()
        .unwrap();
    assert_exit_2(&out, &["episodes.json", "no episode 9", "[0, 1]"]);
    let text = std::fs::read_to_string(&rec).unwrap();
    std::fs::write(&rec, &text[..text.len() / 2]).unwrap();
    assert_exit_2(
        &common::bin().arg("replay").arg(&rec).output().unwrap(),
        &["episodes.json", "not a valid recording"],
    );
}

/// `hjepa train --committee` trains the checkpoint and every peer of an agent file, each in
/// its own run with its own seed (train.seed, then + 1, + 2), and the file then plans with
/// them; a file without peers, or two members in one folder, is refused naming the key.
#[test]
fn train_committee_trains_each_member_with_its_own_seed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_run(d); // for its dataset, d/data
    let members = [d.join("m0"), d.join("m1"), d.join("m2")];
    let committee_file = |name: &str, peers: &[&Path]| {
        let list: Vec<String> = peers.iter().map(|p| format!("{p:?}")).collect();
        agent_with_planning(d, name, &members[0], &|t| {
            t.replace(
                "[planning]\n",
                &format!("[planning]\npeers = [{}]\n", list.join(", ")),
            )
        })
    };
    let train = |agent: &Path, extra: &[&str]| {
        common::bin()
            .args(["train", "--committee", "--steps", "4", "--agent"])
            .arg(agent)
            .arg("--data")
            .arg(d.join("data"))
            .args(extra)
            .output()
            .unwrap()
    };
    let agent = committee_file("committee.toml", &[&members[1], &members[2]]);
    let out = train(&agent, &[]);
    common::assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("committee member 3/3"), "{stdout}");
    // tests/data/tiny_agent.toml has train.seed = 3.
    for (m, seed) in members.iter().zip([3, 4, 5]) {
        let recorded = std::fs::read_to_string(m.join("checkpoint/agent.toml")).unwrap();
        assert!(recorded.contains(&format!("seed = {seed}")), "{recorded}");
    }
    common::assert_ok(&eval_cli(&agent, &["--max-steps", "10"]));
    // --seed moves the whole committee: 7, 8, 9; --resume continues each member.
    let reseeded = d.join("reseeded");
    let agent2 = agent_with_planning(d, "reseeded.toml", &reseeded.join("a"), &|t| {
        t.replace(
            "[planning]\n",
            &format!("[planning]\npeers = [{:?}]\n", reseeded.join("b")),
        )
    });
    common::assert_ok(&train(&agent2, &["--seed", "7"]));
    let b = std::fs::read_to_string(reseeded.join("b/checkpoint/agent.toml")).unwrap();
    assert!(b.contains("seed = 8"), "{b}");
    common::assert_ok(&train(&agent2, &["--seed", "7", "--resume"]));
    // A committee stopped before its last member: --resume keeps the finished ones and
    // trains the missing one.
    std::fs::remove_dir_all(reseeded.join("b")).unwrap();
    let kept = std::fs::read(reseeded.join("a/checkpoint/meta.json")).unwrap();
    common::assert_ok(&train(&agent2, &["--seed", "7", "--resume"]));
    assert_eq!(
        kept,
        std::fs::read(reseeded.join("a/checkpoint/meta.json")).unwrap()
    );
    let b = std::fs::read_to_string(reseeded.join("b/checkpoint/agent.toml")).unwrap();
    assert!(b.contains("seed = 8"), "{b}");

    let lonely = committee_file("lonely.toml", &[]);
    assert_exit_2(&train(&lonely, &[]), &["lonely.toml", "planning.peers"]);
    let twice = committee_file("twice.toml", &[&members[1], &members[1]]);
    assert_exit_2(
        &train(&twice, &[]),
        &["twice.toml", "planning.peers[1]", "planning.peers[0]"],
    );
    // --committee takes its folders from the file, so --out is refused beside it.
    let both = train(&agent, &["--out", d.join("x").to_str().unwrap()]);
    assert!(!both.status.success());
}
