//! Errors a user can fix: they name the file, the field (or line/column) and what was expected,
//! and the binary maps them to exit code 2.

use std::fmt;
use std::path::{Path, PathBuf};

/// Bad input: a scene, dataset, agent file or argument that cannot be used as given.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    pub file: PathBuf,
    /// Where in the file: a field path (`bodies[0].shape.radius`) or `line 3, column 7`.
    pub location: String,
    pub message: String,
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

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.location,
                self.message
            )
        }
    }
}

impl std::error::Error for InputError {}

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
