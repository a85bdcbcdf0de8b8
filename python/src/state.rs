//! Snapshots as bytes.
//!
//! hjepa's `Snapshot` (the complete rapier state) has no serialised form, so the bytes carry
//! what reproduces it exactly: the scene's fingerprint, the episode's layout (as JSON) and
//! seed, and the scene-unit actions stepped since reset. Restoring replays them from the layout (the
//! sandbox is deterministic, so the world is bit-identical). Within one process a restore
//! is immediate: each `get_state` also keeps the in-memory `Snapshot` in a small cache under
//! a random id written into the bytes, and `set_state` restores from the cache when the id
//! is there.

use std::collections::VecDeque;
use std::sync::Mutex;

use hjepa::sim::{Layout, Snapshot};

use crate::core::Core;

const MAGIC: &[u8; 8] = b"HJEPASN\x02";
/// In-memory snapshots kept for immediate restores (oldest dropped first).
const CACHE: usize = 256;

static SNAPSHOTS: Mutex<VecDeque<(u128, u64, Snapshot)>> = Mutex::new(VecDeque::new());

fn fresh_id() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Random per process (hash keys are seeded from the OS), unique within it (the counter).
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.write_u32(std::process::id());
    (u128::from(h.finish()) << 64) | u128::from(n)
}

struct Writer(Vec<u8>);

impl Writer {
    fn u32(&mut self, v: u32) {
        self.0.extend(v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend(v.to_le_bytes());
    }
    fn f32(&mut self, v: f32) {
        self.0.extend(v.to_bits().to_le_bytes());
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("snapshot bytes are truncated".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn f32(&mut self) -> Result<f32, String> {
        Ok(f32::from_bits(self.u32()?))
    }
    /// A count, bounded by what the remaining bytes can hold.
    fn len(&mut self, item_bytes: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n.saturating_mul(item_bytes) > self.0.len() {
            return Err("snapshot bytes are truncated".into());
        }
        Ok(n)
    }
}

/// A decoded snapshot.
struct Decoded {
    fingerprint: u64,
    id: u128,
    seed: u64,
    layout: Layout,
    steps: u32,
    actions: Vec<[f32; 2]>,
}

/// A layout as JSON bytes, exactly: every f32 goes through the JSON value as the f64 it
/// converts to exactly, and the f64 read back (within an f64 ulp of it) rounds to that f32.
fn layout_bytes(layout: &Layout) -> Vec<u8> {
    let value = serde_json::to_value(layout).expect("a layout serialises");
    serde_json::to_vec(&value).expect("a JSON value serialises")
}

fn layout_from_bytes(bytes: &[u8]) -> Result<Layout, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("snapshot layout: {e}"))?;
    serde_json::from_value(value).map_err(|e| format!("snapshot layout: {e}"))
}

fn encode(core: &Core, id: u128) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(128 + 8 * core.history.len()));
    w.0.extend(MAGIC);
    w.u64(core.spec.fingerprint);
    w.u64((id >> 64) as u64);
    w.u64(id as u64);
    w.u64(core.seed);
    let layout = layout_bytes(core.env.layout());
    w.u32(layout.len() as u32);
    w.0.extend(layout);
    w.u32(core.env.steps());
    w.u32(core.history.len() as u32);
    for a in &core.history {
        w.f32(a[0]);
        w.f32(a[1]);
    }
    w.0
}

fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    let mut r = Reader(bytes);
    if r.take(MAGIC.len()).ok() != Some(&MAGIC[..]) {
        return Err("not an hjepa snapshot (from env.get_state())".into());
    }
    let fingerprint = r.u64()?;
    let id = (u128::from(r.u64()?) << 64) | u128::from(r.u64()?);
    let seed = r.u64()?;
    let n = r.len(1)?;
    let layout = layout_from_bytes(r.take(n)?)?;
    let steps = r.u32()?;
    let n = r.len(8)?;
    let actions = (0..n)
        .map(|_| Ok([r.f32()?, r.f32()?]))
        .collect::<Result<Vec<_>, String>>()?;
    if !r.0.is_empty() {
        return Err("snapshot bytes have trailing data".into());
    }
    Ok(Decoded {
        fingerprint,
        id,
        seed,
        layout,
        steps,
        actions,
    })
}

/// The env's complete state as bytes (see the module doc).
pub fn get_state(core: &Core) -> Vec<u8> {
    let id = fresh_id();
    let snap = core.env.snapshot();
    let mut cache = SNAPSHOTS.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= CACHE {
        cache.pop_front();
    }
    cache.push_back((id, core.spec.fingerprint, snap));
    drop(cache);
    encode(core, id)
}

/// Restores bytes from `get_state` (of any env of the same scene, in any process).
pub fn set_state(core: &mut Core, bytes: &[u8]) -> Result<(), String> {
    let d = decode(bytes)?;
    if d.fingerprint != core.spec.fingerprint {
        return Err(format!(
            "the snapshot is of another scene than this env's {:?}",
            core.spec.scene.name
        ));
    }
    hjepa::sim::env::check_layout(&core.spec.scene, &d.layout)
        .map_err(|e| format!("snapshot layout: {e}"))?;
    let cached = {
        let cache = SNAPSHOTS.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .iter()
            .find(|(id, fp, _)| *id == d.id && *fp == d.fingerprint)
            .map(|(_, _, s)| s.clone())
    };
    match cached {
        Some(snap) => {
            core.env.restore(&snap);
        }
        None => {
            // Replay: the same layout and actions give the same world, bit for bit.
            core.env.reset_to(d.layout);
            for a in &d.actions {
                core.env
                    .step(a)
                    .map_err(|e| format!("snapshot replay: {e}"))?;
            }
        }
    }
    if core.env.steps() != d.steps {
        core.ready = false;
        return Err(format!(
            "snapshot replay reached step {} where the snapshot was taken at step {}",
            core.env.steps(),
            d.steps
        ));
    }
    core.seed = d.seed;
    core.history = d.actions;
    core.ready = true;
    Ok(())
}

/// Forgets the in-memory snapshots (tests: forces the replay path).
pub fn clear_cache() {
    SNAPSHOTS.lock().unwrap_or_else(|e| e.into_inner()).clear();
}
