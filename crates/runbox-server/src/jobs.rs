//! Async executions kept in SQLite so that results survive a restart and queued jobs run after one. A job is
//! `queued`, then `running`, then `done` (with a result) or `cancelled`; records expire after the retention, and
//! `DELETE` removes one at once. Each record knows its size (request, result, error); a key's records are held to a
//! count and a number of bytes, a queued or running job counting as its request plus the largest result a job
//! may store, so that checking at submission bounds what the key can ever make the database hold.
//!
//! This file holds the embedded store ([`SqliteJobs`], one node's data directory) and what every store shares;
//! [`JobStore`] (in `jobs/store.rs`) is what the server uses: SQLite by default, or PostgreSQL shared by several
//! nodes when `database_url` is set (`jobs/postgres.rs`).

mod postgres;
mod store;

pub use postgres::PgJobs;
pub use store::JobStore;

use runbox_engine::sync::LockOrRecover;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
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

/// Why a store cannot be opened, naming the file and what the operator can do. The server then does not start:
/// it never replaces a store it cannot read, so no async record is dropped without the operator knowing.
fn open_error(path: &Path, e: &rusqlite::Error) -> JobError {
    use rusqlite::ErrorCode;
    let hint = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "another process holds it locked (another runbox on this data directory, or a tool with the file \
             open): stop that process and start again"
        }
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            "the file is damaged: restore it from a backup, or move it aside (with its -wal and -shm files) to \
             start with an empty store, losing the async execution records it held"
        }
        Some(ErrorCode::DiskFull) => "the data directory's disk is full: free some space and start again",
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::CannotOpen) => {
            "the server cannot write it: check the file's owner and mode, and the data directory's mount"
        }
        _ => "see the SQLite error above",
    };
    JobError::new(format!("cannot open {}: {e}; {hint}", path.display()))
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

/// What one key may keep in the job store.
#[derive(Debug, Clone, Copy)]
pub struct JobQuota {
    /// Records of any status.
    pub jobs: u64,
    /// Bytes of requests, results and errors, a job not yet finished counting `result_bytes` for its result.
    pub bytes: u64,
    /// Largest result one job may store.
    pub result_bytes: u64,
}

impl JobQuota {
    pub const UNLIMITED: JobQuota = JobQuota {
        jobs: u64::MAX,
        bytes: u64::MAX,
        result_bytes: 0,
    };
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

/// The embedded store: one SQLite file in the data directory, for one node.
pub struct SqliteJobs {
    conn: Mutex<Connection>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub use runbox_engine::random_id;

impl SqliteJobs {
    /// Opens (or creates) the store at `path`. It holds every tenant's code, stdin and env: the file and the
    /// ones SQLite keeps beside it (`-wal`, `-shm`, which SQLite creates with the database's mode) are 0600,
    /// and a missing parent is created 0700.
    pub fn open(path: &Path) -> Result<SqliteJobs, JobError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if let Some(parent) = path.parent() {
            runbox_engine::data_dir::create_private_dir(parent)
                .map_err(|e| JobError::new(format!("create {}: {e}", parent.display())))?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| JobError::new(format!("create {}: {e}", path.display())))?;
        // Files an older version created with the default mode are closed too.
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = Path::new(&name);
            if file.exists() {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| JobError::new(format!("chmod {}: {e}", file.display())))?;
            }
        }
        let conn = Connection::open(path).map_err(|e| open_error(path, &e))?;
        // A damaged file is found now, at start, not by whichever request first reads the damaged page.
        let verdict: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| open_error(path, &e))?;
        if verdict != "ok" {
            let e = rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(format!("integrity check: {verdict}")),
            );
            return Err(open_error(path, &e));
        }
        Self::schema(&conn).map_err(|e| open_error(path, &e))?;
        // The store must be writable now (a lock another process holds shows here, naming the file).
        conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")
            .map_err(|e| open_error(path, &e))?;
        Ok(SqliteJobs { conn: Mutex::new(conn) })
    }

    pub fn in_memory() -> Result<SqliteJobs, JobError> {
        let conn = Connection::open_in_memory()?;
        Self::schema(&conn)?;
        Ok(SqliteJobs { conn: Mutex::new(conn) })
    }

    /// Creates the table and its indexes, and adds the columns a store from an older version lacks.
    fn schema(conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS jobs (
                 id TEXT PRIMARY KEY,
                 owner TEXT NOT NULL,
                 status TEXT NOT NULL,
                 request TEXT NOT NULL,
                 callback_url TEXT,
                 result TEXT,
                 error TEXT,
                 created_at INTEGER NOT NULL,
                 started_at INTEGER,
                 finished_at INTEGER
             );
             CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created_at);
             CREATE INDEX IF NOT EXISTS jobs_owner ON jobs(owner);
             CREATE TABLE IF NOT EXISTS job_extras (
                 id TEXT PRIMARY KEY,
                 extra TEXT NOT NULL
             );",
        )?;
        // Columns added after the first release: a database from before gets them (an existing one is kept).
        for column in [
            "size INTEGER NOT NULL DEFAULT 0",
            "result_truncated INTEGER NOT NULL DEFAULT 0",
        ] {
            if let Err(e) = conn.execute(&format!("ALTER TABLE jobs ADD COLUMN {column}"), []) {
                if !e.to_string().contains("duplicate column") {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock_or_recover()
    }

    pub fn insert(&self, owner: &str, request: &str, callback_url: Option<&str>) -> Result<String, JobError> {
        self.insert_within(owner, request, callback_url, &JobQuota::UNLIMITED)
            .map_err(|e| match e {
                InsertError::Store(e) => e,
                InsertError::Quota(m) => JobError::new(m),
            })
    }

    /// Whether a record of `owner` with a `request_len`-byte request would fit `quota` now: asked before work whose
    /// result is then stored (a submission run at once), so that nothing runs only to be refused its record.
    pub fn check_quota(&self, owner: &str, request_len: usize, quota: &JobQuota) -> Result<(), InsertError> {
        reserve_size(&self.conn(), owner, request_len, quota).map(|_| ())
    }

    /// Stores a new queued job unless `owner` would then hold more than `quota` allows. The check and the insert
    /// happen under one lock, so concurrent submissions cannot overshoot.
    pub fn insert_within(
        &self,
        owner: &str,
        request: &str,
        callback_url: Option<&str>,
        quota: &JobQuota,
    ) -> Result<String, InsertError> {
        let conn = self.conn();
        let size = reserve_size(&conn, owner, request.len(), quota)?;
        let id = random_id("exec_") + crate::cluster::execution_id_suffix();
        conn.execute(
            "INSERT INTO jobs (id, owner, status, request, callback_url, created_at, size)
             VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6)",
            params![
                id,
                owner,
                request,
                callback_url,
                now_ms(),
                size.min(i64::MAX as u64) as i64
            ],
        )?;
        Ok(id)
    }

    /// Inserts a job under a caller-chosen id with an `extra` record kept beside it (what a compatibility route
    /// needs to answer in its own shape), in one transaction. With `finished`, the job is stored already done
    /// with that (result, error): a synchronous run kept so that it can be fetched again.
    pub fn insert_with_extra(&self, record: &ExtraRecord<'_>, quota: &JobQuota) -> Result<(), InsertError> {
        let ExtraRecord {
            id,
            owner,
            request,
            extra,
            callback_url,
            finished,
        } = *record;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let size = reserve_size(&tx, owner, request.len(), quota)?.min(i64::MAX as u64) as i64;
        let now = now_ms();
        match finished {
            None => tx.execute(
                "INSERT INTO jobs (id, owner, status, request, callback_url, created_at, size)
                 VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6)",
                params![id, owner, request, callback_url, now, size],
            )?,
            Some((result, error)) => tx.execute(
                "INSERT INTO jobs (id, owner, status, request, callback_url, result, error, created_at, started_at,
                                   finished_at, size)
                 VALUES (?1, ?2, 'done', ?3, ?4, ?5, ?6, ?7, ?7, ?7, ?8)",
                params![id, owner, request, callback_url, result, error, now, size],
            )?,
        };
        tx.execute("INSERT INTO job_extras (id, extra) VALUES (?1, ?2)", params![id, extra])?;
        tx.commit()?;
        Ok(())
    }

    /// The extra record of a job of `owner`.
    pub fn extra(&self, id: &str, owner: &str) -> Result<Option<String>, JobError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT e.extra FROM job_extras e JOIN jobs j ON j.id = e.id WHERE e.id = ?1 AND j.owner = ?2",
                params![id, owner],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Removes the job of `owner` (and its extra record) and returns it as it was, or None if there is no such job.
    pub fn delete(&self, id: &str, owner: &str) -> Result<Option<JobView>, JobError> {
        let view = self.get(id, owner)?;
        if view.is_some() {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM jobs WHERE id = ?1 AND owner = ?2", params![id, owner])?;
            tx.execute("DELETE FROM job_extras WHERE id = ?1", params![id])?;
            tx.commit()?;
        }
        Ok(view)
    }

    /// The job, if it exists and belongs to `owner`.
    pub fn get(&self, id: &str, owner: &str) -> Result<Option<JobView>, JobError> {
        let row = self
            .conn()
            .query_row(
                "SELECT id, status, created_at, started_at, finished_at, result, error, result_truncated
                 FROM jobs WHERE id = ?1 AND owner = ?2",
                params![id, owner],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, i64>(7)? != 0,
                    ))
                },
            )
            .optional()?;
        Ok(row.map(
            |(id, status, created_at, started_at, finished_at, result, error, result_truncated)| JobView {
                id,
                status,
                created_at,
                started_at,
                finished_at,
                result: result.and_then(|r| serde_json::from_str(&r).ok()),
                error: error.and_then(|e| serde_json::from_str(&e).ok()),
                result_truncated,
            },
        ))
    }

    /// Marks the oldest queued job running and returns it.
    pub fn claim_next(&self) -> Result<Option<Claimed>, JobError> {
        self.claim_next_skipping(&[])
    }

    /// Marks the oldest queued job of an owner not in `skip` running and returns it: jobs of owners at their
    /// concurrency limit stay queued, and do not hold up other owners' jobs.
    pub fn claim_next_skipping(&self, skip: &[String]) -> Result<Option<Claimed>, JobError> {
        let conn = self.conn();
        let placeholders: Vec<String> = (0..skip.len()).map(|i| format!("?{}", i + 2)).collect();
        let sql = format!(
            "UPDATE jobs SET status = 'running', started_at = ?1
             WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND owner NOT IN ({})
                         ORDER BY created_at, rowid LIMIT 1)
             RETURNING id, owner, request, callback_url",
            placeholders.join(", ")
        );
        let mut values: Vec<rusqlite::types::Value> = vec![now_ms().into()];
        values.extend(skip.iter().map(|o| rusqlite::types::Value::from(o.clone())));
        let claimed = conn
            .query_row(&sql, rusqlite::params_from_iter(values), |r| {
                Ok(Claimed {
                    id: r.get(0)?,
                    owner: r.get(1)?,
                    request: r.get(2)?,
                    callback_url: r.get(3)?,
                    attempt: 0,
                })
            })
            .optional()?;
        Ok(claimed)
    }

    /// Puts a claimed job back in the queue, in its place (its owner had no free run slot after all).
    pub fn unclaim(&self, id: &str) -> Result<(), JobError> {
        self.conn().execute(
            "UPDATE jobs SET status = 'queued', started_at = NULL WHERE id = ?1 AND status = 'running'",
            params![id],
        )?;
        Ok(())
    }

    /// Stores the outcome of a job unless it was cancelled meanwhile (then the result is kept, status stays).
    /// The caller keeps `result` within the quota's `result_bytes` ([`shrink_result`]).
    pub fn finish(&self, id: &str, result: Option<&str>, error: Option<&str>) -> Result<(), JobError> {
        self.finish_stored(id, result, error, false)
    }

    /// [`SqliteJobs::finish`], saying whether `result` was shortened to fit.
    pub fn finish_stored(
        &self,
        id: &str,
        result: Option<&str>,
        error: Option<&str>,
        truncated: bool,
    ) -> Result<(), JobError> {
        let outcome = result.map_or(0, str::len) + error.map_or(0, str::len);
        self.conn().execute(
            "UPDATE jobs SET status = CASE status WHEN 'cancelled' THEN 'cancelled' ELSE 'done' END,
                             result = ?2, error = ?3, finished_at = ?4, result_truncated = ?5,
                             size = LENGTH(CAST(request AS BLOB)) + ?6 WHERE id = ?1",
            params![id, result, error, now_ms(), truncated, outcome as i64],
        )?;
        Ok(())
    }

    /// Cancels a queued or running job of `owner`. Returns the status it had, or None if there is no such job.
    pub fn cancel(&self, id: &str, owner: &str) -> Result<Option<String>, JobError> {
        let conn = self.conn();
        let status: Option<String> = conn
            .query_row(
                "SELECT status FROM jobs WHERE id = ?1 AND owner = ?2",
                params![id, owner],
                |r| r.get(0),
            )
            .optional()?;
        if matches!(status.as_deref(), Some("queued") | Some("running")) {
            conn.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = COALESCE(finished_at, ?2) WHERE id = ?1",
                params![id, now_ms()],
            )?;
        }
        Ok(status)
    }

    /// After a restart: jobs that were running were interrupted, so they run again.
    pub fn requeue_interrupted(&self) -> Result<usize, JobError> {
        Ok(self.conn().execute(
            "UPDATE jobs SET status = 'queued', started_at = NULL WHERE status = 'running'",
            [],
        )?)
    }

    /// Deletes finished records older than `retention_ms`.
    pub fn purge(&self, retention_ms: i64) -> Result<usize, JobError> {
        let conn = self.conn();
        let n = conn.execute(
            "DELETE FROM jobs WHERE status IN ('done', 'cancelled') AND COALESCE(finished_at, created_at) < ?1",
            params![now_ms() - retention_ms],
        )?;
        conn.execute("DELETE FROM job_extras WHERE id NOT IN (SELECT id FROM jobs)", [])?;
        Ok(n)
    }

    pub fn count(&self, status: &str) -> i64 {
        self.conn()
            .query_row("SELECT COUNT(*) FROM jobs WHERE status = ?1", params![status], |r| {
                r.get(0)
            })
            .unwrap_or(0)
    }
}

/// Serialises `result` in at most `cap` bytes, cutting its longest strings (halving at most, so several long
/// streams share what is left) and keeping base64 fields whole groups of four. Returns the JSON and whether anything
/// was cut, or None when even cutting every long string cannot make it fit.
pub fn shrink_result(result: &mut serde_json::Value, cap: usize) -> Option<(String, bool)> {
    let mut cut = false;
    for _ in 0..256 {
        let text = result.to_string();
        if text.len() <= cap {
            return Some((text, cut));
        }
        let excess = text.len() - cap;
        let (longest, base64) = longest_string(result, false)?;
        let len = longest.len();
        if len < 64 {
            return None;
        }
        let mut keep = len.saturating_sub(excess).max(len / 2).min(len - 1);
        if base64 {
            keep -= keep % 4;
        }
        while !longest.is_char_boundary(keep) {
            keep -= 1;
        }
        longest.truncate(keep);
        cut = true;
    }
    None
}

/// The longest string in `v`, and whether it sits under a key ending in `_base64`.
fn longest_string(v: &mut serde_json::Value, base64: bool) -> Option<(&mut String, bool)> {
    match v {
        serde_json::Value::String(s) => Some((s, base64)),
        serde_json::Value::Array(items) => items
            .iter_mut()
            .filter_map(|i| longest_string(i, base64))
            .max_by_key(|(s, _)| s.len()),
        serde_json::Value::Object(map) => map
            .iter_mut()
            .filter_map(|(k, i)| longest_string(i, k.ends_with("_base64")))
            .max_by_key(|(s, _)| s.len()),
        _ => None,
    }
}

/// A job kept with an extra record beside it ([`JobStore::insert_with_extra`]).
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

/// What a new record of `owner` with a `request_len`-byte request will count against the key's quota (its request
/// and the largest result a job stores), or why it does not fit.
fn reserve_size(
    conn: &rusqlite::Connection,
    owner: &str,
    request_len: usize,
    quota: &JobQuota,
) -> Result<u64, InsertError> {
    let (jobs, bytes): (i64, i64) = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM jobs WHERE owner = ?1",
        params![owner],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    quota_verdict(jobs, bytes, request_len, quota)
}

/// Whether one more record with a `request_len`-byte request fits beside the `jobs` records of `bytes` bytes its
/// key holds: what it will count, or why it does not fit. Every store asks this, inside its own transaction.
pub(crate) fn quota_verdict(jobs: i64, bytes: i64, request_len: usize, quota: &JobQuota) -> Result<u64, InsertError> {
    if jobs as u64 >= quota.jobs {
        return Err(InsertError::Quota(format!(
            "this key holds its maximum of {} async execution records; delete some (DELETE /executions/{{id}}) \
                 or wait for them to expire",
            quota.jobs
        )));
    }
    let size = (request_len as u64).saturating_add(quota.result_bytes);
    if (bytes as u64).saturating_add(size) > quota.bytes {
        return Err(InsertError::Quota(format!(
            "this key's async execution records hold {bytes} bytes, and this one may take {size} more (its \
                 request and the largest result a job stores); the maximum is {}",
            quota.bytes
        )));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_and_its_wal_files_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("new/runbox.sqlite3");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let s = SqliteJobs::open(&db).unwrap();
        s.insert("alice", "{}", None).unwrap();
        assert_eq!(mode(db.parent().unwrap()), 0o700, "a parent it creates");
        for suffix in ["", "-wal", "-shm"] {
            assert_eq!(mode(Path::new(&format!("{}{suffix}", db.display()))), 0o600, "{suffix}");
        }
        drop(s);
        // A store an older version left open is closed when opened again.
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        SqliteJobs::open(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
    }

    #[test]
    fn lifecycle_and_owner_scoping() {
        let s = SqliteJobs::in_memory().unwrap();
        let id = s.insert("alice", "{}", None).unwrap();
        assert_eq!(s.get(&id, "alice").unwrap().unwrap().status, "queued");
        assert!(s.get(&id, "bob").unwrap().is_none());
        let c = s.claim_next().unwrap().unwrap();
        assert_eq!((c.id.as_str(), c.owner.as_str()), (id.as_str(), "alice"));
        assert!(s.claim_next().unwrap().is_none());
        s.finish(&id, Some(r#"{"status":"ok"}"#), None).unwrap();
        let v = s.get(&id, "alice").unwrap().unwrap();
        assert_eq!(v.status, "done");
        assert_eq!(v.result.unwrap()["status"], "ok");
    }

    #[test]
    fn finished_records_expire_after_the_retention_and_queued_ones_never() {
        let s = SqliteJobs::in_memory().unwrap();
        let done = s.insert("k", "{}", None).unwrap();
        s.claim_next().unwrap();
        s.finish(&done, Some("{}"), None).unwrap();
        let queued = s.insert("k", "{}", None).unwrap();
        assert_eq!(s.purge(3_600_000).unwrap(), 0, "a fresh record is kept");
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(s.purge(1).unwrap(), 1);
        assert!(s.get(&done, "k").unwrap().is_none());
        assert!(s.get(&queued, "k").unwrap().is_some());
    }

    #[test]
    fn cancel_wins_over_a_late_finish_and_interrupted_jobs_requeue() {
        let s = SqliteJobs::in_memory().unwrap();
        let a = s.insert("k", "{}", None).unwrap();
        s.claim_next().unwrap();
        assert_eq!(s.cancel(&a, "k").unwrap().as_deref(), Some("running"));
        s.finish(&a, Some("{}"), None).unwrap();
        assert_eq!(s.get(&a, "k").unwrap().unwrap().status, "cancelled");
        let b = s.insert("k", "{}", None).unwrap();
        s.claim_next().unwrap();
        assert_eq!(s.requeue_interrupted().unwrap(), 1);
        assert_eq!(s.get(&b, "k").unwrap().unwrap().status, "queued");
    }

    #[test]
    fn claiming_skips_owners_at_their_limit_and_unclaim_keeps_the_place() {
        let s = SqliteJobs::in_memory().unwrap();
        let a1 = s.insert("a", "{}", None).unwrap();
        let b1 = s.insert("b", "{}", None).unwrap();
        let c = s.claim_next_skipping(&["a".to_string()]).unwrap().unwrap();
        assert_eq!(c.id, b1);
        assert_eq!(s.get(&a1, "a").unwrap().unwrap().status, "queued");
        assert!(s.claim_next_skipping(&["a".to_string()]).unwrap().is_none());
        let c = s.claim_next().unwrap().unwrap();
        assert_eq!(c.id, a1);
        s.unclaim(&a1).unwrap();
        assert_eq!(s.get(&a1, "a").unwrap().unwrap().status, "queued");
        assert_eq!(s.claim_next().unwrap().unwrap().id, a1);
    }

    #[test]
    fn a_quota_check_refuses_what_would_not_fit_and_stores_nothing() {
        let s = SqliteJobs::in_memory().unwrap();
        let quota = JobQuota {
            jobs: 1,
            bytes: 1000,
            result_bytes: 300,
        };
        s.check_quota("k", 100, &quota).unwrap();
        assert!(matches!(s.check_quota("k", 800, &quota), Err(InsertError::Quota(_))));
        s.insert_within("k", "{}", None, &quota).unwrap();
        assert!(matches!(s.check_quota("k", 2, &quota), Err(InsertError::Quota(_))));
        assert_eq!(s.count("queued"), 1, "a check stores nothing");
    }

    #[test]
    fn a_key_is_held_to_its_count_and_bytes_and_delete_frees_them() {
        let s = SqliteJobs::in_memory().unwrap();
        let quota = JobQuota {
            jobs: 2,
            bytes: 1000,
            result_bytes: 300,
        };
        let a = s.insert_within("k", &"x".repeat(100), None, &quota).unwrap();
        // 400 bytes reserved; another 600-byte request plus its 300-byte result would pass 1000.
        let err = s.insert_within("k", &"x".repeat(600), None, &quota).unwrap_err();
        assert!(matches!(err, InsertError::Quota(_)), "{err}");
        s.insert_within("k", "{}", None, &quota).unwrap();
        let err = s.insert_within("k", "{}", None, &quota).unwrap_err();
        assert!(err.to_string().contains("maximum of 2"), "{err}");
        // Another key has its own quota.
        s.insert_within("other", "{}", None, &quota).unwrap();
        // Deleting a record removes it and frees its share.
        assert_eq!(s.delete(&a, "k").unwrap().unwrap().status, "queued");
        assert!(s.get(&a, "k").unwrap().is_none());
        assert!(s.delete(&a, "k").unwrap().is_none());
        s.insert_within("k", "{}", None, &quota).unwrap();
    }

    #[test]
    fn long_results_are_cut_to_the_cap_and_say_so() {
        let mut v = serde_json::json!({
            "status": "ok",
            "stdout": "a".repeat(100_000),
            "stderr": "é".repeat(50_000),
            "stdout_base64": "QUFB".repeat(10_000),
        });
        let (text, cut) = shrink_result(&mut v, 10_000).unwrap();
        assert!(cut && text.len() <= 10_000, "{} bytes", text.len());
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["status"], "ok");
        assert_eq!(back["stdout_base64"].as_str().unwrap().len() % 4, 0);
        let mut small = serde_json::json!({"stdout": "hi"});
        assert_eq!(shrink_result(&mut small, 10_000), Some((small.to_string(), false)));
        let mut many = serde_json::Value::Array(vec![serde_json::json!("short"); 10_000]);
        assert_eq!(shrink_result(&mut many, 1000), None);
    }

    #[test]
    fn extras_belong_to_their_job_and_go_with_it() {
        let s = SqliteJobs::in_memory().unwrap();
        s.insert_with_extra(
            &ExtraRecord {
                id: "t1",
                owner: "alice",
                request: "{}",
                extra: "x",
                callback_url: None,
                finished: None,
            },
            &JobQuota::UNLIMITED,
        )
        .unwrap();
        assert_eq!(s.get("t1", "alice").unwrap().unwrap().status, "queued");
        assert_eq!(s.extra("t1", "alice").unwrap().as_deref(), Some("x"));
        assert!(s.extra("t1", "bob").unwrap().is_none());
        assert!(s.delete("t1", "bob").unwrap().is_none());
        let done = ExtraRecord {
            id: "t2",
            owner: "alice",
            request: "{}",
            extra: "y",
            callback_url: None,
            finished: Some((Some("{}"), None)),
        };
        s.insert_with_extra(&done, &JobQuota::UNLIMITED).unwrap();
        assert_eq!(s.get("t2", "alice").unwrap().unwrap().status, "done");
        assert!(s.delete("t1", "alice").unwrap().is_some());
        assert!(s.extra("t1", "alice").unwrap().is_none());
        std::thread::sleep(std::time::Duration::from_millis(5));
        s.purge(1).unwrap();
        assert!(s.extra("t2", "alice").unwrap().is_none(), "purged with its job");
    }
}
