//! The shipped scenes (`scenes/*.ron`) and agent files (`agents/*.toml`), embedded in the
//! binary so that an installed `hjepa` finds them from any folder. A file of the same name
//! under `./scenes` or `./agents` takes precedence over the embedded copy.

use std::path::{Path, PathBuf};

macro_rules! shipped {
    ($dir:literal, $ext:literal, [$($name:literal),* $(,)?]) => {
        &[$(($name, include_str!(concat!("../../", $dir, "/", $name, ".", $ext)))),*]
    };
}

/// (name, text) of every shipped scene.
pub const SCENES: &[(&str, &str)] = shipped!(
    "scenes",
    "ron",
    [
        "maze_large",
        "point_maze_medium",
        "point_maze_u",
        "push_t",
        "two_rooms",
        "wall"
    ]
);

/// (name, text) of every shipped agent file.
pub const AGENTS: &[(&str, &str)] = shipped!(
    "agents",
    "toml",
    [
        "maze_large",
        "maze_large_hwm",
        "point_maze_medium",
        "point_maze_u",
        "push_t",
        "push_t_committee",
        "push_t_state",
        "push_t_state_body",
        "push_t_state_body_step",
        "two_rooms",
        "wall",
    ]
);

/// Which shipped folder a resolved path names: `scenes/NAME.ron` or `agents/NAME.toml`.
#[derive(Clone, Copy)]
pub enum Kind {
    Scene,
    Agent,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::Scene => "scenes",
            Kind::Agent => "agents",
        }
    }

    fn ext(self) -> &'static str {
        match self {
            Kind::Scene => "ron",
            Kind::Agent => "toml",
        }
    }

    fn files(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Scene => SCENES,
            Kind::Agent => AGENTS,
        }
    }
}

/// A command-line argument as a path: an existing path, or anything that looks like one,
/// as given; otherwise a shipped name (`two_rooms`) as `scenes/two_rooms.ron` (or
/// `agents/two_rooms.toml`), which [`read`] finds on disk or embedded.
pub fn resolve(arg: &str, kind: Kind) -> PathBuf {
    let p = PathBuf::from(arg);
    if p.exists() || arg.contains('/') || arg.ends_with(&format!(".{}", kind.ext())) {
        return p;
    }
    Path::new(kind.dir()).join(format!("{arg}.{}", kind.ext()))
}

/// The embedded text a relative `scenes/NAME.ron` or `agents/NAME.toml` stands for.
pub fn embedded(path: &Path, kind: Kind) -> Option<&'static str> {
    if path.parent() != Some(Path::new(kind.dir()))
        || path.extension().and_then(|e| e.to_str()) != Some(kind.ext())
    {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    kind.files()
        .iter()
        .find(|(name, _)| *name == stem)
        .map(|(_, text)| *text)
}

/// A scene or agent file's text: from disk when the file exists there, else the embedded
/// copy of a shipped one; the error is the file's own when neither is found.
pub fn read(path: &Path, kind: Kind) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            embedded(path, kind).map(str::to_string).ok_or(e)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_file_is_embedded_and_names_resolve_to_it() {
        for kind in [Kind::Scene, Kind::Agent] {
            let on_disk = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(kind.dir()))
                .unwrap()
                .count();
            assert_eq!(
                kind.files().len(),
                on_disk,
                "{}: embed every file",
                kind.dir()
            );
            for (name, text) in kind.files() {
                let path = resolve(name, kind);
                assert_eq!(embedded(&path, kind), Some(*text));
            }
        }
        assert_eq!(
            embedded(Path::new("elsewhere/two_rooms.ron"), Kind::Scene),
            None
        );
        assert_eq!(
            embedded(Path::new("scenes/two_rooms.toml"), Kind::Scene),
            None
        );
    }
}
