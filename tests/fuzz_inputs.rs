//! The fuzz harness (docs/reliability.md): every reader of user input is fed the shipped files
//! with numbers replaced by extreme or malformed values (NaN, infinities, zero, negatives,
//! huge), and datasets with flipped or cut bytes. Each input must be refused with an error
//! that names the file, or be accepted and then run (a scene: reset and step; a dataset:
//! read back), and never panic. `make test` tries proptest's default 256 inputs per property;
//! `PROPTEST_CASES` changes that (`make fuzz` runs 5000).

mod common;

use std::path::Path;
use std::sync::Arc;

use hjepa::sim::{Env, Scene};
use proptest::prelude::*;

/// The byte spans of the numeric literals in `text` (not inside identifiers).
fn number_spans(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts = (b[i].is_ascii_digit()
            || (b[i] == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit)))
            && (i == 0
                || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b'.'));
        if !starts {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        while i < b.len()
            && (b[i].is_ascii_digit()
                || b[i] == b'.'
                || b[i] == b'e'
                || b[i] == b'E'
                || ((b[i] == b'-' || b[i] == b'+') && matches!(b[i - 1], b'e' | b'E')))
        {
            i += 1;
        }
        spans.push((start, i));
    }
    spans
}

/// `text` with the numbers at `picks` (indices into its numeric literals, modulo their count)
/// replaced by the matching `values`.
fn mutate(text: &str, picks: &[(usize, &str)]) -> String {
    let spans = number_spans(text);
    let mut chosen: Vec<((usize, usize), &str)> = picks
        .iter()
        .map(|(i, v)| (spans[i % spans.len()], *v))
        .collect();
    chosen.sort_by_key(|(s, _)| std::cmp::Reverse(s.0));
    chosen.dedup_by_key(|(s, _)| s.0);
    let mut out = text.to_string();
    for ((a, b), v) in chosen {
        out.replace_range(a..b, v);
    }
    out
}

/// Counts the inputs a property accepted and refused, and prints the tally every 1000
/// (with `--nocapture`: the figures docs/reliability.md quotes).
fn tally(what: &str, counts: &[std::sync::atomic::AtomicUsize; 2], accepted: bool) {
    use std::sync::atomic::Ordering::Relaxed;
    counts[usize::from(!accepted)].fetch_add(1, Relaxed);
    let (a, r) = (counts[0].load(Relaxed), counts[1].load(Relaxed));
    if (a + r) % 1000 == 0 {
        eprintln!("{what}: {} inputs, {a} accepted, {r} refused", a + r);
    }
}

macro_rules! counts {
    () => {{
        static COUNTS: [std::sync::atomic::AtomicUsize; 2] = [
            std::sync::atomic::AtomicUsize::new(0),
            std::sync::atomic::AtomicUsize::new(0),
        ];
        &COUNTS
    }};
}

/// Extreme and malformed numbers, as RON (scenes) writes them.
const RON_VALUES: &[&str] = &[
    "0",
    "-1",
    "-0.5",
    "0.0",
    "1e9",
    "1000000000",
    "1e-12",
    "NaN",
    "inf",
    "-inf",
    "4294967296",
    "99999999999999999999",
    "1e39",
    "-0.0",
    "3",
    "0.5",
];

/// The same in TOML's spelling (agent and experiment files).
const TOML_VALUES: &[&str] = &[
    "0",
    "-1",
    "-0.5",
    "0.0",
    "1e9",
    "1000000000",
    "1e-12",
    "nan",
    "inf",
    "-inf",
    "4294967296",
    "99999999999999999999",
    "1e39",
    "-0.0",
    "3",
    "0.5",
];

fn picks(values: &'static [&'static str]) -> impl Strategy<Value = Vec<(usize, &'static str)>> {
    prop::collection::vec((0usize..10_000, prop::sample::select(values)), 1..4)
}

const SCENES: &[&str] = &["two_rooms", "wall", "push_t", "point_maze_u", "maze_large"];

proptest! {
    /// A scene with extreme numbers is refused naming the file, or resets and steps.
    #[test]
    fn mutated_scenes_are_refused_or_run(
        which in 0..SCENES.len(),
        picks in picks(RON_VALUES),
        seed in 0u64..1000,
    ) {
        let text = std::fs::read_to_string(common::scene_path(SCENES[which])).unwrap();
        let text = mutate(&text, &picks);
        let parsed = Scene::parse(&text, Path::new("fuzz.ron"));
        tally("scenes", counts!(), parsed.is_ok());
        match parsed {
            Err(e) => prop_assert!(e.to_string().starts_with("fuzz.ron: "), "{e}"),
            Ok(scene) => {
                let mut env = Env::new(Arc::new(scene));
                env.reset(seed);
                for _ in 0..3 {
                    match env.step(&[0.1, -0.1]) {
                        Ok(s) if s.terminated || s.truncated => break,
                        Ok(_) => {}
                        Err(e) => prop_assert!(false, "a finite action was refused: {e}"),
                    }
                }
            }
        }
    }

}

#[cfg(feature = "torch")]
fn hjepa_expand(path: &Path) -> Result<usize, String> {
    hjepa::run::batch::experiment::expand_file(path)
        .map(|g| g.entries.len())
        .map_err(|e| e.to_string())
}

#[cfg(feature = "torch")]
proptest! {
    /// An experiment file with extreme numbers is refused naming the file, or expands.
    #[test]
    fn mutated_experiment_files_are_refused_or_expand(picks in picks(TOML_VALUES)) {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("experiments/planner_budget.toml")).unwrap();
        let path = dir.path().join("fuzz.toml");
        std::fs::write(&path, mutate(&text, &picks)).unwrap();
        let cwd = std::env::current_dir().unwrap();
        prop_assert_eq!(cwd.as_path(), root, "tests run from the crate root");
        let expanded = hjepa_expand(&path);
        tally("experiment files", counts!(), expanded.is_ok());
        if let Err(e) = expanded {
            prop_assert!(e.contains("fuzz.toml"), "{}", e);
        }
    }

    /// An agent file with extreme numbers is refused naming the file and a key, or parses.
    #[test]
    fn mutated_agent_files_are_refused_or_parse(
        which in 0..AGENTS.len(),
        picks in picks(TOML_VALUES),
    ) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join(format!("agents/{}.toml", AGENTS[which]))).unwrap();
        let text = mutate(&text, &picks);
        let parsed = hjepa::agent::AgentFile::parse(&text, Path::new("fuzz.toml"));
        tally("agent files", counts!(), parsed.is_ok());
        if let Err(e) = parsed {
            let e = e.to_string();
            prop_assert!(e.starts_with("fuzz.toml: "), "{}", e);
        }
    }
}

#[cfg(feature = "torch")]
const AGENTS: &[&str] = &[
    "two_rooms",
    "wall",
    "point_maze_u",
    "push_t",
    "push_t_committee",
    "maze_large",
    "maze_large_hwm",
];

/// A small dataset shared by the dataset properties (collected once).
fn dataset() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        common::collect_random(&common::scene_path("wall"), dir.path(), 3);
        dir
    })
    .path()
}

/// Opens, verifies and reads every episode of the dataset in `dir`.
fn read_back(dir: &Path) -> Result<usize, String> {
    hjepa::data::Dataset::open(dir)
        .and_then(|d| d.verify().map(|_| d))
        .and_then(|d| d.episodes())
        .map(|e| e.len())
        .map_err(|e| e.to_string())
}

/// Copies the shared dataset into a fresh folder.
fn dataset_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dataset()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    dir
}

proptest! {
    /// A shard with flipped bytes, or cut short, is refused naming it (the checksum, or the
    /// reader when the manifest is re-hashed to match), never a panic.
    #[test]
    fn damaged_shards_are_refused(
        flips in prop::collection::vec((0usize..1_000_000, 1u8..=255), 1..6),
        cut in prop::option::of(0usize..1_000_000),
        rehash in any::<bool>(),
    ) {
        let dir = dataset_copy();
        let shard = dir.path().join("shard-00000.safetensors");
        let mut bytes = std::fs::read(&shard).unwrap();
        for (at, x) in &flips {
            let i = at % bytes.len();
            bytes[i] ^= x;
        }
        if let Some(c) = cut {
            bytes.truncate(c % bytes.len());
        }
        std::fs::write(&shard, &bytes).unwrap();
        if rehash {
            let manifest = dir.path().join("manifest.json");
            let mut m: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
            m["shards"][0]["sha256"] = hjepa::data::dataset::sha256_hex(&bytes).into();
            m["shards"][0]["bytes"] = (bytes.len() as u64).into();
            std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
        }
        let read = read_back(dir.path());
        tally("damaged shards", counts!(), read.is_ok());
        if let Err(e) = read {
            prop_assert!(e.contains(dir.path().to_str().unwrap()), "{}", e);
        }
    }

    /// A manifest with extreme numbers is refused naming it, or reads back.
    #[test]
    fn mutated_manifests_are_refused_or_read(picks in picks(TOML_VALUES)) {
        let dir = dataset_copy();
        let manifest = dir.path().join("manifest.json");
        let text = std::fs::read_to_string(&manifest).unwrap();
        let values: Vec<(usize, &str)> = picks
            .iter()
            .map(|(i, v)| (*i, if v.parse::<f64>().is_ok() { *v } else { "1e308" }))
            .collect();
        std::fs::write(&manifest, mutate(&text, &values)).unwrap();
        let read = read_back(dir.path());
        tally("manifests", counts!(), read.is_ok());
        if let Err(e) = read {
            prop_assert!(e.contains(dir.path().to_str().unwrap()), "{}", e);
        }
    }
}

#[test]
fn number_spans_find_the_literals_and_only_them() {
    let text = "a1: 2.5, b: -3, c: 1e-3, d: (0.5, 7), name: \"x9\"";
    let found: Vec<&str> = number_spans(text)
        .iter()
        .map(|&(a, b)| &text[a..b])
        .collect();
    assert_eq!(found, ["2.5", "-3", "1e-3", "0.5", "7"]);
    assert_eq!(mutate("x: 1, y: 2", &[(1, "NaN")]), "x: 1, y: NaN");
}
