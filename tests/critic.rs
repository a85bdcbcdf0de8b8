//! The critic's fitting stage on synthetic encodings: random walks in two rooms joined by a
//! door, with z = position. The fitted cost-to-go must follow the path around the wall
//! (what a planner needs), not the straight line through it.
// Needs the world model (the default `torch` feature).
#![cfg(feature = "torch")]

use hjepa::model::config::Critic;
use hjepa::model::critic::fit_critic_on;
use hjepa::model::critic_map::pearson;
use hjepa::model::world_model::CriticNet;
use indicatif::ProgressBar;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Tensor};

const WALL: f32 = 3.2;
const DOOR: (f32, f32) = (2.7, 3.7);
const STEP: f32 = 0.12;

fn free(x: f32, y: f32) -> bool {
    let inside = (0.1..6.3).contains(&x) && (0.1..6.3).contains(&y);
    let in_wall = (x - WALL).abs() < 0.2 && !(DOOR.0 + 0.1..DOOR.1 - 0.1).contains(&y);
    inside && !in_wall
}

fn geodesic(a: (f32, f32), b: (f32, f32)) -> f32 {
    let d = |p: (f32, f32), q: (f32, f32)| ((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt();
    if (a.0 < WALL) == (b.0 < WALL) {
        return d(a, b);
    }
    (0..=50)
        .map(|i| DOOR.0 + 0.1 + (DOOR.1 - DOOR.0 - 0.2) * i as f32 / 50.0)
        .map(|y| d(a, (WALL, y)) + d((WALL, y), b))
        .fold(f32::MAX, f32::min)
}

/// Smoothly turning walks that bounce off walls: `[N, 2]` positions and episode spans.
fn walks(episodes: usize, len: usize, seed: u64) -> (Vec<f32>, Vec<(i64, i64)>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut pos, mut spans) = (Vec::new(), Vec::new());
    for _ in 0..episodes {
        let start = (pos.len() / 2) as i64;
        let (mut x, mut y) = loop {
            let p = (rng.random_range(0.2..6.2), rng.random_range(0.2..6.2));
            if free(p.0, p.1) {
                break p;
            }
        };
        let mut heading: f32 = rng.random_range(0.0..std::f32::consts::TAU);
        for _ in 0..len {
            pos.extend([x, y]);
            heading += rng.random_range(-0.4..0.4);
            for _ in 0..20 {
                let (nx, ny) = (x + STEP * heading.cos(), y + STEP * heading.sin());
                if free(nx, ny) {
                    (x, y) = (nx, ny);
                    break;
                }
                heading = rng.random_range(0.0..std::f32::consts::TAU);
            }
        }
        spans.push((start, len as i64));
    }
    (pos, spans)
}

/// A critic sized for the synthetic walks (every 3rd frame a node, a few seconds to fit).
fn walks_critic() -> Critic {
    Critic {
        enabled: true,
        hidden: 128,
        max_steps: 128,
        node_stride: 3,
        sources: 128,
        steps: 4000,
        batch_size: 256,
        ..Critic::default()
    }
}

#[test]
fn fitted_critic_measures_the_way_around_the_wall() {
    follows_the_way_around_the_wall(walks_critic());
}

/// The same with the metric form: distances between embeddings of each side (slower to fit:
/// r 0.79 after 4000 steps, 0.98 after the default 10 000).
#[test]
fn metric_critic_measures_the_way_around_the_wall() {
    follows_the_way_around_the_wall(Critic {
        metric_dim: 16,
        steps: 10_000,
        ..walks_critic()
    });
}

fn follows_the_way_around_the_wall(cfg: Critic) {
    tch::set_num_threads(2);
    let (pos, spans) = walks(160, 150, 7);
    let z = Tensor::from_slice(&pos).view([-1, 2]);
    let (vs, fit) = fit_critic_on(&z, None, &spans, &cfg, 0, &ProgressBar::hidden()).unwrap();
    assert!(
        fit.connected > 0.99,
        "the walks join into one graph: {fit:?}"
    );
    assert!((fit.step_length - STEP as f64).abs() < 0.02, "{fit:?}");

    // Query the fitted net on the same variable names a model would load.
    let mut model_vs = nn::VarStore::new(Device::Cpu);
    let net = CriticNet::new(&(model_vs.root() / "critic"), 2, &cfg);
    model_vs.copy(&vs).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let (mut est, mut geo, mut detour_est, mut detour_straight) = (vec![], vec![], vec![], vec![]);
    while est.len() < 600 {
        let a = (rng.random_range(0.3..6.1), rng.random_range(0.3..6.1));
        let b = (rng.random_range(0.3..6.1), rng.random_range(0.3..6.1));
        if !free(a.0, a.1) || !free(b.0, b.1) {
            continue;
        }
        let za = Tensor::from_slice(&[a.0, a.1]).view([1, 2]);
        let zb = Tensor::from_slice(&[b.0, b.1]).view([1, 2]);
        let steps =
            tch::no_grad(|| net.distance(&za, &zb)).double_value(&[0]) * cfg.max_steps as f64;
        let g = geodesic(a, b) as f64 / STEP as f64;
        let straight = ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt() as f64 / STEP as f64;
        if g > straight + 15.0 {
            detour_est.push(steps);
            detour_straight.push(straight);
        }
        est.push(steps);
        geo.push(g);
    }
    let r = pearson(&est, &geo);
    assert!(
        r > 0.9,
        "critic vs path length around the wall: correlation {r:.3}"
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(detour_est.len() > 10);
    assert!(
        mean(&detour_est) > 1.5 * mean(&detour_straight),
        "pairs the wall separates: critic {:.1} steps vs straight line {:.1}",
        mean(&detour_est),
        mean(&detour_straight)
    );
}

/// Planners query the critic on the predictor's outputs. Here the "predictor" mirrors the
/// room (x -> 6.4 - x), the worst case of a systematic error: a critic fitted on predictions
/// reads mirrored queries as the places they stand for; one fitted on encodings alone
/// takes them at face value.
#[test]
fn critic_fitted_on_predictions_reads_them() {
    tch::set_num_threads(2);
    let (pos, spans) = walks(160, 150, 7);
    let z = Tensor::from_slice(&pos).view([-1, 2]);
    let mirror = |z: &Tensor| Tensor::cat(&[z.narrow(1, 0, 1).neg() + 6.4, z.narrow(1, 1, 1)], 1);
    let predicted = mirror(&z).unsqueeze(1).repeat([1, 3, 1]);
    let cfg = Critic {
        predicted: 1.0,
        predicted_steps: 3,
        ..walks_critic()
    };
    let fit = |predicted: Option<&Tensor>| {
        let (vs, _) =
            fit_critic_on(&z, predicted, &spans, &cfg, 0, &ProgressBar::hidden()).unwrap();
        let mut model_vs = nn::VarStore::new(Device::Cpu);
        let net = CriticNet::new(&(model_vs.root() / "critic"), 2, &cfg);
        model_vs.copy(&vs).unwrap();
        net
    };
    let (on_predictions, on_encodings) = (fit(Some(&predicted)), fit(None));
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (mut a_rows, mut b_rows, mut geo) = (vec![], vec![], vec![]);
    while geo.len() < 400 {
        let a = (rng.random_range(0.3..6.1), rng.random_range(0.3..6.1));
        let b = (rng.random_range(0.3..6.1), rng.random_range(0.3..6.1));
        if free(a.0, a.1) && free(b.0, b.1) {
            a_rows.extend([a.0, a.1]);
            b_rows.extend([b.0, b.1]);
            geo.push(geodesic(a, b) as f64);
        }
    }
    let query = mirror(&Tensor::from_slice(&a_rows).view([-1, 2]));
    let goal = Tensor::from_slice(&b_rows).view([-1, 2]);
    let r = |net: &CriticNet| {
        let est = tch::no_grad(|| net.distance(&query, &goal));
        pearson(
            &Vec::<f64>::try_from(est.to_kind(tch::Kind::Double)).unwrap(),
            &geo,
        )
    };
    let (r_pred, r_enc) = (r(&on_predictions), r(&on_encodings));
    assert!(
        r_pred > 0.85 && r_pred > r_enc + 0.3,
        "mirrored queries: critic fitted on predictions r = {r_pred:.3}, on encodings r = {r_enc:.3}"
    );
}

/// The tests' tiny agent (64x64 pixels), its critic on or off, with seeded fresh weights.
fn tiny_model(
    critic: bool,
    critic_level2: bool,
    seed: i64,
) -> (
    nn::VarStore,
    hjepa::agent::AgentFile,
    hjepa::model::world_model::WorldModel,
) {
    use hjepa::model::world_model::{ModelShapes, WorldModel};
    let text = include_str!("data/tiny_agent.toml");
    let mut agent =
        hjepa::agent::AgentFile::parse(text, std::path::Path::new("tiny.toml")).unwrap();
    agent.critic.enabled = critic;
    agent.critic.level2 = critic_level2;
    let shapes = ModelShapes {
        observation: vec![64, 64, 3],
        angle_inputs: vec![],
        action_low: [-1.0, -1.0],
        action_high: [1.0, 1.0],
    };
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = WorldModel::new(&vs.root(), &agent, &shapes);
    (vs, agent, model)
}

/// The cost module adds the critic's steps at every predicted step, weighted, and
/// `goal_weight = 0` leaves the latent distance out.
#[test]
fn goal_cost_adds_the_critics_steps() {
    use hjepa::cost::{CostConfig, GoalCost};
    use hjepa::plan::Objective;

    let (_vs, agent, model) = tiny_model(true, false, 0);
    let d = model.latent_dim;
    let states = Tensor::randn([6, 4, d], (tch::Kind::Float, Device::Cpu));
    let actions = Tensor::zeros([6, 4, 2], (tch::Kind::Float, Device::Cpu));
    let goal = Tensor::randn([1, d], (tch::Kind::Float, Device::Cpu));
    let cost = |critic: f64, goal_weight: f64| {
        GoalCost {
            cfg: CostConfig {
                critic,
                goal_weight,
                ..CostConfig::default()
            },
            goal: goal.shallow_clone(),
            abstraction: None,
            critic: Some((
                model.critic.as_ref().unwrap(),
                goal.shallow_clone(),
                agent.critic.max_steps,
            )),
        }
        .cost(&states, &actions)
    };
    let expected = tch::no_grad(|| model.cost_to_go(&states.flatten(0, 1), &goal))
        .unwrap()
        .view([6, 4])
        .sum_dim_intlist([1i64].as_slice(), false, tch::Kind::Float)
        * agent.critic.max_steps as f64;
    let diff = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
    let c1 = tch::no_grad(|| cost(1.0, 0.0));
    assert!(diff(&c1, &expected) < 1e-3 * (1.0 + expected.abs().max().double_value(&[])));
    let c2 = tch::no_grad(|| cost(2.0, 0.0));
    assert!(diff(&c2, &(&expected * 2.0)) < 2e-3 * (1.0 + expected.abs().max().double_value(&[])));
    let with_distance = tch::no_grad(|| cost(1.0, 1.0));
    assert!(
        (&with_distance - &c1).min().double_value(&[]) > 0.0,
        "the latent distance adds"
    );
}

/// The hierarchical lower level's subgoal cost: its latent distance plus, weighted, the
/// level-2 critic's steps from each predicted state's abstraction to the subgoal.
#[test]
fn subgoal_cost_adds_the_level2_critics_steps_to_the_subgoal() {
    use hjepa::cost::{CostConfig, GoalCost, SubgoalCost};
    use hjepa::plan::Objective;

    let (_vs, agent, model) = tiny_model(true, true, 2);
    let (l2, critic2) = (
        model.level2.as_ref().unwrap(),
        model.critic2.as_ref().unwrap(),
    );
    let d = model.latent_dim;
    let states = Tensor::randn([5, 3, d], (tch::Kind::Float, Device::Cpu));
    let actions = Tensor::zeros([5, 3, 2], (tch::Kind::Float, Device::Cpu));
    let subgoal =
        tch::no_grad(|| l2.abstract_state(&Tensor::randn([1, d], (tch::Kind::Float, Device::Cpu))));
    let distance = |abstraction| GoalCost {
        cfg: CostConfig::default(),
        goal: subgoal.shallow_clone(),
        abstraction,
        critic: None,
    };
    let cost = |weight: f64| {
        tch::no_grad(|| {
            SubgoalCost {
                distance: distance(None),
                level2: l2,
                critic2,
                subgoal: subgoal.shallow_clone(),
                max_steps: agent.critic.max_steps,
                weight,
            }
            .cost(&states, &actions)
        })
    };
    let plain = tch::no_grad(|| distance(Some(l2)).cost(&states, &actions));
    let steps = tch::no_grad(|| {
        critic2
            .distance(&l2.abstract_state(&states.flatten(0, 1)), &subgoal)
            .view([5, 3])
            .sum_dim_intlist([1i64].as_slice(), false, tch::Kind::Float)
            * agent.critic.max_steps as f64
    });
    let diff = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
    let scale = 1.0 + steps.abs().max().double_value(&[]);
    assert!(
        steps.abs().min().double_value(&[]) > 0.0,
        "a fresh critic is not zero"
    );
    assert!(diff(&cost(0.0), &plain) < 1e-5 * scale);
    assert!(diff(&cost(1.0), &(&plain + &steps)) < 1e-3 * scale);
    assert!(diff(&cost(3.0), &(&plain + &steps * 3.0)) < 3e-3 * scale);
}

/// Offset-free MPC: with an offset d, predicted step t moves by t·d (and by nothing without).
#[test]
fn offset_correction_shifts_step_t_by_t_offsets() {
    use hjepa::agent::LatentUnroll;
    use hjepa::plan::Unroll;

    let (_vs, _agent, model) = tiny_model(false, false, 1);
    let d = model.latent_dim;
    let z0 = Tensor::randn([1, d], (tch::Kind::Float, Device::Cpu));
    let offset = Tensor::randn([1, d], (tch::Kind::Float, Device::Cpu));
    let actions = Tensor::rand([5, 3, 2], (tch::Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let plain = LatentUnroll {
        model: &model,
        z0: z0.shallow_clone(),
        offset: None,
        each_member: false,
    };
    let corrected = LatentUnroll {
        model: &model,
        z0: z0.shallow_clone(),
        offset: Some(offset.shallow_clone()),
        each_member: false,
    };
    let gap = tch::no_grad(|| corrected.unroll(&actions) - plain.unroll(&actions));
    assert_step_t_moved_by_t_offsets(&gap, &offset);
}

/// `gap` `[N, H, D]` between corrected and plain predictions is t·offset at step t (from 1).
fn assert_step_t_moved_by_t_offsets(gap: &Tensor, offset: &Tensor) {
    let (n, h) = (gap.size()[0], gap.size()[1]);
    for t in 0..h {
        let want = (offset * (t + 1) as f64).expand([n, -1], false);
        let err = (gap.select(1, t) - want).abs().max().double_value(&[]);
        assert!(err < 1e-5, "step {t}: off by {err}");
    }
}

#[test]
fn upper_offset_correction_shifts_jump_j_by_j_offsets() {
    use hjepa::agent::AbstractUnroll;
    use hjepa::plan::Unroll;

    let (_vs, _agent, model) = tiny_model(false, false, 2);
    let l2 = model.level2.as_ref().expect("tiny model has level 2");
    let dh = l2.dim;
    let h0 = Tensor::randn([1, dh], (tch::Kind::Float, Device::Cpu));
    let offset = Tensor::randn([1, dh], (tch::Kind::Float, Device::Cpu));
    let macros = Tensor::rand([4, 3, l2.macro_dim], (tch::Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let plain = AbstractUnroll {
        level2: l2,
        h0: h0.shallow_clone(),
        offset: None,
    };
    let corrected = AbstractUnroll {
        level2: l2,
        h0,
        offset: Some(offset.shallow_clone()),
    };
    let gap = tch::no_grad(|| corrected.unroll(&macros) - plain.unroll(&macros));
    assert_step_t_moved_by_t_offsets(&gap, &offset);
}

/// `hjepa probe`'s map of the critics over a maze: every free cell as start and as goal, at
/// both levels (a fresh model: the wiring, not the quality).
#[test]
fn the_critic_map_scores_every_maze_cell_at_both_levels() {
    use hjepa::model::critic_map::critic_map;
    use hjepa::model::world_model::{ModelShapes, WorldModel};
    use hjepa::sim::Scene;

    let scene = std::sync::Arc::new(Scene::load(&Scene::resolve_path("point_maze_u")).unwrap());
    let mut agent = hjepa::agent::AgentFile::parse(
        include_str!("data/tiny_agent.toml"),
        std::path::Path::new("tiny.toml"),
    )
    .unwrap();
    agent.perception.observation = hjepa::model::config::ObservationKind::State;
    agent.critic.enabled = true;
    agent.critic.level2 = true;
    let state_len = hjepa::sim::Env::new(scene.clone()).observe().state.len() as i64;
    let shapes = ModelShapes {
        observation: vec![state_len],
        angle_inputs: vec![],
        action_low: [-1.0, -1.0],
        action_high: [1.0, 1.0],
    };
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = WorldModel::new(&vs.root(), &agent, &shapes);
    let map = critic_map(&model, &scene, agent.perception.observation, Device::Cpu)
        .expect("point_maze_u has a grid and the model critics");
    let free = hjepa::sim::Env::new(scene.clone())
        .grid()
        .unwrap()
        .free_cells()
        .len();
    assert_eq!(map.free_cells, free);
    assert_eq!(
        map.levels.iter().map(|l| l.level).collect::<Vec<_>>(),
        vec![1, 2]
    );
    for l in &map.levels {
        // Every cell but the goal is scored, for every goal.
        assert_eq!(l.greedy.1, free * (free - 1), "{l:?}");
        assert!(l.greedy.0 <= l.greedy.1);
        assert!(
            l.correlation_mean.is_finite() && l.correlation_min <= l.correlation_mean,
            "{l:?}"
        );
    }
    // Scenes without a grid have no map.
    let open = std::sync::Arc::new(Scene::load(&Scene::resolve_path("two_rooms")).unwrap());
    assert!(critic_map(&model, &open, agent.perception.observation, Device::Cpu).is_none());
}

/// The landmark graph's matrix of estimates (`CriticNet::pairwise`) is the row-by-row
/// estimate, for both the metric form and the MLP on (z, z_goal).
#[test]
fn pairwise_estimates_are_the_row_by_row_ones() {
    for metric_dim in [0, 4] {
        let cfg = Critic {
            hidden: 8,
            metric_dim,
            ..Critic::default()
        };
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = CriticNet::new(&vs.root(), 3, &cfg);
        let from = Tensor::randn([4, 3], (tch::Kind::Float, Device::Cpu));
        let to = Tensor::randn([5, 3], (tch::Kind::Float, Device::Cpu));
        let all = net.pairwise(&from, &to);
        assert_eq!(all.size(), [4, 5]);
        for i in 0..4 {
            for j in 0..5 {
                let one = net
                    .distance(&from.get(i).unsqueeze(0), &to.get(j).unsqueeze(0))
                    .double_value(&[0]);
                let got = all.double_value(&[i, j]);
                assert!(
                    (got - one).abs() < 1e-5,
                    "metric_dim {metric_dim}: [{i}, {j}] {got} vs {one}"
                );
            }
        }
    }
}
