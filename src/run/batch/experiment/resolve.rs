//! An experiment's agent files, and each one under a variant and an override combination.

use std::path::{Path, PathBuf};

use super::{CellLabel, ExperimentFile, Variant};
use crate::agent::AgentFile;
use crate::error::InputError;
use crate::sim::shipped;

/// An agent file as the experiment lists it, before variants and overrides.
pub(super) struct BaseAgent<'f> {
    /// As written in `agents` (a path or a shipped agent's name).
    arg: &'f str,
    /// `agents[i]`: the key its errors name.
    pub(super) key: String,
    pub(super) path: PathBuf,
    /// The file's stem: the agent column of the labels.
    pub(super) name: String,
    pub(super) file: AgentFile,
    /// The file's own TOML, which variants and overrides edit.
    value: toml::Value,
    /// The agent file with all defaults filled in: the keys that may be set or removed.
    known: toml::Value,
    /// Scenes to evaluate it in: the experiment's, or its own.
    pub(super) scenes: Vec<String>,
}

impl<'f> BaseAgent<'f> {
    /// Loads the `ai`-th agent file of the experiment.
    pub(super) fn load(
        file: &ExperimentFile,
        path: &Path,
        ai: usize,
        agent_arg: &'f str,
    ) -> Result<BaseAgent<'f>, InputError> {
        let bad = |key: &str, msg: String| InputError::new(path, key, msg);
        let agent_path = AgentFile::resolve_path(agent_arg);
        let agent_key = format!("agents[{ai}]");
        let base = AgentFile::load(&agent_path)
            .map_err(|e| bad(&agent_key, format!("agent {agent_arg:?}: {e}")))?;
        let agent_name = agent_path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(agent_arg)
            .to_string();
        let base_text = shipped::read(&agent_path, shipped::Kind::Agent)
            .map_err(|e| bad(&agent_key, format!("{}: {e}", agent_path.display())))?;
        let base_value: toml::Value = toml::from_str(&base_text)
            .map_err(|e| bad(&agent_key, format!("{}: {e}", agent_path.display())))?;
        let known = toml::Value::try_from(&base).expect("agent files serialise");
        let scenes: Vec<String> = if file.scenes.is_empty() {
            vec![base.scene.clone()]
        } else {
            file.scenes.clone()
        };
        Ok(BaseAgent {
            arg: agent_arg,
            key: agent_key,
            path: agent_path,
            name: agent_name,
            file: base,
            value: base_value,
            known,
            scenes,
        })
    }
}

/// An agent file under one variant and override combination: its scenes × seeds × actors
/// are cells of the grid.
pub(super) struct ResolvedAgent<'a> {
    pub(super) base: &'a BaseAgent<'a>,
    variant: &'a Variant,
    combo: &'a [(&'a String, &'a toml::Value)],
    pub(super) agent: AgentFile,
    /// How error messages name it.
    pub(super) what: String,
    /// `key=value` pairs of the override axes (those with more than one value).
    overrides_label: String,
}

impl<'a> ResolvedAgent<'a> {
    /// Applies the variant and the override combination to the agent file and parses it.
    pub(super) fn new(
        file: &ExperimentFile,
        path: &Path,
        base: &'a BaseAgent<'a>,
        variant: &'a Variant,
        combo: &'a [(&'a String, &'a toml::Value)],
    ) -> Result<ResolvedAgent<'a>, InputError> {
        let bad = |key: &str, msg: String| InputError::new(path, key, msg);
        // The agent file with this variant and override combination applied.
        let mut value = base.value.clone();
        let vkey = format!("variants[{:?}]", variant.name);
        for k in &variant.remove {
            apply(&mut value, &base.known, k, None)
                .map_err(|m| bad(&format!("{vkey}.remove"), m))?;
        }
        for (k, v) in &variant.set {
            apply(&mut value, &base.known, k, Some(v))
                .map_err(|m| bad(&format!("{vkey}.set.\"{k}\""), m))?;
        }
        for (k, v) in combo {
            apply(&mut value, &base.known, k, Some(v))
                .map_err(|m| bad(&format!("overrides.\"{k}\""), m))?;
        }
        let resolved_text = toml::to_string(&value).expect("a TOML table serialises");
        let what = describe(base.arg, variant, combo);
        let agent = AgentFile::parse(&resolved_text, &base.path)
            .map_err(|e| bad(&vkey_or_overrides(variant, combo), format!("{what}: {e}")))?;
        // Axes with one value are settings, not axes: they stay out of the label.
        let overrides_label = combo
            .iter()
            .filter(|(k, _)| file.overrides[*k].len() > 1)
            .map(|(k, v)| format!("{k}={}", show_value(v)))
            .collect::<Vec<_>>()
            .join(" ");
        Ok(ResolvedAgent {
            base,
            variant,
            combo,
            agent,
            what,
            overrides_label,
        })
    }

    /// The key an error in the variant or the overrides names.
    pub(super) fn changes_key(&self) -> String {
        vkey_or_overrides(self.variant, self.combo)
    }

    /// The cell label of this agent in `scene`.
    pub(super) fn label(&self, scene: String) -> CellLabel {
        CellLabel {
            scene,
            agent: self.base.name.clone(),
            variant: self.variant.name.clone(),
            overrides: self.overrides_label.clone(),
        }
    }
}

/// How errors name an agent: just the agent when the variant and overrides change nothing.
fn describe(agent_arg: &str, variant: &Variant, combo: &[(&String, &toml::Value)]) -> String {
    if combo.is_empty() && variant.set.is_empty() && variant.remove.is_empty() {
        format!("agent {agent_arg:?}")
    } else {
        format!(
            "agent {agent_arg:?}, variant {:?}{}",
            variant.name,
            combo
                .iter()
                .map(|(k, v)| format!(", {k} = {}", show_value(v)))
                .collect::<String>()
        )
    }
}

/// A dotted key (`planning.planner.samples`) split into its parts.
fn key_parts(key: &str) -> Vec<&str> {
    key.split('.').collect()
}

/// The value at a dotted key, if there is one.
fn lookup<'a>(root: &'a toml::Value, key: &str) -> Option<&'a toml::Value> {
    key_parts(key)
        .iter()
        .try_fold(root, |v, part| v.as_table()?.get(*part))
}

/// Sets or removes `key` in `root`; the key must exist in `known` (the agent file with all
/// defaults filled in), so a typo is an error rather than a silently ignored setting.
fn apply(
    root: &mut toml::Value,
    known: &toml::Value,
    key: &str,
    value: Option<&toml::Value>,
) -> Result<(), String> {
    if lookup(known, key).is_none() {
        return Err(format!(
            "unknown agent-file key {key:?} (keys are dotted paths such as \"planning.planner.samples\"; an optional table must be in the agent file to be changed or removed)"
        ));
    }
    let parts = key_parts(key);
    let (last, parents) = parts.split_last().expect("split gives one part");
    let mut table = root;
    for p in parents {
        table = table
            .as_table_mut()
            .and_then(|t| t.get_mut(*p))
            .ok_or_else(|| format!("{key:?}: {p} is missing from the agent file"))?;
    }
    let t = table
        .as_table_mut()
        .ok_or_else(|| format!("{key:?}: not inside a table"))?;
    match value {
        Some(v) => {
            t.insert((*last).to_string(), v.clone());
        }
        None => {
            t.remove(*last);
        }
    }
    Ok(())
}

/// A value as labels show it: strings without their quotes.
fn show_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The key an error in a variant or override names: the last override axis, or the variant.
fn vkey_or_overrides(variant: &Variant, combo: &[(&String, &toml::Value)]) -> String {
    match combo.last() {
        Some((k, _)) => format!("overrides.\"{k}\""),
        None => format!("variants[{:?}]", variant.name),
    }
}
