//! Persistent worker threads, each owning a contiguous slice of N items (envs): a task runs
//! on every slice at once and the caller waits for all of them. The vector env
//! ([`super::VecEnv`]) and the Python package's vector env step their envs on it.
//!
//! The calling thread counts as one of the threads: it keeps the first slice and runs its
//! task itself while the workers run theirs. Waking a parked thread and waiting for its
//! answer took about 100 µs per step on a 2-core VM (a 1-env vector env on one worker ran
//! 7 400 steps/s against 31 000 for the env alone), so one thread means no hop at all.
//! A task costs two channel hops per worker rather than a thread spawn. A panic inside a
//! task is caught where it runs (the worker keeps serving); the caller gets its message.

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

/// N items split over the calling thread and worker threads (see the module doc).
pub struct Workers<T> {
    /// The first slice, run on the calling thread (uncontended: `run_all` and `call` hold
    /// it only while they run its task).
    local: std::sync::Mutex<Vec<T>>,
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
    /// The items on `threads` threads (at least 1, at most one per item): the calling
    /// thread keeps the first slice, and `threads - 1` workers named `name-<t>` take the
    /// others; slice t is the t-th contiguous one, the first `n % threads` one item longer.
    pub fn new(items: Vec<T>, threads: usize, name: &str) -> Workers<T> {
        let n = items.len();
        let threads = threads.clamp(1, n.max(1));
        let slice_len = |t: usize| n / threads + usize::from(t < n % threads);
        let mut items = items.into_iter();
        let local: Vec<T> = items.by_ref().take(slice_len(0)).collect();
        let mut workers = Vec::new();
        let mut first = local.len();
        for t in 1..threads {
            let len = slice_len(t);
            let mut mine: Vec<T> = items.by_ref().take(len).collect();
            let (jobs_tx, jobs_rx) = bounded::<Task<T>>(1);
            let (done_tx, done_rx) = bounded::<Result<(), String>>(1);
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{t}"))
                .spawn(move || {
                    // Ends when the owner drops its job sender.
                    while let Some(job) = recv_spinning(&jobs_rx) {
                        if done_tx.send(run_caught(job, &mut mine, first)).is_err() {
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
        Workers {
            local: std::sync::Mutex::new(local),
            workers,
            n,
        }
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Threads the items are split over, the calling thread included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// The first slice (the calling thread's); a panic in an earlier task does not poison it
    /// for good, since every task's panic is caught inside the lock.
    fn local(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one task per worker, made from the worker's first index and slice length, and
    /// waits for all of them; the first panic's message is the error.
    pub fn run_all(&self, mut make: impl FnMut(usize, usize) -> Task<T>) -> Result<(), String> {
        let mut local = self.local();
        let local_task = make(0, local.len());
        for w in &self.workers {
            w.jobs
                .send(make(w.first, w.len))
                .map_err(|_| STOPPED.to_string())?;
        }
        let mut result = run_caught(local_task, &mut local, 0);
        drop(local);
        for w in &self.workers {
            let r = recv_spinning(&w.done).unwrap_or_else(|| Err(STOPPED.into()));
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
        let mut local = self.local();
        if i < local.len() {
            return catch_unwind(AssertUnwindSafe(|| f(&mut local[i])))
                .map_err(|e| panic_message(&*e));
        }
        drop(local);
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

/// How long a thread polls a channel before it parks: back-to-back steps then find their
/// worker awake, since waking a parked thread cost ~100 µs per step on a 2-core VM.
const SPIN: std::time::Duration = std::time::Duration::from_micros(200);

/// The next message, polled for up to [`SPIN`], then waited for; None when disconnected.
fn recv_spinning<M>(rx: &Receiver<M>) -> Option<M> {
    let start = std::time::Instant::now();
    loop {
        match rx.try_recv() {
            Ok(m) => return Some(m),
            Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
            Err(crossbeam_channel::TryRecvError::Empty) if start.elapsed() < SPIN => {
                std::hint::spin_loop()
            }
            Err(crossbeam_channel::TryRecvError::Empty) => return rx.recv().ok(),
        }
    }
}

/// Runs a task, its panic caught as its message.
fn run_caught<T>(job: Task<T>, items: &mut [T], first: usize) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| job(items, first))).map_err(|e| panic_message(&*e))
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
        assert_eq!(
            w.call(1, |x| *x),
            Ok(10),
            "the calling thread's slice survives a panic"
        );
        let e = w.call(5, |_| -> u32 { panic!("bang") }).unwrap_err();
        assert!(e.contains("bang"), "{e}");
        assert_eq!(w.call(5, |x| *x), Ok(50), "the worker survives a panic");
        let one = Workers::new(vec![1u32, 2], 1, "test");
        assert_eq!(one.threads(), 1);
        let e = one
            .run_all(|_, _| Box::new(|_: &mut [u32], _| panic!("local")))
            .unwrap_err();
        assert!(e.contains("local"), "{e}");
        assert_eq!(one.call(1, |x| *x), Ok(2), "items kept after a panic");
    }
}
