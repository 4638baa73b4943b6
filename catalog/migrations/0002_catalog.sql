-- Catalog: credits, posters, visibility, popularity, search, favorites, history.

CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public;

-- unaccent() is STABLE (it reads a dictionary chosen by search_path); naming the dictionary
-- makes the result depend on the input only, so it can feed generated columns and indexes.
CREATE FUNCTION catalog.fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT lower(public.unaccent('public.unaccent'::regdictionary, $1)) $$;

-- Full-text configurations that fold accents before stemming ("Amélie" finds "amelie").
CREATE TEXT SEARCH CONFIGURATION catalog.search (COPY = pg_catalog.english);
ALTER TEXT SEARCH CONFIGURATION catalog.search
    ALTER MAPPING FOR hword, hword_part, word WITH public.unaccent, english_stem;
-- No stemming, no stop words: for prefix suggestions ("the ma" -> "The Matrix").
CREATE TEXT SEARCH CONFIGURATION catalog.prefix (COPY = pg_catalog.simple);
ALTER TEXT SEARCH CONFIGURATION catalog.prefix
    ALTER MAPPING FOR hword, hword_part, word WITH public.unaccent, simple;

ALTER TABLE catalog.titles
    -- [{"name": "Keanu Reeves", "role": "cast", "character": "Neo"}, ...]
    ADD COLUMN credits jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(credits) = 'array'),
    -- an uploaded poster (media.keys.uploaded_poster_key); NULL = the version's poster.jpg
    ADD COLUMN poster_etag text,
    ADD COLUMN poster_content_type text,
    -- what viewers may see: a ready movie or episode, a series that is ready or has a ready
    -- episode. Kept by the triggers below so browse is one index range.
    ADD COLUMN visible boolean NOT NULL DEFAULT false,
    -- distinct viewers with history on the title (for a series: on any of its episodes)
    ADD COLUMN popularity bigint NOT NULL DEFAULT 0,
    -- "newest": when the title (a series: its latest episode) was published, else created
    ADD COLUMN added_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN search_title text GENERATED ALWAYS AS (catalog.fold(title)) STORED,
    ADD COLUMN search_doc tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('catalog.search'::regconfig, title), 'A')
        || setweight(jsonb_to_tsvector('catalog.search'::regconfig,
                                       jsonb_path_query_array(credits, '$[*].name'), '["string"]'), 'B')
        || setweight(to_tsvector('catalog.search'::regconfig, description), 'C')
    ) STORED,
    ADD COLUMN prefix_doc tsvector GENERATED ALWAYS AS (to_tsvector('catalog.prefix'::regconfig, title)) STORED;

UPDATE catalog.titles SET added_at = coalesce(published_at, created_at);

CREATE INDEX titles_search_doc_idx ON catalog.titles USING gin (search_doc);
CREATE INDEX titles_prefix_doc_idx ON catalog.titles USING gin (prefix_doc);
CREATE INDEX titles_search_title_trgm_idx ON catalog.titles USING gin (search_title gin_trgm_ops);
CREATE INDEX titles_genres_idx ON catalog.titles USING gin (genres);
-- browse: the visible titles, newest or most popular first, keyset on (key, id)
CREATE INDEX titles_browse_new_idx ON catalog.titles (added_at DESC, id DESC) WHERE visible;
CREATE INDEX titles_browse_popular_idx ON catalog.titles (popularity DESC, id DESC) WHERE visible;
CREATE INDEX titles_kind_browse_new_idx ON catalog.titles (kind, added_at DESC, id DESC) WHERE visible;
CREATE INDEX titles_kind_browse_popular_idx ON catalog.titles (kind, popularity DESC, id DESC) WHERE visible;
CREATE INDEX titles_prefix_title_idx ON catalog.titles (search_title text_pattern_ops);

-- visibility of a movie or episode is its own status; a series' is its own or its episodes'.
CREATE FUNCTION catalog.titles_before_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'series' THEN
        NEW.visible := NEW.status = 'ready' OR EXISTS (
            SELECT 1 FROM catalog.titles e
             WHERE e.series_id = NEW.id AND e.kind = 'episode' AND e.status = 'ready');
    ELSE
        NEW.visible := NEW.status = 'ready';
    END IF;
    IF NEW.published_at IS NOT NULL AND NEW.published_at > NEW.added_at THEN
        NEW.added_at := NEW.published_at;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER titles_before_write BEFORE INSERT OR UPDATE ON catalog.titles
    FOR EACH ROW EXECUTE FUNCTION catalog.titles_before_write();

CREATE FUNCTION catalog.episodes_after_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sid uuid;
BEGIN
    IF TG_OP = 'DELETE' THEN
        sid := OLD.series_id;
    ELSE
        sid := NEW.series_id;
    END IF;
    IF sid IS NULL THEN
        RETURN NULL;
    END IF;
    -- Touching the series re-runs its BEFORE trigger (visibility); an episode published
    -- later than the series' added_at makes the series "new" again.
    UPDATE catalog.titles s
       SET published_at = CASE
               WHEN TG_OP <> 'DELETE' AND NEW.published_at IS NOT NULL
                    AND (s.published_at IS NULL OR NEW.published_at > s.published_at)
               THEN NEW.published_at ELSE s.published_at END
     WHERE s.id = sid AND s.kind = 'series';
    RETURN NULL;
END $$;

CREATE TRIGGER episodes_after_write
    AFTER INSERT OR DELETE OR UPDATE OF status, published_at, series_id ON catalog.titles
    FOR EACH ROW WHEN (pg_trigger_depth() < 1)
    EXECUTE FUNCTION catalog.episodes_after_write();

UPDATE catalog.titles SET status = status;

CREATE TABLE catalog.favorites (
    user_id uuid NOT NULL,
    title_id uuid NOT NULL REFERENCES catalog.titles (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, title_id)
);
CREATE INDEX favorites_user_created_idx ON catalog.favorites (user_id, created_at DESC);
CREATE INDEX favorites_title_idx ON catalog.favorites (title_id);

CREATE TABLE catalog.history (
    user_id uuid NOT NULL,
    title_id uuid NOT NULL REFERENCES catalog.titles (id) ON DELETE CASCADE,
    -- the "show": the series of an episode, else the title itself (recommendations and
    -- continue-watching work per show)
    item_id uuid NOT NULL,
    position_s double precision NOT NULL CHECK (position_s >= 0),
    duration_s double precision,
    finished boolean NOT NULL DEFAULT false,
    -- last write wins by the client's clock, so a stale tab cannot rewind progress
    client_ts timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, title_id)
);
CREATE INDEX history_user_updated_idx ON catalog.history (user_id, updated_at DESC);
CREATE INDEX history_item_updated_idx ON catalog.history (item_id, updated_at DESC);
CREATE INDEX history_title_idx ON catalog.history (title_id);

-- Any write that changes what browse, search or a title page shows (not popularity, which
-- history writes bump constantly) tells listening servers to drop their cached pages: the
-- transcoder worker publishes titles without knowing about the cache.
CREATE FUNCTION catalog.titles_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('catalog_changed', '');
    RETURN NULL;
END $$;

CREATE TRIGGER titles_notify_change
    AFTER INSERT OR DELETE OR UPDATE OF kind, title, year, genres, description, status,
        failure_reason, duration_s, series_id, season_number, episode_number, current_version,
        credits, poster_etag, visible, published_at, added_at
    ON catalog.titles
    FOR EACH STATEMENT EXECUTE FUNCTION catalog.titles_notify();
