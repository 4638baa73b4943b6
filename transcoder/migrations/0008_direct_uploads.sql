-- Direct uploads: a one-time, expiring upload URL an admin (or a key) makes for a browser
-- elsewhere that has no account, bound to the title's metadata given here. Only the token's
-- SHA-256 is kept; the upload it starts is owned by "direct:{id}".
CREATE TABLE jobs.direct_uploads (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_sha256 bytea NOT NULL UNIQUE,
    metadata jsonb NOT NULL,
    created_by text NOT NULL,
    expires_at timestamptz NOT NULL,
    upload_id uuid REFERENCES jobs.uploads (id),
    created_at timestamptz NOT NULL DEFAULT now()
);
