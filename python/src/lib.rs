//! `hjepa._hjepa`: the sandbox for Python. `Env` is one sandbox, `VecEnv` N of them stepped
//! on Rust threads; the Gymnasium classes in `hjepa/envs.py` and `hjepa/vector.py` wrap them.
//!
//! Rust work runs with the GIL released (`Python::detach`) and inside `catch_unwind`: a
//! panic becomes a `RuntimeError`, never a `PanicException`. Bad input (a scene, an action,
//! snapshot bytes) is a `ValueError` carrying hjepa's message.

mod core;
mod protocol;
mod state;
mod vec;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use numpy::{PyArray1, PyArrayDyn, PyArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::core::{next_seed, Core, ObsKind, Spec};
use hjepa::sim::factors::Value;
use hjepa::sim::{Image, Info, Observation};

pub(crate) fn panic_error(e: &(dyn std::any::Any + Send)) -> PyErr {
    PyRuntimeError::new_err(format!(
        "hjepa internal error (a Rust panic, caught; reset the env): {}",
        hjepa::sim::workers::panic_message(e)
    ))
}

/// Runs Rust work with the GIL released; a panic becomes a `RuntimeError`.
pub(crate) fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> PyResult<T> {
    py.detach(|| catch_unwind(AssertUnwindSafe(f)))
        .map_err(|e| panic_error(&*e))
}

/// Runs long Rust work on a helper thread with the GIL released while this thread polls
/// Python's signals every 50 ms: on Ctrl-C (any exception `check_signals` raises) it sets
/// `cancel`, waits for the work to stop (it must watch the flag) and raises that exception.
/// A panic becomes a `RuntimeError`, as in `detached`.
pub(crate) fn interruptible<T: Send>(
    py: Python<'_>,
    cancel: &std::sync::atomic::AtomicBool,
    f: impl FnOnce() -> T + Send,
) -> PyResult<T> {
    use crossbeam_channel::RecvTimeoutError;
    use std::time::Duration;
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(f));
            let _ = done_tx.send(r);
        });
        let mut interrupted = None;
        let result = loop {
            let wait = if interrupted.is_none() {
                Duration::from_millis(50)
            } else {
                Duration::from_secs(3600)
            };
            match py.detach(|| done_rx.recv_timeout(wait)) {
                Ok(r) => break r,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    unreachable!("the helper thread always sends its result")
                }
            }
            if interrupted.is_none() {
                if let Err(e) = py.check_signals() {
                    cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                    interrupted = Some(e);
                }
            }
        };
        match (interrupted, result) {
            (Some(e), _) => Err(e),
            (None, Ok(v)) => Ok(v),
            (None, Err(p)) => Err(panic_error(&*p)),
        }
    })
}

/// `action_units`: whether actions are normalised to [-1, 1]^2 ("normalized") or in the
/// scene's units ("scene").
pub(crate) fn action_units(units: &str) -> PyResult<bool> {
    match units {
        "normalized" => Ok(true),
        "scene" => Ok(false),
        other => Err(PyValueError::new_err(format!(
            "action_units: expected \"normalized\" or \"scene\", found {other:?}"
        ))),
    }
}

/// A scene and observation mode, as `Env` and `VecEnv` take them.
pub(crate) fn make_spec(
    py: Python<'_>,
    scene: &str,
    observation: &str,
    units: &str,
) -> PyResult<Arc<Spec>> {
    let kind = ObsKind::parse(observation).map_err(PyValueError::new_err)?;
    let normalized = action_units(units)?;
    let scene = scene.to_string();
    let (scene, path) = detached(py, move || core::load_scene(&scene))?
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    detached(py, move || Spec::new(scene, &path, kind, normalized))
}

/// A user action: a real-valued array of shape (2,), finite.
pub(crate) fn parse_action(spec: &Spec, action: &Bound<'_, PyAny>) -> PyResult<[f32; 2]> {
    let expected = || {
        let (lo, hi) = spec.action_bounds();
        format!(
            "expected a finite real array of shape (2,) in the action space (low {lo:?}, high {hi:?})"
        )
    };
    if let Ok(a) = action.cast::<PyArray1<f32>>() {
        let a = a.readonly();
        if let Ok(s) = a.as_slice() {
            if s.len() == 2 {
                return Ok([s[0], s[1]]);
            }
        }
    }
    let v = real_array(action, &[2], "action", &expected())?;
    Ok([v[0], v[1]])
}

/// `value` as float32 numbers of exactly `shape` (row-major); another shape or a dtype that
/// is not real is a ValueError "`what`: `expected`, found ...".
pub(crate) fn real_array(
    value: &Bound<'_, PyAny>,
    shape: &[usize],
    what: &str,
    expected: &str,
) -> PyResult<Vec<f32>> {
    let np = value.py().import("numpy")?;
    let arr = np
        .call_method1("asarray", (value,))
        .map_err(|e| PyValueError::new_err(format!("{what}: {expected}; {e}")))?;
    let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
    if !matches!(kind.as_str(), "f" | "i" | "u") {
        let dtype = arr.getattr("dtype")?.str()?.to_string();
        return Err(PyValueError::new_err(format!(
            "{what}: {expected}, found dtype {dtype}"
        )));
    }
    let found: Vec<usize> = arr.getattr("shape")?.extract()?;
    if found != shape {
        return Err(PyValueError::new_err(format!(
            "{what}: {expected}, found shape {}",
            shape_str(&found)
        )));
    }
    let arr = np.call_method1("ascontiguousarray", (arr, "float32"))?;
    let arr = arr
        .cast::<PyArrayDyn<f32>>()
        .map_err(PyErr::from)?
        .readonly();
    Ok(arr.as_slice()?.to_vec())
}

pub(crate) fn shape_str(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        s => format!(
            "({})",
            s.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// An action error as the ValueError users see: hjepa's message and the expected shape.
pub(crate) fn action_value_error(spec: &Spec, e: &hjepa::error::ActionError) -> PyErr {
    let (lo, hi) = spec.action_bounds();
    PyValueError::new_err(format!(
        "action: {e} (expected a finite array of shape (2,) in the action space: low {lo:?}, high {hi:?})"
    ))
}

pub(crate) fn image_array<'py>(py: Python<'py>, img: Image) -> PyResult<Bound<'py, PyAny>> {
    let (h, w) = (img.height as usize, img.width as usize);
    Ok(PyArray1::from_vec(py, img.rgb)
        .reshape([h, w, 3])?
        .into_any())
}

/// What the observation mode observes: the state vector, or the image (H, W, 3).
pub(crate) fn observation_array<'py>(
    py: Python<'py>,
    spec: &Spec,
    obs: Observation,
) -> PyResult<Bound<'py, PyAny>> {
    match obs.image {
        Some(img) if spec.kind == ObsKind::Pixels => image_array(py, img),
        _ => Ok(PyArray1::from_vec(py, obs.state).into_any()),
    }
}

/// The info dict of one env: success, distance, every criterion, the full physical state.
pub(crate) fn info_dict<'py>(
    py: Python<'py>,
    env: &hjepa::sim::Env,
    seed: u64,
    info: &Info,
    cost: Option<f32>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "success"), info.success)?;
    d.set_item(intern!(py, "distance"), info.goal_distance)?;
    let criteria = PyDict::new(py);
    for c in &info.criteria {
        let e = PyDict::new(py);
        e.set_item(intern!(py, "success"), c.success)?;
        e.set_item(intern!(py, "value"), c.value)?;
        if let Some(a) = c.angle_error {
            e.set_item(intern!(py, "angle_error"), a)?;
        }
        criteria.set_item(&c.name, e)?;
    }
    d.set_item(intern!(py, "criteria"), criteria)?;
    d.set_item(
        intern!(py, "state"),
        PyArray1::from_vec(py, env.physical_state()),
    )?;
    d.set_item(intern!(py, "steps"), info.steps)?;
    d.set_item(intern!(py, "action_clipped"), info.action_clipped)?;
    d.set_item(intern!(py, "blew_up"), info.blew_up)?;
    d.set_item(intern!(py, "contacts"), info.contacts)?;
    d.set_item(intern!(py, "agent_contacts"), info.agent_contacts)?;
    d.set_item(intern!(py, "distance_bin"), info.distance_bin)?;
    d.set_item(intern!(py, "seed"), seed)?;
    // The values the scene's factors of variation took this episode, when it has any.
    let factors = &env.layout().factors;
    if !factors.is_empty() {
        let f = PyDict::new(py);
        for (key, value) in factors {
            match *value {
                Value::Number(x) => f.set_item(key, x)?,
                Value::Color(r, g, b) => f.set_item(key, (r as u8, g as u8, b as u8))?,
            }
        }
        d.set_item(intern!(py, "factors"), f)?;
    }
    if let Some(c) = cost {
        d.set_item(intern!(py, "cost"), c)?;
    }
    Ok(d)
}

/// The Dict observation {observation, achieved_goal, desired_goal} of `env`, an env of
/// `spec`'s scene.
pub(crate) fn obs_dict<'py>(
    py: Python<'py>,
    spec: &Spec,
    env: &hjepa::sim::Env,
    obs: Observation,
) -> PyResult<Bound<'py, PyDict>> {
    let g = spec.goal_dim();
    let (mut ach, mut des) = (vec![0f32; g], vec![0f32; g]);
    spec.write_goals(env, &mut ach, &mut des);
    let d = PyDict::new(py);
    d.set_item(
        intern!(py, "observation"),
        observation_array(py, spec, obs)?,
    )?;
    d.set_item(intern!(py, "achieved_goal"), PyArray1::from_vec(py, ach))?;
    d.set_item(intern!(py, "desired_goal"), PyArray1::from_vec(py, des))?;
    Ok(d)
}

/// One hjepa sandbox: `Env(scene, observation="state", action_units="normalized")`.
///
/// `scene` is a shipped scene's name (`"push_t"`), a path to a `.ron` file, or RON text.
/// Observations are dicts of numpy arrays; errors in the scene or an action are ValueError.
#[pyclass(module = "hjepa._hjepa")]
struct Env {
    core: Core,
}

impl Env {
    fn obs_dict<'py>(&self, py: Python<'py>, obs: Observation) -> PyResult<Bound<'py, PyDict>> {
        obs_dict(py, &self.core.spec, &self.core.env, obs)
    }

    fn info_dict<'py>(
        &self,
        py: Python<'py>,
        info: &Info,
        cost: Option<f32>,
    ) -> PyResult<Bound<'py, PyDict>> {
        info_dict(py, &self.core.env, self.core.seed, info, cost)
    }

    fn ready(&self) -> PyResult<()> {
        if self.core.ready {
            Ok(())
        } else {
            Err(PyRuntimeError::new_err(
                "step() before reset(): call reset(seed) first",
            ))
        }
    }
}

#[pymethods]
impl Env {
    #[new]
    #[pyo3(signature = (scene, observation = "state", action_units = "normalized"))]
    fn new(py: Python<'_>, scene: &str, observation: &str, action_units: &str) -> PyResult<Env> {
        let spec = make_spec(py, scene, observation, action_units)?;
        let core = detached(py, move || Core::new(spec))?;
        Ok(Env { core })
    }

    /// Starts an episode from `seed`; with `layout` (JSON of an hjepa `Layout`) from that
    /// layout instead of the seed's (the seed is still what later unseeded resets follow).
    #[pyo3(signature = (seed, layout = None))]
    fn reset<'py>(
        &mut self,
        py: Python<'py>,
        seed: u64,
        layout: Option<&str>,
    ) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
        let layout = match layout {
            None => None,
            Some(text) => {
                let l: hjepa::sim::Layout = serde_json::from_str(text)
                    .map_err(|e| PyValueError::new_err(format!("options: layout: {e}")))?;
                hjepa::sim::env::check_layout(&self.core.spec.scene, &l)
                    .map_err(|e| PyValueError::new_err(format!("options: layout: {e}")))?;
                Some(l)
            }
        };
        let core = &mut self.core;
        let obs = detached(py, || match layout {
            None => core.reset(seed),
            Some(l) => core.reset_to(l, seed),
        });
        let obs = obs.inspect_err(|_| self.core.ready = false)?;
        let info = self.core.info();
        Ok((self.obs_dict(py, obs)?, self.info_dict(py, &info, None)?))
    }

    /// One env step: (observation, reward = -cost, terminated, truncated, info).
    #[allow(clippy::type_complexity)]
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        action: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyDict>, f64, bool, bool, Bound<'py, PyDict>)> {
        self.ready()?;
        let a = parse_action(&self.core.spec, action)?;
        let core = &mut self.core;
        let step = detached(py, || core.step(a)).inspect_err(|_| self.core.ready = false)?;
        let step = step.map_err(|e| action_value_error(&self.core.spec, &e))?;
        Ok((
            self.obs_dict(py, step.observation)?,
            -f64::from(step.cost),
            step.terminated,
            step.truncated,
            self.info_dict(py, &step.info, Some(step.cost))?,
        ))
    }

    /// The current (observation, info) without stepping.
    fn observe<'py>(
        &mut self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
        let core = &mut self.core;
        let obs = detached(py, || core.observe())?;
        let info = self.core.info();
        Ok((self.obs_dict(py, obs)?, self.info_dict(py, &info, None)?))
    }

    /// An RGB frame (H, W, 3) uint8 of the current state.
    fn render<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = &mut self.core;
        let img = detached(py, || core.render())?;
        image_array(py, img)
    }

    /// What the agent would observe with the goal reached (state vector or image).
    fn goal_observation<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = &mut self.core;
        let obs = detached(py, || core.goal_observation())?;
        observation_array(py, &self.core.spec, obs)
    }

    /// The complete state as bytes (picklable): restore with `set_state`, in this env, another
    /// env of the same scene, or another process.
    fn get_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.ready()?;
        let core = &self.core;
        let bytes = detached(py, || state::get_state(core))?;
        Ok(PyBytes::new(py, &bytes))
    }

    fn set_state(&mut self, py: Python<'_>, state: &[u8]) -> PyResult<()> {
        let core = &mut self.core;
        detached(py, || state::set_state(core, state))
            .inspect_err(|_| self.core.ready = false)?
            .map_err(|e| PyValueError::new_err(format!("set_state: {e}")))
    }

    /// The layout `seed` draws, as JSON (what `reset(seed, layout=...)` takes).
    fn sample_layout(&self, seed: u64) -> PyResult<String> {
        let l = hjepa::sim::env::sample_layout(&self.core.spec.scene, seed);
        serde_json::to_string(&l).map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// This episode's layout, as JSON.
    fn layout(&self) -> PyResult<String> {
        serde_json::to_string(self.core.env.layout())
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    /// The scene-unit action a user action stands for.
    fn to_scene_action(&self, py: Python<'_>, action: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let a = parse_action(&self.core.spec, action)?;
        Ok(PyArray1::from_vec(py, self.core.spec.to_scene(a).to_vec())
            .into_any()
            .unbind())
    }

    #[getter]
    fn seed(&self) -> u64 {
        self.core.seed
    }

    #[getter]
    fn steps(&self) -> u32 {
        self.core.env.steps()
    }

    #[getter]
    fn ready_(&self) -> bool {
        self.core.ready
    }

    #[getter]
    fn spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        spec_dict(py, &self.core.spec)
    }
}

/// What the Python side needs to build spaces and metadata.
pub(crate) fn spec_dict<'py>(py: Python<'py>, s: &Spec) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let scene = &s.scene;
    d.set_item("name", &scene.name)?;
    d.set_item("description", &scene.description)?;
    d.set_item("source", s.source.display().to_string())?;
    d.set_item(
        "observation",
        match s.kind {
            ObsKind::State => "state",
            ObsKind::Pixels => "pixels",
        },
    )?;
    d.set_item("normalized_actions", s.normalized)?;
    let (lo, hi) = s.action_bounds();
    d.set_item("action_low", lo.to_vec())?;
    d.set_item("action_high", hi.to_vec())?;
    let a = &scene.agent.action;
    d.set_item("scene_action_low", vec![a.low.0, a.low.1])?;
    d.set_item("scene_action_high", vec![a.high.0, a.high.1])?;
    d.set_item("scene_action_max_norm", a.max_norm)?;
    d.set_item("action_center", s.act_center.to_vec())?;
    d.set_item("action_half", s.act_half.to_vec())?;
    d.set_item("state_names", PyList::new(py, &s.state_names)?)?;
    d.set_item("state_low", s.state_low.clone())?;
    d.set_item("state_high", s.state_high.clone())?;
    d.set_item("goal_names", PyList::new(py, &s.goal_names)?)?;
    d.set_item("goal_low", s.goal_low.clone())?;
    d.set_item("goal_high", s.goal_high.clone())?;
    d.set_item("physical_state_names", PyList::new(py, &s.physical_names)?)?;
    d.set_item("image_shape", (s.image.height, s.image.width, 3))?;
    d.set_item("episode_steps", scene.episode_steps)?;
    d.set_item("frameskip", scene.physics.frameskip)?;
    d.set_item("max_env_steps", s.max_env_steps())?;
    d.set_item("control_dt", scene.control_dt())?;
    d.set_item(
        "env_dt",
        scene.control_dt() * scene.physics.frameskip as f32,
    )?;
    d.set_item(
        "criteria",
        scene
            .goal
            .success
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>(),
    )?;
    d.set_item("terminate_on_success", scene.goal.terminate_on_success)?;
    Ok(d)
}

/// The seed an unseeded reset (or an autoreset) uses after an episode seeded `seed`.
#[pyfunction(name = "next_seed")]
fn py_next_seed(seed: u64) -> u64 {
    next_seed(seed)
}

/// Names of the shipped scenes.
#[pyfunction]
fn shipped_scenes() -> Vec<&'static str> {
    hjepa::sim::shipped::SCENES
        .iter()
        .map(|(n, _)| *n)
        .collect()
}

/// The RON text of a shipped scene.
#[pyfunction]
fn shipped_scene_text(name: &str) -> PyResult<&'static str> {
    hjepa::sim::shipped::SCENES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| PyValueError::new_err(format!("no shipped scene {name:?}")))
}

/// Loads and checks a scene (a name, a path or RON text); ValueError names file, line, field.
#[pyfunction]
fn check_scene(py: Python<'_>, scene: &str) -> PyResult<String> {
    let scene = scene.to_string();
    let (s, _) = detached(py, move || core::load_scene(&scene))?
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(s.describe())
}

/// Forgets the in-process snapshot cache (tests: makes `set_state` replay).
#[pyfunction]
fn _clear_snapshot_cache() {
    state::clear_cache();
}

/// Panics inside the guard (tests: a panic must come back as RuntimeError).
#[pyfunction]
fn _panic_for_test(py: Python<'_>) -> PyResult<()> {
    detached(py, || panic!("deliberate test panic"))
}

#[pymodule]
fn _hjepa(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Env>()?;
    m.add_class::<vec::VecEnv>()?;
    m.add_function(wrap_pyfunction!(py_next_seed, m)?)?;
    m.add_function(wrap_pyfunction!(shipped_scenes, m)?)?;
    m.add_function(wrap_pyfunction!(shipped_scene_text, m)?)?;
    m.add_function(wrap_pyfunction!(check_scene, m)?)?;
    m.add_function(wrap_pyfunction!(protocol::collect, m)?)?;
    m.add_function(wrap_pyfunction!(protocol::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(protocol::wilson_interval, m)?)?;
    m.add_function(wrap_pyfunction!(_clear_snapshot_cache, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_test, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
