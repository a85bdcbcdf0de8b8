//! The sandbox thread: an env running in its own thread, taking commands from one agent and
//! streaming observation frames over bounded crossbeam channels.
//!
//! Protocol. The agent (whoever holds `SandboxHandle`) sends a `Command` and receives one
//! `Result<Arc<Frame>, ActionError>` back on its reply channel: a lock-step control loop.
//! Observers (dataset writer, viewer, logger) subscribe before `spawn` and receive every
//! valid frame as an `Arc` (one copy of the observation whatever the number of consumers).
//!
//! Backpressure. Each observer has a bounded channel and chooses:
//! - `Backpressure::Block`: the sandbox waits for room (lossless; a dataset writer). An
//!   observer of this kind must keep reading or drop its receiver.
//! - `Backpressure::DropNewest`: when the channel is full the frame is skipped for that
//!   observer and counted (a viewer that renders slower than the sim runs).
//!
//! Shutdown. The sandbox ends when the agent drops its command sender (or sends
//! `Command::Shutdown`), and returns the env and the per-observer drop counts from `join`.
//! An observer that drops its receiver is removed at the next frame; the agent dropping its
//! reply receiver also ends the sandbox. Nothing ever waits on a disconnected consumer.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use super::env::{Action, Env, Info, Observation};
use crate::error::ActionError;

#[derive(Clone, Debug)]
pub enum Command {
    /// Start an episode with this seed.
    Reset {
        seed: u64,
    },
    Step(Action),
    Shutdown,
}

/// One observation frame as streamed to consumers.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Episodes started so far by this sandbox, counting this one from 1.
    pub episode: u64,
    pub seed: u64,
    /// Control steps into the episode.
    pub step: u32,
    /// The action that led here (None right after a reset).
    pub action: Option<Action>,
    pub observation: Observation,
    /// The full physical state (`Env::physical_state`).
    pub state: Vec<f32>,
    pub cost: f32,
    pub terminated: bool,
    pub truncated: bool,
    pub info: Info,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    Block,
    DropNewest,
}

struct Observer {
    tx: Sender<Arc<Frame>>,
    mode: Backpressure,
    dropped: u64,
    connected: bool,
}

/// A sandbox not yet running: add observers, then `spawn`.
pub struct Sandbox {
    env: Env,
    observers: Vec<Observer>,
}

/// What the sandbox thread hands back when it ends.
pub struct SandboxExit {
    pub env: Env,
    /// Frames skipped per observer (in subscription order), for `DropNewest` observers.
    pub dropped: Vec<u64>,
}

/// The agent's end of a running sandbox.
pub struct SandboxHandle {
    pub commands: Sender<Command>,
    pub replies: Receiver<Result<Arc<Frame>, ActionError>>,
    thread: JoinHandle<SandboxExit>,
}

impl Sandbox {
    pub fn new(env: Env) -> Sandbox {
        Sandbox {
            env,
            observers: Vec::new(),
        }
    }

    /// Subscribes an observer with a channel of `capacity` frames.
    pub fn observe(&mut self, capacity: usize, mode: Backpressure) -> Receiver<Arc<Frame>> {
        let (tx, rx) = bounded(capacity.max(1));
        self.observers.push(Observer {
            tx,
            mode,
            dropped: 0,
            connected: true,
        });
        rx
    }

    /// Starts the sandbox thread.
    pub fn spawn(self) -> SandboxHandle {
        let (cmd_tx, cmd_rx) = bounded::<Command>(1);
        let (rep_tx, rep_rx) = bounded::<Result<Arc<Frame>, ActionError>>(1);
        let thread = std::thread::Builder::new()
            .name("sandbox".into())
            .spawn(move || self.run(cmd_rx, rep_tx))
            .expect("spawn sandbox thread");
        SandboxHandle {
            commands: cmd_tx,
            replies: rep_rx,
            thread,
        }
    }

    fn run(
        mut self,
        commands: Receiver<Command>,
        replies: Sender<Result<Arc<Frame>, ActionError>>,
    ) -> SandboxExit {
        let (mut episode, mut seed) = (0u64, 0u64);
        for cmd in commands.iter() {
            let reply = match cmd {
                Command::Shutdown => break,
                Command::Reset { seed: s } => {
                    episode += 1;
                    seed = s;
                    let observation = self.env.reset(s);
                    let info = self.env.info();
                    Ok(Frame {
                        episode,
                        seed,
                        step: 0,
                        action: None,
                        observation,
                        state: self.env.physical_state(),
                        cost: f32::NAN,
                        terminated: false,
                        truncated: false,
                        info,
                    })
                }
                Command::Step(a) => self.env.step(&a).map(|s| Frame {
                    episode,
                    seed,
                    step: s.info.steps,
                    action: Some(a),
                    observation: s.observation,
                    state: self.env.physical_state(),
                    cost: s.cost,
                    terminated: s.terminated,
                    truncated: s.truncated,
                    info: s.info,
                }),
            };
            let reply = reply.map(Arc::new);
            if let Ok(frame) = &reply {
                self.broadcast(frame);
            }
            if replies.send(reply).is_err() {
                break; // the agent went away
            }
        }
        SandboxExit {
            env: self.env,
            dropped: self.observers.iter().map(|o| o.dropped).collect(),
        }
    }

    fn broadcast(&mut self, frame: &Arc<Frame>) {
        for o in self.observers.iter_mut().filter(|o| o.connected) {
            let sent = match o.mode {
                Backpressure::Block => o.tx.send(frame.clone()).map_err(|_| ()),
                Backpressure::DropNewest => match o.tx.try_send(frame.clone()) {
                    Ok(()) => Ok(()),
                    Err(TrySendError::Full(_)) => {
                        o.dropped += 1;
                        Ok(())
                    }
                    Err(TrySendError::Disconnected(_)) => Err(()),
                },
            };
            if sent.is_err() {
                o.connected = false;
            }
        }
    }
}

impl SandboxHandle {
    /// Sends a command and waits for its frame. Errors if the sandbox has ended.
    pub fn request(&self, cmd: Command) -> anyhow::Result<Result<Arc<Frame>, ActionError>> {
        self.commands
            .send(cmd)
            .map_err(|_| anyhow::anyhow!("the sandbox thread has ended"))?;
        self.replies
            .recv()
            .map_err(|_| anyhow::anyhow!("the sandbox thread has ended"))
    }

    pub fn reset(&self, seed: u64) -> anyhow::Result<Arc<Frame>> {
        Ok(self
            .request(Command::Reset { seed })?
            .expect("reset cannot fail"))
    }

    pub fn step(&self, action: Action) -> anyhow::Result<Result<Arc<Frame>, ActionError>> {
        self.request(Command::Step(action))
    }

    /// Stops the sandbox and returns its env and drop counts.
    pub fn join(self) -> SandboxExit {
        let _ = self.commands.send(Command::Shutdown);
        drop(self.commands);
        drop(self.replies);
        self.thread.join().expect("sandbox thread panicked")
    }
}
