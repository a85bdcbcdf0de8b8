//! Shipped models: a trained run's inference weights copied into `models/NAME/` (by `hjepa
//! export`) with a manifest that says how they were made and what they measured, and the
//! SHA-256 of every file, checked before anything is loaded. An agent file names one with
//! `planning.model`; a trained run at `planning.checkpoint` takes precedence.
//!
//! ```text
//! models/two_rooms/manifest.json          format, command, dataset digest, commit, hashes,
//!                                         metrics, regression threshold
//! models/two_rooms/checkpoint/model.safetensors, meta.json, agent.toml
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::checkpoint::{checkpoint_dir, CheckpointMeta};
use crate::data::dataset::{sha256_hex, write_atomic};
use crate::error::InputError;

pub const MODEL_FORMAT: &str = "hjepa-model/1";

/// The files every shipped model's `checkpoint/` folder has: inference weights, their metadata
/// and the model configuration (no optimizer state, no EMA target). Others may follow
/// (`landmarks.safetensors`); the manifest lists them all.
const FILES: [&str; 3] = ["model.safetensors", "meta.json", "agent.toml"];

/// `models/NAME/manifest.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    pub format: String,
    pub name: String,
    /// The agent file it was trained with (a shipped agent's name or a path).
    pub agent: String,
    /// The commands that made it: the data, then the training.
    pub commands: Vec<String>,
    /// The training data's digest (`meta.json`'s `dataset_digest`).
    pub dataset_digest: String,
    /// The commit of the binary that exported it (`-dirty` when the tree had changes).
    pub commit: String,
    pub steps: i64,
    pub seed: u64,
    /// SHA-256 of each file under `checkpoint/`.
    pub files: BTreeMap<String, String>,
    /// What the model measured when exported: probe R^2, prediction errors (from the
    /// checkpoint's diagnostics).
    pub metrics: serde_json::Value,
    /// The planning-quality regression check `make test` runs on it, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<Regression>,
}

/// A short evaluation the shipped model must pass: at least `min_successes` of `episodes`
/// episodes from `seed` (`hjepa eval --agent AGENT --episodes N --seed S`), a threshold set
/// under the interval of the model's measured success.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Regression {
    pub episodes: u64,
    pub seed: u64,
    pub min_successes: u64,
    /// Where the threshold comes from (the measured figure and its interval).
    pub why: String,
}

/// Where a shipped model's folder is: `./models/NAME` first, then the source checkout's.
pub fn model_dir(name: &str) -> PathBuf {
    let local = Path::new("models").join(name);
    if local.is_dir() {
        return local;
    }
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name);
    if checkout.is_dir() {
        checkout
    } else {
        local
    }
}

/// Every shipped model's folder (`models/*/manifest.json` of the source checkout).
pub fn shipped_models() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.join("manifest.json").is_file());
    dirs.sort();
    dirs
}

/// Reads a shipped model's manifest and checks every file against its hash; errors name the
/// file and what is wrong (missing, truncated or changed, another format).
pub fn verify(dir: &Path) -> Result<ModelManifest, InputError> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        InputError::new(
            &path,
            "",
            format!("cannot read the shipped model's manifest: {e}"),
        )
    })?;
    let manifest: ModelManifest = serde_json::from_str(&text)
        .map_err(|e| InputError::new(&path, format!("line {}", e.line()), e.to_string()))?;
    if manifest.format != MODEL_FORMAT {
        return Err(InputError::new(
            &path,
            "format",
            format!("expected {MODEL_FORMAT:?}, found {:?}", manifest.format),
        ));
    }
    if let Some(name) = FILES.iter().find(|f| !manifest.files.contains_key(**f)) {
        return Err(InputError::new(
            &path,
            format!("files.{name}"),
            "missing: every file needs its SHA-256",
        ));
    }
    // The required files, and any others the export wrote (landmarks); each a plain name
    // under checkpoint/.
    for (name, want) in &manifest.files {
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(InputError::new(
                &path,
                format!("files.{name}"),
                "expected the name of a file in checkpoint/ (no folders)",
            ));
        }
        let file = dir.join("checkpoint").join(name);
        let bytes = std::fs::read(&file).map_err(|e| {
            InputError::new(
                &file,
                "",
                format!("cannot read the shipped model's file: {e}"),
            )
        })?;
        let found = sha256_hex(&bytes);
        if found != *want {
            return Err(InputError::new(
                &file,
                "",
                format!(
                    "SHA-256 {found} ({} bytes) differs from the manifest's {want} (files.{name} in {}): the file is damaged or was changed after export",
                    bytes.len(),
                    path.display()
                ),
            ));
        }
    }
    Ok(manifest)
}

/// What `hjepa export` needs besides the run.
pub struct ExportOptions<'a> {
    pub run: &'a Path,
    pub out: &'a Path,
    pub name: &'a str,
    pub agent: &'a str,
    /// The data command that made the training set (the manifest records it).
    pub data_command: &'a str,
    pub regression: Option<Regression>,
    /// Files made for the export besides the run's (name in checkpoint/, bytes): the
    /// landmark states of an agent that plans with them, so it needs no dataset.
    pub extra_files: Vec<(String, Vec<u8>)>,
}

/// Copies a trained run's inference files into `out/checkpoint/` and writes the manifest
/// last, so a folder without a manifest is an unfinished export.
pub fn export(opts: &ExportOptions<'_>) -> anyhow::Result<ModelManifest> {
    let from = checkpoint_dir(opts.run)?;
    let meta_path = from.join("meta.json");
    let meta: CheckpointMeta = serde_json::from_str(&std::fs::read_to_string(&meta_path)?)
        .map_err(|e| InputError::new(&meta_path, "", e.to_string()))?;
    let to = opts.out.join("checkpoint");
    crate::error::create_dir_all(&to)?;
    let mut files = BTreeMap::new();
    for name in FILES {
        let bytes = std::fs::read(from.join(name))
            .map_err(|e| InputError::new(&from.join(name), "", format!("cannot read: {e}")))?;
        write_atomic(&to.join(name), &bytes)?;
        files.insert(name.to_string(), sha256_hex(&bytes));
    }
    for (name, bytes) in &opts.extra_files {
        write_atomic(&to.join(name), bytes)?;
        files.insert(name.clone(), sha256_hex(bytes));
    }
    let datasets: Vec<String> = meta
        .datasets()
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    let manifest = ModelManifest {
        format: MODEL_FORMAT.into(),
        name: opts.name.into(),
        agent: opts.agent.into(),
        commands: vec![
            opts.data_command.into(),
            format!(
                "hjepa train --agent {} --data {} --seed {} --out {}",
                opts.agent,
                datasets.join(" --data "),
                meta.seed,
                opts.run.display()
            ),
        ],
        dataset_digest: meta.dataset_digest.clone(),
        commit: env!("HJEPA_GIT_REV").into(),
        steps: meta.step,
        seed: meta.seed,
        files,
        metrics: serde_json::json!({
            "diagnostics": meta.diagnostics,
            "critic": meta.critic,
        }),
        regression: opts.regression.clone(),
    };
    write_atomic(
        &opts.out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    Ok(manifest)
}
