//! What every job store shares: the records a store hands out ([`JobView`], [`Claimed`], [`ExtraRecord`]) and its
//! errors ([`JobError`], [`InsertError`]), so that the SQLite and PostgreSQL stores and their callers speak one
//! language.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
#[error("job store: {message}")]
pub struct JobError {
    message: String,
    /// SQLite could not write for want of space (`SQLITE_FULL`): the data directory's disk is full.
    disk_full: bool,
    /// The shared database could not be reached (nothing is wrong with the request).
    unavailable: bool,
}

impl JobError {
    pub(crate) fn new(message: String) -> JobError {
        JobError {
            message,
            disk_full: false,
            unavailable: false,
        }
    }

    /// The shared database cannot be reached now.
    pub(crate) fn unavailable(message: String) -> JobError {
        JobError {
            unavailable: true,
            ..JobError::new(message)
        }
    }

    /// Whether the store could not be reached (the shared database is down or unreachable).
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }

    /// Whether the write failed because the data directory's disk is full (nothing is wrong with the store).
    pub fn is_disk_full(&self) -> bool {
        self.disk_full
    }
}

impl From<rusqlite::Error> for JobError {
    fn from(e: rusqlite::Error) -> Self {
        JobError {
            disk_full: e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            message: e.to_string(),
            unavailable: false,
        }
    }
}

/// An async execution as `GET /executions/{id}` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    /// `queued`, `running`, `done` or `cancelled`.
    pub status: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The execution result, once done (or cancelled while running).
    #[schema(value_type = Option<runbox_engine::ExecutionResult>)]
    pub result: Option<serde_json::Value>,
    /// Why the job failed before producing a result (invalid request, internal error).
    pub error: Option<serde_json::Value>,
    /// True when the stored result was shortened to the server's `async_result_bytes`: its longest strings (stdout,
    /// stderr, collected files) were cut.
    pub result_truncated: bool,
}

/// Why a submission was not stored.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("{0}")]
    Quota(String),
    #[error(transparent)]
    Store(#[from] JobError),
}

impl From<rusqlite::Error> for InsertError {
    fn from(e: rusqlite::Error) -> Self {
        InsertError::Store(e.into())
    }
}

/// A job a node took to run.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub owner: String,
    pub request: String,
    pub callback_url: Option<String>,
    /// How many times a node started this job, this time included (a shared store counts them; SQLite says 0).
    pub attempt: i64,
}

/// A job kept with an extra record beside it ([`JobStore::insert_with_extra`](super::JobStore::insert_with_extra)).
#[derive(Debug, Clone, Copy)]
pub struct ExtraRecord<'a> {
    pub id: &'a str,
    pub owner: &'a str,
    pub request: &'a str,
    pub extra: &'a str,
    pub callback_url: Option<&'a str>,
    /// Stored already done with this (result, error), or queued when None.
    pub finished: Option<(Option<&'a str>, Option<&'a str>)>,
}
