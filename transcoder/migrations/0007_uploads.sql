-- Resumable uploads (the tus protocol, server/api/uploads.py): the state in Postgres so any
-- server process can take the next request, the bytes in storage (an object written in parts:
-- S3 multipart, a part file on local storage; `media.storage.Storage.start_parts`).
CREATE TABLE jobs.uploads (
    id uuid PRIMARY KEY,
    -- who may continue it: a user id, or "key:{id}" for an API key
    owner text NOT NULL,
    length bigint NOT NULL CHECK (length > 0),
    received bigint NOT NULL DEFAULT 0 CHECK (received >= 0 AND received <= length),
    -- the title it becomes on completion (its id chosen up front: the bytes go to its source key)
    title_id uuid NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    storage_key text NOT NULL,
    write_id text NOT NULL,
    -- [[number, tag, bytes], ...] of the parts stored
    parts jsonb NOT NULL DEFAULT '[]',
    -- bytes received after the last part, kept in the tail object (media.keys.upload_tail_key)
    tail_bytes bigint NOT NULL DEFAULT 0,
    status text NOT NULL DEFAULT 'receiving' CHECK (status IN ('receiving', 'completed', 'terminated', 'expired')),
    -- one request at a time writes: it holds this lease, renewed as data flows
    busy_until timestamptz,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);
CREATE INDEX uploads_expiry_idx ON jobs.uploads (expires_at) WHERE status = 'receiving';
