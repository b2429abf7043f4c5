//! The per-key quota of the job store ([`JobQuota`]) and the one check every store makes inside its own
//! transaction before it stores a record ([`quota_verdict`]), so that SQLite and PostgreSQL refuse alike.

use super::InsertError;

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
