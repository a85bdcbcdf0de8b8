//! A vector env: N environments stepped in parallel on persistent worker threads.
//!
//! Each worker owns a contiguous slice of the envs and talks to the caller over crossbeam
//! channels, so a step costs two channel hops per worker rather than a thread spawn. Every
//! env is an independent, single-threaded rapier world, so results are bit-identical
//! whatever the number of threads.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use super::env::{Action, Env, Observation, Step};
use super::scene::Scene;
use crate::error::ActionError;

enum Job {
    /// (index within the worker's slice, seed)
    Reset(Vec<(usize, u64)>),
    Step(Vec<Action>),
}

enum Reply {
    Reset(Vec<(usize, Observation)>),
    Step(Vec<Result<Step, ActionError>>),
}

struct Worker {
    jobs: Sender<Job>,
    replies: Receiver<Reply>,
    first: usize,
    len: usize,
    handle: Option<JoinHandle<()>>,
}

pub struct VecEnv {
    workers: Vec<Worker>,
    n: usize,
}

impl VecEnv {
    /// `n` envs of one scene on `threads` worker threads (at least 1, at most `n`).
    pub fn new(scene: Arc<Scene>, n: usize, threads: usize) -> VecEnv {
        assert!(n > 0, "a vector env needs at least one env");
        let threads = threads.clamp(1, n);
        let mut workers = Vec::new();
        let mut first = 0;
        for t in 0..threads {
            let len = n / threads + usize::from(t < n % threads);
            let (jobs_tx, jobs_rx) = bounded::<Job>(1);
            let (rep_tx, rep_rx) = bounded::<Reply>(1);
            let scene = scene.clone();
            let handle = std::thread::Builder::new()
                .name(format!("vec-env-{t}"))
                .spawn(move || {
                    let mut envs: Vec<Env> = (0..len).map(|_| Env::new(scene.clone())).collect();
                    // Ends when the VecEnv drops its job sender.
                    for job in jobs_rx.iter() {
                        let reply = match job {
                            Job::Reset(which) => Reply::Reset(
                                which
                                    .into_iter()
                                    .map(|(i, s)| (i, envs[i].reset(s)))
                                    .collect(),
                            ),
                            Job::Step(actions) => Reply::Step(
                                envs.iter_mut()
                                    .zip(&actions)
                                    .map(|(e, a)| e.step(a))
                                    .collect(),
                            ),
                        };
                        if rep_tx.send(reply).is_err() {
                            break;
                        }
                    }
                })
                .expect("spawn vec-env worker");
            workers.push(Worker {
                jobs: jobs_tx,
                replies: rep_rx,
                first,
                len,
                handle: Some(handle),
            });
            first += len;
        }
        VecEnv { workers, n }
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
        for w in &self.workers {
            let mine: Vec<(usize, u64)> = which
                .iter()
                .filter(|(i, _)| *i >= w.first && *i < w.first + w.len)
                .map(|(i, s)| (i - w.first, *s))
                .collect();
            w.jobs.send(Job::Reset(mine)).expect("vec-env worker alive");
        }
        let mut out = Vec::new();
        for w in &self.workers {
            match w.replies.recv().expect("vec-env worker alive") {
                Reply::Reset(v) => out.extend(v.into_iter().map(|(i, o)| (i + w.first, o))),
                Reply::Step(_) => unreachable!("reply matches job"),
            }
        }
        out
    }

    /// Steps every env with its action (no auto-reset: call `reset_some` for finished ones).
    pub fn step(&mut self, actions: &[Action]) -> Vec<Result<Step, ActionError>> {
        assert_eq!(actions.len(), self.n, "one action per env");
        for w in &self.workers {
            w.jobs
                .send(Job::Step(actions[w.first..w.first + w.len].to_vec()))
                .expect("vec-env worker alive");
        }
        let mut out = Vec::with_capacity(self.n);
        for w in &self.workers {
            match w.replies.recv().expect("vec-env worker alive") {
                Reply::Step(v) => out.extend(v),
                Reply::Reset(_) => unreachable!("reply matches job"),
            }
        }
        out
    }
}

impl Drop for VecEnv {
    fn drop(&mut self) {
        for w in &mut self.workers {
            // Dropping the sender ends the worker's loop.
            let (dead, _) = bounded(0);
            drop(std::mem::replace(&mut w.jobs, dead));
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
    }
}
