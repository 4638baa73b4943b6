-- API keys: credentials for machines (upload scripts, CMS integrations), created by an admin,
-- shown once, stored as a SHA-256 of their secret (a key is 32 random bytes: a slow hash adds
-- nothing against guessing), named, scoped and revocable. A revoked key's row stays (its name
-- and last use remain visible); `revoked_at` makes it refuse at once.
CREATE TABLE auth.api_keys (
    id text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    secret_sha256 bytea NOT NULL CHECK (length(secret_sha256) = 32),
    scopes text[] NOT NULL CHECK (cardinality(scopes) > 0),
    -- the admin who made it; the key keeps working if that account goes (a machine's key
    -- must not break when a person leaves), the reference is just cleared
    created_by uuid REFERENCES auth.users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX api_keys_created_idx ON auth.api_keys (created_at DESC);
