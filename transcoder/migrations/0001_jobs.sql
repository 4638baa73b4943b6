CREATE SCHEMA IF NOT EXISTS jobs;

CREATE TABLE jobs.transcode_jobs (
    id bigserial PRIMARY KEY,
    -- the catalog title this job produces; no FK across schemas (database per service)
    title_id uuid NOT NULL,
    source text NOT NULL,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 3,
    run_after timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz,
    worker_id text,
    progress real NOT NULL DEFAULT 0,
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
-- at most one live job per title
CREATE UNIQUE INDEX transcode_jobs_live_title_key
    ON jobs.transcode_jobs (title_id) WHERE status IN ('queued', 'running');
CREATE INDEX transcode_jobs_claim_idx
    ON jobs.transcode_jobs (run_after, id) WHERE status = 'queued';
