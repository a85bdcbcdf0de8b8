//! Errors a user can fix: they name the file, the field (or line/column) and what was expected,
//! and the binary maps them to exit code 2.

use std::fmt;
use std::path::{Path, PathBuf};

/// Bad input: a scene, dataset, agent file or argument that cannot be used as given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {}{message}", file.display(), located(location))]
pub struct InputError {
    pub file: PathBuf,
    /// Where in the file: a field path (`bodies[0].shape.radius`) or `line 3, column 7`.
    pub location: String,
    pub message: String,
}

fn located(location: &str) -> String {
    if location.is_empty() {
        String::new()
    } else {
        format!("{location}: ")
    }
}

impl InputError {
    pub fn new(file: &Path, location: impl Into<String>, message: impl Into<String>) -> Self {
        InputError {
            file: file.to_path_buf(),
            location: location.into(),
            message: message.into(),
        }
    }
}

/// What is wrong with one key of a configuration, found before the file it came from is
/// known (a planner's budget, a device name): [`ConfigError::in_file`] places it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A value outside its range, or of the wrong form.
    #[error("{key}: expected {expected}, found {found}")]
    Expected {
        key: String,
        expected: String,
        found: String,
    },
    /// A name that is none of the allowed ones.
    #[error("{key}: expected one of {}, found {found:?}", allowed.join(", "))]
    NotOneOf {
        key: String,
        allowed: Vec<String>,
        found: String,
    },
    /// A setting that needs another one, or cannot go with it: `why` says which.
    #[error("{key}: {why}")]
    Needs { key: String, why: String },
}

impl ConfigError {
    pub fn expected(
        key: impl Into<String>,
        expected: impl Into<String>,
        found: impl fmt::Display,
    ) -> Self {
        ConfigError::Expected {
            key: key.into(),
            expected: expected.into(),
            found: found.to_string(),
        }
    }

    pub fn needs(key: impl Into<String>, why: impl Into<String>) -> Self {
        ConfigError::Needs {
            key: key.into(),
            why: why.into(),
        }
    }

    /// The key at fault (`planning.planner.samples`).
    pub fn key(&self) -> &str {
        match self {
            ConfigError::Expected { key, .. }
            | ConfigError::NotOneOf { key, .. }
            | ConfigError::Needs { key, .. } => key,
        }
    }

    /// The same error with its key under `prefix` (`samples` -> `planning.planner.samples`).
    pub fn under(mut self, prefix: &str) -> Self {
        let key = match &mut self {
            ConfigError::Expected { key, .. }
            | ConfigError::NotOneOf { key, .. }
            | ConfigError::Needs { key, .. } => key,
        };
        *key = format!("{prefix}.{key}");
        self
    }

    /// What is wrong, without the key.
    pub fn problem(&self) -> String {
        let keyed = self.to_string();
        keyed[self.key().len() + 2..].to_string()
    }

    /// Placed in the file it came from.
    pub fn in_file(self, file: &Path) -> InputError {
        InputError::new(file, self.key().to_string(), self.problem())
    }
}

impl InputError {
    /// A TOML parse error in `text` (read from `file`), located by line and column.
    pub fn from_toml(file: &Path, text: &str, e: &toml::de::Error) -> InputError {
        let loc = e
            .span()
            .map(|s| {
                let line = text[..s.start].matches('\n').count() + 1;
                let col = s.start - text[..s.start].rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {col}")
            })
            .unwrap_or_default();
        InputError::new(file, loc, e.message().to_string())
    }
}

/// An action the environment refuses (NaN, or out of range where the scene says `Reject`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid action {action:?}: {reason}")]
pub struct ActionError {
    pub action: [f32; 2],
    pub reason: String,
}

/// `std::fs::create_dir_all` whose failure is bad input naming the folder (an `--out` that
/// is a file, a parent without write permission), not a bare "File exists (os error 17)".
pub fn create_dir_all(dir: &Path) -> Result<(), InputError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        let file_in_the_way = dir
            .ancestors()
            .find(|a| a.is_file())
            .map(|f| format!(" ({} is a file, not a folder)", f.display()))
            .unwrap_or_default();
        InputError::new(
            dir,
            "",
            format!("cannot create this folder: {e}{file_in_the_way}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_error_is_placed_under_its_table_and_in_its_file() {
        let e = ConfigError::expected("samples", "an integer >= 1", 0).under("planning.planner");
        assert_eq!(e.key(), "planning.planner.samples");
        assert_eq!(
            e.to_string(),
            "planning.planner.samples: expected an integer >= 1, found 0"
        );
        let placed = e.in_file(Path::new("agents/a.toml"));
        assert_eq!(placed.location, "planning.planner.samples");
        assert_eq!(placed.message, "expected an integer >= 1, found 0");
        assert_eq!(
            placed.to_string(),
            "agents/a.toml: planning.planner.samples: expected an integer >= 1, found 0"
        );
        let choice = ConfigError::NotOneOf {
            key: "device".into(),
            allowed: vec!["cpu".into(), "cuda".into()],
            found: "gpu".into(),
        };
        assert_eq!(choice.problem(), "expected one of cpu, cuda, found \"gpu\"");
        let unplaced = InputError::new(Path::new("f.toml"), "", "cannot read");
        assert_eq!(unplaced.to_string(), "f.toml: cannot read");
    }
}
