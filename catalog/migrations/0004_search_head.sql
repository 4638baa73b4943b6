-- Title and credits alone (weights A and B), for ranking: a common word matches a tenth of
-- all descriptions, and ranking every one of those rows made a one-word search take 150 ms
-- on 10,000 titles (bench/catalog.py). Search ranks the title/credit matches and fills up
-- with description-only matches, most watched first, only when those are few.
ALTER TABLE catalog.titles
    ADD COLUMN head_doc tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('catalog.search'::regconfig, title), 'A')
        || setweight(jsonb_to_tsvector('catalog.search'::regconfig,
                                       jsonb_path_query_array(credits, '$[*].name'), '["string"]'), 'B')
    ) STORED;
CREATE INDEX titles_head_doc_idx ON catalog.titles USING gin (head_doc) WITH (fastupdate = off);
