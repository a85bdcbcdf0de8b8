//! Playing one run: a training run (collect, then train) or an evaluation.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::Sender;

use super::{Event, Outcome};
use crate::agent::{assemble_planning_agent, OracleAgent};
use crate::data::{collect, CollectOptions};
use crate::model::{train, TrainOptions};
use crate::run::batch::experiment::{sha256_hex, ActorKind, ModelSource, Run, RunConfig};
use crate::run::eval::EvalActor;
use crate::sim::Scene;

/// The run folder of a trained model: an existing checkpoint, or the experiment's own.
fn model_dir(source: &ModelSource, files: &Path) -> PathBuf {
    match source {
        ModelSource::Checkpoint { run, .. } => run.clone(),
        ModelSource::Trained { run_id } => files.join("models").join(run_id),
    }
}

/// The prediction error per horizon recorded with a checkpoint (its last validation).
fn model_errors(run_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(run_dir.join("checkpoint/meta.json")).ok()?;
    let meta: serde_json::Value = serde_json::from_str(&text).ok()?;
    let d = meta.get("diagnostics")?;
    Some(
        serde_json::json!({
            "step": meta.get("step"),
            "level1": d.get("level1_error"),
            "level2": d.get("level2_error"),
            "level2_k": d.get("level2_k"),
        })
        .to_string(),
    )
}

/// Plays one evaluation run; `tx` hears of each finished episode.
pub(super) fn eval_run(
    run: &Run,
    files: &Path,
    trained_ok: &std::collections::HashSet<String>,
    tx: &Sender<Event>,
    worker: usize,
) -> anyhow::Result<Outcome> {
    let RunConfig::Eval {
        actor,
        agent,
        oracle,
        model,
        seed,
        episodes,
        parallel,
        device,
        ..
    } = &run.config
    else {
        unreachable!("training runs are not evaluations")
    };
    if let Some(ModelSource::Trained { run_id }) = model {
        // A model whose training failed (or never ran) would be scored half-trained.
        anyhow::ensure!(
            trained_ok.contains(run_id),
            "its model (training run {run_id}) is not trained: that run failed or did not finish"
        );
    }
    let scene = Arc::new(Scene::load(&run.scene_path)?);
    let agent_path = run.agent_path.clone().unwrap_or_default();
    let mut model_name = None;
    let mut errors = None;
    let mut actor = match actor {
        ActorKind::Learned => {
            let source = model.as_ref().expect("learned runs name their model");
            let dir = model_dir(source, files);
            model_name = Some(dir.display().to_string());
            errors = model_errors(&dir);
            EvalActor::Learned(assemble_planning_agent(
                agent.clone().expect("learned runs carry their agent file"),
                &agent_path,
                &scene,
                *device,
                Some(&dir),
            )?)
        }
        ActorKind::Oracle => {
            let o = oracle.as_ref().expect("oracle runs carry their planner");
            EvalActor::Oracle(
                OracleAgent::new(o.planner.clone(), o.reduce, &scene).map_err(|m| {
                    anyhow::anyhow!("{}: planning.planner.kind: {m}", agent_path.display())
                })?,
            )
        }
        ActorKind::Random => EvalActor::random(),
    };
    let mut out = Vec::with_capacity(*episodes as usize);
    actor.play(&scene, *episodes, *seed, *parallel, |ep| {
        out.push(ep);
        let _ = tx.send(Event::Episode { worker });
        Ok(())
    })?;
    out.sort_by_key(|e| e.index);
    Ok(Outcome {
        episodes: out,
        model: model_name,
        model_errors: errors,
    })
}

/// Collects the dataset (resumable) and trains the model (resuming its checkpoint).
pub(super) fn train_run(run: &Run, files: &Path, progress: bool) -> anyhow::Result<Outcome> {
    let RunConfig::Train {
        agent,
        scene_sha256,
        collect: c,
        device,
        ..
    } = &run.config
    else {
        unreachable!("evaluations are not training runs")
    };
    let data_key = sha256_hex(serde_json::to_string(&(scene_sha256, c))?.as_bytes());
    let data = files
        .join("data")
        .join(format!("{}-{}", run.label.scene, &data_key[..12]));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    collect(&CollectOptions {
        scene_path: run.scene_path.clone(),
        out: data.clone(),
        episodes: c.episodes,
        policy: c.policy,
        noise: c.noise,
        seed: c.seed,
        shard_episodes: 50,
        threads,
        progress,
        cancel: None,
    })?;
    let models = files.join("models");
    crate::error::create_dir_all(&models)?;
    // The model part of the resolved agent file, as `hjepa train` reads it.
    let agent_file = models.join(format!("{}.toml", run.id));
    crate::data::dataset::write_atomic(&agent_file, toml::to_string(agent)?.as_bytes())?;
    let out = models.join(&run.id);
    train(&TrainOptions {
        agent: agent.clone(),
        agent_path: agent_file,
        data: vec![data],
        shares: None,
        out: out.clone(),
        resume: true,
        device: *device,
        steps: None,
        seed: None,
        progress,
    })?;
    Ok(Outcome {
        episodes: Vec::new(),
        model: Some(out.display().to_string()),
        model_errors: model_errors(&out),
    })
}
