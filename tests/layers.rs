//! The crate's layers (docs/architecture.md): every folder under src/ imports only from the
//! layers below it, so the data flow sandbox → data → model → cost → plan → agent → run →
//! viewer → cli can be read off the folders and no two modules depend on each other.
//! The torch-free layers (sim, data) never name tch, so the sandbox builds without libtorch.

use std::fs;
use std::path::{Path, PathBuf};

/// Lowest first. A module may import from modules of lower rank only.
const LAYERS: &[&str] = &[
    "error", "limits", "device", "sim", "data", "model", "cost", "plan", "agent", "run", "viewer",
    "cli",
];

/// Layers that must build without libtorch (`cargo build --no-default-features`).
const TORCH_FREE: &[&str] = &["error", "limits", "device", "sim", "data"];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == module)
}

/// The top-level module a file under `src/` belongs to (`sim/env.rs` → `sim`).
fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::X` a source text names outside comments, with its line number, including
/// the members of grouped imports (`use crate::{a::b, c};`).
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let code: Vec<String> = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => l[..i].to_string(),
            None => l.to_string(),
        })
        .collect();
    let mut found = Vec::new();
    for (n, line) in code.iter().enumerate() {
        let mut rest = line.as_str();
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((n + 1, name));
            }
            rest = after;
        }
    }
    // Grouped: `use crate::{a::x, b};` may span lines.
    let joined = code.join("\n");
    let mut rest = joined.as_str();
    let mut offset = 0;
    while let Some(i) = rest.find("crate::{") {
        let start = i + "crate::{".len();
        let mut depth = 1;
        let mut end = start;
        for (j, c) in rest[start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = start + j;
                break;
            }
        }
        let line = joined[..offset + i].matches('\n').count() + 1;
        let mut depth = 0;
        let mut item = String::new();
        for c in rest[start..end].chars().chain(std::iter::once(',')) {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        found.push((line, name));
                    }
                    item.clear();
                    continue;
                }
                _ => {}
            }
            item.push(c);
        }
        offset += end;
        rest = &joined[offset..];
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every import that goes up a layer, sideways between modules, or out of the table.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let me = module_of(rel);
        if me == "lib" || me == "main" {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        let Some(my_rank) = rank(&me) else {
            bad.push(format!(
                "src/{}: module `{me}` is in no layer (add it to LAYERS and docs/architecture.md)",
                rel.display()
            ));
            continue;
        };
        for (line, target) in crate_paths(&text) {
            if target == me {
                continue;
            }
            match rank(&target) {
                Some(r) if r < my_rank => {}
                Some(_) => bad.push(format!(
                    "src/{}:{line}: `{me}` imports `crate::{target}`, which is not below it",
                    rel.display()
                )),
                None => bad.push(format!(
                    "src/{}:{line}: `crate::{target}` is no layer's module",
                    rel.display()
                )),
            }
        }
        if TORCH_FREE.contains(&me.as_str()) {
            for (n, l) in text.lines().enumerate() {
                let code = l.split("//").next().unwrap();
                if code.contains("tch::") || code.contains("use tch") {
                    bad.push(format!(
                        "src/{}:{}: the torch-free layer `{me}` names tch",
                        rel.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    bad
}

#[test]
fn no_module_imports_from_its_own_layer_or_above() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(
        bad.is_empty(),
        "{} layer violations:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn upward_grouped_and_commented_imports_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    fs::create_dir_all(src.join("sim")).unwrap();
    fs::create_dir_all(src.join("plan")).unwrap();
    // A doc comment may name anything; code may not reach up.
    fs::write(
        src.join("sim/world.rs"),
        "//! see crate::plan\nuse crate::error::InputError;\nfn f() { crate::agent::x(); }\n",
    )
    .unwrap();
    fs::write(
        src.join("plan/mod.rs"),
        "use crate::{\n    sim::Env,\n    cli::{a, b},\n};\nuse tch::Tensor;\n",
    )
    .unwrap();
    fs::write(
        src.join("sim/render.rs"),
        "fn g() -> tch::Tensor { todo!() }\n",
    )
    .unwrap();
    let bad = violations(src);
    assert_eq!(bad.len(), 3, "{bad:#?}");
    assert!(bad[0].starts_with("src/plan/mod.rs:1: `plan` imports `crate::cli`"));
    assert!(bad[1].starts_with("src/sim/render.rs:1: the torch-free layer `sim` names tch"));
    assert!(bad[2].starts_with("src/sim/world.rs:3: `sim` imports `crate::agent`"));
}
