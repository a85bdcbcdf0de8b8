//! The sandbox thread streams frames over bounded channels: lossless observers see every
//! frame, lossy ones drop when full, and a consumer that goes away never hangs the sandbox.

mod common;

use std::time::Duration;

use hjepa::sim::{Backpressure, Env, Sandbox};

#[test]
fn frames_match_direct_stepping_and_reach_every_observer() {
    let scene = common::scene("two_rooms");
    let mut sandbox = Sandbox::new(Env::new(scene.clone()));
    let writer = sandbox.observe(4, Backpressure::Block);
    let viewer = sandbox.observe(1, Backpressure::DropNewest);
    let handle = sandbox.spawn();
    let collector = std::thread::spawn(move || {
        writer
            .iter()
            .map(|f| (f.step, f.observation.state.clone()))
            .collect::<Vec<_>>()
    });

    let mut direct = Env::new(scene);
    let first = handle.reset(5).unwrap();
    assert_eq!(first.observation, direct.reset(5));
    let mut streamed = vec![first.observation.state.clone()];
    for i in 0..50 {
        let a = [
            0.2 * ((i as f32) * 0.3).cos(),
            0.2 * ((i as f32) * 0.3).sin(),
        ];
        let f = handle.step(a).unwrap().unwrap();
        let d = direct.step(&a).unwrap();
        assert_eq!(f.observation, d.observation);
        assert_eq!(f.cost, d.cost);
        streamed.push(f.observation.state.clone());
    }
    // A bad action comes back as an error and is not broadcast.
    assert!(handle.step([f32::NAN, 0.0]).unwrap().is_err());
    let exit = handle.join();
    let seen = collector.join().unwrap();
    assert_eq!(seen.len(), 51, "the lossless observer saw every frame");
    assert_eq!(
        seen.iter().map(|s| s.1.clone()).collect::<Vec<_>>(),
        streamed
    );
    // The viewer never read: it kept the first frame and the rest were counted as dropped.
    assert_eq!(viewer.len(), 1);
    assert_eq!(exit.dropped, vec![0, 50]);
}

#[test]
fn a_consumer_that_drops_never_hangs_the_sandbox() {
    let mut sandbox = Sandbox::new(Env::new(common::scene("two_rooms")));
    let writer = sandbox.observe(1, Backpressure::Block);
    let handle = sandbox.spawn();
    handle.reset(0).unwrap();
    drop(writer); // the blocking observer goes away with a full channel
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        for _ in 0..100 {
            handle.step([0.1, 0.0]).unwrap().unwrap();
        }
        // The agent dropping its handle ends the sandbox thread.
        drop(handle);
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("sandbox kept running after its observer dropped");
}
