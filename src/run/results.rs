//! The results file (docs/results/table.toml): every row of the README's results table, the
//! evaluations its figure pools, and for rows with a shipped model what `hjepa reproduce`
//! needs to check that figure again. The README's table is rendered from it
//! (tests/results_table.rs fails when the two differ); the binary carries a copy.

use std::path::Path;

use serde::Deserialize;

use crate::data::episodes::wilson_interval;
use crate::data::PolicyKind;
use crate::error::InputError;

/// docs/results/table.toml as this binary was built with it.
pub const SHIPPED_TABLE: &str = include_str!("../../docs/results/table.toml");

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsTable {
    pub row: Vec<Row>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    pub task: String,
    /// Its page under docs/results/.
    pub page: String,
    #[serde(default)]
    pub label: String,
    pub observation: String,
    /// (successes, episodes) per evaluation: seeds, trainings, or one evaluation.
    pub runs: Vec<(usize, usize)>,
    /// What the evaluations in `runs` are ("seeds", "trainings", "one evaluation").
    pub runs_are: String,
    pub note: String,
    pub random_floor: String,
    pub oracle: String,
    pub planning: String,
    pub machine: String,
    pub command: String,
    /// How `hjepa reproduce` checks the row (rows with a shipped model).
    #[serde(default)]
    pub reproduce: Option<Reproduce>,
}

/// A row's shipped model, the evaluation that measured it, and the data it was trained on.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reproduce {
    /// The row's name on the command line (`hjepa reproduce two_rooms`).
    pub id: String,
    /// The agent file evaluated (a shipped agent's name or a path).
    pub agent: String,
    /// The shipped model (`models/NAME`).
    pub model: String,
    /// Evaluation seeds (`hjepa eval --seed`), each `episodes` long.
    pub seeds: Vec<u64>,
    pub episodes: u64,
    /// The shipped model's figure when it was shipped: (successes, episodes) per seed.
    pub shipped: Vec<(usize, usize)>,
    /// The training data `--from-scratch` collects (then the agent file's training runs).
    pub train: TrainData,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainData {
    pub collect_episodes: u64,
    pub collect_seed: u64,
    pub policy: PolicyKind,
}

/// (successes, episodes) summed over evaluations.
pub fn pooled(runs: &[(usize, usize)]) -> (usize, usize) {
    runs.iter().fold((0, 0), |(k, n), (a, b)| (k + a, n + b))
}

/// `k/n = r % (CI lo–hi %)`.
pub fn figure(k: usize, n: usize) -> String {
    let (lo, hi) = wilson_interval(k, n);
    format!(
        "{k}/{n} = {:.1} % (CI {:.1}–{:.1} %)",
        100.0 * k as f64 / n.max(1) as f64,
        100.0 * lo,
        100.0 * hi
    )
}

impl ResultsTable {
    /// Reads and checks a results file: every count at most its episodes, reproduce ids
    /// unique, the shipped figure one per seed.
    pub fn parse(text: &str, path: &Path) -> Result<ResultsTable, InputError> {
        let table: ResultsTable =
            toml::from_str(text).map_err(|e| InputError::from_toml(path, text, &e))?;
        let mut ids = std::collections::HashSet::new();
        for (i, r) in table.row.iter().enumerate() {
            let field = |f: &str| format!("row[{i}] ({}).{f}", r.task);
            if let Some((k, n)) = r.runs.iter().find(|(k, n)| k > n || *n == 0) {
                return Err(InputError::new(
                    path,
                    field("runs"),
                    format!("expected successes <= episodes > 0, found [{k}, {n}]"),
                ));
            }
            let Some(rep) = &r.reproduce else { continue };
            if !ids.insert(rep.id.clone()) {
                return Err(InputError::new(
                    path,
                    field("reproduce.id"),
                    format!("{:?} names another row too", rep.id),
                ));
            }
            let bad = rep.shipped.len() != rep.seeds.len()
                || rep.shipped.iter().any(|(k, n)| k > n || *n == 0)
                || rep.episodes == 0;
            if bad {
                return Err(InputError::new(
                    path,
                    field("reproduce.shipped"),
                    format!(
                        "expected one [successes, episodes] per seed ({} seeds, {} episodes each), found {:?}",
                        rep.seeds.len(),
                        rep.episodes,
                        rep.shipped
                    ),
                ));
            }
        }
        Ok(table)
    }

    /// The table this binary was built with.
    pub fn shipped() -> ResultsTable {
        ResultsTable::parse(SHIPPED_TABLE, Path::new("docs/results/table.toml"))
            .expect("docs/results/table.toml is checked by tests/results_table.rs")
    }

    /// The README's results table (markdown).
    pub fn render(&self) -> String {
        let mut out = String::from(
            "| task | observation | success (count/episodes, 95 % CI) | random floor | oracle | planning per episode | measured on | reproduce |\n|---|---|---|---|---|---|---|---|\n",
        );
        for r in &self.row {
            let label = if r.label.is_empty() {
                String::new()
            } else {
                format!(", {}", r.label)
            };
            out += &format!(
                "| [{}](docs/results/{}){label} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.task,
                r.page,
                r.observation,
                r.success(),
                r.random_floor,
                r.oracle,
                r.planning,
                r.machine,
                r.command
            );
        }
        out
    }
}

impl Row {
    /// The success cell: the pooled count, each evaluation and the interval.
    pub fn success(&self) -> String {
        let (k, n) = pooled(&self.runs);
        if n == 0 {
            return "not measured".into();
        }
        let (lo, hi) = wilson_interval(k, n);
        let ci = format!("CI {:.1}–{:.1} %", 100.0 * lo, 100.0 * hi);
        let mut s = if self.runs.len() == 1 {
            format!("**{k}/{n}** = {:.1} % ({ci})", 100.0 * k as f64 / n as f64)
        } else {
            let each: Vec<String> = self.runs.iter().map(|(a, b)| format!("{a}/{b}")).collect();
            format!(
                "**{k}/{n}** over {} {}: {} ({ci})",
                self.runs.len(),
                self.runs_are,
                each.join(", ")
            )
        };
        if !self.note.is_empty() {
            s += &format!("; {}", self.note);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses() {
        let t = ResultsTable::shipped();
        assert!(t.row.iter().any(|r| r.reproduce.is_some()));
    }

    #[test]
    fn a_count_above_its_episodes_is_refused_naming_the_row() {
        let text = SHIPPED_TABLE.replacen("runs = [[", "runs = [[101, 100], [", 1);
        let e = ResultsTable::parse(&text, Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("row[0] (two_rooms).runs"), "{e}");
    }
}
