-- `playable`: a title's first version while it is still being encoded (its timeline is
-- complete, its segments appear as workers make them). Viewers may list and play it like a
-- ready one, so visibility counts it too.

ALTER TABLE catalog.titles DROP CONSTRAINT titles_status_check;
ALTER TABLE catalog.titles ADD CONSTRAINT titles_status_check
    CHECK (status IN ('pending', 'processing', 'playable', 'ready', 'failed'));

-- visibility of a movie or episode is its own status; a series' is its own or its episodes'.
CREATE OR REPLACE FUNCTION catalog.titles_before_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'series' THEN
        NEW.visible := NEW.status IN ('ready', 'playable') OR EXISTS (
            SELECT 1 FROM catalog.titles e
             WHERE e.series_id = NEW.id AND e.kind = 'episode' AND e.status IN ('ready', 'playable'));
    ELSE
        NEW.visible := NEW.status IN ('ready', 'playable');
    END IF;
    IF NEW.published_at IS NOT NULL AND NEW.published_at > NEW.added_at THEN
        NEW.added_at := NEW.published_at;
    END IF;
    RETURN NEW;
END $$;
