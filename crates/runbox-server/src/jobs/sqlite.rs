//! The embedded job store: one SQLite file in the node's data directory ([`SqliteJobs`]), the default when no
//! shared database is configured.

use runbox_engine::sync::LockOrRecover;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::{now_ms, quota_verdict, random_id, Claimed, ExtraRecord, InsertError, JobError, JobQuota, JobView};

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

/// The embedded store: one SQLite file in the data directory, for one node.
pub struct SqliteJobs {
    conn: Mutex<Connection>,
}

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
