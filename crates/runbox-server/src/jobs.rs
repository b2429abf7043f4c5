//! Async executions kept in SQLite so that results survive a restart and queued jobs run after one. A job is
//! `queued`, then `running`, then `done` (with a result) or `cancelled`; records expire after the retention.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
#[error("job store: {0}")]
pub struct JobError(String);

impl From<rusqlite::Error> for JobError {
    fn from(e: rusqlite::Error) -> Self {
        JobError(e.to_string())
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
}

pub struct Claimed {
    pub id: String,
    pub owner: String,
    pub request: String,
    pub callback_url: Option<String>,
}

pub struct JobStore {
    conn: Mutex<Connection>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// 128 random bits as hex, from the kernel.
pub fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

impl JobStore {
    pub fn open(path: &Path) -> Result<JobStore, JobError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| JobError(format!("create {}: {e}", parent.display())))?;
        }
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    pub fn in_memory() -> Result<JobStore, JobError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<JobStore, JobError> {
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
             CREATE TABLE IF NOT EXISTS job_extras (
                 id TEXT PRIMARY KEY,
                 extra TEXT NOT NULL
             );",
        )?;
        Ok(JobStore { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, owner: &str, request: &str, callback_url: Option<&str>) -> Result<String, JobError> {
        let id = random_id("exec_");
        self.conn().execute(
            "INSERT INTO jobs (id, owner, status, request, callback_url, created_at) VALUES (?1, ?2, 'queued', ?3, ?4, ?5)",
            params![id, owner, request, callback_url, now_ms()],
        )?;
        Ok(id)
    }

    /// Inserts a job under a caller-chosen id with an `extra` record kept beside it (what a compatibility route
    /// needs to answer in its own shape), in one transaction. With `finished`, the job is stored already done
    /// with that (result, error): a synchronous run kept so that it can be fetched again.
    pub fn insert_with_extra(
        &self,
        id: &str,
        owner: &str,
        request: &str,
        extra: &str,
        callback_url: Option<&str>,
        finished: Option<(Option<&str>, Option<&str>)>,
    ) -> Result<(), JobError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let now = now_ms();
        match finished {
            None => tx.execute(
                "INSERT INTO jobs (id, owner, status, request, callback_url, created_at)
                 VALUES (?1, ?2, 'queued', ?3, ?4, ?5)",
                params![id, owner, request, callback_url, now],
            )?,
            Some((result, error)) => tx.execute(
                "INSERT INTO jobs (id, owner, status, request, callback_url, result, error, created_at, started_at,
                                   finished_at)
                 VALUES (?1, ?2, 'done', ?3, ?4, ?5, ?6, ?7, ?7, ?7)",
                params![id, owner, request, callback_url, result, error, now],
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

    /// Deletes a job of `owner` and its extra record. Returns whether there was one.
    pub fn delete(&self, id: &str, owner: &str) -> Result<bool, JobError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute("DELETE FROM jobs WHERE id = ?1 AND owner = ?2", params![id, owner])?;
        if n > 0 {
            tx.execute("DELETE FROM job_extras WHERE id = ?1", params![id])?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    /// The job, if it exists and belongs to `owner`.
    pub fn get(&self, id: &str, owner: &str) -> Result<Option<JobView>, JobError> {
        let row = self
            .conn()
            .query_row(
                "SELECT id, status, created_at, started_at, finished_at, result, error FROM jobs WHERE id = ?1 AND owner = ?2",
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
                    ))
                },
            )
            .optional()?;
        Ok(row.map(
            |(id, status, created_at, started_at, finished_at, result, error)| JobView {
                id,
                status,
                created_at,
                started_at,
                finished_at,
                result: result.and_then(|r| serde_json::from_str(&r).ok()),
                error: error.and_then(|e| serde_json::from_str(&e).ok()),
            },
        ))
    }

    /// Marks the oldest queued job running and returns it.
    pub fn claim_next(&self) -> Result<Option<Claimed>, JobError> {
        let conn = self.conn();
        let claimed = conn
            .query_row(
                "UPDATE jobs SET status = 'running', started_at = ?1
                 WHERE id = (SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at, rowid LIMIT 1)
                 RETURNING id, owner, request, callback_url",
                params![now_ms()],
                |r| {
                    Ok(Claimed {
                        id: r.get(0)?,
                        owner: r.get(1)?,
                        request: r.get(2)?,
                        callback_url: r.get(3)?,
                    })
                },
            )
            .optional()?;
        Ok(claimed)
    }

    /// Stores the outcome of a job unless it was cancelled meanwhile (then the result is kept, status stays).
    pub fn finish(&self, id: &str, result: Option<&str>, error: Option<&str>) -> Result<(), JobError> {
        self.conn().execute(
            "UPDATE jobs SET status = CASE status WHEN 'cancelled' THEN 'cancelled' ELSE 'done' END,
                             result = ?2, error = ?3, finished_at = ?4 WHERE id = ?1",
            params![id, result, error, now_ms()],
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_and_owner_scoping() {
        let s = JobStore::in_memory().unwrap();
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
        let s = JobStore::in_memory().unwrap();
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
        let s = JobStore::in_memory().unwrap();
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
    fn extras_belong_to_their_job_and_go_with_it() {
        let s = JobStore::in_memory().unwrap();
        s.insert_with_extra("t1", "alice", "{}", "x", None, None).unwrap();
        assert_eq!(s.get("t1", "alice").unwrap().unwrap().status, "queued");
        assert_eq!(s.extra("t1", "alice").unwrap().as_deref(), Some("x"));
        assert!(s.extra("t1", "bob").unwrap().is_none());
        assert!(!s.delete("t1", "bob").unwrap());
        s.insert_with_extra("t2", "alice", "{}", "y", None, Some((Some("{}"), None)))
            .unwrap();
        assert_eq!(s.get("t2", "alice").unwrap().unwrap().status, "done");
        assert!(s.delete("t1", "alice").unwrap());
        assert!(s.extra("t1", "alice").unwrap().is_none());
        std::thread::sleep(std::time::Duration::from_millis(5));
        s.purge(1).unwrap();
        assert!(s.extra("t2", "alice").unwrap().is_none(), "purged with its job");
    }
}
