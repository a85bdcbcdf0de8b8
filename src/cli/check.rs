//! `hjepa check`: validate a scene file and describe it.

use crate::sim::Scene;

// The flags of `hjepa check` (its --help text is the doc comment on `Command::Check`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A scene file, or the name of a shipped scene (two_rooms, wall, push_t, point_maze_u,
    /// point_maze_medium, maze_large).
    scene: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let path = Scene::resolve_path(&args.scene);
    let s = Scene::load(&path)?;
    println!("{}: ok\n{}", path.display(), s.describe());
    Ok(())
}
