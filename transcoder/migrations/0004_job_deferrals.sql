-- How many times a job was put back because a dependency (storage, the database) was
-- unreachable. A deferral spends no attempt; the count sets the next delay (10 s doubling to
-- 2 min) and shows an operator that the job waits on an outage, not on a broken title.
ALTER TABLE jobs.transcode_jobs ADD COLUMN deferrals integer NOT NULL DEFAULT 0;
