//! `VecEnv`: N sandboxes on persistent Rust worker threads, stepped with the GIL released,
//! writing into numpy arrays allocated once. Next-step autoreset (Gymnasium's default): an
//! env that ended at the previous step is reset instead of stepped, its action ignored, and
//! reports reward 0, not terminated, not truncated; its seed follows `next_seed`.
//!
//! Each worker owns a contiguous slice of the envs; every env is an independent,
//! single-threaded rapier world, so results are bit-identical whatever the thread count.

use std::sync::Arc;

use hjepa::sim::workers::{Task, Workers};
use numpy::{PyArray1, PyArray2, PyArrayDyn, PyArrayMethods};
use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::core::{next_seed, Core, ObsKind, Spec};
use hjepa::sim::{Info, Observation};

/// The envs on their worker threads (`hjepa::sim::workers`, as hjepa's own vector env).
type Pool = Workers<Core>;

/// Raw pointers to the output arrays; each env writes only its own rows, and the caller
/// holds the arrays alive and waits for every worker before touching them.
#[derive(Clone, Copy)]
struct Out {
    obs_f32: *mut f32,
    obs_u8: *mut u8,
    obs_len: usize,
    achieved: *mut f32,
    desired: *mut f32,
    goal_dim: usize,
    rewards: *mut f64,
    terminated: *mut bool,
    truncated: *mut bool,
    success: *mut bool,
    distance: *mut f32,
    cost: *mut f32,
    steps: *mut i64,
    clipped: *mut bool,
    blew_up: *mut bool,
    state: *mut f32,
    state_dim: usize,
    seeds: *mut u64,
}

unsafe impl Send for Out {}
unsafe impl Sync for Out {}

struct Row<'a> {
    reward: f64,
    terminated: bool,
    truncated: bool,
    cost: f32,
    info: &'a Info,
}

impl Row<'_> {
    /// The row of an env just reset (or restored): no reward, not ended, no cost.
    fn reset(info: &Info) -> Row<'_> {
        Row {
            reward: 0.0,
            terminated: false,
            truncated: false,
            cost: f32::NAN,
            info,
        }
    }
}

impl Out {
    /// Writes the row of env `g`, just reset or restored, from its current state.
    ///
    /// # Safety
    /// As [`Out::write`].
    unsafe fn write_reset(&self, g: usize, core: &Core, obs: &Observation) {
        let info = core.info();
        self.write(g, core, obs, Row::reset(&info));
    }

    /// Writes env `g`'s row.
    ///
    /// # Safety
    /// The arrays have `n > g` rows of the dimensions recorded here and no one else
    /// writes row `g` meanwhile.
    unsafe fn write(&self, g: usize, core: &Core, obs: &Observation, row: Row<'_>) {
        let mut none_f = [0f32; 0];
        let mut none_u = [0u8; 0];
        match core.spec.kind {
            ObsKind::State => core.write_obs(
                obs,
                std::slice::from_raw_parts_mut(self.obs_f32.add(g * self.obs_len), self.obs_len),
                &mut none_u,
            ),
            ObsKind::Pixels => core.write_obs(
                obs,
                &mut none_f,
                std::slice::from_raw_parts_mut(self.obs_u8.add(g * self.obs_len), self.obs_len),
            ),
        }
        core.write_goals(
            std::slice::from_raw_parts_mut(self.achieved.add(g * self.goal_dim), self.goal_dim),
            std::slice::from_raw_parts_mut(self.desired.add(g * self.goal_dim), self.goal_dim),
        );
        let phys = core.env.physical_state();
        std::slice::from_raw_parts_mut(self.state.add(g * self.state_dim), self.state_dim)
            .copy_from_slice(&phys);
        *self.rewards.add(g) = row.reward;
        *self.terminated.add(g) = row.terminated;
        *self.truncated.add(g) = row.truncated;
        *self.success.add(g) = row.info.success;
        *self.distance.add(g) = row.info.goal_distance;
        *self.cost.add(g) = row.cost;
        *self.steps.add(g) = i64::from(row.info.steps);
        *self.clipped.add(g) = row.info.action_clipped;
        *self.blew_up.add(g) = row.info.blew_up;
        *self.seeds.add(g) = core.seed;
    }
}

/// The arrays a `VecEnv` writes into, allocated once.
struct Buffers {
    obs: Py<PyAny>,
    achieved: Py<PyArray2<f32>>,
    desired: Py<PyArray2<f32>>,
    rewards: Py<PyArray1<f64>>,
    terminated: Py<PyArray1<bool>>,
    truncated: Py<PyArray1<bool>>,
    success: Py<PyArray1<bool>>,
    distance: Py<PyArray1<f32>>,
    cost: Py<PyArray1<f32>>,
    steps: Py<PyArray1<i64>>,
    clipped: Py<PyArray1<bool>>,
    blew_up: Py<PyArray1<bool>>,
    state: Py<PyArray2<f32>>,
    seeds: Py<PyArray1<u64>>,
}

/// N sandboxes of one scene on Rust threads:
/// `VecEnv(scene, num_envs, observation="state", action_units="normalized", threads=None)`.
/// `reset` and `step` write into the arrays the getters return (the same objects each time).
#[pyclass(module = "hjepa._hjepa")]
pub struct VecEnv {
    spec: Arc<Spec>,
    n: usize,
    threads: usize,
    pool: Pool,
    buf: Buffers,
    /// Env i ended at the last step: the next step resets it.
    autoreset: Vec<bool>,
    ready: bool,
}

impl VecEnv {
    fn out(&self, py: Python<'_>) -> Out {
        let b = &self.buf;
        let (obs_f32, obs_u8) = match self.spec.kind {
            ObsKind::State => (
                b.obs.bind(py).cast::<PyArrayDyn<f32>>().unwrap().data(),
                std::ptr::null_mut(),
            ),
            ObsKind::Pixels => (
                std::ptr::null_mut(),
                b.obs.bind(py).cast::<PyArrayDyn<u8>>().unwrap().data(),
            ),
        };
        Out {
            obs_f32,
            obs_u8,
            obs_len: self.spec.obs_len(),
            achieved: b.achieved.bind(py).data(),
            desired: b.desired.bind(py).data(),
            goal_dim: self.spec.goal_dim(),
            rewards: b.rewards.bind(py).data(),
            terminated: b.terminated.bind(py).data(),
            truncated: b.truncated.bind(py).data(),
            success: b.success.bind(py).data(),
            distance: b.distance.bind(py).data(),
            cost: b.cost.bind(py).data(),
            steps: b.steps.bind(py).data(),
            clipped: b.clipped.bind(py).data(),
            blew_up: b.blew_up.bind(py).data(),
            state: b.state.bind(py).data(),
            state_dim: self.spec.physical_names.len(),
            seeds: b.seeds.bind(py).data(),
        }
    }

    fn index(&self, i: usize) -> PyResult<()> {
        if i < self.n {
            Ok(())
        } else {
            Err(PyIndexError::new_err(format!(
                "env index {i} out of range for {} envs",
                self.n
            )))
        }
    }

    fn run(
        &mut self,
        py: Python<'_>,
        make: impl FnMut(usize, usize) -> Task<Core> + Send,
    ) -> PyResult<()> {
        let pool = &self.pool;
        let r = crate::detached(py, || pool.run_all(make))?;
        r.map_err(|m| {
            self.ready = false;
            PyRuntimeError::new_err(format!(
                "hjepa internal error (a Rust panic, caught; reset the env): {m}"
            ))
        })
    }
}

#[pymethods]
impl VecEnv {
    #[new]
    #[pyo3(signature = (scene, num_envs, observation = "state", action_units = "normalized", threads = None))]
    fn new(
        py: Python<'_>,
        scene: &str,
        num_envs: usize,
        observation: &str,
        action_units: &str,
        threads: Option<usize>,
    ) -> PyResult<VecEnv> {
        if num_envs == 0 {
            return Err(PyValueError::new_err("num_envs: expected at least 1"));
        }
        let spec = crate::make_spec(py, scene, observation, action_units)?;
        let threads = threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .clamp(1, num_envs);
        let s = spec.clone();
        let pool = crate::detached(py, move || {
            let cores = (0..num_envs).map(|_| Core::new(s.clone())).collect();
            Pool::new(cores, threads, "hjepa-vec")
        })?;
        let n = num_envs;
        let g = spec.goal_dim();
        let obs: Py<PyAny> = match spec.kind {
            ObsKind::State => PyArrayDyn::<f32>::zeros(py, vec![n, spec.obs_len()], false)
                .into_any()
                .unbind(),
            ObsKind::Pixels => {
                let (h, w) = (spec.image.height as usize, spec.image.width as usize);
                PyArrayDyn::<u8>::zeros(py, vec![n, h, w, 3], false)
                    .into_any()
                    .unbind()
            }
        };
        let buf = Buffers {
            obs,
            achieved: PyArray2::zeros(py, [n, g], false).unbind(),
            desired: PyArray2::zeros(py, [n, g], false).unbind(),
            rewards: PyArray1::zeros(py, n, false).unbind(),
            terminated: PyArray1::zeros(py, n, false).unbind(),
            truncated: PyArray1::zeros(py, n, false).unbind(),
            success: PyArray1::zeros(py, n, false).unbind(),
            distance: PyArray1::zeros(py, n, false).unbind(),
            cost: PyArray1::zeros(py, n, false).unbind(),
            steps: PyArray1::zeros(py, n, false).unbind(),
            clipped: PyArray1::zeros(py, n, false).unbind(),
            blew_up: PyArray1::zeros(py, n, false).unbind(),
            state: PyArray2::zeros(py, [n, spec.physical_names.len()], false).unbind(),
            seeds: PyArray1::zeros(py, n, false).unbind(),
        };
        Ok(VecEnv {
            spec,
            n,
            threads,
            pool,
            buf,
            autoreset: vec![false; n],
            ready: false,
        })
    }

    /// Resets the envs whose seed is given (`None` leaves that env as it is; all must be
    /// given at the first reset).
    fn reset(&mut self, py: Python<'_>, seeds: Vec<Option<u64>>) -> PyResult<()> {
        if seeds.len() != self.n {
            return Err(PyValueError::new_err(format!(
                "seeds: expected {} (one per env, None to leave one as it is), found {}",
                self.n,
                seeds.len()
            )));
        }
        if !self.ready && seeds.iter().any(Option::is_none) {
            return Err(PyValueError::new_err(
                "the first reset must reset every env (no None seeds)",
            ));
        }
        let out = self.out(py);
        let seeds = Arc::new(seeds);
        let s = seeds.clone();
        self.run(py, move |_, _| {
            let seeds = s.clone();
            Box::new(move |cores: &mut [Core], first: usize| {
                for (k, core) in cores.iter_mut().enumerate() {
                    let g = first + k;
                    if let Some(seed) = seeds[g] {
                        let obs = core.reset(seed);
                        // SAFETY: row g belongs to this worker; the caller waits for it.
                        unsafe { out.write_reset(g, core, &obs) };
                    }
                }
            })
        })?;
        for (g, s) in seeds.iter().enumerate() {
            if s.is_some() {
                self.autoreset[g] = false;
            }
        }
        self.ready = true;
        Ok(())
    }

    /// Steps every env with its row of `actions` (shape (num_envs, 2)); envs that ended at
    /// the previous step are reset instead (next-step autoreset).
    fn step(&mut self, py: Python<'_>, actions: &Bound<'_, PyAny>) -> PyResult<()> {
        if !self.ready {
            return Err(PyRuntimeError::new_err(
                "step() before reset(): call reset(seeds) first",
            ));
        }
        let actions = self.parse_actions(actions)?;
        let out = self.out(py);
        let actions = Arc::new(actions);
        let autoreset = Arc::new(self.autoreset.clone());
        self.run(py, move |_, _| {
            let (actions, autoreset) = (actions.clone(), autoreset.clone());
            Box::new(move |cores: &mut [Core], first: usize| {
                for (k, core) in cores.iter_mut().enumerate() {
                    let g = first + k;
                    if autoreset[g] {
                        let obs = core.reset(next_seed(core.seed));
                        // SAFETY: row g belongs to this worker; the caller waits for it.
                        unsafe { out.write_reset(g, core, &obs) };
                    } else {
                        let step = core.step(actions[g]).expect("actions checked");
                        let row = Row {
                            reward: -f64::from(step.cost),
                            terminated: step.terminated,
                            truncated: step.truncated,
                            cost: step.cost,
                            info: &step.info,
                        };
                        // SAFETY: as above.
                        unsafe { out.write(g, core, &step.observation, row) };
                    }
                }
            })
        })?;
        let term = self.buf.terminated.bind(py).readonly();
        let trunc = self.buf.truncated.bind(py).readonly();
        let (term, trunc) = (term.as_slice()?, trunc.as_slice()?);
        for g in 0..self.n {
            self.autoreset[g] = term[g] || trunc[g];
        }
        Ok(())
    }

    /// Which envs the next step resets (they ended at the last one).
    #[getter]
    fn autoreset_mask<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<bool>> {
        PyArray1::from_vec(py, self.autoreset.clone())
    }

    /// An RGB frame of env `i`.
    fn render<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyAny>> {
        self.index(i)?;
        let pool = &self.pool;
        let img = crate::detached(py, || pool.call(i, |c| c.render()))?
            .map_err(PyRuntimeError::new_err)?;
        crate::image_array(py, img)
    }

    /// Env `i`'s complete state as bytes (the single env's `get_state` format).
    fn get_state<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyBytes>> {
        self.index(i)?;
        if !self.ready {
            return Err(PyRuntimeError::new_err("get_state() before reset()"));
        }
        let pool = &self.pool;
        let bytes = crate::detached(py, || pool.call(i, |c| crate::state::get_state(c)))?
            .map_err(PyRuntimeError::new_err)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Restores env `i` from `get_state` bytes; its rows in the arrays are rewritten and its
    /// pending autoreset dropped.
    fn set_state(&mut self, py: Python<'_>, i: usize, state: Vec<u8>) -> PyResult<()> {
        self.index(i)?;
        if !self.ready {
            return Err(PyRuntimeError::new_err(
                "set_state() before reset(): reset every env first",
            ));
        }
        let out = self.out(py);
        let pool = &self.pool;
        crate::detached(py, || {
            pool.call(i, move |c| -> Result<(), String> {
                crate::state::set_state(c, &state)?;
                let obs = c.observe();
                // SAFETY: the caller holds the arrays and waits for this call.
                unsafe { out.write_reset(i, c, &obs) };
                Ok(())
            })
        })?
        .map_err(PyRuntimeError::new_err)?
        .map_err(|e| PyValueError::new_err(format!("set_state: {e}")))?;
        self.autoreset[i] = false;
        Ok(())
    }

    #[getter]
    fn num_envs(&self) -> usize {
        self.n
    }

    #[getter]
    fn threads(&self) -> usize {
        self.threads
    }

    #[getter]
    fn spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        crate::spec_dict(py, &self.spec)
    }

    /// The arrays `reset` and `step` write (the same objects every call).
    #[getter]
    fn buffers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let b = &self.buf;
        let d = PyDict::new(py);
        d.set_item("observation", b.obs.bind(py))?;
        d.set_item("achieved_goal", b.achieved.bind(py))?;
        d.set_item("desired_goal", b.desired.bind(py))?;
        d.set_item("rewards", b.rewards.bind(py))?;
        d.set_item("terminated", b.terminated.bind(py))?;
        d.set_item("truncated", b.truncated.bind(py))?;
        d.set_item("success", b.success.bind(py))?;
        d.set_item("distance", b.distance.bind(py))?;
        d.set_item("cost", b.cost.bind(py))?;
        d.set_item("steps", b.steps.bind(py))?;
        d.set_item("action_clipped", b.clipped.bind(py))?;
        d.set_item("blew_up", b.blew_up.bind(py))?;
        d.set_item("state", b.state.bind(py))?;
        d.set_item("seed", b.seeds.bind(py))?;
        Ok(d)
    }
}

impl VecEnv {
    /// Actions of shape (num_envs, 2), real and finite, each accepted by the scene.
    fn parse_actions(&self, actions: &Bound<'_, PyAny>) -> PyResult<Vec<[f32; 2]>> {
        let (lo, hi) = self.spec.action_bounds();
        let expected = format!(
            "expected a finite real array of shape ({}, 2) in the action space (low {lo:?}, high {hi:?})",
            self.n
        );
        let flat = crate::real_array(actions, &[self.n, 2], "actions", &expected)?;
        let mut out = Vec::with_capacity(self.n);
        for (i, a) in flat.chunks_exact(2).enumerate() {
            let a = [a[0], a[1]];
            self.spec
                .check(a)
                .map_err(|e| PyValueError::new_err(format!("actions[{i}]: {e} ({expected})")))?;
            out.push(a);
        }
        Ok(out)
    }
}
