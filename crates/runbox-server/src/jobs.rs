//! Async executions kept in SQLite so that results survive a restart and queued jobs run after one. A job is
//! `queued`, then `running`, then `done` (with a result) or `cancelled`; records expire after the retention, and
//! `DELETE` removes one at once. Each record knows its size (request, result, error); a key's records are held to a
//! count and a number of bytes, a queued or running job counting as its request plus the largest result a job
//! may store, so that checking at submission bounds what the key can ever make the database hold.
//!
//! [`JobStore`] (`jobs/store.rs`) is what the server uses: the embedded store ([`SqliteJobs`], `jobs/sqlite.rs`,
//! one node's data directory) by default, or PostgreSQL shared by several nodes when `database_url` is set
//! (`jobs/postgres.rs`). What every store shares lives beside them: the records and errors (`jobs/types.rs`), the
//! per-key quota (`jobs/quota.rs`) and the cutting of long results (`jobs/shrink.rs`).

mod postgres;
mod quota;
mod shrink;
mod sqlite;
mod store;
mod types;

pub use postgres::PgJobs;
pub(crate) use quota::quota_verdict;
pub use quota::JobQuota;
pub use shrink::shrink_result;
pub use sqlite::SqliteJobs;
pub use store::JobStore;
pub use types::{Claimed, ExtraRecord, InsertError, JobError, JobView};

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub use runbox_engine::random_id;
