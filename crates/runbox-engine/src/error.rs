//! Errors an execution request can meet before or around the sandbox. Each has a stable machine-readable code; the
//! HTTP layer maps them to statuses, the CLI prints them.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    /// A request field is invalid; `field` names it.
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    #[error("unknown language {0:?}")]
    UnknownLanguage(String),
    #[error("language {id} is not available on this host: {reason}")]
    LanguageUnavailable { id: String, reason: String },
    #[error("cannot load the language catalogue: {0}")]
    Catalogue(#[from] runbox_lang::LangError),
    #[error("workspace: {0}")]
    Workspace(#[from] runbox_sandbox::workspace::WorkspaceError),
    #[error("sandbox: {0}")]
    Sandbox(#[from] runbox_sandbox::SandboxError),
}

impl EngineError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> EngineError {
        EngineError::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Stable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::InvalidField { .. } => "invalid_field",
            EngineError::UnknownLanguage(_) => "unknown_language",
            EngineError::LanguageUnavailable { .. } => "language_unavailable",
            EngineError::Catalogue(_) => "catalogue_error",
            EngineError::Workspace(_) | EngineError::Sandbox(_) => "sandbox_error",
        }
    }

    /// Whether the caller is at fault (4xx) rather than the host (5xx).
    pub fn is_client_error(&self) -> bool {
        matches!(self, EngineError::InvalidField { .. } | EngineError::UnknownLanguage(_))
    }
}
