//! The deterministic expansion of an experiment file into its grid of runs: check the file,
//! load each agent, resolve it under every variant × override combination (`resolve`), and
//! add its cells (`cells`).

use std::collections::BTreeMap;
use std::path::Path;

use super::cells::GridBuilder;
use super::resolve::{BaseAgent, ResolvedAgent};
use super::{ExperimentFile, Grid, Variant};
use crate::error::InputError;

/// One combination of override values: (dotted key, value) per axis, in key order.
type Combo<'f> = Vec<(&'f String, &'f toml::Value)>;

/// Expands the grid deterministically (agents, scenes, variants, override combinations,
/// seeds, actors — in that nesting order).
pub fn expand(file: &ExperimentFile, text: &str, path: &Path) -> Result<Grid, InputError> {
    check_lists(file, path)?;
    check_settings(file, path)?;
    let variants = variants_or_default(file);
    let combos = override_combinations(&file.overrides);
    let mut grid = GridBuilder::new(file, path);
    for (ai, agent_arg) in file.agents.iter().enumerate() {
        let base = BaseAgent::load(file, path, ai, agent_arg)?;
        for variant in &variants {
            for combo in &combos {
                let resolved = ResolvedAgent::new(file, path, &base, variant, combo)?;
                grid.add_agent_cells(&resolved)?;
            }
        }
    }
    Ok(grid.finish(text))
}

/// Checks the name, and that the agent, seed and actor lists are non-empty and repeat nothing.
fn check_lists(file: &ExperimentFile, path: &Path) -> Result<(), InputError> {
    let bad = |key: &str, msg: String| InputError::new(path, key, msg);
    if file.name.trim().is_empty()
        || !file
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err(bad(
            "name",
            format!(
                "expected a non-empty name of letters, digits, '_', '-' or '.', got {:?}",
                file.name
            ),
        ));
    }
    if file.agents.is_empty() {
        return Err(empty_list(path, "agents"));
    }
    if file.seeds.is_empty() {
        return Err(empty_list(path, "seeds"));
    }
    if file.actors.is_empty() {
        return Err(empty_list(path, "actors"));
    }
    let mut seen_seeds = std::collections::HashSet::new();
    if let Some(d) = file.seeds.iter().find(|s| !seen_seeds.insert(**s)) {
        return Err(bad("seeds", format!("seed {d} is listed twice")));
    }
    let mut seen_actors = std::collections::HashSet::new();
    if let Some(d) = file.actors.iter().find(|a| !seen_actors.insert(**a)) {
        return Err(bad(
            "actors",
            format!("actor {:?} is listed twice", d.name()),
        ));
    }
    Ok(())
}

/// Checks the episode and parallel counts, the override axes, the variant names and the
/// device.
fn check_settings(file: &ExperimentFile, path: &Path) -> Result<(), InputError> {
    let bad = |key: &str, msg: String| InputError::new(path, key, msg);
    if file.episodes == 0 {
        return Err(bad(
            "episodes",
            "expected at least 1 (0 episodes expands to zero runs)".into(),
        ));
    }
    if file.episodes > crate::limits::MAX_EPISODES {
        return Err(bad(
            "episodes",
            format!(
                "expected at most {}, got {}",
                crate::limits::MAX_EPISODES,
                file.episodes
            ),
        ));
    }
    if file.parallel == 0 || file.parallel > crate::limits::MAX_THREADS {
        return Err(bad(
            "parallel",
            format!(
                "expected 1 to {}, got {}",
                crate::limits::MAX_THREADS,
                file.parallel
            ),
        ));
    }
    for (k, vals) in &file.overrides {
        if vals.is_empty() {
            return Err(empty_list(path, &format!("overrides.\"{k}\"")));
        }
    }
    check_run_count(file, path)?;
    let mut seen = std::collections::HashSet::new();
    for v in &file.variants {
        if !seen.insert(v.name.as_str()) {
            return Err(bad(
                "variants",
                format!("two variants are named {:?}", v.name),
            ));
        }
    }
    if let Some(device) = file.device {
        crate::model::cuda::tch_device(device).map_err(|why| bad("device", why))?;
    }
    Ok(())
}

/// Refuses a grid of more than [`crate::limits::MAX_RUNS_PER_EXPERIMENT`] runs before it is
/// expanded (each axis multiplies the others).
fn check_run_count(file: &ExperimentFile, path: &Path) -> Result<(), InputError> {
    let axes = [
        ("agents", file.agents.len()),
        ("scenes", file.scenes.len().max(1)),
        ("variants", file.variants.len().max(1)),
        ("seeds", file.seeds.len()),
        ("actors", file.actors.len()),
    ]
    .into_iter()
    .chain(file.overrides.iter().map(|(k, v)| (k.as_str(), v.len())));
    let mut runs: u64 = 1;
    let mut sizes = Vec::new();
    for (name, n) in axes {
        runs = runs.saturating_mul(n as u64);
        sizes.push(format!("{n} {name}"));
    }
    let max = crate::limits::MAX_RUNS_PER_EXPERIMENT;
    if runs > max {
        return Err(InputError::new(
            path,
            "",
            format!(
                "the grid expands to {runs} runs ({}), more than the limit {max}: split it into several experiment files",
                sizes.join(" x ")
            ),
        ));
    }
    Ok(())
}

/// The error for a list at `key` that is empty.
fn empty_list(path: &Path, key: &str) -> InputError {
    InputError::new(
        path,
        key,
        "is empty, so the grid expands to zero runs".to_string(),
    )
}

/// The file's variants, or a single `default` one that changes nothing.
fn variants_or_default(file: &ExperimentFile) -> Vec<Variant> {
    if file.variants.is_empty() {
        vec![Variant {
            name: "default".into(),
            set: BTreeMap::new(),
            remove: Vec::new(),
        }]
    } else {
        file.variants.clone()
    }
}

/// The Cartesian product of the override axes, in key order.
fn override_combinations(overrides: &BTreeMap<String, Vec<toml::Value>>) -> Vec<Combo<'_>> {
    let mut combos: Vec<Combo<'_>> = vec![Vec::new()];
    for (k, vals) in overrides {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                vals.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((k, v));
                    c
                })
            })
            .collect();
    }
    combos
}
