//! The README's results table is generated from docs/results/table.toml: this test renders
//! the file and fails when the README's table differs (showing the expected table);
//! `HJEPA_WRITE_README=1` writes it into the README instead.

use std::path::Path;

use hjepa::run::results::{ResultsTable, Row};

const BEGIN: &str =
    "<!-- results table: generated from docs/results/table.toml (tests/results_table.rs) -->";
const END: &str = "<!-- end of results table -->";

#[test]
fn the_readme_table_is_the_results_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("docs/results/table.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let table = ResultsTable::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    for r in &table.row {
        assert!(
            root.join("docs/results").join(&r.page).is_file(),
            "{}: no page {}",
            r.task,
            r.page
        );
        if let Some(rep) = &r.reproduce {
            assert!(
                root.join("models")
                    .join(&rep.model)
                    .join("manifest.json")
                    .is_file(),
                "{}: reproduce.model {:?} is not in models/",
                r.task,
                rep.model
            );
        }
    }
    let want = table.render();
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
        reproduce: None,
    };
    assert_eq!(
        r.success(),
        "**299/300** over 3 seeds: 100/100, 100/100, 99/100 (CI 98.1–99.9 %)"
    );
}
