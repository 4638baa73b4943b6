-- Search tuning (bench/catalog.py):
--
-- 1. The fuzzy-title threshold for pg_trgm's `<%` operator, as a database default, so a
--    search is one statement instead of BEGIN / SET LOCAL / SELECT / COMMIT. pg_trgm's own
--    default (0.6) misses a transposed letter in a six-letter word ("matirx" ~ "matrix" is
--    0.43). Sessions opened before this ran keep 0.6 until they reconnect: fewer fuzzy
--    matches, nothing wrong.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET pg_trgm.word_similarity_threshold = 0.3', current_database());
END $$;

-- 2. No GIN pending list on the search indexes: titles are written rarely and read on every
--    keystroke, and a pending list (fastupdate) is scanned linearly by every query until a
--    vacuum merges it (a bulk load made "matirx" take 90 ms instead of 3 ms).
ALTER INDEX catalog.titles_search_doc_idx SET (fastupdate = off);
ALTER INDEX catalog.titles_prefix_doc_idx SET (fastupdate = off);
ALTER INDEX catalog.titles_search_title_trgm_idx SET (fastupdate = off);
ALTER INDEX catalog.titles_genres_idx SET (fastupdate = off);
SELECT gin_clean_pending_list('catalog.titles_search_doc_idx'::regclass),
       gin_clean_pending_list('catalog.titles_prefix_doc_idx'::regclass),
       gin_clean_pending_list('catalog.titles_search_title_trgm_idx'::regclass),
       gin_clean_pending_list('catalog.titles_genres_idx'::regclass);
