-- What ingest was told about a title's source beside the file itself (e.g. the language of
-- each audio stream, `--audio-lang 0=en`): the worker reads it when it plans the ladder.
ALTER TABLE jobs.title_sources ADD COLUMN options jsonb NOT NULL DEFAULT '{}'::jsonb;
