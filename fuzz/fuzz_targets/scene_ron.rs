//! Any bytes as a scene file: refused with an error, or a scene whose environment builds,
//! resets and steps; never a panic, an abort or an unbounded allocation.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use hjepa::sim::{Env, Scene};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(scene) = Scene::parse(&text, Path::new("fuzz.ron")) {
        let mut env = Env::new(Arc::new(scene));
        env.reset(1);
        let _ = env.step(&[0.5, -0.5]);
    }
});
