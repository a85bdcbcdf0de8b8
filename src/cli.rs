//! The `hjepa` command line: clap-derive subcommands whose doc comments are their `--help`.
//! The library does the work; this file parses, dispatches and maps errors to exit codes
//! (2 for bad input, 1 for anything else).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::data::PolicyKind;
use crate::error::InputError;
use crate::sim::Scene;

#[derive(Parser, Debug)]
#[command(name = "hjepa", version, about = "A 2-D physics sandbox for H-JEPA world models and planners")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate a scene file and print a summary of what it declares.
    Check {
        /// A scene file, or the name of a shipped scene (two_rooms, wall, push_t, point_maze_u,
        /// point_maze_medium, maze_large).
        scene: String,
    },
    /// Run a scene with a scripted policy and print a report (success rate with a 95% CI,
    /// steps to success, final distance, speed).
    Run {
        #[arg(long, default_value = "two_rooms")]
        scene: String,
        #[arg(long, value_enum, default_value = "waypoint")]
        policy: PolicyKind,
        #[arg(long, default_value_t = 20)]
        episodes: u64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Heading noise of the scripted policies (radians, std).
        #[arg(long, default_value_t = 0.3)]
        noise: f32,
        /// Also write the first episode's frames as PNGs into this folder.
        #[arg(long)]
        frames: Option<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("HJEPA_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if is_input_error(&e) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Whether the error (or any cause) is bad input the user can fix.
pub fn is_input_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<InputError>())
}

/// Loads a scene by path or shipped name.
pub fn load_scene(arg: &str) -> anyhow::Result<Arc<Scene>> {
    Ok(Arc::new(Scene::load(&Scene::resolve_path(arg))?))
}

fn dispatch(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Check { scene } => {
            let path = Scene::resolve_path(&scene);
            let s = Scene::load(&path)?;
            println!("{}: ok\n{}", path.display(), s.describe());
            Ok(())
        }
        Command::Run { scene, policy, episodes, seed, noise, frames } => {
            let scene = load_scene(&scene)?;
            if let Some(dir) = frames {
                crate::episodes::write_frames(scene.clone(), policy, noise, seed, &dir)?;
                println!("frames of the first episode written to {}", dir.display());
            }
            let report = crate::episodes::run_episodes(scene, policy, noise, episodes, seed);
            println!("{}", report.summary());
            Ok(())
        }
    }
}
