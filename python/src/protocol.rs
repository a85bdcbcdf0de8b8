//! hjepa's data and evaluation protocol for Python, run by hjepa's own code:
//! `collect` is `hjepa collect` (`hjepa::data::collect`), and `evaluate` plays the
//! start/goal pairs `hjepa eval` plays (`Starts`, `dataset_goals`, `eval_scene`) through the
//! same episode loop (`hjepa::run::episode::play_starts`), with one of hjepa's scripted
//! policies (the random floor, the oracle expert) or a Python callable acting, and writes the same JSON lines.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use hjepa::data::actor::{ActTiming, Actor};
use hjepa::data::recording::{ProtocolOverrides, RecordedEpisode, Recording, RECORDING_FORMAT};
use hjepa::data::{CollectOptions, PolicyKind};
use hjepa::error::InputError;
use hjepa::run::episode::{play_starts, EvalActor, EvalEpisode, Starts};
use hjepa::sim::{Env, Observation};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::core::{self, ObsKind, Spec};

/// An hjepa error as Python sees it: bad input (naming file and field) is a ValueError.
fn py_error(e: anyhow::Error) -> PyErr {
    match e.downcast_ref::<InputError>() {
        Some(input) => PyValueError::new_err(input.to_string()),
        None => PyRuntimeError::new_err(format!("{e:#}")),
    }
}

/// The scripted policies' CLI names.
const SCRIPTED: &str = "random, smooth-walk, waypoint, near-body, oracle";

/// A scripted policy by its CLI name (`smooth-walk`) or its manifest name (`smooth_walk`).
fn policy_kind(name: &str) -> PyResult<PolicyKind> {
    serde_json::from_value(serde_json::Value::String(name.replace('-', "_"))).map_err(|_| {
        PyValueError::new_err(format!(
            "policy: expected one of {SCRIPTED}, or a callable; found {name:?}"
        ))
    })
}

/// Records a dataset: `hjepa collect` with these options, GIL released; Ctrl-C stops it.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (scene, policy, episodes, out, seed, noise, shard_episodes, threads, progress))]
pub fn collect<'py>(
    py: Python<'py>,
    scene: &str,
    policy: &str,
    episodes: u64,
    out: PathBuf,
    seed: u64,
    noise: f32,
    shard_episodes: u64,
    threads: Option<usize>,
    progress: bool,
) -> PyResult<Bound<'py, PyDict>> {
    if core::is_ron_text(scene) {
        return Err(PyValueError::new_err(
            "scene: collect takes a shipped scene's name or a .ron path (the manifest keeps the file's text)",
        ));
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let opts = CollectOptions {
        scene_path: hjepa::sim::Scene::resolve_path(scene),
        out,
        episodes,
        policy: policy_kind(policy)?,
        noise,
        seed,
        shard_episodes,
        threads: threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1),
        progress,
        cancel: Some(cancel.clone()),
    };
    // Ctrl-C stops the workers after their current episode; the shards already written stay
    // listed (a rerun resumes) and KeyboardInterrupt is raised.
    let s = crate::interruptible(py, &cancel, || hjepa::data::collect(&opts))?.map_err(py_error)?;
    let d = PyDict::new(py);
    d.set_item("out", opts.out.display().to_string())?;
    d.set_item("episodes_total", s.episodes_total)?;
    d.set_item("episodes_recorded", s.episodes_recorded)?;
    d.set_item("shards_written", s.shards_written)?;
    d.set_item("steps_recorded", s.steps_recorded)?;
    d.set_item("seconds", s.seconds)?;
    Ok(d)
}

/// The 95 % Wilson interval of `successes` out of `n` (what `hjepa eval` reports).
#[pyfunction]
pub fn wilson_interval(successes: usize, n: usize) -> (f64, f64) {
    hjepa::data::episodes::wilson_interval(successes, n)
}

/// A Python callable acting through hjepa's `Actor` interface: it sees what `HjepaEnv`
/// returns (the Dict observation and the info dict) and answers an action in the env's
/// units. Its first error (or Ctrl-C) is kept and the episode stopped with a refused action.
struct PyActor {
    spec: Arc<Spec>,
    policy: Py<PyAny>,
    /// Called at each episode's start, when the policy has a `reset` method.
    reset: Option<Py<PyAny>>,
    /// The episodes still to come, in the order `play_starts` plays them.
    indices: std::vec::IntoIter<u64>,
    /// This episode's index, seed and goal observation (made once per episode).
    episode: u64,
    seed: u64,
    goal: Option<Py<PyAny>>,
    error: Option<PyErr>,
}

/// What every Python call of an episode is given besides the env's own info.
struct EpisodeInfo<'a> {
    episode: u64,
    seed: u64,
    goal: &'a Py<PyAny>,
}

impl PyActor {
    /// `(obs, info)` for the policy: the env's Dict observation and info, plus `episode`,
    /// `goal_observation` and the episode's `seed`.
    fn arguments<'py>(
        &self,
        py: Python<'py>,
        env: &Env,
        obs: Observation,
        ep: EpisodeInfo<'_>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let o = crate::obs_dict(py, &self.spec, env, obs)?;
        let info = crate::info_dict(py, env, ep.seed, &env.info(), None)?;
        info.set_item("episode", ep.episode)?;
        info.set_item("goal_observation", ep.goal.bind(py))?;
        PyTuple::new(py, [o.into_any(), info.into_any()])
    }

    fn try_reset(&mut self, py: Python<'_>, env: &mut Env) -> PyResult<()> {
        py.check_signals()?;
        let goal = crate::observation_array(py, &self.spec, env.goal_observation())?.unbind();
        if let Some(reset) = &self.reset {
            let ep = EpisodeInfo {
                episode: self.episode,
                seed: self.seed,
                goal: &goal,
            };
            let obs = env.observe();
            let args = self.arguments(py, env, obs, ep)?;
            reset.bind(py).call1(args)?;
        }
        self.goal = Some(goal);
        Ok(())
    }

    fn try_act(&self, py: Python<'_>, env: &Env, obs: &Observation) -> PyResult<[f32; 2]> {
        py.check_signals()?;
        let ep = EpisodeInfo {
            episode: self.episode,
            seed: self.seed,
            goal: self.goal.as_ref().expect("reset before act"),
        };
        let args = self.arguments(py, env, obs.clone(), ep)?;
        let action = self.policy.bind(py).call1(args)?;
        let a = crate::parse_action(&self.spec, &action)?;
        self.spec
            .check(a)
            .map_err(|e| crate::action_value_error(&self.spec, &e))
            .map_err(|e| {
                let msg = format!("episode {} step {}: {e}", self.episode, env.steps());
                PyValueError::new_err(msg)
            })
    }
}

impl Actor for PyActor {
    fn reset(&mut self, env: &mut Env, seed: u64) {
        self.episode = self.indices.next().unwrap_or(u64::MAX);
        self.seed = seed;
        if self.error.is_none() {
            if let Err(e) = Python::attach(|py| self.try_reset(py, env)) {
                self.error = Some(e);
            }
        }
    }

    fn act(&mut self, env: &Env, obs: &Observation) -> ([f32; 2], ActTiming) {
        let start = Instant::now();
        let action = match &self.error {
            Some(_) => Err(()),
            None => Python::attach(|py| self.try_act(py, env, obs)).map_err(|e| {
                self.error = Some(e);
            }),
        };
        let timing = ActTiming {
            planning_s: start.elapsed().as_secs_f64(),
            replanned: true,
        };
        // A refused (non-finite) action ends the loop; `evaluate` raises the kept error.
        (action.unwrap_or([f32::NAN; 2]), timing)
    }
}

/// Where `evaluate`'s finished episodes go: the JSON lines file (flushed per episode, as
/// `hjepa eval` writes it) and the list returned.
struct Sink {
    file: Option<std::fs::File>,
    rows: Vec<String>,
    recorded: Vec<RecordedEpisode>,
}

impl Sink {
    fn open(out: Option<&Path>) -> anyhow::Result<Sink> {
        let file = match out {
            None => None,
            Some(out) => {
                if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)?;
                }
                Some(
                    std::fs::File::create(out)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?,
                )
            }
        };
        Ok(Sink {
            file,
            rows: Vec::new(),
            recorded: Vec::new(),
        })
    }

    fn push(&mut self, ep: EvalEpisode) -> anyhow::Result<()> {
        let row = serde_json::to_string(&ep)?;
        if let Some(f) = &mut self.file {
            writeln!(f, "{row}")?;
            f.flush()?;
        }
        self.rows.push(row);
        self.recorded.push(RecordedEpisode::from(&ep));
        // Ctrl-C between episodes (scripted policies run without the GIL).
        Python::attach(|py| py.check_signals()).map_err(|e| anyhow::anyhow!(Interrupted(e)))
    }
}

/// A Python exception raised while the Rust loop ran.
#[derive(Debug)]
struct Interrupted(PyErr);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for Interrupted {}

/// The scene `evaluate` plays, its file (or `<string>`) and its text.
fn eval_spec(
    scene: &str,
    max_steps: Option<u32>,
    success: Option<&str>,
    kind: ObsKind,
    normalized: bool,
) -> Result<(Arc<Spec>, PathBuf, String), InputError> {
    let (loaded, path) = core::load_scene(scene)?;
    let text = if core::is_ron_text(scene) {
        scene.to_string()
    } else {
        hjepa::sim::shipped::read(&path, hjepa::sim::shipped::Kind::Scene)
            .map_err(|e| InputError::new(&path, "", format!("cannot read scene file: {e}")))?
    };
    let played = hjepa::sim::scene::eval_scene(loaded, &path, max_steps, success)?;
    Ok((Spec::new(played, &path, kind, normalized), path, text))
}

/// Plays `hjepa eval`'s episodes for these arguments with `policy` (a scripted policy's
/// name, heading noise `noise`, or a callable (obs, info) -> action); returns the JSON
/// rows (one per episode, in order).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (policy, scene, episodes, seed, goals_from, goal_offset, max_steps, success, out, record, observation, action_units, noise))]
pub fn evaluate<'py>(
    py: Python<'py>,
    policy: &Bound<'py, PyAny>,
    scene: &str,
    episodes: u64,
    seed: u64,
    goals_from: Option<PathBuf>,
    goal_offset: u32,
    max_steps: Option<u32>,
    success: Option<String>,
    out: Option<PathBuf>,
    record: Option<PathBuf>,
    observation: &str,
    action_units: &str,
    noise: f32,
) -> PyResult<Bound<'py, PyList>> {
    let scripted = match policy.extract::<String>() {
        Ok(name) => Some(policy_kind(&name)?),
        Err(_) if policy.is_callable() => None,
        Err(_) => {
            return Err(PyValueError::new_err(format!(
                "policy: expected a scripted policy's name ({SCRIPTED}) or a callable (obs, info) -> action"
            )))
        }
    };
    if !(0.0..=hjepa::limits::MAX_NOISE).contains(&noise) {
        return Err(PyValueError::new_err(format!(
            "noise: expected a heading noise in radians from 0 to {}, got {noise}",
            hjepa::limits::MAX_NOISE
        )));
    }
    let kind = ObsKind::parse(observation).map_err(PyValueError::new_err)?;
    let normalized = crate::action_units(action_units)?;
    // Scripted policies read the true state: no frames to draw.
    let kind = if scripted.is_some() {
        ObsKind::State
    } else {
        kind
    };
    let (spec, path, text) = eval_spec(scene, max_steps, success.as_deref(), kind, normalized)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let windows = match &goals_from {
        None => None,
        Some(dir) => {
            let s = spec.scene.clone();
            let dir = dir.clone();
            Some(
                crate::detached(py, move || {
                    hjepa::data::dataset_goals(&s, &dir, goal_offset, episodes, seed)
                })?
                .map_err(|e| PyValueError::new_err(e.to_string()))?,
            )
        }
    };
    let mut sink = Sink::open(out.as_deref()).map_err(py_error)?;
    let starts = Starts {
        count: episodes,
        seed,
        windows: windows.as_deref(),
        only: None,
    };
    let played = play(
        py,
        policy,
        scripted.map(|k| (k, noise)),
        &spec,
        starts,
        &mut sink,
    )?;
    if let Some(path_out) = &record {
        let actor = match scripted {
            Some(k) => format!("{k:?}").to_lowercase(),
            None => "python".into(),
        };
        let overrides = ProtocolOverrides {
            max_steps,
            success,
            vary: Default::default(),
        };
        save_recording(path_out, &actor, &path, text, overrides, sink.recorded)
            .map_err(py_error)?;
    }
    played?;
    let json = py.import("json")?;
    let rows = PyList::empty(py);
    for r in &sink.rows {
        rows.append(json.call_method1("loads", (r,))?)?;
    }
    Ok(rows)
}

/// Runs the episodes; the outer error is a panic or a failure to start, the inner one what
/// stopped the loop (the policy's exception, Ctrl-C, a refused action).
fn play(
    py: Python<'_>,
    policy: &Bound<'_, PyAny>,
    scripted: Option<(PolicyKind, f32)>,
    spec: &Arc<Spec>,
    starts: Starts<'_>,
    sink: &mut Sink,
) -> PyResult<PyResult<()>> {
    let scene = spec.scene.clone();
    if let Some((kind, noise)) = scripted {
        let mut actor = EvalActor::scripted(kind, noise);
        let r = crate::detached(py, || {
            play_starts(actor.actor(), &scene, starts, |ep| sink.push(ep))
        })?;
        return Ok(r.map_err(loop_error));
    }
    let mut actor = PyActor {
        spec: spec.clone(),
        policy: policy.clone().unbind(),
        reset: policy
            .getattr("reset")
            .ok()
            .filter(|r| r.is_callable())
            .map(Bound::unbind),
        // `only` is None: episodes 0..count, in order.
        indices: (0..starts.count).collect::<Vec<_>>().into_iter(),
        episode: 0,
        seed: 0,
        goal: None,
        error: None,
    };
    let r = crate::detached(py, || {
        play_starts(&mut actor, &scene, starts, |ep| sink.push(ep))
    })?;
    Ok(match actor.error.take() {
        Some(e) => Err(e),
        None => r.map_err(loop_error),
    })
}

/// What stopped the episode loop, as a Python exception.
fn loop_error(e: anyhow::Error) -> PyErr {
    match e.downcast::<Interrupted>() {
        Ok(Interrupted(e)) => e,
        Err(e) => py_error(e),
    }
}

/// The episodes as a recording `hjepa replay` checks (seeds, starts, actions, overrides).
fn save_recording(
    path: &Path,
    actor: &str,
    scene_file: &Path,
    scene_ron: String,
    overrides: ProtocolOverrides,
    episodes: Vec<RecordedEpisode>,
) -> anyhow::Result<()> {
    Recording {
        format: RECORDING_FORMAT.into(),
        actor: actor.into(),
        scene_file: scene_file.to_path_buf(),
        scene_ron,
        overrides,
        episodes,
    }
    .save(path)
}
