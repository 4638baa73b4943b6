"""Sessions and their opaque refresh tokens (stored hashed, single use)."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import asyncpg


@dataclass(frozen=True)
class NewSession:
    session_id: str
    refresh_token: str


def hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create_session(
    conn: asyncpg.Connection, *, user_id: str, refresh_ttl_s: int, user_agent: str = "", ip: str = ""
) -> NewSession:
    async with conn.transaction():
        sid = await conn.fetchval(
            "INSERT INTO auth.sessions (user_id, user_agent, ip) VALUES ($1::uuid, $2, $3) RETURNING id",
            user_id,
            user_agent[:512],
            ip[:64],
        )
        token = await issue_refresh_token(conn, session_id=str(sid), ttl_s=refresh_ttl_s)
    return NewSession(str(sid), token)


async def issue_refresh_token(conn: asyncpg.Connection, *, session_id: str, ttl_s: int) -> str:
    token = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO auth.refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2::uuid, $3)",
        hash_refresh_token(token),
        session_id,
        datetime.now(timezone.utc) + timedelta(seconds=ttl_s),
    )
    return token
