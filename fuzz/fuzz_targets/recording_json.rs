//! Any bytes as a recording file: refused with an error naming it, or loaded (and its scene
//! read back); never a panic.
#![no_main]

use std::sync::OnceLock;

use hjepa::data::recording::Recording;
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static std::path::Path {
    static D: OnceLock<std::path::PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("hjepa-fuzz-recording-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let path = dir().join("rec.json");
    std::fs::write(&path, data).unwrap();
    if let Ok(r) = Recording::load(&path) {
        let _ = r.scene(&path);
    }
});
