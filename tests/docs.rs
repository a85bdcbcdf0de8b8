//! The reference pages stay true to the parser: every key an agent file may hold is listed in
//! docs/agents.md, and every key listed there is one the parser accepts.
// Needs the world model (the default `torch` feature).
#![cfg(feature = "torch")]

use std::collections::BTreeSet;
use std::path::Path;

use hjepa::agent::AgentFile;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `doc` with `value` put at `path` (tables created where missing).
fn with_value(doc: &toml::Table, path: &[String], value: toml::Value) -> toml::Table {
    let mut doc = doc.clone();
    let mut table = &mut doc;
    for key in &path[..path.len() - 1] {
        let entry = table
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        table = entry.as_table_mut().unwrap();
    }
    table.insert(path[path.len() - 1].clone(), value);
    doc
}

/// The keys the table at `path` accepts, read off the parser's refusal of an unknown key
/// there ("unknown field `zzz`, expected one of `a`, `b`"); None when `path` is no table.
fn keys_of_table(doc: &toml::Table, path: &[String]) -> Option<Vec<String>> {
    let mut probe = path.to_vec();
    probe.push("zzz_not_a_key".into());
    let text = toml::to_string(&with_value(doc, &probe, toml::Value::Integer(1))).unwrap();
    let err = AgentFile::parse(&text, Path::new("probe.toml")).err()?;
    let message = err.message;
    if !message.contains("unknown field `zzz_not_a_key`") {
        return None;
    }
    let expected = message.split("expected").nth(1)?;
    Some(
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

/// Every key path (`level1.loss.std`) an agent file accepts, tables included.
fn accepted_keys() -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest_dir().join("agents/two_rooms.toml")).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    let mut found = BTreeSet::new();
    let mut tables = vec![Vec::<String>::new()];
    while let Some(path) = tables.pop() {
        let keys = keys_of_table(&doc, &path).expect("the top level is a table");
        for key in keys {
            let mut child = path.clone();
            child.push(key);
            found.insert(child.join("."));
            // A key is a table when an unknown key inside it is refused as unknown.
            let probe = with_value(&doc, &child, toml::Value::Table(toml::Table::new()));
            if keys_of_table(&probe, &child).is_some() {
                tables.push(child);
            }
        }
    }
    found
}

/// The keys docs/agents.md lists: the first cell of each table row, `section.key`.
fn documented_keys() -> BTreeSet<String> {
    let page = std::fs::read_to_string(manifest_dir().join("docs/agents.md")).unwrap();
    page.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        // Key rows only (other tables on the page list files, `[sections]`, values).
        .filter(|k| {
            k.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn every_agent_file_key_is_documented_and_every_documented_key_is_accepted() {
    let accepted = accepted_keys();
    assert!(
        accepted.len() > 80 && accepted.contains("level1.loss.std"),
        "the parser probe found too little: {accepted:?}"
    );
    let documented = documented_keys();
    let tables: BTreeSet<String> = accepted
        .iter()
        .filter(|k| accepted.iter().any(|o| o.starts_with(&format!("{k}."))))
        .cloned()
        .collect();
    let missing: Vec<&String> = accepted
        .iter()
        .filter(|k| !tables.contains(*k) && !documented.contains(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/agents.md does not list these keys the parser accepts: {missing:?}"
    );
    let unknown: Vec<&String> = documented
        .iter()
        .filter(|k| !accepted.contains(*k))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/agents.md lists keys the parser refuses: {unknown:?}"
    );
}

/// Every relative link in README.md and docs/ names a file that exists, and the README stays
/// a front page.
#[test]
fn the_readme_is_a_front_page_and_every_relative_link_resolves() {
    let readme = manifest_dir().join("README.md");
    let lines = std::fs::read_to_string(&readme).unwrap().lines().count();
    assert!(
        lines <= 200,
        "README.md has {lines} lines; detail belongs in docs/"
    );
    let mut pages = vec![readme];
    let mut dirs = vec![manifest_dir().join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "md") {
                pages.push(p);
            }
        }
    }
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for part in text.split("](").skip(1) {
            let target = part.split(')').next().unwrap().split('#').next().unwrap();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            if !page.parent().unwrap().join(target).exists() {
                broken.push(format!("{}: {target}", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links: {broken:#?}");
}
