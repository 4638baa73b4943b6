-- A job may create its tasks in stages: a per-title ladder's job creates what a player starts
-- with (the audio, the lowest rung's first segment) at once and the rest once the ladder is
-- chosen. create_tasks() is idempotent per stage: an attempt that finds a stage made by an
-- earlier one reuses it.
ALTER TABLE jobs.transcode_tasks ADD COLUMN stage smallint NOT NULL DEFAULT 0;
