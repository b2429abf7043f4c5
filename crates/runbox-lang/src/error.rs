//! The one error type of the crate.
//!
//! Exists so every problem with a language file names the file and the field
//! (`languages/go.toml: run.argv[2]: unknown placeholder {foo}`): an operator
//! editing an override directory must be able to fix it from the message alone.

use std::io;
use std::path::{Path, PathBuf};

/// Why the catalogue could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LangError {
    /// A language file could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// The override directory could not be listed.
    #[error("{}: cannot list the language override directory: {source}", dir.display())]
    OverrideDir {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// The file is not valid TOML or does not have the schema's shape (unknown
    /// field, wrong type, missing field).
    #[error("{}: {}{message}{}", file.display(), field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default(), line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Parse {
        /// The file.
        file: PathBuf,
        /// Dotted path of the offending field, when known (`run.timeout_ms`).
        field: Option<String>,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },

    /// The file parsed but a value breaks a rule of the schema, or clashes
    /// with another language (duplicate id, alias or extension).
    #[error("{}: {field}: {message}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Dotted path of the offending field (`run.argv[2]`, `aliases[0]`).
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl LangError {
    /// The file (or override directory) the error is about.
    pub fn file(&self) -> &Path {
        match self {
            LangError::Read { file, .. } | LangError::Parse { file, .. } | LangError::Invalid { file, .. } => file,
            LangError::OverrideDir { dir, .. } => dir,
        }
    }

    /// The offending field, when the error is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            LangError::Parse { field, .. } => field.as_deref(),
            LangError::Invalid { field, .. } => Some(field),
            LangError::Read { .. } | LangError::OverrideDir { .. } => None,
        }
    }

    pub(crate) fn invalid(file: &Path, field: impl Into<String>, message: impl Into<String>) -> Self {
        LangError::Invalid {
            file: file.to_path_buf(),
            field: field.into(),
            message: message.into(),
        }
    }
}
