-- Async executions shared by every runbox node of a cluster (`database_url = "postgres://..."`).
-- Applied once, at start-up, by the first node that finds it missing (runbox_migrations records it; an advisory
-- lock keeps nodes starting together from applying it twice). The columns up to result_truncated mirror the
-- embedded SQLite store; the rest carry what several nodes need: who runs a job, until when, how often it started.

-- Every time below is milliseconds since the Unix epoch by the database's clock, so that nodes whose clocks
-- disagree still agree on when a lease expires.
CREATE OR REPLACE FUNCTION runbox_now_ms() RETURNS BIGINT
    LANGUAGE sql VOLATILE
    AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT $$;

CREATE TABLE IF NOT EXISTS runbox_jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    -- queued, running, done or cancelled
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    callback_url TEXT,
    result TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    -- What the record counts against its key's quota (bytes).
    size BIGINT NOT NULL DEFAULT 0,
    result_truncated BOOLEAN NOT NULL DEFAULT FALSE,
    -- Order of arrival: jobs are taken oldest first.
    seq BIGSERIAL NOT NULL,
    -- The node running the job, and until when its lease holds (the node renews it while the job runs; once it
    -- has expired, another node may take the job).
    node TEXT,
    lease_until BIGINT,
    -- How many times a node started the job.
    attempts INTEGER NOT NULL DEFAULT 0,
    -- A finished job whose callback is still to be delivered, and the node delivering it (until when).
    callback_pending BOOLEAN NOT NULL DEFAULT FALSE,
    callback_node TEXT,
    callback_lease_until BIGINT
);
CREATE INDEX IF NOT EXISTS runbox_jobs_status ON runbox_jobs (status, seq);
CREATE INDEX IF NOT EXISTS runbox_jobs_owner ON runbox_jobs (owner);
CREATE INDEX IF NOT EXISTS runbox_jobs_callbacks ON runbox_jobs (finished_at) WHERE callback_pending;

-- What a compatibility route keeps beside a job to answer in its own shape (a Judge0 submission).
CREATE TABLE IF NOT EXISTS runbox_job_extras (
    id TEXT PRIMARY KEY REFERENCES runbox_jobs (id) ON DELETE CASCADE,
    extra TEXT NOT NULL
);
