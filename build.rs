//! Bakes an rpath to libtorch into every binary so `cargo run`, the tests and the installed
//! binary find it without LD_LIBRARY_PATH. torch-sys declares `links = "tch"`, so its build
//! script's `cargo:libtorch_lib=...` reaches us as DEP_TCH_LIBTORCH_LIB.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
