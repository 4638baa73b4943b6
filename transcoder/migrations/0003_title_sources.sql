-- What the transcoder knows about a title's source moves out of the catalog into its own
-- table: the source as it was given to ingest, and its probe (so a retry never probes twice).
-- Runs after catalog/0001 (packages migrate in the order auth, catalog, transcoder), which
-- made these columns; existing rows are copied before the columns go.
CREATE TABLE jobs.title_sources (
    -- the catalog title; no FK across schemas (database per service)
    title_id uuid PRIMARY KEY,
    source text,
    probe jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO jobs.title_sources (title_id, source, probe, created_at, updated_at)
SELECT id, source, probe, created_at, updated_at
  FROM catalog.titles
 WHERE source IS NOT NULL OR probe IS NOT NULL;

ALTER TABLE catalog.titles DROP COLUMN source, DROP COLUMN probe;
