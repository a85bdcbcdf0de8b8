//! A valid two-episode dataset whose manifest (first input byte even) or shard (odd) is
//! replaced by the rest of the input: refused with an error naming the file, or read;
//! never a panic or an allocation the manifest's sizes alone would ask for.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hjepa::data::collect::{collect, CollectOptions};
use hjepa::data::policy::PolicyKind;
use hjepa::data::shard::read_shard;
use hjepa::data::Manifest;
use libfuzzer_sys::fuzz_target;

/// The pristine dataset, collected once per process, and a scratch copy's folder.
fn folders() -> &'static (PathBuf, PathBuf) {
    static D: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    D.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("hjepa-fuzz-dataset-{}", std::process::id()));
        let (clean, scratch) = (root.join("clean"), root.join("scratch"));
        let _ = std::fs::remove_dir_all(&root);
        collect(&CollectOptions {
            scene_path: Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenes/wall.ron"),
            out: clean.clone(),
            episodes: 2,
            policy: PolicyKind::SmoothWalk,
            noise: 0.3,
            seed: 1,
            shard_episodes: 2,
            threads: 1,
            progress: false,
            cancel: None,
        })
        .unwrap();
        std::fs::create_dir_all(&scratch).unwrap();
        (clean, scratch)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let (clean, scratch) = folders();
    for f in std::fs::read_dir(clean).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, scratch.join(f.file_name().unwrap())).unwrap();
    }
    let target = if which % 2 == 0 {
        scratch.join("manifest.json")
    } else {
        scratch.join("shard-00000.safetensors")
    };
    std::fs::write(&target, rest).unwrap();
    if let Ok(m) = Manifest::load(scratch) {
        for s in &m.shards {
            let _ = read_shard(&scratch.join(&s.file), &m);
        }
    }
});
