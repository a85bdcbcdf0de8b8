//! The live session a viewer reads (no Bevy): frames carry the scene's geometry, the poses,
//! the agent's expected path; controls pause, step, reset, change the seed, drag bodies and
//! scrub replays.
// Needs the world model (the default `torch` feature).
#![cfg(feature = "torch")]

mod common;

use std::time::{Duration, Instant};

use hjepa::agent::AgentFile;
use hjepa::run::eval::{oracle_actor, EvalActor};
use hjepa::run::live::{spawn, Control, LiveActor, LiveFrame, LiveHandle, LiveOptions};

fn oracle_session(paused: bool) -> LiveHandle {
    let scene = common::scene("two_rooms");
    let path = AgentFile::resolve_path("two_rooms");
    let mut agent = AgentFile::load(&path).unwrap();
    let p = agent.planning.as_mut().unwrap();
    p.planner.samples = 16;
    p.planner.iterations = 1;
    let actor = oracle_actor(&agent, &path, &scene).unwrap();
    spawn(LiveOptions {
        scene,
        actor: LiveActor::Agent(actor),
        actor_name: "oracle".into(),
        seed: 0,
        paused,
        speed: 1.0,
        episode_pause: Duration::from_millis(0),
    })
    .unwrap()
}

/// `hjepa record`'s recording of one two_rooms episode, in `dir`.
fn record_two_rooms(dir: &std::path::Path) -> std::path::PathBuf {
    let rec = dir.join("ep.json");
    let out = common::bin()
        .args(["record", "--scene", "two_rooms", "--out"])
        .arg(dir.join("ep.gif"))
        .arg("--recording")
        .arg(&rec)
        .output()
        .unwrap();
    common::assert_ok(&out);
    rec
}

/// A recording and the scene it replays in.
fn load_recording(
    rec: &std::path::Path,
) -> (
    hjepa::data::recording::Recording,
    std::sync::Arc<hjepa::sim::Scene>,
) {
    let recording = hjepa::data::recording::Recording::load(rec).unwrap();
    let scene = recording.scene(rec).unwrap();
    (recording, scene)
}

/// A paused session replaying `recording`.
fn replay_options(
    scene: std::sync::Arc<hjepa::sim::Scene>,
    recording: hjepa::data::recording::Recording,
) -> LiveOptions {
    LiveOptions {
        scene,
        actor: LiveActor::Replay(recording),
        actor_name: "replay".into(),
        seed: 0,
        paused: true,
        speed: 1.0,
        episode_pause: Duration::from_millis(0),
    }
}

/// The next frame satisfying `want`, draining everything before it.
fn wait_for(h: &LiveHandle, what: &str, want: impl Fn(&LiveFrame) -> bool) -> LiveFrame {
    let t = Instant::now();
    loop {
        let f = h
            .frames
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
        if want(&f) {
            return f;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "never saw {what}");
    }
}

#[test]
fn stepping_pausing_resetting_and_new_seeds() {
    let h = oracle_session(true);
    let first = wait_for(&h, "the first frame", |_| true);
    assert_eq!(first.step, 0);
    assert!(first.paused);
    assert_eq!(first.view.scene, "two_rooms");
    assert!(!first.view.walls.is_empty() && !first.view.goal.is_empty());
    // Paused: nothing moves until asked for exactly one step at a time. A control that
    // changes nothing makes the session send its current frame, so every frame up to that
    // answer shows where the session stands (no waiting for a time that might be too short).
    h.controls.send(Control::Speed(1.0)).unwrap();
    let still = wait_for(&h, "the current frame", |_| true);
    assert!(
        still.paused && still.step == 0,
        "a paused session does not advance"
    );
    for want in 1..=3 {
        h.controls.send(Control::Step).unwrap();
        let f = wait_for(&h, "a step", |f| f.step != want - 1);
        assert_eq!(f.step, want);
        // Still exactly there after the step: a no-op control's answer is the same step.
        h.controls.send(Control::Speed(1.0)).unwrap();
        let f = wait_for(&h, "the current frame", |_| true);
        assert_eq!(f.step, want, "a paused session moved on its own");
    }
    // The oracle's plan, replayed in a snapshot, starts where the agent is.
    h.controls.send(Control::Step).unwrap();
    let f2 = wait_for(&h, "step 4", |x| x.step == 4);
    assert!(f2.plan.len() >= 2, "expected path {:?}", f2.plan);
    let d = (f2.plan[0].0 - f2.agent.0).abs() + (f2.plan[0].1 - f2.agent.1).abs();
    assert!(
        d < 1e-5,
        "path starts at the agent: {:?} vs {:?}",
        f2.plan[0],
        f2.agent
    );

    h.controls.send(Control::Reset).unwrap();
    let r = wait_for(&h, "the reset", |x| x.step == 0);
    assert_eq!(r.view.seed, first.view.seed);
    assert_eq!(r.agent, first.agent);
    h.controls.send(Control::NewSeed).unwrap();
    let n = wait_for(&h, "the next episode", |x| x.view.episode == 1);
    assert_ne!(n.view.seed, first.view.seed);
    h.stop().unwrap();
}

#[test]
fn a_viewer_that_falls_behind_gets_the_latest_frames() {
    let h = oracle_session(false);
    h.controls.send(Control::Speed(16.0)).unwrap();
    // Read nothing until the session says it dropped two frames for want of room (an
    // event, not a guess at how long that takes); then pause and read what waits.
    let t = Instant::now();
    while h.frames_dropped() < 2 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no frame was ever dropped"
        );
        std::thread::yield_now();
    }
    h.controls.send(Control::TogglePause).unwrap();
    let waiting = frames_until(&h, "the pause", |f| f.paused);
    // The oldest frames gave way (not the newest, and the session did not block): what
    // waits starts after the first two frames sent and runs on in order to the pause.
    let first = &waiting[0];
    assert!(
        first.view.episode > 0 || first.step >= 2,
        "the oldest frames were kept: {:?}",
        steps(&waiting)
    );
    for pair in waiting.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let next = (b.view.episode, b.step) >= (a.view.episode, a.step);
        assert!(next, "frames out of order: {:?}", steps(&waiting));
    }
    // Nothing stale is left behind the pause frame (it was the newest when read).
    assert!(
        h.frames.try_iter().all(|f| f.paused),
        "unpaused frames after the pause"
    );
    h.stop().unwrap();
}

/// Every frame up to and including the first satisfying `want`.
fn frames_until(h: &LiveHandle, what: &str, want: impl Fn(&LiveFrame) -> bool) -> Vec<LiveFrame> {
    let mut seen = Vec::new();
    loop {
        let f = h
            .frames
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
        let done = want(&f);
        seen.push(f);
        if done {
            return seen;
        }
    }
}

fn steps(frames: &[LiveFrame]) -> Vec<(u64, u32, bool)> {
    frames
        .iter()
        .map(|f| (f.view.episode, f.step, f.paused))
        .collect()
}

#[test]
fn a_recording_without_episodes_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let rec = record_two_rooms(dir.path());
    let (mut recording, scene) = load_recording(&rec);
    recording.episodes.clear();
    let err = spawn(replay_options(scene, recording))
        .err()
        .expect("an empty recording is refused");
    assert!(err.to_string().contains("holds no episodes"), "{err}");
}

#[test]
fn running_episodes_count_successes_and_dragging_moves_the_agent() {
    let h = oracle_session(false);
    h.controls.send(Control::Speed(16.0)).unwrap();
    let done = wait_for(&h, "an episode to finish", |f| f.episodes_done >= 1);
    assert_eq!(done.successes, 1, "the oracle solves two_rooms");
    // Pause, then drag the agent toward a point: it moves there while stepping.
    h.controls.send(Control::TogglePause).unwrap();
    let p = wait_for(&h, "the pause", |f| f.paused);
    h.controls.send(Control::NewSeed).unwrap();
    let f = wait_for(&h, "a fresh episode", |f| {
        f.step == 0 && f.view.episode == p.view.episode + 1
    });
    let target = (f.agent.0 + 0.3, f.agent.1);
    h.controls
        .send(Control::Drag(Some((f.agent, target))))
        .unwrap();
    let mut last = f.clone();
    for _ in 0..5 {
        h.controls.send(Control::Step).unwrap();
        last = wait_for(&h, "a step", |x| {
            x.step != last.step || x.view.episode != last.view.episode
        });
    }
    assert!(
        last.agent.0 > f.agent.0 + 0.05,
        "dragged from {:?} to {:?}",
        f.agent,
        last.agent
    );
    h.stop().unwrap();
}

#[test]
fn replays_scrub_to_the_recorded_state() {
    let dir = tempfile::tempdir().unwrap();
    let rec = record_two_rooms(dir.path());
    // Recordings from before episode starts were kept (format 1) still load.
    let text = std::fs::read_to_string(&rec).unwrap();
    assert!(!text.contains("\"start\"") && !text.contains("\"overrides\""));
    assert!(text.contains("hjepa-recording/3"));
    let old = dir.path().join("old.json");
    std::fs::write(&old, text.replace("hjepa-recording/3", "hjepa-recording/1")).unwrap();
    hjepa::data::recording::Recording::load(&old).unwrap();
    let (recording, scene) = load_recording(&rec);
    let steps = recording.episodes[0].actions.len() as u32;
    assert!(steps >= 4);
    // Where the recorded episode is after 3 steps, simulated directly.
    let mut env = hjepa::sim::Env::new(scene.clone());
    env.reset(recording.episodes[0].seed);
    for a in &recording.episodes[0].actions[..3] {
        env.step(a).unwrap();
    }
    let expected = env.world().agent_position();
    let seed = recording.episodes[0].seed;
    // The same episode, its start given as a layout (as for a dataset's start/goal pairs).
    let mut from_layout = recording.clone();
    env.reset(seed);
    from_layout.episodes[0].start = Some(env.layout().clone());
    let h = spawn(replay_options(scene.clone(), recording)).unwrap();
    let first = wait_for(&h, "the first frame", |_| true);
    assert_eq!(first.view.replay_steps, Some(steps));
    assert_eq!(first.view.seed, Some(seed));
    h.controls.send(Control::Seek(3)).unwrap();
    let f = wait_for(&h, "step 3", |f| f.step == 3);
    assert_eq!(f.agent, expected);
    // Scrubbing back works too.
    h.controls.send(Control::Seek(1)).unwrap();
    wait_for(&h, "step 1", |f| f.step == 1);
    h.stop().unwrap();
    // A start from a layout has no seed to show; the episode plays the same.
    let h = spawn(replay_options(scene, from_layout)).unwrap();
    let first = wait_for(&h, "the first frame", |_| true);
    assert_eq!(first.view.seed, None);
    h.controls.send(Control::Seek(3)).unwrap();
    let f = wait_for(&h, "step 3 from the layout", |f| f.step == 3);
    assert_eq!(f.agent, expected);
    h.stop().unwrap();
}

#[test]
fn hierarchical_agents_stream_their_subgoals() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/tiny_planning_agent.toml"),
    )
    .unwrap();
    let agent_path = dir.path().join("agent.toml");
    std::fs::write(
        &agent_path,
        format!("{base}\n[planning.upper]\nkind = \"mppi\"\nsamples = 16\niterations = 1\nhorizon = 3\nreplan_every = 2\n"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let run = dir.path().join("run");
    common::assert_ok(
        &common::bin()
            .args([
                "collect",
                "--scene",
                "two_rooms",
                "--episodes",
                "6",
                "--out",
            ])
            .arg(&data)
            .output()
            .unwrap(),
    );
    common::assert_ok(
        &common::bin()
            .arg("train")
            .arg("--agent")
            .arg(&agent_path)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&run)
            .args(["--steps", "20"])
            .output()
            .unwrap(),
    );
    let scene = common::scene("two_rooms");
    let agent = hjepa::agent::load_planning_agent(&agent_path, &scene, None, Some(&run)).unwrap();
    let h = spawn(LiveOptions {
        scene,
        actor: LiveActor::Agent(EvalActor::Learned(agent)),
        actor_name: "tiny".into(),
        seed: 0,
        paused: true,
        speed: 1.0,
        episode_pause: Duration::from_millis(0),
    })
    .unwrap();
    let first = wait_for(&h, "the first frame", |_| true);
    assert!(first.subgoals.is_empty(), "no plan before the first step");
    h.controls.send(Control::Step).unwrap();
    let f = wait_for(&h, "step 1", |f| f.step == 1);
    assert_eq!(f.subgoals.len(), 3, "one subgoal per upper jump");
    assert!(f
        .subgoals
        .iter()
        .all(|p| p.0.is_finite() && p.1.is_finite()));
    assert!(!f.plan.is_empty(), "the lower plan is drawn too");
    h.stop().unwrap();
}

#[test]
fn an_error_in_the_sandbox_thread_reaches_the_viewer_and_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let rec = record_two_rooms(dir.path());
    let (mut recording, scene) = load_recording(&rec);
    // The env refuses a NaN action: the third step of the replay fails.
    recording.episodes[0].actions[2] = [f32::NAN, 0.0];
    let mut opts = replay_options(scene, recording);
    opts.paused = false;
    let h = spawn(opts).unwrap();
    let last = wait_for(&h, "the error frame", |f| f.error.is_some());
    let error = last.error.unwrap();
    assert!(
        error.contains("step 2") && error.contains("refused"),
        "{error}"
    );
    assert!(last.paused && last.step == 2, "step {}", last.step);
    // The session holds that frame until told to quit, then hands the error back.
    let err = h.stop().unwrap_err().to_string();
    assert!(err.contains("refused"), "{err}");
}
