//! Datasets: round trip, Python interop, crash safety (kill mid-collect, then resume) and
//! clear errors for corrupt or mismatched datasets.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hjepa::data::{collect, make_policy, CollectOptions, Dataset, Manifest, PolicyKind};
use hjepa::sim::Env;

fn options(scene: &str, out: &Path, episodes: u64, shard: u64) -> CollectOptions {
    CollectOptions {
        scene_path: common::scene_path(scene),
        out: out.to_path_buf(),
        episodes,
        policy: PolicyKind::SmoothWalk,
        noise: 0.3,
        seed: 4,
        shard_episodes: shard,
        threads: 2,
        progress: false,
        cancel: None,
    }
}

#[test]
fn round_trip_matches_a_fresh_recording() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options("push_t", dir.path(), 5, 2);
    let s = collect(&opts).unwrap();
    assert_eq!(
        (s.episodes_total, s.episodes_recorded, s.shards_written),
        (5, 5, 3)
    );
    let ds = Dataset::open(dir.path()).unwrap();
    ds.verify().unwrap();
    let eps = ds.episodes().unwrap();
    assert_eq!(eps.len(), 5);
    let mut env = Env::new(common::scene("push_t"));
    let mut policy = make_policy(PolicyKind::SmoothWalk, 0.3);
    for (i, e) in eps.iter().enumerate() {
        assert_eq!(e.index, i as u64);
        let fresh = hjepa::data::collect::record_episode(&mut env, policy.as_mut(), 4, i as u64);
        assert_eq!(e, &fresh, "episode {i} differs from a fresh recording");
        assert_eq!(e.obs_state.len(), e.action.len() + 1);
        assert_eq!(e.obs_image[0].len(), 96 * 96 * 3);
    }
    // Without images: the same episodes, frames left out.
    let light = ds.episodes_without_images().unwrap();
    assert_eq!(light.len(), eps.len());
    for (e, l) in eps.iter().zip(&light) {
        assert!(l.obs_image.is_empty());
        assert_eq!(
            &hjepa::data::EpisodeRecord {
                obs_image: e.obs_image.clone(),
                ..l.clone()
            },
            e
        );
    }
    // Re-running the finished collection records nothing.
    let again = collect(&opts).unwrap();
    assert_eq!((again.episodes_recorded, again.shards_written), (0, 0));
    // Asking for more extends it, rewriting the partial last shard.
    let more = collect(&CollectOptions {
        episodes: 8,
        ..opts.clone()
    })
    .unwrap();
    assert_eq!((more.episodes_total, more.episodes_recorded), (8, 4));
    assert_eq!(
        Dataset::open(dir.path()).unwrap().episodes().unwrap()[..5],
        eps[..]
    );
}

/// The Python interpreter of the project venv, when it has safetensors + numpy.
fn python() -> Option<String> {
    let candidates = [
        std::env::var("HJEPA_PYTHON").ok(),
        Some(format!("{}/.venv/bin/python", env!("CARGO_MANIFEST_DIR"))),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import safetensors.numpy, numpy"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

#[test]
fn python_reads_shards_with_safetensors_numpy() {
    let Some(py) = python() else {
        // `make test` installs numpy + safetensors into the venv and sets HJEPA_PYTHON; a bare
        // `cargo test` without the venv cannot run this check.
        assert!(
            std::env::var("HJEPA_REQUIRE_PYTHON").is_err(),
            "HJEPA_REQUIRE_PYTHON is set but no Python with safetensors was found"
        );
        eprintln!("skipped: no Python with safetensors (run `make test`)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    collect(&options("two_rooms", dir.path(), 3, 3)).unwrap();
    let eps = Dataset::open(dir.path()).unwrap().episodes().unwrap();
    let script = r#"
import json, sys
from safetensors.numpy import load_file
d = load_file(sys.argv[1])
o, a = d["obs_offsets"], d["action_offsets"]
print(json.dumps({
  "obs_image": list(d["obs_image"].shape), "obs_state": list(d["obs_state"].shape),
  "action": list(d["action"].shape), "episodes": len(d["episode_index"]),
  "first_action": [float(x) for x in d["action"][0]], "last_obs_ep0": [float(x) for x in d["obs_state"][o[1] - 1]],
  "seed0": int(d["episode_seed"][0]),
}))
"#;
    let out = Command::new(&py)
        .args([
            "-c",
            script,
            dir.path().join("shard-00000.safetensors").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n_obs: usize = eps.iter().map(|e| e.obs_state.len()).sum();
    assert_eq!(v["obs_image"], serde_json::json!([n_obs, 64, 64, 3]));
    assert_eq!(v["episodes"], 3);
    assert_eq!(
        v["first_action"][0].as_f64().unwrap() as f32,
        eps[0].action[0][0]
    );
    assert_eq!(
        v["last_obs_ep0"][1].as_f64().unwrap() as f32,
        eps[0].obs_state.last().unwrap()[1]
    );
    assert_eq!(v["seed0"].as_u64().unwrap(), eps[0].seed);
}

#[test]
fn killed_collect_resumes_to_the_same_dataset() {
    let killed = tempfile::tempdir().unwrap();
    let clean = tempfile::tempdir().unwrap();
    let args = |out: &Path| {
        vec![
            "collect".to_string(),
            "--scene".into(),
            common::scene_path("push_t").to_str().unwrap().into(),
            "--episodes".into(),
            "60".into(),
            "--shard-episodes".into(),
            "2".into(),
            "--seed".into(),
            "9".into(),
            "--threads".into(),
            "1".into(),
            "--out".into(),
            out.to_str().unwrap().into(),
        ]
    };
    let mut child = common::bin()
        .args(args(killed.path()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill once some shards are listed but the collection is not finished.
    let start = Instant::now();
    loop {
        let listed = Manifest::load(killed.path())
            .map(|m| m.shards.len())
            .unwrap_or(0);
        if listed >= 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "collect made no progress"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = Manifest::load(killed.path()).unwrap();
    assert!(
        partial.shards.len() < 30,
        "the kill came too late to test anything ({} shards)",
        partial.shards.len()
    );
    // Every listed shard is complete even though the process died mid-write.
    Dataset::open(killed.path()).unwrap().verify().unwrap();

    let out = common::bin().args(args(killed.path())).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = common::bin().args(args(clean.path())).output().unwrap();
    assert!(out.status.success());
    let (a, b) = (
        Manifest::load(killed.path()).unwrap(),
        Manifest::load(clean.path()).unwrap(),
    );
    assert_eq!(a.shards.len(), 30);
    assert_eq!(
        a.shards, b.shards,
        "resumed dataset differs from an uninterrupted one"
    );
    // No temporary files are left behind.
    let stray: Vec<_> = std::fs::read_dir(killed.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn corrupt_and_mismatched_datasets_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    collect(&options("two_rooms", dir.path(), 4, 2)).unwrap();
    // Resuming with other options is refused and leaves the dataset alone.
    let before = std::fs::read(dir.path().join("manifest.json")).unwrap();
    let err = collect(&CollectOptions {
        policy: PolicyKind::Random,
        ..options("two_rooms", dir.path(), 4, 2)
    })
    .unwrap_err();
    assert!(hjepa::cli::is_input_error(&err));
    assert!(err.to_string().contains("policy"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("manifest.json")).unwrap(),
        before
    );

    // A truncated shard: open() notices the size, the binary exits 2 naming the file.
    let shard = dir.path().join("shard-00001.safetensors");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    let err = Dataset::open(dir.path())
        .err()
        .expect("truncated shard")
        .to_string();
    assert!(
        err.contains("shard-00001.safetensors") && err.contains("truncated"),
        "{err}"
    );
    let out = common::bin()
        .args(["inspect", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shard-00001.safetensors"));

    // A flipped byte of the same length: the hash check catches it.
    let mut flipped = bytes.clone();
    let n = flipped.len() - 10;
    flipped[n] ^= 0xff;
    std::fs::write(&shard, &flipped).unwrap();
    let err = Dataset::open(dir.path())
        .unwrap()
        .verify()
        .unwrap_err()
        .to_string();
    assert!(err.contains("SHA-256"), "{err}");

    // Garbage where a shard header should be.
    std::fs::write(&shard, vec![0xffu8; bytes.len()]).unwrap();
    let ds = Dataset::open(dir.path()).unwrap();
    let err = hjepa::data::dataset::read_shard(&shard, &ds.manifest)
        .unwrap_err()
        .to_string();
    assert!(err.contains("corrupt or truncated"), "{err}");

    // A damaged manifest names its line and column.
    std::fs::write(dir.path().join("manifest.json"), "{ \"format\": ").unwrap();
    let err = Manifest::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("manifest.json") && err.contains("line"),
        "{err}"
    );
}

#[test]
fn a_cancelled_collect_stops_and_resumes_to_the_same_dataset() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let (cut, clean) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let flag = Arc::new(AtomicBool::new(false));
    let opts = CollectOptions {
        cancel: Some(flag.clone()),
        ..options("two_rooms", cut.path(), 400, 2)
    };
    // Cancel from another thread once a shard is listed.
    let watcher = {
        let (dir, flag) = (cut.path().to_path_buf(), flag.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            while Manifest::load(&dir).map_or(0, |m| m.shards.len()) == 0
                && start.elapsed() < Duration::from_secs(60)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            flag.store(true, Ordering::Relaxed);
            Instant::now()
        })
    };
    let err = collect(&opts).unwrap_err();
    let stopped = Instant::now();
    let flagged = watcher.join().unwrap();
    assert!(
        stopped.duration_since(flagged) < Duration::from_secs(2),
        "collect went on {:?} after the cancel",
        stopped.duration_since(flagged)
    );
    let missing = err
        .downcast_ref::<hjepa::data::Cancelled>()
        .unwrap()
        .shards_missing;
    let partial = Manifest::load(cut.path()).unwrap();
    assert!(missing > 0 && partial.shards.len() as u64 + missing == 200);
    Dataset::open(cut.path()).unwrap().verify().unwrap();
    // A rerun (no hook) finishes it; the result equals an uninterrupted collection.
    let s = collect(&options("two_rooms", cut.path(), 400, 2)).unwrap();
    assert_eq!(s.shards_written, missing);
    collect(&options("two_rooms", clean.path(), 400, 2)).unwrap();
    let files = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| (e.file_name(), std::fs::read(e.path()).unwrap()))
            .collect();
        v.sort();
        v
    };
    assert!(
        files(cut.path()) == files(clean.path()),
        "resumed dataset differs"
    );
}

#[test]
fn a_finished_dataset_is_not_rewritten_and_concurrent_collects_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options("two_rooms", dir.path(), 4, 2);
    collect(&opts).unwrap();
    let manifest = dir.path().join("manifest.json");
    let before = std::fs::read(&manifest).unwrap();
    #[cfg(unix)]
    let inode = || std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&manifest).unwrap());
    #[cfg(unix)]
    let first = inode();
    // Processes (here threads) collecting into the finished folder at once all succeed.
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let opts = opts.clone();
            std::thread::spawn(move || collect(&opts).map(|s| s.episodes_recorded))
        })
        .collect();
    for r in runs {
        assert_eq!(r.join().unwrap().unwrap(), 0);
    }
    assert_eq!(std::fs::read(&manifest).unwrap(), before);
    #[cfg(unix)]
    assert_eq!(inode(), first, "the finished manifest was rewritten");
}

/// Writes `value` into row `row`, column `col` of the f32 tensor `name` of a shard, and
/// re-hashes the shard in the manifest (so only the value is wrong, not the checksum).
fn poke_f32(dir: &Path, shard: &str, name: &str, row: usize, col: usize, value: f32) {
    let path = dir.join(shard);
    let mut bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let width = header[name]["shape"][1].as_u64().unwrap() as usize;
    let start = header[name]["data_offsets"][0].as_u64().unwrap() as usize;
    let at = 8 + header_len + start + 4 * (row * width + col);
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let manifest_path = dir.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    for s in manifest["shards"].as_array_mut().unwrap() {
        if s["file"] == shard {
            s["sha256"] = hjepa::data::dataset::sha256_hex(&bytes).into();
        }
    }
    std::fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_non_finite_value_is_reported_with_field_episode_and_step() {
    let dir = tempfile::tempdir().unwrap();
    collect(&options("two_rooms", dir.path(), 4, 2)).unwrap();
    let manifest = Dataset::open(dir.path()).unwrap().manifest;
    // Episode 1's step 3 (its rows follow episode 0's) of the second observation column.
    let first = Dataset::open(dir.path()).unwrap().episodes().unwrap()[0]
        .obs_state
        .len();
    poke_f32(
        dir.path(),
        "shard-00000.safetensors",
        "obs_state",
        first + 3,
        1,
        f32::NAN,
    );
    let out = common::bin()
        .args(["inspect", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let field = format!("obs_state.{}", manifest.obs_state_names[1]);
    assert!(
        stderr.contains("shard-00000.safetensors")
            && stderr.contains(&field)
            && stderr.contains("episode 1, step 3"),
        "{stderr}"
    );
}
