//! The job store the server uses: the embedded SQLite file (one node; the default) or PostgreSQL (several nodes
//! sharing their async executions), chosen by `database_url`. Handlers and the worker see one async interface;
//! what only a shared store needs (leases, claimed callbacks) is a no-op on SQLite, so one node without
//! configuration behaves exactly as before.

use super::{Claimed, ExtraRecord, InsertError, JobError, JobQuota, JobView, PgJobs, SqliteJobs};
use crate::config::ServerConfig;

pub enum JobStore {
    Sqlite(SqliteJobs),
    /// Boxed: its connection settings make it several times the size of the SQLite variant.
    Postgres(Box<PgJobs>),
}

impl JobStore {
    /// The store `config` asks for, and how many interrupted jobs it put back in the queue (this node's, on
    /// PostgreSQL).
    pub fn from_config(config: &ServerConfig) -> Result<(JobStore, u64), JobError> {
        match &config.database_url {
            Some(url) => {
                let (pg, requeued) = PgJobs::open(
                    url,
                    crate::cluster::config::node_id(&config.node_id),
                    config.async_lease_ms,
                    config.async_max_attempts,
                )?;
                Ok((JobStore::Postgres(Box::new(pg)), requeued))
            }
            None => {
                let sqlite = SqliteJobs::open(&config.data_dir.join("runbox.sqlite3"))?;
                let requeued = sqlite.requeue_interrupted()? as u64;
                Ok((JobStore::Sqlite(sqlite), requeued))
            }
        }
    }

    /// An empty SQLite store in memory (tests).
    pub fn in_memory() -> Result<JobStore, JobError> {
        SqliteJobs::in_memory().map(JobStore::Sqlite)
    }

    /// Whether other nodes share this store (jobs then carry leases the worker renews).
    pub fn is_shared(&self) -> bool {
        matches!(self, JobStore::Postgres(_))
    }

    /// See [`SqliteJobs::check_quota`].
    pub async fn check_quota(&self, owner: &str, request_len: usize, quota: &JobQuota) -> Result<(), InsertError> {
        match self {
            JobStore::Sqlite(s) => s.check_quota(owner, request_len, quota),
            JobStore::Postgres(p) => p.check_quota(owner, request_len, quota).await,
        }
    }

    /// See [`SqliteJobs::insert_within`].
    pub async fn insert_within(
        &self,
        owner: &str,
        request: &str,
        callback_url: Option<&str>,
        quota: &JobQuota,
    ) -> Result<String, InsertError> {
        match self {
            JobStore::Sqlite(s) => s.insert_within(owner, request, callback_url, quota),
            JobStore::Postgres(p) => p.insert_within(owner, request, callback_url, quota).await,
        }
    }

    /// See [`SqliteJobs::insert_with_extra`].
    pub async fn insert_with_extra(&self, record: &ExtraRecord<'_>, quota: &JobQuota) -> Result<(), InsertError> {
        match self {
            JobStore::Sqlite(s) => s.insert_with_extra(record, quota),
            JobStore::Postgres(p) => p.insert_with_extra(record, quota).await,
        }
    }

    pub async fn extra(&self, id: &str, owner: &str) -> Result<Option<String>, JobError> {
        match self {
            JobStore::Sqlite(s) => s.extra(id, owner),
            JobStore::Postgres(p) => p.extra(id, owner).await,
        }
    }

    pub async fn get(&self, id: &str, owner: &str) -> Result<Option<JobView>, JobError> {
        match self {
            JobStore::Sqlite(s) => s.get(id, owner),
            JobStore::Postgres(p) => p.get(id, owner).await,
        }
    }

    pub async fn delete(&self, id: &str, owner: &str) -> Result<Option<JobView>, JobError> {
        match self {
            JobStore::Sqlite(s) => s.delete(id, owner),
            JobStore::Postgres(p) => p.delete(id, owner).await,
        }
    }

    pub async fn cancel(&self, id: &str, owner: &str) -> Result<Option<String>, JobError> {
        match self {
            JobStore::Sqlite(s) => s.cancel(id, owner),
            JobStore::Postgres(p) => p.cancel(id, owner).await,
        }
    }

    pub async fn claim_next_skipping(&self, skip: &[String]) -> Result<Option<Claimed>, JobError> {
        match self {
            JobStore::Sqlite(s) => s.claim_next_skipping(skip),
            JobStore::Postgres(p) => p.claim_next_skipping(skip).await,
        }
    }

    /// Puts a job this node took back in the queue, in its place (no slot after all, or a shutdown stopped it).
    pub async fn unclaim(&self, job: &Claimed) -> Result<(), JobError> {
        match self {
            JobStore::Sqlite(s) => s.unclaim(&job.id),
            JobStore::Postgres(p) => p.unclaim(job).await,
        }
    }

    /// Renews this node's lease on a running job; false when the run must stop (the job is no longer its).
    pub async fn renew(&self, job: &Claimed) -> Result<bool, JobError> {
        match self {
            JobStore::Sqlite(_) => Ok(true),
            JobStore::Postgres(p) => p.renew(job).await,
        }
    }

    /// Stores a run's outcome; false when the job was no longer this run's (nothing stored).
    pub async fn finish(
        &self,
        job: &Claimed,
        result: Option<&str>,
        error: Option<&str>,
        truncated: bool,
    ) -> Result<bool, JobError> {
        match self {
            JobStore::Sqlite(s) => s.finish_stored(&job.id, result, error, truncated).map(|_| true),
            JobStore::Postgres(p) => p.finish(job, result, error, truncated).await,
        }
    }

    /// Whether this node delivers the finished job's callback (always, alone on SQLite; the one node that claims
    /// it, on PostgreSQL).
    pub async fn claim_callback(&self, id: &str) -> Result<bool, JobError> {
        match self {
            JobStore::Sqlite(_) => Ok(true),
            JobStore::Postgres(p) => p.claim_callback(id).await,
        }
    }

    pub async fn callback_done(&self, id: &str) -> Result<(), JobError> {
        match self {
            JobStore::Sqlite(_) => Ok(()),
            JobStore::Postgres(p) => p.callback_done(id).await,
        }
    }

    /// A callback whose delivery nobody is making (a node stopped first): (job id, owner, URL). Never on SQLite.
    pub async fn claim_orphan_callback(&self) -> Result<Option<(String, String, String)>, JobError> {
        match self {
            JobStore::Sqlite(_) => Ok(None),
            JobStore::Postgres(p) => p.claim_orphan_callback().await,
        }
    }

    pub async fn purge(&self, retention_ms: i64) -> Result<u64, JobError> {
        match self {
            JobStore::Sqlite(s) => s.purge(retention_ms).map(|n| n as u64),
            JobStore::Postgres(p) => p.purge(retention_ms).await,
        }
    }

    /// Jobs with this status (0 when the store cannot say).
    pub async fn count(&self, status: &str) -> i64 {
        match self {
            JobStore::Sqlite(s) => s.count(status),
            JobStore::Postgres(p) => p.count(status).await.unwrap_or(0),
        }
    }
}
