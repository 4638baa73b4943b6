-- Expired leases are found by claim() (a dead worker's job is taken over) and by
-- reap_exhausted(); both scan running jobs by lease end.
CREATE INDEX transcode_jobs_lease_idx
    ON jobs.transcode_jobs (lease_until) WHERE status = 'running';
CREATE INDEX transcode_jobs_title_idx ON jobs.transcode_jobs (title_id, id DESC);
