-- Timed comments on a title: said at a playback position, listed by it, shown in the player
-- when playback reaches it. A comment made in a watch party carries the party's id (parties
-- live in Redis, so no foreign key) and is also delivered live to its members.

CREATE TABLE catalog.comments (
    id bigserial PRIMARY KEY,
    title_id uuid NOT NULL REFERENCES catalog.titles (id) ON DELETE CASCADE,
    -- keyed by the account's id with no foreign key (auth's schema is not ours)
    user_id uuid NOT NULL,
    party_id text,
    position_s double precision NOT NULL CHECK (position_s >= 0),
    body text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 500),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX comments_title_position_idx ON catalog.comments (title_id, position_s, id);
CREATE INDEX comments_user_idx ON catalog.comments (user_id, created_at DESC);

-- One report per person per comment; the count is what a moderator looks at.
CREATE TABLE catalog.comment_reports (
    comment_id bigint NOT NULL REFERENCES catalog.comments (id) ON DELETE CASCADE,
    user_id uuid NOT NULL,
    reason text NOT NULL DEFAULT '' CHECK (char_length(reason) <= 500),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (comment_id, user_id)
);
