-- A deleted account's sessions go with its user row (ON DELETE CASCADE), but access
-- tokens already issued to them live on for one access-token lifetime. Their ids are kept
-- here (no foreign key: the user is gone) so that when Redis loses its revocation keys, the
-- reload from Postgres (auth.revocation) finds these sessions too. Rows older than the
-- longest access-token lifetime are pruned on the next deletion.
CREATE TABLE auth.deleted_sessions (
    id uuid PRIMARY KEY,
    deleted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deleted_sessions_deleted_idx ON auth.deleted_sessions (deleted_at);
