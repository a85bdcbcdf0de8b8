//! `hjepa collect`: record episodes of a scripted policy into a dataset, on worker threads,
//! shard by shard, resumable after any interruption.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{unbounded, Receiver, Sender};
use indicatif::{ProgressBar, ProgressStyle};

use super::dataset::{
    encode_shard, sha256_hex, shard_file_name, write_atomic, DataPolicy, EpisodeRecord, Manifest,
    ShardEntry, FORMAT, MANIFEST,
};
use super::policy::{make_policy, PolicyKind};
use crate::data::episodes::episode_seed;
use crate::error::InputError;
use crate::sim::{Env, Scene};

#[derive(Clone, Debug)]
pub struct CollectOptions {
    pub scene_path: PathBuf,
    pub out: PathBuf,
    pub episodes: u64,
    pub policy: PolicyKind,
    pub noise: f32,
    pub seed: u64,
    pub shard_episodes: u64,
    pub threads: usize,
    /// Draw a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
    /// Stops the collection once set (by another thread): each worker finishes the episode
    /// it is recording, drops its unfinished shard and stops; the shards already on disk
    /// stay listed, so the folder is a valid dataset that a later run resumes. `collect`
    /// then returns a [`Cancelled`] error. `None` (the CLI): run to the end.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// The error `collect` returns when its `cancel` flag stopped it before the last shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("collection cancelled with {shards_missing} shard(s) missing; rerun with the same options to resume")]
pub struct Cancelled {
    /// Shards still missing (a rerun with the same options records them).
    pub shards_missing: u64,
}

impl CollectOptions {
    /// Whether the caller asked the collection to stop.
    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

#[derive(Clone, Debug)]
pub struct CollectSummary {
    pub episodes_total: u64,
    /// Episodes recorded by this run (the rest were already there).
    pub episodes_recorded: u64,
    pub shards_written: u64,
    pub steps_recorded: u64,
    pub seconds: f64,
}

/// Records one episode with the policy; `index` fixes its seed.
pub fn record_episode(
    env: &mut Env,
    policy: &mut dyn super::policy::Policy,
    seed: u64,
    index: u64,
) -> EpisodeRecord {
    let s = episode_seed(seed, index);
    let mut rec = EpisodeRecord {
        index,
        seed: s,
        ..Default::default()
    };
    let mut obs = env.reset(s);
    rec.factors = env.layout().factors.clone();
    policy.reset(env, s);
    loop {
        rec.obs_state.push(obs.state);
        if let Some(img) = obs.image {
            rec.obs_image.push(img.rgb);
        }
        rec.state.push(env.physical_state());
        let a = policy.act(env);
        let step = env.step(&a).expect("scripted policies emit finite actions");
        rec.action.push(a);
        rec.cost.push(step.cost);
        obs = step.observation;
        if step.terminated || step.truncated {
            rec.success = step.info.success;
            rec.obs_state.push(obs.state);
            if let Some(img) = obs.image {
                rec.obs_image.push(img.rgb);
            }
            rec.state.push(env.physical_state());
            return rec;
        }
    }
}

/// The manifest a fresh collection in `scene` (whose file text is `source`) starts from.
pub(crate) fn fresh_manifest(
    scene: &Arc<Scene>,
    source: &str,
    policy: DataPolicy,
    noise: f32,
    seed: u64,
    episodes: u64,
    shard_episodes: u64,
) -> Manifest {
    let env = Env::new(scene.clone());
    let image_shape = scene
        .observation
        .image
        .as_ref()
        .map(|i| [i.height as usize, i.width as usize, 3]);
    Manifest {
        format: FORMAT.into(),
        scene: scene.name.clone(),
        scene_source: source.to_string(),
        scene_sha256: sha256_hex(source.as_bytes()),
        policy,
        noise,
        seed,
        episodes,
        shard_episodes,
        obs_state_names: env.observation_state_names(),
        image_shape,
        state_names: env.physical_state_names(),
        action_low: [scene.agent.action.low.0, scene.agent.action.low.1],
        action_high: [scene.agent.action.high.0, scene.agent.action.high.1],
        shards: Vec::new(),
    }
}

/// Creates the dataset folder `out` with the manifest `fresh`, or resumes the dataset there:
/// it must have been collected with the same settings, and keeps the shards that are complete
/// on disk for the (possibly larger) episode count. The manifest is saved before returning,
/// unless the file already holds exactly it (a finished dataset is left untouched, so
/// processes that open it at once do not race to rewrite it).
pub(crate) fn open_manifest(out: &Path, mut manifest: Manifest) -> anyhow::Result<Manifest> {
    crate::error::create_dir_all(out)?;
    let mut on_disk = None;
    if out.join(MANIFEST).exists() {
        let old = Manifest::load(out)?;
        on_disk = std::fs::read(out.join(MANIFEST)).ok();
        check_compatible(&old, &manifest, out)?;
        manifest.episodes = old.episodes.max(manifest.episodes);
        manifest.shards = old
            .shards
            .into_iter()
            .filter(|s| {
                let (first, end) = manifest.shard_range(s.index);
                let on_disk = std::fs::metadata(out.join(&s.file))
                    .map(|m| m.len() == s.bytes)
                    .unwrap_or(false);
                s.first_episode == first && s.episodes == end - first && on_disk
            })
            .collect();
    }
    let unchanged = on_disk.is_some_and(|bytes| {
        serde_json::to_string_pretty(&manifest).is_ok_and(|text| text.as_bytes() == bytes)
    });
    if !unchanged {
        manifest.save(out)?;
    }
    Ok(manifest)
}

/// The shards of `manifest` not yet on disk, in order.
pub(crate) fn missing_shards(manifest: &Manifest) -> Vec<u64> {
    let done: std::collections::BTreeSet<u64> = manifest.shards.iter().map(|s| s.index).collect();
    (0..manifest.shard_count())
        .filter(|k| !done.contains(k))
        .collect()
}

/// Checks that an existing dataset was collected with the same settings.
fn check_compatible(old: &Manifest, new: &Manifest, dir: &Path) -> Result<(), InputError> {
    let path = dir.join(MANIFEST);
    let mismatch = |field: &str, was: String, now: String| {
        Err(InputError::new(
            &path,
            field,
            format!("the dataset was collected with {field} = {was}, this run asks for {now}; use the same options to resume, or another --out"),
        ))
    };
    if old.scene_sha256 != new.scene_sha256 {
        return mismatch(
            "scene_sha256",
            format!("{} ({})", old.scene_sha256, old.scene),
            format!("{} ({})", new.scene_sha256, new.scene),
        );
    }
    if old.policy != new.policy {
        let json = |p: &DataPolicy| serde_json::to_string(p).unwrap_or_default();
        return mismatch("policy", json(&old.policy), json(&new.policy));
    }
    if old.noise != new.noise {
        return mismatch("noise", old.noise.to_string(), new.noise.to_string());
    }
    if old.seed != new.seed {
        return mismatch("seed", old.seed.to_string(), new.seed.to_string());
    }
    if old.shard_episodes != new.shard_episodes {
        return mismatch(
            "shard_episodes",
            old.shard_episodes.to_string(),
            new.shard_episodes.to_string(),
        );
    }
    Ok(())
}

/// A collection must record at least one episode, at least one per shard.
pub(crate) fn check_counts(
    out: &Path,
    episodes: u64,
    shard_episodes: u64,
) -> Result<(), InputError> {
    if episodes == 0 {
        return Err(InputError::new(
            out,
            "--episodes",
            "expected at least 1 episode",
        ));
    }
    if shard_episodes == 0 {
        return Err(InputError::new(
            out,
            "--shard-episodes",
            "expected at least 1 episode per shard",
        ));
    }
    Ok(())
}

/// A progress bar over the manifest's episodes, at those already recorded (hidden unless
/// `show`).
pub(crate) fn collect_bar(show: bool, manifest: &Manifest, prefix: String) -> ProgressBar {
    let bar = if show {
        ProgressBar::new(manifest.episodes)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} episodes {per_sec} eta {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
    bar.set_position(manifest.episodes_done());
    bar
}

/// Lists a shard now on disk in the manifest and saves the manifest.
pub(crate) fn list_shard(
    manifest: &mut Manifest,
    out: &Path,
    entry: ShardEntry,
) -> anyhow::Result<()> {
    manifest.shards.push(entry);
    manifest.shards.sort_by_key(|s| s.index);
    manifest.save(out)
}

/// Records the dataset `opts` asks for, or the shards it still lacks.
pub fn collect(opts: &CollectOptions) -> anyhow::Result<CollectSummary> {
    check_counts(&opts.out, opts.episodes, opts.shard_episodes)?;
    let (source, scene) = read_scene(&opts.scene_path)?;
    let fresh = fresh_manifest(
        &scene,
        &source,
        opts.policy.into(),
        opts.noise,
        opts.seed,
        opts.episodes,
        opts.shard_episodes,
    );
    let mut manifest = open_manifest(&opts.out, fresh)?;
    let todo = missing_shards(&manifest);
    let to_record: u64 = todo
        .iter()
        .map(|k| manifest.shard_range(*k))
        .map(|(a, b)| b - a)
        .sum();

    let bar = collect_bar(opts.progress, &manifest, format!("collect {}", scene.name));

    let start = Instant::now();
    let recorded = record_shards(opts, &scene, &mut manifest, &todo, &bar);
    bar.finish_and_clear();
    let (shards_written, steps_recorded) = recorded?;
    let shards_missing = missing_shards(&manifest).len() as u64;
    if shards_missing > 0 && opts.cancelled() {
        return Err(Cancelled { shards_missing }.into());
    }
    Ok(CollectSummary {
        episodes_total: manifest.episodes,
        episodes_recorded: to_record,
        shards_written,
        steps_recorded,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The scene file's text (kept in the manifest) and the scene parsed from it.
fn read_scene(path: &Path) -> Result<(String, Arc<Scene>), InputError> {
    let source = crate::sim::shipped::read(path, crate::sim::shipped::Kind::Scene)
        .map_err(|e| InputError::new(path, "", format!("cannot read scene file: {e}")))?;
    let scene = Arc::new(Scene::parse(&source, path)?);
    Ok((source, scene))
}

/// Records the shards `todo` on worker threads; the main thread lists each in the manifest
/// once it is on disk. Returns the shards written and the steps recorded.
fn record_shards(
    opts: &CollectOptions,
    scene: &Arc<Scene>,
    manifest: &mut Manifest,
    todo: &[u64],
    bar: &ProgressBar,
) -> anyhow::Result<(u64, u64)> {
    let (job_tx, job_rx) = unbounded::<u64>();
    for k in todo {
        job_tx.send(*k).expect("queue");
    }
    drop(job_tx);
    let (done_tx, done_rx) = unbounded::<anyhow::Result<ShardEntry>>();
    let threads = opts.threads.clamp(1, todo.len().max(1));
    let mut steps_recorded = 0;
    let mut shards_written = 0;
    // Workers read a frozen copy; the main thread owns the manifest it keeps saving.
    let frozen = manifest.clone();
    let result: anyhow::Result<()> = std::thread::scope(|scope| {
        for _ in 0..threads {
            let (job_rx, done_tx, scene, bar) =
                (job_rx.clone(), done_tx.clone(), scene.clone(), bar.clone());
            let m = &frozen;
            scope.spawn(move || record_worker(opts, scene, m, job_rx, done_tx, bar));
        }
        drop(done_tx);
        // The main thread owns the manifest: it lists each shard once the shard is on disk.
        for r in done_rx.iter() {
            let entry = r?;
            steps_recorded += entry.steps;
            shards_written += 1;
            list_shard(manifest, &opts.out, entry)?;
        }
        Ok(())
    });
    result?;
    Ok((shards_written, steps_recorded))
}

/// One worker: records and writes the shards it takes from `jobs` with its own env and
/// policy, until the queue is empty, a write fails, the main thread has stopped listening or
/// the collection is cancelled (checked between episodes; an unfinished shard is dropped).
fn record_worker(
    opts: &CollectOptions,
    scene: Arc<Scene>,
    m: &Manifest,
    jobs: Receiver<u64>,
    done: Sender<anyhow::Result<ShardEntry>>,
    bar: ProgressBar,
) {
    let mut env = Env::new(scene);
    let mut policy = make_policy(opts.policy, opts.noise);
    for k in jobs.iter() {
        let (first, end) = m.shard_range(k);
        let mut eps = Vec::new();
        for i in first..end {
            if opts.cancelled() {
                return;
            }
            eps.push(record_episode(&mut env, policy.as_mut(), opts.seed, i));
            bar.inc(1);
        }
        let r = write_shard(&opts.out, k, &eps, m);
        let failed = r.is_err();
        if done.send(r).is_err() || failed {
            break;
        }
    }
}

/// Writes shard `k` of the dataset in `dir` atomically; the entry for its manifest.
pub(crate) fn write_shard(
    dir: &Path,
    k: u64,
    eps: &[EpisodeRecord],
    m: &Manifest,
) -> anyhow::Result<ShardEntry> {
    // One metadata key only: safetensors stores metadata from a HashMap, and a single key
    // keeps the file's bytes (and so its hash) reproducible.
    let mut hjepa = serde_json::json!({"format": FORMAT, "scene": m.scene, "shard": k, "policy": m.policy, "seed": m.seed});
    // Each episode's values of the scene's factors of variation, when it has any.
    if eps.iter().any(|e| !e.factors.is_empty()) {
        hjepa["factors"] = serde_json::json!(eps.iter().map(|e| &e.factors).collect::<Vec<_>>());
    }
    let meta = HashMap::from([("hjepa".to_string(), hjepa.to_string())]);
    let bytes = encode_shard(eps, m.image_shape, meta)?;
    let file = shard_file_name(k);
    write_atomic(&dir.join(&file), &bytes)?;
    Ok(ShardEntry {
        index: k,
        file,
        first_episode: eps.first().map_or(0, |e| e.index),
        episodes: eps.len() as u64,
        steps: eps.iter().map(|e| e.action.len() as u64).sum(),
        bytes: bytes.len() as u64,
        sha256: sha256_hex(&bytes),
    })
}
