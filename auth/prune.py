"""Deleting account records no request can use any more, so auth tables stop growing with
every login, refresh and mail sent. `streamflix users prune` runs it (cron it daily).

What goes, and why nothing live does:

- refresh tokens past their expiry (a replay is refused either way; used but unexpired ones
  stay, they are what reuse detection recognises);
- verification and reset tokens past their expiry (used but unexpired ones stay, so a second
  click still says "already used");
- sessions revoked longer ago than the access-token lifetime (no access token of theirs can
  still be valid, and the Redis revocation reload only looks that far back), and sessions with
  no refresh token left and no activity for that long (every token they issued has expired);
  a deleted session reads as revoked (auth.sessions.is_revoked);
- deleted accounts' session ids past the access-token lifetime (auth.deleted_sessions).
"""

from __future__ import annotations

from typing import Any


async def prune(conn: Any, *, access_token_ttl_s: int) -> dict[str, int]:
    """Deletes in one transaction; returns how many rows of each kind went."""
    ttl = max(int(access_token_ttl_s), 0)
    async with conn.transaction():
        refresh = await conn.fetchval(
            "WITH d AS (DELETE FROM auth.refresh_tokens WHERE expires_at < now() RETURNING 1) SELECT count(*) FROM d"
        )
        email = await conn.fetchval(
            "WITH d AS (DELETE FROM auth.email_tokens WHERE expires_at < now() RETURNING 1) SELECT count(*) FROM d"
        )
        sessions = await conn.fetchval(
            """WITH d AS (
                 DELETE FROM auth.sessions s
                  WHERE s.revoked_at < now() - make_interval(secs => $1)
                     OR (s.revoked_at IS NULL
                         AND s.last_seen_at < now() - make_interval(secs => $1)
                         AND NOT EXISTS (SELECT 1 FROM auth.refresh_tokens t WHERE t.session_id = s.id))
                 RETURNING 1)
               SELECT count(*) FROM d""",
            ttl,
        )
        deleted = await conn.fetchval(
            """WITH d AS (DELETE FROM auth.deleted_sessions WHERE deleted_at < now() - make_interval(secs => $1)
               RETURNING 1) SELECT count(*) FROM d""",
            ttl,
        )
    return {"refresh_tokens": refresh, "email_tokens": email, "sessions": sessions, "deleted_sessions": deleted}
