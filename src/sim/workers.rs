//! Persistent worker threads, each owning a contiguous slice of N items (envs): a task runs
//! on every slice at once and the caller waits for all of them. The vector env
//! ([`super::VecEnv`]) and the Python package's vector env step their envs on it.
//!
//! A task costs two channel hops per worker rather than a thread spawn. A panic inside a
//! task is caught on its worker, which keeps serving; the caller gets the panic's message.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

/// Work for one worker: its slice of the items and the index of the slice's first item.
pub type Task<T> = Box<dyn FnOnce(&mut [T], usize) + Send>;

struct Worker<T> {
    jobs: Sender<Task<T>>,
    done: Receiver<Result<(), String>>,
    first: usize,
    len: usize,
    handle: Option<JoinHandle<()>>,
}

/// N items split over worker threads (see the module doc).
pub struct Workers<T> {
    workers: Vec<Worker<T>>,
    n: usize,
}

/// A caught panic's message.
pub fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = e.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = e.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

const STOPPED: &str = "a vector-env worker has stopped";

impl<T: Send + 'static> Workers<T> {
    /// The items on `threads` threads (at least 1, at most one per item), named `name-<t>`;
    /// worker t owns the t-th contiguous slice, the first `n % threads` one item longer.
    pub fn new(items: Vec<T>, threads: usize, name: &str) -> Workers<T> {
        let n = items.len();
        let threads = threads.clamp(1, n.max(1));
        let mut items = items.into_iter();
        let mut workers = Vec::new();
        let mut first = 0;
        for t in 0..threads {
            let len = n / threads + usize::from(t < n % threads);
            let mut mine: Vec<T> = items.by_ref().take(len).collect();
            let (jobs_tx, jobs_rx) = bounded::<Task<T>>(1);
            let (done_tx, done_rx) = bounded::<Result<(), String>>(1);
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{t}"))
                .spawn(move || {
                    // Ends when the owner drops its job sender.
                    for job in jobs_rx.iter() {
                        let r = catch_unwind(AssertUnwindSafe(|| job(&mut mine, first)))
                            .map_err(|e| panic_message(&*e));
                        if done_tx.send(r).is_err() {
                            break;
                        }
                    }
                })
                .expect("spawn a vector-env worker");
            workers.push(Worker {
                jobs: jobs_tx,
                done: done_rx,
                first,
                len,
                handle: Some(handle),
            });
            first += len;
        }
        Workers { workers, n }
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Runs one task per worker, made from the worker's first index and slice length, and
    /// waits for all of them; the first panic's message is the error.
    pub fn run_all(&self, mut make: impl FnMut(usize, usize) -> Task<T>) -> Result<(), String> {
        for w in &self.workers {
            w.jobs
                .send(make(w.first, w.len))
                .map_err(|_| STOPPED.to_string())?;
        }
        let mut result = Ok(());
        for w in &self.workers {
            let r = w.done.recv().unwrap_or_else(|_| Err(STOPPED.into()));
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// Runs `f` on item `i` (on the worker that owns it) and returns its result.
    pub fn call<R: Send + 'static>(
        &self,
        i: usize,
        f: impl FnOnce(&mut T) -> R + Send + 'static,
    ) -> Result<R, String> {
        assert!(i < self.n, "item {i} out of range for {} items", self.n);
        let w = self
            .workers
            .iter()
            .find(|w| i >= w.first && i < w.first + w.len)
            .expect("every item has a worker");
        let (tx, rx) = bounded(1);
        let job: Task<T> = Box::new(move |items, first| {
            let _ = tx.send(f(&mut items[i - first]));
        });
        w.jobs.send(job).map_err(|_| STOPPED.to_string())?;
        w.done.recv().unwrap_or_else(|_| Err(STOPPED.into()))?;
        rx.recv().map_err(|_| STOPPED.to_string())
    }
}

impl<T> Drop for Workers<T> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_see_their_slices_and_panics_come_back() {
        let w = Workers::new((0..7u32).collect(), 3, "test");
        assert_eq!(w.threads(), 3);
        let (tx, rx) = crossbeam_channel::unbounded();
        w.run_all(|first, len| {
            let tx = tx.clone();
            Box::new(move |items: &mut [u32], f| {
                assert_eq!((f, items.len()), (first, len));
                for x in items.iter_mut() {
                    *x *= 10;
                }
                tx.send((first, items.to_vec())).unwrap();
            })
        })
        .unwrap();
        let mut got: Vec<(usize, Vec<u32>)> = rx.try_iter().collect();
        got.sort();
        assert_eq!(
            got,
            vec![(0, vec![0, 10, 20]), (3, vec![30, 40]), (5, vec![50, 60])]
        );
        assert_eq!(w.call(4, |x| *x), Ok(40));
        let e = w.call(1, |_| -> u32 { panic!("boom") }).unwrap_err();
        assert!(e.contains("boom"), "{e}");
        assert_eq!(w.call(1, |x| *x), Ok(10), "the worker survives a panic");
    }
}
