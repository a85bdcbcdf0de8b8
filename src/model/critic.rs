//! The critic's fitting stage: a goal-conditioned cost-to-go C(z, g), fitted after the world
//! model on its frozen encodings by regression onto shortest-path lengths through the data.
//!
//! Long-term memory as a graph: nodes are frames of the training episodes (every
//! `node_stride`-th), joined to their successors in the same episode and to their nearest
//! neighbours in latent space from any episode (within `radius`), each edge weighted by its
//! latent length. Dijkstra from sampled sources gives path lengths that go around walls
//! through the places the data actually went, stitched across episodes; unlike the random
//! walk's elapsed time (what a temporal-distance critic learns) they measure how far a goal
//! really is. A network regresses them so planners can query any predicted z in one batched
//! forward pass. Lengths are in data steps: latent length / the data's median latent
//! displacement per control step.

use indicatif::ProgressBar;
use petgraph::algo::dijkstra;
use petgraph::graph::{NodeIndex, UnGraph};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

use super::config::Critic;
use super::data::TrainingData;
use super::world_model::{CriticNet, WorldModel};

/// What the fitting stage did.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct CriticFit {
    pub steps: i64,
    pub seconds: f64,
    /// Graph size: frames used as nodes, and edges (temporal + neighbour).
    pub nodes: usize,
    pub edges: usize,
    /// Latent displacement of one control step (median over the data): the unit of lengths.
    pub step_length: f64,
    /// Fraction of sampled (source, node) pairs the graph connects.
    pub connected: f64,
    /// Mean squared error (in units of `max_steps`) over the last 10 % of the steps.
    pub final_loss: f64,
    /// Fraction of queries that were the predictor's rollouts, and the longest rollout
    /// (`[critic] predicted`, `predicted_steps`); 0 in fits from before predictions were used.
    #[serde(default)]
    pub predicted: f64,
    #[serde(default)]
    pub predicted_steps: i64,
    /// The level-2 critic's fit (`[critic] level2`), its predictions counted in jumps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level2: Option<Box<CriticFit>>,
}

/// Encodes observations `[N, ...]` (a dataset's, on the CPU) in chunks: `[N, D]` on `device`.
pub fn encode_all(model: &WorldModel, obs: &Tensor, device: Device) -> Tensor {
    let n = obs.size()[0];
    let chunk = 1024;
    tch::no_grad(|| {
        let parts: Vec<Tensor> = (0..n)
            .step_by(chunk as usize)
            .map(|s| {
                let len = chunk.min(n - s);
                model.encode(&obs.narrow(0, s, len).to_device(device))
            })
            .collect();
        Tensor::cat(&parts, 0)
    })
}

/// Median latent displacement between consecutive frames of the episodes.
fn step_length(z: &Tensor, episodes: &[(i64, i64)]) -> f64 {
    let mut from = Vec::new();
    for &(start, len) in episodes {
        from.extend(start..start + len - 1);
    }
    let from_t = Tensor::from_slice(&from).to_device(z.device());
    let d = (z.index_select(0, &from_t) - z.index_select(0, &(&from_t + 1))).norm_scalaropt_dim(
        2,
        [-1i64].as_slice(),
        false,
    );
    d.median().double_value(&[]).max(1e-9)
}

/// The memory graph over frames `nodes` (rows of `z`), with edge weights in data steps.
fn build_graph(
    z: &Tensor,
    episodes: &[(i64, i64)],
    cfg: &Critic,
    unit: f64,
) -> (Vec<i64>, UnGraph<(), f32>) {
    let mut nodes = Vec::new();
    let mut g = UnGraph::<(), f32>::default();
    let zn = |rows: &[i64]| z.index_select(0, &Tensor::from_slice(rows).to_device(z.device()));
    let mut temporal = Vec::new();
    for &(start, len) in episodes {
        let mut prev: Option<usize> = None;
        for t in (0..len).step_by(cfg.node_stride as usize) {
            let i = nodes.len();
            nodes.push(start + t);
            g.add_node(());
            if let Some(p) = prev {
                temporal.push((p, i));
            }
            prev = Some(i);
        }
    }
    let all = zn(&nodes);
    let length = |a: &[usize], b: &[usize]| -> Vec<f32> {
        let ia: Vec<i64> = a.iter().map(|&i| i as i64).collect();
        let ib: Vec<i64> = b.iter().map(|&i| i as i64).collect();
        let d = (all.index_select(0, &Tensor::from_slice(&ia))
            - all.index_select(0, &Tensor::from_slice(&ib)))
        .norm_scalaropt_dim(2, [-1i64].as_slice(), false)
            / unit;
        Vec::<f32>::try_from(d.to_kind(Kind::Float).to_device(Device::Cpu)).expect("f32")
    };
    let (ta, tb): (Vec<usize>, Vec<usize>) = temporal.iter().copied().unzip();
    for ((a, b), w) in temporal.iter().zip(length(&ta, &tb)) {
        g.add_edge(NodeIndex::new(*a), NodeIndex::new(*b), w);
    }
    // Nearest neighbours in latent space, in chunks so the distance matrix stays small.
    let n = nodes.len() as i64;
    let k = (cfg.neighbours + 1).min(n);
    let radius = cfg.radius as f32;
    for s in (0..n).step_by(1024) {
        let len = 1024.min(n - s);
        let d = Tensor::cdist(&all.narrow(0, s, len), &all, 2.0, None::<i64>) / unit;
        let (vals, idx) = d.topk(k, -1, false, true);
        let vals = Vec::<f32>::try_from(vals.flatten(0, -1).to_device(Device::Cpu)).expect("f32");
        let idx = Vec::<i64>::try_from(idx.flatten(0, -1).to_device(Device::Cpu)).expect("i64");
        for r in 0..len {
            for c in 0..k {
                let at = (r * k + c) as usize;
                let (j, w) = (idx[at], vals[at]);
                if j != s + r && w <= radius {
                    g.update_edge(
                        NodeIndex::new((s + r) as usize),
                        NodeIndex::new(j as usize),
                        w,
                    );
                }
            }
        }
    }
    (nodes, g)
}

/// The predictor's view of every training frame: `[N, K, D]`, where `[f, k-1]` is frame f
/// rolled out from frame f-k over the k actions the data took in between (the frame's own
/// encoding where the episode started less than k frames earlier).
pub fn predict_frames(model: &WorldModel, z: &Tensor, data: &TrainingData, k_max: i64) -> Tensor {
    let device = z.device();
    let out = z.unsqueeze(1).repeat([1, k_max, 1]);
    tch::no_grad(|| {
        for k in 1..=k_max {
            let (mut from, mut to, mut acts) = (Vec::new(), Vec::new(), Vec::new());
            for (&(start, len), &a0) in data.train_episodes.iter().zip(&data.train_episode_actions)
            {
                for t in k..len {
                    from.push(start + t - k);
                    to.push(start + t);
                    acts.extend(a0 + t - k..a0 + t);
                }
            }
            if from.is_empty() {
                continue;
            }
            let n = from.len() as i64;
            let idx = |v: &[i64]| Tensor::from_slice(v).to_device(device);
            let a = data
                .actions
                .index_select(0, &Tensor::from_slice(&acts))
                .to_device(device)
                .view([n, k, 2]);
            let last = model
                .rollout(
                    &z.index_select(0, &idx(&from)),
                    &model.normalize_actions(&a),
                )
                .select(1, k - 1);
            let _ = out.select(1, k - 1).index_copy_(0, &idx(&to), &last);
        }
    });
    out
}

/// Fits the model's critic (its `critic` weights are overwritten) on the training episodes.
/// Deterministic in `seed` on CPU.
pub fn fit_critic(
    model: &WorldModel,
    vs: &nn::VarStore,
    data: &TrainingData,
    cfg: &Critic,
    seed: u64,
    bar: &ProgressBar,
) -> anyhow::Result<CriticFit> {
    let start = std::time::Instant::now();
    bar.set_message("encoding the dataset");
    let z = encode_all(model, &data.obs, vs.device());
    let predicted = (cfg.predicted > 0.0).then(|| {
        bar.set_message("predicting the frames");
        predict_frames(model, &z, data, cfg.predicted_steps)
    });
    let (fit_vs, mut fit) =
        fit_critic_on(&z, predicted.as_ref(), &data.train_episodes, cfg, seed, bar)?;
    // Into the model's own variables, so checkpoints keep one set of names.
    let model_vars = vs.variables();
    let copy_into = |fit_vs: &nn::VarStore, prefix: &str| {
        tch::no_grad(|| {
            for (name, t) in fit_vs.variables() {
                let name = name.replacen("critic", prefix, 1);
                model_vars[&name].shallow_clone().copy_(&t);
            }
        })
    };
    copy_into(&fit_vs, "critic");
    if let (Some(l2), Some(_)) = (&model.level2, &model.critic2) {
        let upper_start = std::time::Instant::now();
        bar.set_message("level 2: predicting the frames");
        let h = tch::no_grad(|| l2.abstract_state(&z));
        let predicted = (cfg.predicted > 0.0)
            .then(|| predict_frames_level2(model, &z, data, cfg.predicted_steps));
        bar.set_position(0);
        let (fit_vs, mut fit2) = fit_critic_on(
            &h,
            predicted.as_ref(),
            &data.train_episodes,
            cfg,
            seed ^ 2,
            bar,
        )?;
        copy_into(&fit_vs, "critic2");
        fit2.seconds = upper_start.elapsed().as_secs_f64();
        fit.level2 = Some(Box::new(fit2));
    }
    fit.seconds = start.elapsed().as_secs_f64();
    Ok(fit)
}

/// [`predict_frames`] at level 2: `[N, J, dh]`, where `[f, j-1]` is the level-2 state of
/// frame f predicted over j jumps (macro-actions encoded from the data's action chunks) from
/// frame f - j k (the frame's own level-2 state where the episode started less than j k
/// frames earlier).
pub fn predict_frames_level2(
    model: &WorldModel,
    z: &Tensor,
    data: &TrainingData,
    jumps: i64,
) -> Tensor {
    let l2 = model.level2.as_ref().expect("level 2 enabled");
    let device = z.device();
    let k = l2.k;
    tch::no_grad(|| {
        let h = l2.abstract_state(z);
        let out = h.unsqueeze(1).repeat([1, jumps, 1]);
        for j in 1..=jumps {
            let (mut from, mut to, mut acts) = (Vec::new(), Vec::new(), Vec::new());
            for (&(start, len), &a0) in data.train_episodes.iter().zip(&data.train_episode_actions)
            {
                for t in j * k..len {
                    from.push(start + t - j * k);
                    to.push(start + t);
                    acts.extend(a0 + t - j * k..a0 + t);
                }
            }
            if from.is_empty() {
                continue;
            }
            let n = from.len() as i64;
            let idx = |v: &[i64]| Tensor::from_slice(v).to_device(device);
            let chunks = model.normalize_actions(
                &data
                    .actions
                    .index_select(0, &Tensor::from_slice(&acts))
                    .to_device(device)
                    .view([n * j, k, 2]),
            );
            let u = l2.encode_macro(&chunks).view([n, j, -1]);
            let last = l2
                .rollout(&h.index_select(0, &idx(&from)), &u)
                .select(1, j - 1);
            let _ = out.select(1, j - 1).index_copy_(0, &idx(&to), &last);
        }
        out
    })
}

/// The fitting itself, on encodings `z` `[N, D]` of episodes `(first row, frames)` and,
/// when given, predictions of the frames `[N, K, D]` (see [`predict_frames`]; used for
/// `cfg.predicted` of the queried states): returns a var store holding `critic` (see
/// [`CriticNet`]) and what was done.
pub fn fit_critic_on(
    z: &Tensor,
    predicted: Option<&Tensor>,
    episodes: &[(i64, i64)],
    cfg: &Critic,
    seed: u64,
    bar: &ProgressBar,
) -> anyhow::Result<(nn::VarStore, CriticFit)> {
    let device = z.device();
    let start = std::time::Instant::now();
    let unit = step_length(z, episodes);
    bar.set_message("building the memory graph");
    let (nodes, graph) = build_graph(z, episodes, cfg, unit);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC817_1C);
    let paths = ShortestPaths::sample(&graph, nodes.len(), cfg, &mut rng, bar);
    let node_rows = Tensor::from_slice(&nodes).to_device(device);
    let node_z = z.index_select(0, &node_rows);
    let node_pred = predicted.map(|p| p.index_select(0, &node_rows));
    let lengths = Tensor::from_slice(&paths.lengths).to_device(device) / paths.cap as f64;

    tch::manual_seed(seed as i64);
    let fit_vs = nn::VarStore::new(device);
    let net = CriticNet::new(&(fit_vs.root() / "critic"), z.size()[1], cfg);
    let mut opt = nn::Adam::default().build(&fit_vs, cfg.learning_rate)?;
    let sources = &paths.sources;
    let (n_src, n_nodes) = (sources.len() as i64, nodes.len() as i64);
    let src_rows = Tensor::from_slice(&sources.iter().map(|&s| s as i64).collect::<Vec<_>>())
        .to_device(device);
    let regression = Regression {
        net: &net,
        cfg,
        unit,
        device,
        node_z,
        node_pred,
        lengths,
        src_rows,
        n_src,
        n_nodes,
    };
    bar.set_length(cfg.steps as u64);
    let tail = regression.fit(&mut opt, &mut rng, bar);
    bar.set_position(cfg.steps as u64);
    let fit = CriticFit {
        steps: cfg.steps,
        seconds: start.elapsed().as_secs_f64(),
        nodes: nodes.len(),
        edges: graph.edge_count(),
        step_length: unit,
        connected: paths.connected,
        final_loss: tail.iter().sum::<f64>() / tail.len().max(1) as f64,
        predicted: if predicted.is_some() {
            cfg.predicted
        } else {
            0.0
        },
        predicted_steps: predicted.map_or(0, |p| p.size()[1]),
        level2: None,
    };
    Ok((fit_vs, fit))
}

/// Shortest paths from sampled sources through the memory graph.
struct ShortestPaths {
    /// The sources' node indices.
    sources: Vec<usize>,
    /// `[sources * nodes]`: rows are sources, in data steps, capped at `cap` (unreachable
    /// ones too).
    lengths: Vec<f32>,
    /// `max_steps`.
    cap: f32,
    /// Fraction of (source, node) pairs the graph connects.
    connected: f64,
}

impl ShortestPaths {
    /// Dijkstra from `cfg.sources` nodes drawn from `rng`.
    fn sample(
        graph: &UnGraph<(), f32>,
        n_nodes: usize,
        cfg: &Critic,
        rng: &mut ChaCha8Rng,
        bar: &ProgressBar,
    ) -> ShortestPaths {
        let cap = cfg.max_steps as f32;
        let sources: Vec<usize> = (0..cfg.sources)
            .map(|_| rng.random_range(0..n_nodes))
            .collect();
        let mut lengths = vec![cap; sources.len() * n_nodes];
        let mut reached = 0usize;
        for (r, &s) in sources.iter().enumerate() {
            bar.set_message(format!("shortest paths {}/{}", r + 1, sources.len()));
            for (node, d) in dijkstra(graph, NodeIndex::new(s), None, |e| *e.weight()) {
                lengths[r * n_nodes + node.index()] = d.min(cap);
                reached += 1;
            }
        }
        let connected = reached as f64 / lengths.len() as f64;
        ShortestPaths {
            sources,
            lengths,
            cap,
            connected,
        }
    }
}

/// The critic's regression onto path lengths: its net and data, and how batches are drawn.
struct Regression<'a> {
    net: &'a CriticNet,
    cfg: &'a Critic,
    /// Latent length of one data step (the unit of lengths; it scales the input noise).
    unit: f64,
    device: Device,
    /// The nodes' encodings `[nodes, D]`, and their predicted versions `[nodes, K, D]`.
    node_z: Tensor,
    node_pred: Option<Tensor>,
    /// `[sources * nodes]` path lengths in units of `max_steps`.
    lengths: Tensor,
    /// The sources' node indices.
    src_rows: Tensor,
    n_src: i64,
    n_nodes: i64,
}

impl Regression<'_> {
    /// `cfg.steps` Adam steps; returns the losses of the last 10 % of them.
    fn fit(&self, opt: &mut nn::Optimizer, rng: &mut ChaCha8Rng, bar: &ProgressBar) -> Vec<f64> {
        let cfg = self.cfg;
        let mut tail = Vec::new();
        for step in 0..cfg.steps {
            let (za, zb, target) = self.batch(step, rng);
            let pred = self.net.distance(&za, &zb);
            let loss = (pred - target).square().mean(Kind::Float);
            opt.backward_step(&loss);
            if step >= cfg.steps - (cfg.steps / 10).max(1) {
                tail.push(loss.double_value(&[]));
            }
            if step % 100 == 0 {
                bar.set_position(step as u64);
                bar.set_message(format!("critic loss {:.5}", loss.double_value(&[])));
            }
        }
        tail
    }

    /// One batch of (source, node) pairs: the queried states, the goals and the targets.
    fn batch(&self, step: i64, rng: &mut ChaCha8Rng) -> (Tensor, Tensor, Tensor) {
        let (cfg, device) = (self.cfg, self.device);
        let b = cfg.batch_size;
        let r = Tensor::from_slice(
            &(0..b)
                .map(|_| rng.random_range(0..self.n_src))
                .collect::<Vec<_>>(),
        )
        .to_device(device);
        let c = Tensor::from_slice(
            &(0..b)
                .map(|_| rng.random_range(0..self.n_nodes))
                .collect::<Vec<_>>(),
        )
        .to_device(device);
        let target = self.lengths.index_select(0, &(&r * self.n_nodes + &c));
        let (za, zb) = (
            self.node_z
                .index_select(0, &self.src_rows.index_select(0, &r)),
            self.node_z.index_select(0, &c),
        );
        // Both orders: path lengths are symmetric, the network need not be.
        let swap = step % 2 == 1;
        let (za, zb) = if swap { (zb, za) } else { (za, zb) };
        // The queried state (first argument) is sometimes the predictor's version of it;
        // the goal is always an encoding, as when planning.
        let za = match &self.node_pred {
            Some(pred) if cfg.predicted > 0.0 => {
                let first = if swap {
                    c.shallow_clone()
                } else {
                    self.src_rows.index_select(0, &r)
                };
                self.predicted_queries(pred, &first, &za, rng)
            }
            _ => za,
        };
        // Planners query predicted z's, which stray off the data manifold: noise on the
        // inputs keeps the estimate smooth around it.
        let noise = cfg.input_noise * self.unit;
        let (za, zb) = if noise > 0.0 {
            (&za + za.randn_like() * noise, &zb + zb.randn_like() * noise)
        } else {
            (za, zb)
        };
        (za, zb, target)
    }

    /// `za`, each row replaced with probability `cfg.predicted` by the prediction of its
    /// node (`first`) from a random number of steps back.
    fn predicted_queries(
        &self,
        pred: &Tensor,
        first: &Tensor,
        za: &Tensor,
        rng: &mut ChaCha8Rng,
    ) -> Tensor {
        let (cfg, device) = (self.cfg, self.device);
        let b = cfg.batch_size;
        let (k_max, d) = (pred.size()[1], pred.size()[2]);
        let k: Vec<i64> = (0..b).map(|_| rng.random_range(0..k_max)).collect();
        let mask: Vec<bool> = (0..b).map(|_| rng.random_bool(cfg.predicted)).collect();
        let zp = pred
            .index_select(0, first)
            .gather(
                1,
                &Tensor::from_slice(&k)
                    .to_device(device)
                    .view([b, 1, 1])
                    .expand([b, 1, d], false),
                false,
            )
            .squeeze_dim(1);
        let mask = Tensor::from_slice(&mask).to_device(device).view([b, 1]);
        zp.where_self(&mask, za)
    }
}
