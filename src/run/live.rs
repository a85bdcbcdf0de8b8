//! A live session for a viewer: the sandbox and whoever acts in it (a planning agent, the
//! keyboard, or a recording being replayed) run in their own thread and stream what a viewer
//! draws over a crossbeam channel; the viewer sends controls back over another. Nothing here
//! depends on Bevy, so the session is tested headless and any front end can read it.
//!
//! Each frame carries the episode's static geometry (shared, rebuilt per episode), the
//! bodies' poses, the agent's plan replayed in a snapshot of the sandbox (the path it
//! expects), the cost and the counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

#[cfg(feature = "torch")]
use crate::agent::SubgoalProbe;
use crate::data::episodes::episode_seed;
use crate::data::recording::Recording;
use crate::run::episode::EvalActor;
/// Without torch there is no planning agent to probe.
#[cfg(not(feature = "torch"))]
enum SubgoalProbe {}
use crate::run::live_frame::episode_view;
pub use crate::run::live_frame::{BodyShape, EpisodeView, LiveFrame};
use crate::sim::scene::V2;
use crate::sim::{Env, Observation, Scene};

/// Who acts in a live session.
pub enum LiveActor {
    /// An agent (learned, oracle or scripted); its plan is drawn.
    Agent(EvalActor),
    /// The viewer's keyboard or mouse sets the action.
    Manual,
    /// A recording's episodes, replayed and scrubbable.
    Replay(Recording),
}

/// What a viewer can ask.
#[derive(Clone, Debug, PartialEq)]
pub enum Control {
    TogglePause,
    /// One control step (pauses).
    Step,
    /// Restart the current episode (same seed).
    Reset,
    /// Start the next seeded episode.
    NewSeed,
    /// Multiply the speed (0.125x to 16x).
    Speed(f32),
    /// Pull the body nearest to `at` (agent included) toward `to` each step; None releases.
    Drag(Option<(V2, V2)>),
    /// The action for manual control, normalised to [-1, 1] per axis.
    Manual([f32; 2]),
    /// Replays: go to this step of the current episode.
    Seek(u32),
    Quit,
}

pub struct LiveOptions {
    pub scene: Arc<Scene>,
    pub actor: LiveActor,
    pub actor_name: String,
    pub seed: u64,
    /// Start paused.
    pub paused: bool,
    /// Simulation speed relative to real time (0.125 to 16).
    pub speed: f32,
    /// Pause between episodes (real time).
    pub episode_pause: Duration,
}

/// The viewer's end of a running session.
pub struct LiveHandle {
    pub frames: Receiver<LiveFrame>,
    pub controls: Sender<Control>,
    dropped: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl LiveHandle {
    /// Frames dropped so far because the reader fell behind (the oldest give way).
    pub fn frames_dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stops the session and returns its result (an agent's error, if any).
    pub fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.controls.send(Control::Quit);
        self.join()
    }

    fn join(&mut self) -> anyhow::Result<()> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the sandbox thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for LiveHandle {
    fn drop(&mut self) {
        let _ = self.controls.send(Control::Quit);
        let _ = self.join();
    }
}

/// Starts the session thread (a recording without episodes has nothing to play: an error).
pub fn spawn(opts: LiveOptions) -> anyhow::Result<LiveHandle> {
    if let LiveActor::Replay(r) = &opts.actor {
        anyhow::ensure!(
            !r.episodes.is_empty(),
            "the recording of {} holds no episodes",
            r.actor
        );
    }
    // Frames: a small buffer the viewer drains each frame; when it falls behind, the oldest
    // frames are dropped (the viewer always gets the latest), never the sandbox blocked.
    let (frame_tx, frame_rx) = bounded::<LiveFrame>(4);
    let (control_tx, control_rx) = bounded::<Control>(64);
    let dropped = Arc::new(AtomicU64::new(0));
    let out = FrameOut {
        frames: frame_tx,
        stale: frame_rx.clone(),
        dropped: dropped.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("live-sandbox".into())
        .spawn(move || Session::new(opts).run(out, control_rx))
        .expect("spawn the sandbox thread");
    Ok(LiveHandle {
        frames: frame_rx,
        controls: control_tx,
        dropped,
        thread: Some(thread),
    })
}

/// The session's end of the frame buffer. It also holds a receiving end (`stale`), used
/// only to drop the oldest frame when the reader falls behind; holding it, the session
/// cannot see the reader's end close, so it ends on `Quit` or when the controls' senders
/// are gone.
struct FrameOut {
    frames: Sender<LiveFrame>,
    stale: Receiver<LiveFrame>,
    dropped: Arc<AtomicU64>,
}

impl FrameOut {
    /// Sends without blocking, dropping the oldest waiting frames to make room.
    fn send(&self, mut f: LiveFrame) {
        // Never disconnected: `stale` is a receiver.
        while let Err(TrySendError::Full(back)) = self.frames.try_send(f) {
            if self.stale.try_recv().is_ok() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            f = back;
        }
    }
}

struct Session {
    scene: Arc<Scene>,
    env: Env,
    scratch: Env,
    actor: LiveActor,
    actor_name: String,
    seed: u64,
    episode: u64,
    view: Arc<EpisodeView>,
    obs: Observation,
    step: u32,
    done: bool,
    success: bool,
    cost: f32,
    paused: bool,
    speed: f32,
    episodes_done: u64,
    successes: u64,
    drag: Option<(Option<usize>, V2)>,
    #[cfg_attr(not(feature = "torch"), allow(dead_code))]
    probe: Option<SubgoalProbe>,
    manual: [f32; 2],
    episode_pause: Duration,
    done_at: Option<Instant>,
}

/// What a batch of the viewer's controls leaves the session loop to do.
enum Controlled {
    /// Go on; `single_step`: a `Step` asked for one control step.
    Go { single_step: bool },
    /// The viewer quit.
    Quit,
    /// A seek failed: halt on this error.
    Failed(anyhow::Error),
}

impl Session {
    fn new(opts: LiveOptions) -> Session {
        let scene = opts.scene;
        let mut env = Env::new(scene.clone());
        let obs = env.reset(0);
        let view = Arc::new(episode_view(&env, 0, Some(0), None));
        #[cfg(feature = "torch")]
        let probe = match &opts.actor {
            LiveActor::Agent(EvalActor::Learned(a)) if a.cfg.hierarchical() => {
                SubgoalProbe::fit(a, &scene)
            }
            _ => None,
        };
        #[cfg(not(feature = "torch"))]
        let probe = None;
        let mut s = Session {
            probe,
            scratch: Env::new(scene.clone()),
            scene,
            env,
            actor: opts.actor,
            actor_name: opts.actor_name,
            seed: opts.seed,
            episode: 0,
            view,
            obs,
            step: 0,
            done: false,
            success: false,
            cost: 0.0,
            paused: opts.paused,
            speed: opts.speed.clamp(0.125, 16.0),
            episodes_done: 0,
            successes: 0,
            drag: None,
            manual: [0.0; 2],
            episode_pause: opts.episode_pause,
            done_at: None,
        };
        s.start_episode(0);
        s
    }

    /// The seed of episode `i`: the recording's, or the sequence `hjepa eval --seed` plays.
    fn seed_of(&self, i: u64) -> u64 {
        match &self.actor {
            LiveActor::Replay(r) => r.episodes[i as usize % r.episodes.len()].seed,
            _ => episode_seed(self.seed, i),
        }
    }

    fn start_episode(&mut self, i: u64) {
        self.episode = i;
        let seed = self.seed_of(i);
        self.obs = match &self.actor {
            LiveActor::Replay(r) => r.episodes[i as usize % r.episodes.len()].reset(&mut self.env),
            _ => self.env.reset(seed),
        };
        if let LiveActor::Agent(a) = &mut self.actor {
            a.actor().reset(&mut self.env, seed);
        }
        let (replay_steps, sampled_from) = match &self.actor {
            LiveActor::Replay(r) => {
                let e = &r.episodes[i as usize % r.episodes.len()];
                (
                    Some(e.actions.len() as u32),
                    e.start.is_none().then_some(seed),
                )
            }
            _ => (None, Some(seed)),
        };
        self.view = Arc::new(episode_view(&self.env, i, sampled_from, replay_steps));
        self.step = 0;
        self.done = false;
        self.success = false;
        self.cost = 0.0;
        self.done_at = None;
    }

    /// Control steps per second at speed 1 (real time).
    fn rate(&self) -> f32 {
        1.0 / (self.scene.control_dt() * self.scene.physics.frameskip.max(1) as f32)
    }

    /// The session loop: controls in, a frame out whenever something changed.
    fn run(mut self, out: FrameOut, controls: Receiver<Control>) -> anyhow::Result<()> {
        let mut next = Instant::now();
        out.send(self.frame());
        loop {
            let Some(pending) = self.pending_controls(&controls, next) else {
                return Ok(());
            };
            let mut changed = !pending.is_empty();
            let single_step = match self.apply_controls(pending) {
                Controlled::Go { single_step } => single_step,
                Controlled::Quit => return Ok(()),
                Controlled::Failed(e) => return self.halt(e, &out, &controls),
            };
            let due = !self.paused && Instant::now() >= next;
            if due || single_step {
                if let Err(e) = self.tick(single_step) {
                    return self.halt(e, &out, &controls);
                }
                next = self.next_due(next, single_step);
                changed = true;
            }
            if changed {
                out.send(self.frame());
            }
        }
    }

    /// The controls sent since the last look, waiting at most until the next step is due
    /// (paused: 50 ms); None when the controls' senders are gone.
    fn pending_controls(
        &self,
        controls: &Receiver<Control>,
        next: Instant,
    ) -> Option<Vec<Control>> {
        let wait = next.saturating_duration_since(Instant::now());
        let first = if self.paused {
            controls.recv_timeout(Duration::from_millis(50))
        } else {
            controls.recv_timeout(wait)
        };
        let mut pending: Vec<Control> = match first {
            Ok(c) => vec![c],
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Vec::new(),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return None,
        };
        pending.extend(controls.try_iter());
        Some(pending)
    }

    /// Applies the viewer's controls in the order sent; stops at `Quit` or a failed seek.
    fn apply_controls(&mut self, pending: Vec<Control>) -> Controlled {
        let mut single_step = false;
        for c in pending {
            match c {
                Control::Quit => return Controlled::Quit,
                Control::TogglePause => self.paused = !self.paused,
                Control::Step => {
                    self.paused = true;
                    single_step = true;
                }
                Control::Reset => self.start_episode(self.episode),
                Control::NewSeed => self.start_episode(self.episode + 1),
                Control::Speed(f) => self.speed = (self.speed * f).clamp(0.125, 16.0),
                Control::Drag(None) => self.drag = None,
                Control::Drag(Some((at, to))) => {
                    let body = match self.drag {
                        Some((b, _)) => b,
                        None => self.nearest_body(at),
                    };
                    self.drag = Some((body, to));
                }
                Control::Manual(a) => self.manual = [a[0].clamp(-1.0, 1.0), a[1].clamp(-1.0, 1.0)],
                Control::Seek(t) => {
                    if let Err(e) = self.seek(t) {
                        return Controlled::Failed(e);
                    }
                }
            }
        }
        Controlled::Go { single_step }
    }

    /// One step of the session clock: a control step, or at an episode's end, after showing
    /// it for a moment, the next episode.
    fn tick(&mut self, single_step: bool) -> anyhow::Result<()> {
        if self.done {
            let ended = *self.done_at.get_or_insert_with(Instant::now);
            if single_step || ended.elapsed() >= self.episode_pause {
                self.start_episode(self.episode + 1);
            }
            Ok(())
        } else {
            self.advance()
        }
    }

    /// When the step after one due at `next` is due. On a fixed schedule, so planning time
    /// does not slow the clock; a step that took longer than a period (slow planning, a
    /// pause) is followed at once, without a burst of catching up.
    fn next_due(&self, next: Instant, single_step: bool) -> Instant {
        let period = Duration::from_secs_f32(1.0 / (self.rate() * self.speed));
        let now = Instant::now();
        if single_step {
            now + period
        } else {
            (next + period).max(now)
        }
    }

    /// Shows `error` in a last, paused frame and keeps it up until the viewer quits (a
    /// viewer would otherwise sit on the last good frame with no word why), then returns it.
    fn halt(
        &mut self,
        error: anyhow::Error,
        out: &FrameOut,
        controls: &Receiver<Control>,
    ) -> anyhow::Result<()> {
        self.paused = true;
        let mut last = self.frame();
        last.error = Some(format!("{error:#}"));
        out.send(last);
        while let Ok(c) = controls.recv() {
            if c == Control::Quit {
                break;
            }
        }
        Err(error)
    }

    /// One control step by whoever acts.
    fn advance(&mut self) -> anyhow::Result<()> {
        let action = match &mut self.actor {
            LiveActor::Agent(a) => a.actor().act(&self.env, &self.obs).0,
            LiveActor::Manual => {
                let space = &self.scene.agent.action;
                let mid = |lo: f32, hi: f32, x: f32| 0.5 * (lo + hi) + 0.5 * (hi - lo) * x;
                [
                    mid(space.low.0, space.high.0, self.manual[0]),
                    mid(space.low.1, space.high.1, self.manual[1]),
                ]
            }
            LiveActor::Replay(r) => {
                let ep = &r.episodes[self.episode as usize % r.episodes.len()];
                match ep.actions.get(self.step as usize) {
                    Some(a) => *a,
                    None => {
                        self.done = true;
                        return Ok(());
                    }
                }
            }
        };
        let action = self.apply_drag(action);
        let step = self.env.step(&action).map_err(|e| {
            anyhow::anyhow!(
                "step {} of episode {}: the action was refused: {e}",
                self.step,
                self.episode
            )
        })?;
        self.obs = step.observation;
        self.step = step.info.steps;
        self.cost = step.cost;
        self.success = step.info.success;
        if step.terminated || step.truncated {
            self.done = true;
            self.episodes_done += 1;
            self.successes += self.success as u64;
        }
        Ok(())
    }

    /// A dragged body is pulled toward the cursor by a stiff spring on its velocity; a
    /// dragged agent gets the action that moves it there instead of its own.
    fn apply_drag(&mut self, action: [f32; 2]) -> [f32; 2] {
        let Some((body, to)) = self.drag else {
            return action;
        };
        let world = self.env.world_mut();
        let (gain, max) = (10.0, 5.0);
        let Some(i) = body else {
            let pos = world.agent_position();
            let want = ((to.0 - pos.0) * gain, (to.1 - pos.1) * gain);
            let a = match self.scene.agent.actuator {
                crate::sim::scene::Actuator::PdTarget { .. } => [to.0, to.1],
                crate::sim::scene::Actuator::Velocity { gain: g } => [want.0 / g, want.1 / g],
                crate::sim::scene::Actuator::Force { gain: g, .. } => {
                    let v = world.agent_velocity();
                    let m = world.agent_mass();
                    [m * (want.0 - v.0) * gain / g, m * (want.1 - v.1) * gain / g]
                }
            };
            let space = &self.scene.agent.action;
            return [
                a[0].clamp(space.low.0, space.high.0),
                a[1].clamp(space.low.1, space.high.1),
            ];
        };
        let b = world.bodies()[i];
        let p = world.body_pose(&b);
        let mut v = ((to.0 - p.x) * gain, (to.1 - p.y) * gain);
        let speed = (v.0 * v.0 + v.1 * v.1).sqrt();
        if speed > max {
            v = (v.0 * max / speed, v.1 * max / speed);
        }
        world.set_body_velocity(&b, v);
        action
    }

    /// The body copy nearest to `at`; None is the agent.
    fn nearest_body(&self, at: V2) -> Option<usize> {
        let world = self.env.world();
        let d = |p: V2| (p.0 - at.0).powi(2) + (p.1 - at.1).powi(2);
        let mut best = (d(world.agent_position()), None);
        for (i, b) in world.bodies().iter().enumerate() {
            let p = world.body_pose(b);
            let di = d((p.x, p.y));
            if di < best.0 {
                best = (di, Some(i));
            }
        }
        best.1
    }

    /// Replays: re-simulates the current episode up to step `t` (the sandbox is
    /// deterministic, so this is exact).
    fn seek(&mut self, t: u32) -> anyhow::Result<()> {
        if !matches!(self.actor, LiveActor::Replay(_)) {
            return Ok(());
        }
        self.start_episode(self.episode);
        self.paused = true;
        while self.step < t && !self.done {
            self.advance()?;
        }
        Ok(())
    }

    /// The agent's remaining plan, replayed from a snapshot in the scratch sandbox.
    fn expected_path(&mut self) -> Vec<V2> {
        let LiveActor::Agent(a) = &mut self.actor else {
            return Vec::new();
        };
        let actions = a.actor().planned_actions();
        if actions.is_empty() || self.done {
            return Vec::new();
        }
        self.scratch.restore(&self.env.snapshot());
        let mut path = vec![self.scratch.world().agent_position()];
        for act in &actions {
            match self.scratch.step(act) {
                Ok(step) => {
                    path.push(self.scratch.world().agent_position());
                    if step.terminated || step.truncated {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        path
    }

    /// The upper plan's abstract states, decoded to arena positions.
    fn subgoals(&self) -> Vec<V2> {
        #[cfg(feature = "torch")]
        if let (LiveActor::Agent(EvalActor::Learned(agent)), Some(probe), false) =
            (&self.actor, &self.probe, self.done)
        {
            return agent
                .upper_states()
                .map(|h| probe.positions(&h))
                .unwrap_or_default();
        }
        Vec::new()
    }

    fn frame(&mut self) -> LiveFrame {
        let plan = self.expected_path();
        let subgoals = self.subgoals();
        let world = self.env.world();
        LiveFrame {
            view: self.view.clone(),
            step: self.step,
            agent: world.agent_position(),
            bodies: world.bodies().iter().map(|b| world.body_pose(b)).collect(),
            plan,
            subgoals,
            cost: self.cost,
            success: self.success,
            done: self.done,
            paused: self.paused,
            speed: self.speed,
            episodes_done: self.episodes_done,
            successes: self.successes,
            actor: self.actor_name.clone(),
            error: None,
        }
    }
}
