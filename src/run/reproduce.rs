//! `hjepa reproduce`: checks rows of the results file again. By default each chosen row's
//! shipped model is evaluated on the row's seeds and compared with the figure it measured
//! when it was shipped; `--from-scratch` first collects the row's training data and trains
//! the agent file anew (a batch experiment, so it resumes, and runs on Slurm through shards)
//! and compares with the row's headline figure, which pools several trainings.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::batch::{batch, report, BatchOptions};
use super::eval::{eval, EvalMode, EvalOptions, DEFAULT_GOAL_OFFSET};
use super::results::{figure, pooled, Reproduce, ResultsTable, Row};
use crate::agent::AgentFile;
use crate::data::episodes::wilson_interval;
use crate::error::InputError;

#[derive(Clone, Debug)]
pub struct ReproduceOptions {
    /// Reproduce ids of the rows to check (empty: every row with a shipped model).
    pub rows: Vec<String>,
    /// Episodes per seed instead of the row's (fewer: a quicker, wider check).
    pub episodes: Option<u64>,
    pub from_scratch: bool,
    /// The results file (default: the one this binary was built with).
    pub table: Option<PathBuf>,
    /// Where evaluations, experiments and their databases go (`results/reproduce`).
    pub out: PathBuf,
    pub device: Option<crate::device::Device>,
}

/// One row checked: the file's figure beside today's.
#[derive(Clone, Debug)]
pub struct RowCheck {
    pub id: String,
    /// What was evaluated (the shipped model, or a training from scratch).
    pub evaluated: String,
    /// What the file's figure is.
    pub file_is: String,
    pub file: (usize, usize),
    /// Today's (successes, episodes) per seed, and pooled.
    pub today_per_seed: Vec<(u64, usize, usize)>,
    pub today: (usize, usize),
    /// Whether the two 95 % Wilson intervals overlap.
    pub overlap: bool,
    pub seconds: f64,
}

/// What `hjepa reproduce` found.
#[derive(Clone, Debug)]
pub struct ReproduceReport {
    pub checks: Vec<RowCheck>,
    /// Rows of the file without a shipped model (not checked), by task and label.
    pub unchecked: Vec<String>,
}

impl ReproduceReport {
    /// Whether every checked row's interval overlaps the file's.
    pub fn all_reproduced(&self) -> bool {
        self.checks.iter().all(|c| c.overlap)
    }

    /// The comparison as a markdown table, then the rows not checked.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| row | evaluated | the file's figure | today | per seed today | intervals overlap | time |\n|---|---|---|---|---|---|---|\n",
        );
        for c in &self.checks {
            let per_seed: Vec<String> = c
                .today_per_seed
                .iter()
                .map(|(seed, k, n)| format!("seed {seed}: {k}/{n}"))
                .collect();
            s += &format!(
                "| {} | {} | {} ({}) | {} | {} | {} | {:.0} s |\n",
                c.id,
                c.evaluated,
                figure(c.file.0, c.file.1),
                c.file_is,
                figure(c.today.0, c.today.1),
                per_seed.join(", "),
                if c.overlap { "yes" } else { "**no**" },
                c.seconds
            );
        }
        if !self.unchecked.is_empty() {
            s += &format!(
                "\nNot checked (no shipped model yet): {}.\n",
                self.unchecked.join("; ")
            );
        }
        s
    }
}

/// Whether two 95 % Wilson intervals overlap.
pub fn intervals_overlap(a: (usize, usize), b: (usize, usize)) -> bool {
    let (a_lo, a_hi) = wilson_interval(a.0, a.1);
    let (b_lo, b_hi) = wilson_interval(b.0, b.1);
    a_lo <= b_hi && b_lo <= a_hi
}

pub fn reproduce(opts: &ReproduceOptions) -> anyhow::Result<ReproduceReport> {
    let table = match &opts.table {
        None => ResultsTable::shipped(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| InputError::new(path, "", format!("cannot read results file: {e}")))?;
            ResultsTable::parse(&text, path)?
        }
    };
    if opts.episodes == Some(0) {
        return Err(InputError::new(Path::new("--episodes"), "", "expected at least 1").into());
    }
    let (chosen, unchecked) = choose_rows(&table, &opts.rows, opts.table.as_deref())?;
    let mut checks = Vec::new();
    for (i, (row, rep)) in chosen.iter().enumerate() {
        eprintln!(
            "[{}/{}] {}: {}",
            i + 1,
            chosen.len(),
            rep.id,
            if opts.from_scratch {
                "collect, train, evaluate (a batch experiment)"
            } else {
                "evaluate the shipped model"
            }
        );
        let check = if opts.from_scratch {
            from_scratch(row, rep, opts)?
        } else {
            shipped_model(rep, opts)?
        };
        checks.push(check);
    }
    Ok(ReproduceReport { checks, unchecked })
}

/// The rows asked for (all with a shipped model when none is named), and the rows without one.
#[allow(clippy::type_complexity)]
fn choose_rows<'t>(
    table: &'t ResultsTable,
    ids: &[String],
    table_path: Option<&Path>,
) -> Result<(Vec<(&'t Row, &'t Reproduce)>, Vec<String>), InputError> {
    let with: Vec<(&Row, &Reproduce)> = table
        .row
        .iter()
        .filter_map(|r| r.reproduce.as_ref().map(|rep| (r, rep)))
        .collect();
    let unchecked: Vec<String> = table
        .row
        .iter()
        .filter(|r| r.reproduce.is_none())
        .map(|r| {
            if r.label.is_empty() {
                r.task.clone()
            } else {
                format!("{} ({})", r.task, r.label)
            }
        })
        .collect();
    if ids.is_empty() {
        return Ok((with, unchecked));
    }
    let mut chosen = Vec::new();
    for id in ids {
        match with.iter().find(|(_, rep)| &rep.id == id) {
            Some(pair) => chosen.push(*pair),
            None => {
                let known: Vec<&str> = with.iter().map(|(_, rep)| rep.id.as_str()).collect();
                return Err(InputError::new(
                    table_path.unwrap_or(Path::new("docs/results/table.toml")),
                    "ROW",
                    format!(
                        "no row {id:?} with a shipped model; expected one of: {} (rows without a shipped model: {})",
                        known.join(", "),
                        unchecked.join("; ")
                    ),
                ));
            }
        }
    }
    Ok((chosen, unchecked))
}

/// Evaluates the row's shipped model (files checked against its manifest) on its seeds.
fn shipped_model(rep: &Reproduce, opts: &ReproduceOptions) -> anyhow::Result<RowCheck> {
    let start = Instant::now();
    let dir = crate::model::shipped::model_dir(&rep.model);
    crate::model::shipped::verify(&dir)?;
    let episodes = opts.episodes.unwrap_or(rep.episodes);
    let out = opts.out.join(&rep.id);
    let mut per_seed = Vec::new();
    for &seed in &rep.seeds {
        let s = eval(&EvalOptions {
            agent_path: AgentFile::resolve_path(&rep.agent),
            scene: None,
            episodes,
            seed,
            mode: EvalMode::Learned,
            only: Vec::new(),
            checkpoint: Some(dir.clone()),
            device: opts.device,
            out: Some(out.join(format!("eval-seed{seed}-n{episodes}.jsonl"))),
            random_floor: false,
            record: None,
            parallel: 1,
            progress: true,
            goals_from: None,
            goal_offset: DEFAULT_GOAL_OFFSET,
            max_steps: None,
            success: None,
            vary: Vec::new(),
        })?;
        eprintln!("  seed {seed}: {}", figure(s.successes, s.episodes));
        per_seed.push((seed, s.successes, s.episodes));
    }
    let today = per_seed
        .iter()
        .fold((0, 0), |(k, n), (_, a, b)| (k + a, n + b));
    Ok(check(
        rep,
        format!("shipped model `{}`", rep.model),
        "the shipped model when shipped",
        pooled(&rep.shipped),
        today,
        per_seed,
        start,
    ))
}

/// Collects the row's data and trains its agent file anew (a batch experiment in
/// `out/ID/`, which resumes), then evaluates on the row's seeds.
fn from_scratch(row: &Row, rep: &Reproduce, opts: &ReproduceOptions) -> anyhow::Result<RowCheck> {
    let start = Instant::now();
    let dir = opts.out.join(&rep.id);
    std::fs::create_dir_all(&dir)?;
    let experiment = dir.join("experiment.toml");
    let episodes = opts.episodes.unwrap_or(rep.episodes);
    let db = dir.join("results.sqlite");
    std::fs::write(
        &experiment,
        experiment_text(rep, episodes, opts.device, &experiment, &db)?,
    )?;
    let summary = batch(&BatchOptions {
        experiment: experiment.clone(),
        db: Some(db),
        jobs: None,
        shard: None,
        progress: true,
        quiet: false,
    })?;
    if summary.interrupted {
        anyhow::bail!(
            "interrupted: rerun the same command to finish ({} resumes where it stopped)",
            experiment.display()
        );
    }
    anyhow::ensure!(
        summary.failed.is_empty(),
        "{} runs of {} failed: {:?}",
        summary.failed.len(),
        experiment.display(),
        summary.failed
    );
    let report = report::load(&summary.db)?;
    let learned = report
        .cells
        .iter()
        .filter_map(|c| c.actors.get("learned"))
        .fold((0, 0), |(k, n), a| (k + a.successes, n + a.episodes));
    Ok(check(
        rep,
        format!("trained from scratch ({})", experiment.display()),
        "the row's headline",
        pooled(&row.runs),
        learned,
        Vec::new(),
        start,
    ))
}

/// Today's figure (pooled, and per seed where known) beside the file's.
fn check(
    rep: &Reproduce,
    evaluated: String,
    file_is: &str,
    file: (usize, usize),
    today: (usize, usize),
    today_per_seed: Vec<(u64, usize, usize)>,
    start: Instant,
) -> RowCheck {
    RowCheck {
        id: rep.id.clone(),
        evaluated,
        file_is: file_is.into(),
        file,
        today_per_seed,
        today,
        overlap: intervals_overlap(file, today),
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// The batch experiment that retrains a row: its data, its agent file, the learned agent on
/// its seeds.
fn experiment_text(
    rep: &Reproduce,
    episodes: u64,
    device: Option<crate::device::Device>,
    file: &Path,
    db: &Path,
) -> anyhow::Result<String> {
    // A path is written absolute so the experiment file works from anywhere; a shipped
    // agent's name stays a name.
    let agent = match std::fs::canonicalize(&rep.agent) {
        Ok(p) if Path::new(&rep.agent).is_file() => p.display().to_string(),
        _ => rep.agent.clone(),
    };
    let mut t = toml::Table::new();
    t.insert("name".into(), format!("reproduce-{}", rep.id).into());
    t.insert(
        "description".into(),
        format!(
            "hjepa reproduce {} --from-scratch: collect, train {}, evaluate",
            rep.id, rep.agent
        )
        .into(),
    );
    t.insert("agents".into(), vec![toml::Value::from(agent)].into());
    t.insert("actors".into(), vec![toml::Value::from("learned")].into());
    let seeds: Vec<toml::Value> = rep.seeds.iter().map(|&s| (s as i64).into()).collect();
    t.insert("seeds".into(), seeds.into());
    t.insert("episodes".into(), (episodes as i64).into());
    if let Some(d) = device {
        t.insert("device".into(), d.to_string().into());
    }
    let mut train = toml::Table::new();
    train.insert(
        "collect_episodes".into(),
        (rep.train.collect_episodes as i64).into(),
    );
    train.insert(
        "collect_seed".into(),
        (rep.train.collect_seed as i64).into(),
    );
    train.insert("policy".into(), toml::Value::try_from(rep.train.policy)?);
    t.insert("train".into(), train.into());
    Ok(format!(
        "# Written by `hjepa reproduce {id} --from-scratch`; rerunning it resumes. On Slurm:\n\
         #   sbatch --array=0-7 experiments/slurm/array.sbatch {file}\n\
         #   hjepa merge --out {db} results/reproduce-{id}/shard-*-of-8.sqlite\n\
         #   hjepa reproduce {id} --from-scratch   # compares, nothing left to run\n{}",
        toml::to_string(&t)?,
        id = rep.id,
        file = file.display(),
        db = db.display(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_overlap_as_wilson_intervals_do() {
        assert!(intervals_overlap((193, 200), (10, 10)));
        assert!(intervals_overlap((96, 100), (90, 100)));
        assert!(!intervals_overlap((96, 100), (70, 100)));
        assert!(!intervals_overlap((0, 100), (10, 10)));
    }
}
