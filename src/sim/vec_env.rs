//! A vector env: N environments stepped in parallel on persistent worker threads.
//!
//! Each worker owns a contiguous slice of the envs ([`super::workers::Workers`]), so a step
//! costs a few channel hops per worker rather than a thread spawn. Every
//! env is an independent, single-threaded rapier world, so results are bit-identical
//! whatever the number of threads.

use std::sync::Arc;

use crossbeam_channel::unbounded;

use super::env::{Action, Env, Observation, Step};
use super::scene::Scene;
use super::workers::Workers;
use crate::error::ActionError;

pub struct VecEnv {
    workers: Workers<Env>,
    n: usize,
}

impl VecEnv {
    /// `n` envs of one scene on `threads` worker threads (at least 1, at most `n`).
    pub fn new(scene: Arc<Scene>, n: usize, threads: usize) -> VecEnv {
        assert!(n > 0, "a vector env needs at least one env");
        let envs = (0..n).map(|_| Env::new(scene.clone())).collect();
        VecEnv {
            workers: Workers::new(envs, threads, "vec-env"),
            n,
        }
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Resets every env; env i gets `seeds[i]`.
    pub fn reset(&mut self, seeds: &[u64]) -> Vec<Observation> {
        assert_eq!(seeds.len(), self.n, "one seed per env");
        let pairs: Vec<(usize, u64)> = seeds.iter().copied().enumerate().collect();
        let mut obs: Vec<Option<Observation>> = vec![None; self.n];
        for (i, o) in self.reset_some(&pairs) {
            obs[i] = Some(o);
        }
        obs.into_iter()
            .map(|o| o.expect("every env was reset"))
            .collect()
    }

    /// Resets the listed envs `(index, seed)`; returns their observations.
    pub fn reset_some(&mut self, which: &[(usize, u64)]) -> Vec<(usize, Observation)> {
        let (tx, rx) = unbounded();
        self.workers
            .run_all(|first, len| {
                let mine: Vec<(usize, u64)> = which
                    .iter()
                    .filter(|(i, _)| *i >= first && *i < first + len)
                    .copied()
                    .collect();
                let tx = tx.clone();
                Box::new(move |envs: &mut [Env], first| {
                    for (i, s) in mine {
                        let _ = tx.send((i, envs[i - first].reset(s)));
                    }
                })
            })
            .expect("vec-env worker alive");
        drop(tx);
        rx.iter().collect()
    }

    /// Steps every env with its action (no auto-reset: call `reset_some` for finished ones).
    pub fn step(&mut self, actions: &[Action]) -> Vec<Result<Step, ActionError>> {
        assert_eq!(actions.len(), self.n, "one action per env");
        let (tx, rx) = unbounded();
        self.workers
            .run_all(|first, len| {
                let mine = actions[first..first + len].to_vec();
                let tx = tx.clone();
                Box::new(move |envs: &mut [Env], first| {
                    let steps: Vec<_> =
                        envs.iter_mut().zip(&mine).map(|(e, a)| e.step(a)).collect();
                    let _ = tx.send((first, steps));
                })
            })
            .expect("vec-env worker alive");
        drop(tx);
        let mut parts: Vec<(usize, Vec<Result<Step, ActionError>>)> = rx.iter().collect();
        parts.sort_by_key(|(first, _)| *first);
        parts.into_iter().flat_map(|(_, steps)| steps).collect()
    }
}
