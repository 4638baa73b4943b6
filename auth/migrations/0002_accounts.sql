-- Accounts: unicode-aware email uniqueness, one-time email tokens, session listing.

-- The uniqueness key is NFKC-normalised and case-folded in Python (auth.emails.email_key),
-- so "Bob@Example.com", "bob@example.com" and a full-width "ｂｏｂ@example.com" are one
-- account. Rows from before this migration get an approximation (lower() of NFKC) that
-- equals casefold() for every ASCII address.
ALTER TABLE auth.users ADD COLUMN email_key text;
UPDATE auth.users SET email_key = lower(normalize(email, NFKC));
ALTER TABLE auth.users ALTER COLUMN email_key SET NOT NULL;
CREATE UNIQUE INDEX users_email_key_key ON auth.users (email_key);
DROP INDEX auth.users_email_lower_key;
CREATE INDEX users_created_idx ON auth.users (created_at, id);

-- Verification and password-reset tokens: only the SHA-256 of the token is stored, so a
-- database leak does not hand out working links. Single use (used_at), expiring.
CREATE TABLE auth.email_tokens (
    token_hash bytea PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    purpose text NOT NULL CHECK (purpose IN ('verify_email', 'password_reset')),
    -- the address the link was sent to: a verification only counts for that address
    email text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX email_tokens_user_idx ON auth.email_tokens (user_id, purpose);

-- Revoked sessions of the last access-token lifetime are reloaded into Redis after a restart.
CREATE INDEX sessions_revoked_idx ON auth.sessions (revoked_at) WHERE revoked_at IS NOT NULL;
