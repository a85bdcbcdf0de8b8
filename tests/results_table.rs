//! The README's results table is generated from docs/results/table.toml: this test renders
//! the file and fails when the README's table differs (showing the expected table);
//! `HJEPA_WRITE_README=1` writes it into the README instead.

use std::path::Path;

use hjepa::data::episodes::wilson_interval;
use serde::Deserialize;

const BEGIN: &str =
    "<!-- results table: generated from docs/results/table.toml (tests/results_table.rs) -->";
const END: &str = "<!-- end of results table -->";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    row: Vec<Row>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    task: String,
    page: String,
    #[serde(default)]
    label: String,
    observation: String,
    /// (successes, episodes) per evaluation: seeds, trainings, or one evaluation.
    runs: Vec<(usize, usize)>,
    runs_are: String,
    note: String,
    random_floor: String,
    oracle: String,
    planning: String,
    machine: String,
    command: String,
}

fn success(r: &Row) -> String {
    let (k, n) = r.runs.iter().fold((0, 0), |(k, n), (a, b)| (k + a, n + b));
    if n == 0 {
        return "not measured".into();
    }
    let (lo, hi) = wilson_interval(k, n);
    let ci = format!("CI {:.1}–{:.1} %", 100.0 * lo, 100.0 * hi);
    let mut s = if r.runs.len() == 1 {
        format!("**{k}/{n}** = {:.1} % ({ci})", 100.0 * k as f64 / n as f64)
    } else {
        let each: Vec<String> = r.runs.iter().map(|(a, b)| format!("{a}/{b}")).collect();
        format!(
            "**{k}/{n}** over {} {}: {} ({ci})",
            r.runs.len(),
            r.runs_are,
            each.join(", ")
        )
    };
    if !r.note.is_empty() {
        s += &format!("; {}", r.note);
    }
    s
}

fn render(table: &Table) -> String {
    let mut out = String::from(
        "| task | observation | success (count/episodes, 95 % CI) | random floor | oracle | planning per episode | measured on | reproduce |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in &table.row {
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
            success(r),
            r.random_floor,
            r.oracle,
            r.planning,
            r.machine,
            r.command
        );
    }
    out
}

#[test]
fn the_readme_table_is_the_results_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("docs/results/table.toml")).unwrap();
    let table: Table =
        toml::from_str(&text).unwrap_or_else(|e| panic!("docs/results/table.toml: {e}"));
    for r in &table.row {
        assert!(
            root.join("docs/results").join(&r.page).is_file(),
            "{}: no page {}",
            r.task,
            r.page
        );
        assert!(
            r.runs.iter().all(|(k, n)| k <= n && *n > 0),
            "{}: runs {:?}",
            r.task,
            r.runs
        );
    }
    let want = render(&table);
    let readme_path = root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let (Some(b), Some(e)) = (readme.find(BEGIN), readme.find(END)) else {
        panic!("README.md lacks the markers {BEGIN:?} and {END:?}");
    };
    let have = readme[b + BEGIN.len()..e].trim_start_matches('\n');
    if have != want {
        if std::env::var_os("HJEPA_WRITE_README").is_some() {
            let new = format!("{}{BEGIN}\n{want}{}", &readme[..b], &readme[e..]);
            std::fs::write(&readme_path, new).unwrap();
            return;
        }
        panic!("README.md's results table differs from docs/results/table.toml; expected:\n{want}\n(HJEPA_WRITE_README=1 writes it)");
    }
}

#[test]
fn a_wilson_interval_is_printed_as_the_readme_shows_it() {
    let r = Row {
        task: "t".into(),
        page: "p.md".into(),
        label: String::new(),
        observation: String::new(),
        runs: vec![(100, 100), (100, 100), (99, 100)],
        runs_are: "seeds".into(),
        note: String::new(),
        random_floor: String::new(),
        oracle: String::new(),
        planning: String::new(),
        machine: String::new(),
        command: String::new(),
    };
    assert_eq!(
        success(&r),
        "**299/300** over 3 seeds: 100/100, 100/100, 99/100 (CI 98.1–99.9 %)"
    );
}
