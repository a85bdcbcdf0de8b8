//! Bakes an rpath to libtorch into every binary so `cargo run`, the tests and the installed
//! binary find it without LD_LIBRARY_PATH. torch-sys declares `links = "tch"`, so its build
//! script's `cargo:libtorch_lib=...` reaches us as DEP_TCH_LIBTORCH_LIB.
//!
//! Also bakes in the git revision the binary was built from (`HJEPA_GIT_REV`, with `-dirty`
//! when tracked sources differed from it), which batch runs record: asking git at run time
//! would describe the checkout as it is then, not the code that ran.
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    // A commit, checkout or staging changes these; an edited source reruns us through `src`.
    // (Only paths that exist: cargo reruns a build script whose watched path is missing.)
    for path in [".git/HEAD", ".git/index", "src", "build.rs", "Cargo.toml"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let rev = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(rev) => match git(&[
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            "src",
            "Cargo.toml",
            "Cargo.lock",
            "build.rs",
        ]) {
            Some(s) if !s.is_empty() => format!("{rev}-dirty"),
            _ => rev,
        },
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=HJEPA_GIT_REV={rev}");
}
