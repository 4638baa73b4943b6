-- The version a job publishes: chosen by its first attempt, reused by every later attempt of
-- the same job (its tasks, and the segments they already uploaded, belong to that version).
ALTER TABLE jobs.transcode_jobs ADD COLUMN version text;

-- A job's work cut into rectangles: renditions x segments first_number .. first_number +
-- segment_count - 1 (1-based). Any worker claims them; lease, fencing, retries and deferrals
-- as for jobs. Claimable only while their job is running (transcoder/tasks.py).
CREATE TABLE jobs.transcode_tasks (
    id bigserial PRIMARY KEY,
    job_id bigint NOT NULL REFERENCES jobs.transcode_jobs (id) ON DELETE CASCADE,
    -- copied from the job: bump() finds a viewer's cell by title and version
    title_id uuid NOT NULL,
    version text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('audio', 'video')),
    renditions text[] NOT NULL CHECK (cardinality(renditions) > 0),
    first_number integer NOT NULL CHECK (first_number >= 1),
    segment_count integer NOT NULL CHECK (segment_count >= 1),
    -- lower runs first; 0 = a viewer is waiting for it
    priority integer NOT NULL,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 3,
    deferrals integer NOT NULL DEFAULT 0,
    worker_id text,
    lease_until timestamptz,
    run_after timestamptz NOT NULL DEFAULT now(),
    error text,
    -- what the encode produced (per rendition: init info, per-segment number/duration/size)
    result jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX transcode_tasks_claim_idx
    ON jobs.transcode_tasks (priority, first_number, id) WHERE status = 'queued';
-- expired leases: taken over by claim_task(), failed by reap_tasks() on the last attempt
CREATE INDEX transcode_tasks_lease_idx
    ON jobs.transcode_tasks (lease_until) WHERE status = 'running';
-- a job's tasks (progress, finalize, bump's cell lookup)
CREATE INDEX transcode_tasks_job_idx ON jobs.transcode_tasks (job_id, first_number);
