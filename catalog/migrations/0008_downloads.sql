-- Whether viewers may download a title as one MP4 (docs/tracks.md, "Downloads"). On by
-- default: the download is made from the stream's own segments, and an admin turns it off
-- per title (rights that allow streaming only).

ALTER TABLE catalog.titles ADD COLUMN downloads_enabled boolean NOT NULL DEFAULT true;
