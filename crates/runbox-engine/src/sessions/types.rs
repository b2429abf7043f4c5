//! The public types of sessions: requests, answers, errors and operator settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::request::LimitOverrides;
use crate::EngineError;

#[derive(Debug, Error)]
pub enum SessionError {
    #[error("session not found")]
    NotFound,
    #[error("the session is dead: {0}")]
    Dead(String),
    #[error("the session already has {0} executions waiting")]
    Busy(usize),
    #[error("{0}")]
    TooMany(String),
    #[error("language {0} has no sessions")]
    Unsupported(String),
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    #[error("the session's worker did not start: {0}")]
    StartFailed(String),
    #[error("file not found")]
    FileNotFound,
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("file: {0}")]
    Io(String),
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{0}")]
    KeyCapacity(String),
    #[error(transparent)]
    File(#[from] crate::files::FileError),
}

impl SessionError {
    pub fn code(&self) -> &'static str {
        match self {
            SessionError::NotFound => "not_found",
            SessionError::Dead(_) => "session_dead",
            SessionError::Busy(_) => "session_busy",
            SessionError::TooMany(_) => "too_many_sessions",
            SessionError::Unsupported(_) => "sessions_unsupported",
            SessionError::InvalidField { .. } => "invalid_field",
            SessionError::StartFailed(_) => "session_start_failed",
            SessionError::FileNotFound => "not_found",
            SessionError::Engine(e) => e.code(),
            SessionError::Io(_) => "file_error",
            SessionError::QuotaExceeded(_) => "workspace_quota_exceeded",
            SessionError::KeyCapacity(_) => "key_capacity_exceeded",
            SessionError::File(_) => "file_error",
        }
    }

    pub(super) fn invalid(field: &str, message: impl Into<String>) -> SessionError {
        SessionError::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Operator settings for sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionLimits {
    pub idle_timeout_s: u64,
    pub max_idle_timeout_s: u64,
    pub max_lifetime_s: u64,
    pub max_per_owner: usize,
    pub max_total: usize,
    /// Executions waiting behind the running one before new ones get `session_busy`.
    pub max_queued: usize,
    /// Time a cell has to stop after SIGINT before the session is killed.
    pub interrupt_grace_ms: u64,
    pub default_timeout_ms: u64,
    pub default_memory_mb: u64,
    /// Bytes of stdout, and of stderr, kept per execution.
    pub output_bytes: usize,
    /// Rich outputs (`display()` calls, figures, the result's rich forms) kept per execution; later ones are
    /// dropped and the result says `outputs_truncated`.
    pub rich_outputs_per_cell: usize,
    /// Bytes of rich output data (the result's MIME bundle included) kept per execution.
    pub rich_output_bytes: usize,
    /// MiB of files all the sessions of one key may hold in their workspaces (uploads past it get 413
    /// `workspace_quota_exceeded`). Default: an eighth of the machine's memory (workspaces live in memory).
    pub files_per_key_mb: u64,
    /// MiB of files all sessions together may hold in their workspaces. Default: a quarter of the machine's memory.
    pub files_total_mb: u64,
    /// Sessions started ahead of time per language, so that creating one (with default settings) only takes it.
    pub warm: BTreeMap<String, usize>,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            idle_timeout_s: 600,
            max_idle_timeout_s: 3600,
            max_lifetime_s: 8 * 3600,
            max_per_owner: 64,
            max_total: 2000,
            max_queued: 16,
            interrupt_grace_ms: 2000,
            default_timeout_ms: 30_000,
            default_memory_mb: 512,
            output_bytes: 1 << 20,
            rich_outputs_per_cell: 64,
            rich_output_bytes: 8 << 20,
            files_per_key_mb: (crate::machine::memory_bytes() >> 20) / 8,
            files_total_mb: (crate::machine::memory_bytes() >> 20) / 4,
            warm: [("python".to_string(), 1)].into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    #[serde(default = "default_language")]
    pub language: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: LimitOverrides,
    /// Seconds without executions before the session ends; at most the operator's maximum (3600 by default).
    #[serde(default, deserialize_with = "crate::request::whole::opt_u64")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3600))]
    pub idle_timeout_s: Option<u64>,
}

impl Default for CreateSession {
    fn default() -> Self {
        CreateSession {
            language: default_language(),
            env: BTreeMap::new(),
            limits: LimitOverrides::default(),
            idle_timeout_s: None,
        }
    }
}

fn default_language() -> String {
    "python".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    Idle,
    Busy,
    Dead,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    pub id: String,
    pub language: String,
    pub state: SessionState,
    /// Why the session died, when it did.
    pub dead_reason: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    pub last_used_at: u64,
    pub executions: u64,
    /// Resident memory of every process of the session.
    pub memory_bytes: u64,
    pub idle_timeout_s: u64,
}

/// One rich output: a MIME type and its data (text, or base64 for binary types such as image/png).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RichOutput {
    pub mime_type: String,
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CellError {
    pub name: String,
    pub value: String,
    pub traceback: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CellStatus {
    Ok,
    Error,
    Interrupted,
    Timeout,
    Exit,
    MemoryLimit,
}

impl CellStatus {
    /// The status as the API spells it (`memory_limit`).
    pub fn as_str(self) -> &'static str {
        match self {
            CellStatus::Ok => "ok",
            CellStatus::Error => "error",
            CellStatus::Interrupted => "interrupted",
            CellStatus::Timeout => "timeout",
            CellStatus::Exit => "exit",
            CellStatus::MemoryLimit => "memory_limit",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CellResult {
    pub status: CellStatus,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// The value of the trailing expression, by MIME type (`text/plain` always, richer forms when available).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<BTreeMap<String, String>>,
    /// Rich outputs in order: `display()` calls, figures, then the result's richest forms.
    pub outputs: Vec<RichOutput>,
    /// True when rich outputs (or forms of the result) were dropped because the cell produced more than the
    /// server keeps per execution (`sessions.rich_outputs_per_cell` outputs, `sessions.rich_output_bytes` bytes).
    pub outputs_truncated: bool,
    pub error: Option<CellError>,
    pub exit_code: Option<i32>,
    pub execution_count: u64,
    pub duration_ms: u64,
}

/// What a running cell produces, as it happens.
#[derive(Debug)]
pub enum CellEvent<'a> {
    Stdout(&'a [u8]),
    Stderr(&'a [u8]),
    Display(&'a RichOutput),
}
