"""Sessions and their opaque refresh tokens (stored hashed, single use, rotated).

A session is one signed-in device. Each refresh consumes the presented refresh token and
issues the next one in the same session (the token "family"). A consumed token presented
again means two parties hold it (RFC 9700, OAuth 2.0 Security BCP 4.14.2: refresh token
rotation): the whole session is revoked, so the thief's newest token dies with it.

Revoking here writes Postgres (the record). Callers also mark the session in Redis through
`auth.revocation` so access tokens already issued stop at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from auth.errors import InvalidToken, RefreshTokenReused, SessionNotFound, SessionRevoked

REFRESH_TOKEN_BYTES = 32


@dataclass(frozen=True)
class NewSession:
    session_id: str
    refresh_token: str


@dataclass(frozen=True)
class Rotated:
    session_id: str
    user_id: str
    refresh_token: str


@dataclass(frozen=True)
class SessionInfo:
    id: str
    created_at: datetime
    last_seen_at: datetime
    user_agent: str
    ip: str

    def to_json(self, *, current_session_id: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "last_seen_at": self.last_seen_at.isoformat(),
            "user_agent": self.user_agent,
            "ip": self.ip,
            "current": self.id == current_session_id,
        }


def hash_refresh_token(token: str) -> bytes:
    # A 256-bit random token needs no slow hash: SHA-256 cannot be brute-forced back.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


async def create_session(
    conn: asyncpg.Connection, *, user_id: str, refresh_ttl_s: int, user_agent: str = "", ip: str = ""
) -> NewSession:
    async with conn.transaction():
        sid = await conn.fetchval(
            "INSERT INTO auth.sessions (user_id, user_agent, ip) VALUES ($1::uuid, $2, $3) RETURNING id",
            user_id,
            _printable(user_agent)[:512],
            ip[:64],
        )
        token = await issue_refresh_token(conn, session_id=str(sid), ttl_s=refresh_ttl_s)
    return NewSession(str(sid), token)


def _printable(text: str) -> str:
    # Postgres text cannot hold NUL; a header can (aiohttp passes it through).
    return "".join(c for c in text if c.isprintable())


async def issue_refresh_token(conn: asyncpg.Connection, *, session_id: str, ttl_s: int) -> str:
    token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    await conn.execute(
        "INSERT INTO auth.refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2::uuid, $3)",
        hash_refresh_token(token),
        session_id,
        datetime.now(UTC) + timedelta(seconds=ttl_s),
    )
    return token


async def rotate(conn: asyncpg.Connection, refresh_token: str, *, refresh_ttl_s: int) -> Rotated:
    """Consume a refresh token and issue its successor.

    Raises RefreshTokenReused (after revoking the session) when the token was already used,
    SessionRevoked when its session is gone, InvalidToken when unknown or expired. The row
    lock makes two concurrent refreshes with one token take turns: the second is a reuse.
    """
    reused: str | None = None
    async with conn.transaction():
        row = await conn.fetchrow(
            """SELECT t.session_id, t.expires_at, t.used_at, s.user_id, s.revoked_at
               FROM auth.refresh_tokens t JOIN auth.sessions s ON s.id = t.session_id
               WHERE t.token_hash = $1 FOR UPDATE OF t, s""",
            hash_refresh_token(refresh_token),
        )
        if row is None:
            raise InvalidToken("unknown refresh token")
        sid = str(row["session_id"])
        if row["revoked_at"] is not None:
            raise SessionRevoked("this session has been signed out")
        if row["used_at"] is not None:
            await _revoke(conn, sid)
            reused = sid  # raised after the commit: the revocation must stick
        elif row["expires_at"] <= datetime.now(UTC):
            raise InvalidToken("refresh token expired")
        else:
            token = await _consume(conn, refresh_token, sid, refresh_ttl_s)
    if reused is not None:
        raise RefreshTokenReused("refresh token was already used; the session is signed out", session_id=reused)
    return Rotated(sid, str(row["user_id"]), token)


async def _consume(conn: asyncpg.Connection, refresh_token: str, sid: str, refresh_ttl_s: int) -> str:
    await conn.execute(
        "UPDATE auth.refresh_tokens SET used_at = now() WHERE token_hash = $1", hash_refresh_token(refresh_token)
    )
    await conn.execute("UPDATE auth.sessions SET last_seen_at = now() WHERE id = $1::uuid", sid)
    return await issue_refresh_token(conn, session_id=sid, ttl_s=refresh_ttl_s)


async def _revoke(conn: asyncpg.Connection, session_id: str) -> None:
    await conn.execute(
        "UPDATE auth.sessions SET revoked_at = now() WHERE id = $1::uuid AND revoked_at IS NULL", session_id
    )
    # The family's unused tokens are worthless now; drop them so nothing can rotate again.
    await conn.execute("DELETE FROM auth.refresh_tokens WHERE session_id = $1::uuid AND used_at IS NULL", session_id)


async def revoke(conn: asyncpg.Connection, session_id: str, *, user_id: str | None = None) -> str:
    """Revoke one session (of `user_id` when given: a user can only sign out their own)."""
    async with conn.transaction():
        owner = await conn.fetchval(
            "SELECT user_id FROM auth.sessions WHERE id = $1::uuid AND revoked_at IS NULL FOR UPDATE", session_id
        )
        if owner is None or (user_id is not None and str(owner) != user_id):
            raise SessionNotFound("no such session")
        await _revoke(conn, session_id)
    return session_id


async def revoke_all(conn: asyncpg.Connection, user_id: str, *, except_session: str | None = None) -> list[str]:
    """Revoke every live session of a user (but `except_session`); returns their ids."""
    async with conn.transaction():
        rows = await conn.fetch(
            """UPDATE auth.sessions SET revoked_at = now()
               WHERE user_id = $1::uuid AND revoked_at IS NULL AND ($2::uuid IS NULL OR id <> $2::uuid)
               RETURNING id""",
            user_id,
            except_session,
        )
        ids = [str(r["id"]) for r in rows]
        if ids:
            await conn.execute(
                "DELETE FROM auth.refresh_tokens WHERE session_id = ANY($1::uuid[]) AND used_at IS NULL", ids
            )
    return ids


async def list_active(conn: asyncpg.Connection, user_id: str, *, refresh_ttl_s: int) -> list[SessionInfo]:
    """Signed-in devices: not revoked, and seen within the refresh-token lifetime."""
    rows = await conn.fetch(
        """SELECT id, created_at, last_seen_at, user_agent, ip FROM auth.sessions
           WHERE user_id = $1::uuid AND revoked_at IS NULL
             AND last_seen_at > now() - make_interval(secs => $2)
           ORDER BY last_seen_at DESC""",
        user_id,
        float(refresh_ttl_s),
    )
    return [
        SessionInfo(id=str(r["id"]), **{k: r[k] for k in ("created_at", "last_seen_at", "user_agent", "ip")})
        for r in rows
    ]


async def is_revoked(conn: asyncpg.Connection, session_id: str) -> bool:
    """The Postgres answer (a deleted user's sessions are gone: revoked too)."""
    row = await conn.fetchrow("SELECT revoked_at FROM auth.sessions WHERE id = $1::uuid", session_id)
    return row is None or row["revoked_at"] is not None


async def revoked_since(conn: asyncpg.Connection, seconds: int) -> list[str]:
    # Deleted accounts' sessions have no row left in auth.sessions: auth.deleted_sessions.
    rows = await conn.fetch(
        """SELECT id FROM auth.sessions WHERE revoked_at > now() - make_interval(secs => $1)
           UNION SELECT id FROM auth.deleted_sessions WHERE deleted_at > now() - make_interval(secs => $1)""",
        float(seconds),
    )
    return [str(r["id"]) for r in rows]
