//! Async executions in PostgreSQL, shared by every node of a cluster (`database_url = "postgres://..."`).
//!
//! What one node's SQLite gives by being alone, the database gives here by locking:
//! - a queued job is taken by one node (`FOR UPDATE SKIP LOCKED`: nodes claiming at once take different jobs);
//! - a running job carries its node and a lease the node renews while it runs. A node that stops renewing (it died,
//!   or lost the database) loses the job once the lease expires: another node takes it again, up to
//!   `async_max_attempts` starts in all, after which the job ends with the error `node_lost`. Writes about a run
//!   (renewal, result) name the node and the attempt, so a node that lost its lease cannot overwrite the run that
//!   replaced it, and it stops its own run when it cannot renew before the lease ends ([`crate::worker`]);
//! - a callback is delivered by the node that claims its delivery in the database, once (a node that dies while
//!   delivering leaves it to another after the delivery's lease);
//! - a key's quota is counted over the whole table, under a per-key advisory lock.
//!
//! Times that leases compare are the database's clock (`runbox_now_ms()`), never a node's. The schema lives in
//! `migrations/postgres/` and is applied at start-up ([`migrate`]), once, whichever node starts first.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_postgres::{Client, NoTls, Row};

use super::{quota_verdict, Claimed, ExtraRecord, InsertError, JobError, JobQuota, JobView};

/// The migrations, in order: (version, SQL). A version applied once is never applied again.
const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("../../../../migrations/postgres/0001_jobs.sql"))];

/// Any constant: the advisory lock nodes take while migrating.
const MIGRATION_LOCK: i64 = 0x7275_6e62_6f78;

/// How long a node may take to deliver one callback (its retries included) before another node may.
const CALLBACK_LEASE_MS: i64 = 600_000;

/// Connections one node keeps to the database at most.
const POOL_SIZE: usize = 8;

/// The columns [`JobView`] shows, in [`view`]'s order.
const VIEW_COLUMNS: &str = "id, status, created_at, started_at, finished_at, result, error, result_truncated";

impl From<tokio_postgres::Error> for JobError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => JobError::new(format!("postgres: {}: {}", db.code().code(), db.message())),
            // Not an answer from the database: the connection failed or was lost.
            None => JobError::unavailable(format!("postgres: {e}")),
        }
    }
}

impl From<tokio_postgres::Error> for InsertError {
    fn from(e: tokio_postgres::Error) -> Self {
        InsertError::Store(e.into())
    }
}

/// A few connections, made when first needed on the runtime that asks (so that the store can be built before the
/// server's runtime starts) and handed back when their user is done.
struct Pool {
    config: tokio_postgres::Config,
    idle: Mutex<Vec<Client>>,
    slots: Arc<Semaphore>,
}

struct Conn<'a> {
    client: Option<Client>,
    pool: &'a Pool,
    _slot: tokio::sync::SemaphorePermit<'a>,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until drop")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take().filter(|c| !c.is_closed()) {
            self.pool.idle.lock().unwrap_or_else(|e| e.into_inner()).push(client);
        }
    }
}

impl Pool {
    async fn get(&self) -> Result<Conn<'_>, JobError> {
        let slot = self.slots.acquire().await.expect("never closed");
        loop {
            let client = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match client {
                Some(c) if c.is_closed() => continue,
                Some(c) => {
                    return Ok(Conn {
                        client: Some(c),
                        pool: self,
                        _slot: slot,
                    })
                }
                None => break,
            }
        }
        let client = connect(&self.config).await?;
        Ok(Conn {
            client: Some(client),
            pool: self,
            _slot: slot,
        })
    }
}

/// One connection, its I/O driven by a task on the current runtime.
async fn connect(config: &tokio_postgres::Config) -> Result<Client, JobError> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "a connection to the job database ended");
        }
    });
    Ok(client)
}

/// The async executions of a cluster, in PostgreSQL.
pub struct PgJobs {
    pool: Pool,
    /// This node's id: written on the jobs it runs.
    node: String,
    lease_ms: i64,
    max_attempts: i32,
}

/// Parses a `postgres://` URL, bounding how long a connection attempt may take.
fn parse_url(url: &str) -> Result<tokio_postgres::Config, JobError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| JobError::new(format!("database_url: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    config.application_name("runbox");
    // A peer that vanished without closing (a partition) is noticed in about half a minute, not hours.
    config.keepalives_idle(Duration::from_secs(15));
    Ok(config)
}

/// Applies the migrations the database lacks, in one transaction under an advisory lock (several nodes starting
/// together apply each once).
pub async fn migrate(client: &mut Client) -> Result<(), JobError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // `IF NOT EXISTS` on what exists is a notice, not news.
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning;
         CREATE TABLE IF NOT EXISTS runbox_migrations (
             version INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await?;
    for (version, sql) in MIGRATIONS {
        let applied = tx
            .query_opt("SELECT 1 FROM runbox_migrations WHERE version = $1", &[version])
            .await?;
        if applied.is_none() {
            tx.batch_execute(sql).await?;
            tx.execute("INSERT INTO runbox_migrations (version) VALUES ($1)", &[version])
                .await?;
            tracing::info!(version, "applied a job database migration");
        }
    }
    tx.commit().await?;
    Ok(())
}

fn view(r: &Row) -> JobView {
    let result: Option<String> = r.get(5);
    let error: Option<String> = r.get(6);
    JobView {
        id: r.get(0),
        status: r.get(1),
        created_at: r.get(2),
        started_at: r.get(3),
        finished_at: r.get(4),
        result: result.and_then(|r| serde_json::from_str(&r).ok()),
        error: error.and_then(|e| serde_json::from_str(&e).ok()),
        result_truncated: r.get(7),
    }
}

fn claimed(r: &Row) -> Claimed {
    Claimed {
        id: r.get(0),
        owner: r.get(1),
        request: r.get(2),
        callback_url: r.get(3),
        attempt: r.get::<_, i32>(4).into(),
    }
}

/// What a key's records count now, read inside `tx` after its advisory lock.
async fn reserve_size(
    tx: &tokio_postgres::Transaction<'_>,
    owner: &str,
    request_len: usize,
    quota: &JobQuota,
) -> Result<i64, InsertError> {
    let row = tx
        .query_one(
            "SELECT COUNT(*), COALESCE(SUM(size), 0)::BIGINT FROM runbox_jobs WHERE owner = $1",
            &[&owner],
        )
        .await?;
    let size = quota_verdict(row.get(0), row.get(1), request_len, quota)?;
    Ok(size.min(i64::MAX as u64) as i64)
}

/// Holds `owner`'s quota for the rest of `tx`: concurrent submissions of one key, on any node, check one at a time.
async fn lock_owner(tx: &tokio_postgres::Transaction<'_>, owner: &str) -> Result<(), tokio_postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&owner])
        .await
        .map(|_| ())
}

impl PgJobs {
    /// Connects to `url`, applies the migrations, and puts this node's jobs whose lease has run out back in the
    /// queue (the node stopped while running them). A job under this id whose lease still holds is left alone: it
    /// may be another live process's under the same id, and the lease's end frees it anyway. Runs on a runtime of
    /// its own, so it works whether or not the caller is in one; the
    /// store's own connections are made later, on the runtime that uses it. Returns the store and how many jobs
    /// it put back.
    pub fn open(url: &str, node: String, lease_ms: u64, max_attempts: u32) -> Result<(PgJobs, u64), JobError> {
        let config = parse_url(url)?;
        let setup = config.clone();
        let node_for_setup = node.clone();
        let requeued = std::thread::scope(|s| {
            s.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| JobError::new(format!("start the database runtime: {e}")))?;
                runtime.block_on(async {
                    let mut client = connect(&setup)
                        .await
                        .map_err(|e| JobError::new(format!("cannot reach the job database (database_url): {e}")))?;
                    migrate(&mut client).await?;
                    let n = client
                        .execute(
                            "UPDATE runbox_jobs SET status = 'queued', started_at = NULL, node = NULL,
                                                    lease_until = NULL
                             WHERE status = 'running' AND node = $1 AND lease_until < runbox_now_ms()",
                            &[&node_for_setup],
                        )
                        .await?;
                    Ok::<u64, JobError>(n)
                })
            })
            .join()
            .unwrap_or_else(|_| Err(JobError::new("the database set-up panicked".into())))
        })?;
        Ok((
            PgJobs {
                pool: Pool {
                    config,
                    idle: Mutex::new(Vec::new()),
                    slots: Arc::new(Semaphore::new(POOL_SIZE)),
                },
                node,
                lease_ms: lease_ms.min(i64::MAX as u64) as i64,
                max_attempts: max_attempts.min(i32::MAX as u32) as i32,
            },
            requeued,
        ))
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub async fn check_quota(&self, owner: &str, request_len: usize, quota: &JobQuota) -> Result<(), InsertError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        reserve_size(&tx, owner, request_len, quota).await.map(|_| ())
    }

    pub async fn insert_within(
        &self,
        owner: &str,
        request: &str,
        callback_url: Option<&str>,
        quota: &JobQuota,
    ) -> Result<String, InsertError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        lock_owner(&tx, owner).await?;
        let size = reserve_size(&tx, owner, request.len(), quota).await?;
        let id = super::random_id("exec_") + crate::cluster::execution_id_suffix();
        tx.execute(
            "INSERT INTO runbox_jobs (id, owner, status, request, callback_url, created_at, size)
             VALUES ($1, $2, 'queued', $3, $4, runbox_now_ms(), $5)",
            &[&id, &owner, &request, &callback_url, &size],
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn insert_with_extra(&self, record: &ExtraRecord<'_>, quota: &JobQuota) -> Result<(), InsertError> {
        let ExtraRecord {
            id,
            owner,
            request,
            extra,
            callback_url,
            finished,
        } = *record;
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        lock_owner(&tx, owner).await?;
        let size = reserve_size(&tx, owner, request.len(), quota).await?;
        match finished {
            None => {
                tx.execute(
                    "INSERT INTO runbox_jobs (id, owner, status, request, callback_url, created_at, size)
                     VALUES ($1, $2, 'queued', $3, $4, runbox_now_ms(), $5)",
                    &[&id, &owner, &request, &callback_url, &size],
                )
                .await?
            }
            Some((result, error)) => {
                tx.execute(
                    "INSERT INTO runbox_jobs (id, owner, status, request, callback_url, result, error, created_at,
                                              started_at, finished_at, size)
                     VALUES ($1, $2, 'done', $3, $4, $5, $6, runbox_now_ms(), runbox_now_ms(), runbox_now_ms(), $7)",
                    &[&id, &owner, &request, &callback_url, &result, &error, &size],
                )
                .await?
            }
        };
        tx.execute(
            "INSERT INTO runbox_job_extras (id, extra) VALUES ($1, $2)",
            &[&id, &extra],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn extra(&self, id: &str, owner: &str) -> Result<Option<String>, JobError> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                "SELECT e.extra FROM runbox_job_extras e JOIN runbox_jobs j ON j.id = e.id
                 WHERE e.id = $1 AND j.owner = $2",
                &[&id, &owner],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn get(&self, id: &str, owner: &str) -> Result<Option<JobView>, JobError> {
        let c = self.pool.get().await?;
        let sql = format!("SELECT {VIEW_COLUMNS} FROM runbox_jobs WHERE id = $1 AND owner = $2");
        Ok(c.query_opt(&sql, &[&id, &owner]).await?.as_ref().map(view))
    }

    /// Removes the job (its extra record goes with it) and returns it as it was. The node running it, if any,
    /// finds its lease gone at its next renewal and stops the run.
    pub async fn delete(&self, id: &str, owner: &str) -> Result<Option<JobView>, JobError> {
        let c = self.pool.get().await?;
        let sql = format!("DELETE FROM runbox_jobs WHERE id = $1 AND owner = $2 RETURNING {VIEW_COLUMNS}");
        Ok(c.query_opt(&sql, &[&id, &owner]).await?.as_ref().map(view))
    }

    pub async fn cancel(&self, id: &str, owner: &str) -> Result<Option<String>, JobError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let status: Option<String> = tx
            .query_opt(
                "SELECT status FROM runbox_jobs WHERE id = $1 AND owner = $2 FOR UPDATE",
                &[&id, &owner],
            )
            .await?
            .map(|r| r.get(0));
        if matches!(status.as_deref(), Some("queued" | "running")) {
            tx.execute(
                "UPDATE runbox_jobs SET status = 'cancelled', finished_at = COALESCE(finished_at, runbox_now_ms())
                 WHERE id = $1",
                &[&id],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(status)
    }

    /// Takes the oldest job that is queued, or whose node's lease expired, of an owner not in `skip`. Jobs that
    /// already started `max_attempts` times and lost their node again end first, with the error `node_lost`.
    pub async fn claim_next_skipping(&self, skip: &[String]) -> Result<Option<Claimed>, JobError> {
        let c = self.pool.get().await?;
        c.execute(
            "UPDATE runbox_jobs SET status = 'done', finished_at = runbox_now_ms(), lease_until = NULL,
                 callback_pending = callback_url IS NOT NULL,
                 error = json_build_object(
                     'code', 'node_lost',
                     'message', format('the job was started %s times, and each time the node running it stopped \
                                        before it finished (the last was %s); it is not tried again', attempts, node),
                     'details', json_build_object('attempts', attempts, 'node', node))::TEXT,
                 size = octet_length(request)
             WHERE status = 'running' AND lease_until < runbox_now_ms() AND attempts >= $1",
            &[&self.max_attempts],
        )
        .await?;
        let row = c
            .query_opt(
                "UPDATE runbox_jobs j SET status = 'running', started_at = runbox_now_ms(), node = $1,
                     attempts = j.attempts + 1, lease_until = runbox_now_ms() + $2
                 WHERE j.id = (
                     SELECT id FROM runbox_jobs
                     WHERE (status = 'queued' OR (status = 'running' AND lease_until < runbox_now_ms()))
                       AND NOT (owner = ANY($3))
                     ORDER BY seq LIMIT 1
                     FOR UPDATE SKIP LOCKED)
                 RETURNING j.id, j.owner, j.request, j.callback_url, j.attempts",
                &[&self.node, &self.lease_ms, &skip],
            )
            .await?;
        Ok(row.as_ref().map(claimed))
    }

    /// Gives a job this node took back to the queue, in its place, not counting the start.
    pub async fn unclaim(&self, job: &Claimed) -> Result<(), JobError> {
        let c = self.pool.get().await?;
        c.execute(
            "UPDATE runbox_jobs SET status = 'queued', started_at = NULL, node = NULL, lease_until = NULL,
                                    attempts = GREATEST(attempts - 1, 0)
             WHERE id = $1 AND node = $2 AND attempts = $3 AND status = 'running'",
            &[&job.id, &self.node, &attempt(job)],
        )
        .await?;
        Ok(())
    }

    /// Extends this node's lease on a job it runs. False when the job is no longer this run's (cancelled,
    /// deleted, or taken by another node after the lease expired): the run must stop.
    pub async fn renew(&self, job: &Claimed) -> Result<bool, JobError> {
        let c = self.pool.get().await?;
        let n = c
            .execute(
                "UPDATE runbox_jobs SET lease_until = runbox_now_ms() + $3
                 WHERE id = $1 AND node = $2 AND attempts = $4 AND status = 'running'",
                &[&job.id, &self.node, &self.lease_ms, &attempt(job)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Stores the outcome of this run, unless the job is no longer this run's. A cancelled job stays cancelled.
    /// Returns whether it was stored.
    pub async fn finish(
        &self,
        job: &Claimed,
        result: Option<&str>,
        error: Option<&str>,
        truncated: bool,
    ) -> Result<bool, JobError> {
        let outcome = (result.map_or(0, str::len) + error.map_or(0, str::len)) as i64;
        let c = self.pool.get().await?;
        let n = c
            .execute(
                "UPDATE runbox_jobs SET status = CASE status WHEN 'cancelled' THEN 'cancelled' ELSE 'done' END,
                     callback_pending = status <> 'cancelled' AND callback_url IS NOT NULL,
                     result = $3, error = $4, finished_at = runbox_now_ms(), result_truncated = $5,
                     size = octet_length(request)::BIGINT + $6::BIGINT, lease_until = NULL
                 WHERE id = $1 AND node = $2 AND attempts = $7 AND status IN ('running', 'cancelled')",
                &[
                    &job.id,
                    &self.node,
                    &result,
                    &error,
                    &truncated,
                    &outcome,
                    &attempt(job),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Claims the delivery of a finished job's callback: true for the one node that delivers it.
    pub async fn claim_callback(&self, id: &str) -> Result<bool, JobError> {
        let c = self.pool.get().await?;
        let n = c
            .execute(
                "UPDATE runbox_jobs SET callback_node = $2, callback_lease_until = runbox_now_ms() + $3
                 WHERE id = $1 AND callback_pending
                   AND (callback_lease_until IS NULL OR callback_lease_until < runbox_now_ms())",
                &[&id, &self.node, &CALLBACK_LEASE_MS],
            )
            .await?;
        Ok(n == 1)
    }

    /// A delivery nobody is making: a job whose node stopped after storing its result but before claiming the
    /// callback (or while delivering it), or one that ended `node_lost`. Claimed for this node.
    pub async fn claim_orphan_callback(&self) -> Result<Option<(String, String, String)>, JobError> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                "UPDATE runbox_jobs j SET callback_node = $1, callback_lease_until = runbox_now_ms() + $2
                 WHERE j.id = (
                     SELECT id FROM runbox_jobs
                     WHERE callback_pending
                       AND COALESCE(callback_lease_until, finished_at + $3) < runbox_now_ms()
                     LIMIT 1
                     FOR UPDATE SKIP LOCKED)
                 RETURNING j.id, j.owner, j.callback_url",
                &[&self.node, &CALLBACK_LEASE_MS, &self.lease_ms],
            )
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
    }

    /// The callback was delivered (or every attempt made): nobody delivers it again.
    pub async fn callback_done(&self, id: &str) -> Result<(), JobError> {
        let c = self.pool.get().await?;
        c.execute("UPDATE runbox_jobs SET callback_pending = FALSE WHERE id = $1", &[&id])
            .await?;
        Ok(())
    }

    /// Deletes finished records older than `retention_ms` (a callback still to deliver keeps its record).
    pub async fn purge(&self, retention_ms: i64) -> Result<u64, JobError> {
        let c = self.pool.get().await?;
        Ok(c.execute(
            "DELETE FROM runbox_jobs WHERE status IN ('done', 'cancelled') AND NOT callback_pending
               AND COALESCE(finished_at, created_at) < runbox_now_ms() - $1",
            &[&retention_ms],
        )
        .await?)
    }

    pub async fn count(&self, status: &str) -> Result<i64, JobError> {
        let c = self.pool.get().await?;
        Ok(
            c.query_one("SELECT COUNT(*) FROM runbox_jobs WHERE status = $1", &[&status])
                .await?
                .get(0),
        )
    }
}

fn attempt(job: &Claimed) -> i32 {
    job.attempt.clamp(0, i32::MAX as i64) as i32
}
