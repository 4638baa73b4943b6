CREATE SCHEMA IF NOT EXISTS catalog;

CREATE TABLE catalog.titles (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind text NOT NULL CHECK (kind IN ('movie', 'series', 'episode')),
    title text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    year integer CHECK (year BETWEEN 1870 AND 2200),
    genres text[] NOT NULL DEFAULT '{}',
    description text NOT NULL DEFAULT '',
    -- series have no media: their status stays 'ready'
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
    failure_reason text,
    duration_s double precision,
    series_id uuid REFERENCES catalog.titles (id) ON DELETE CASCADE,
    season_number integer CHECK (season_number >= 0),
    episode_number integer CHECK (episode_number >= 0),
    -- the published version (storage prefix titles/{id}/{version}/); NULL until first ready
    current_version text,
    source text,
    probe jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    CHECK ((kind = 'episode') = (series_id IS NOT NULL))
);
CREATE UNIQUE INDEX titles_episode_key
    ON catalog.titles (series_id, season_number, episode_number) WHERE kind = 'episode';
CREATE INDEX titles_kind_created_idx ON catalog.titles (kind, created_at DESC, id DESC);
CREATE INDEX titles_series_idx ON catalog.titles (series_id) WHERE series_id IS NOT NULL;
