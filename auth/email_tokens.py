"""Single-use, expiring tokens for email links (verification, password reset).

Only SHA-256(token) is stored. Issuing a new token of a purpose voids the user's older
unused ones, so only the latest link works. Consuming is one UPDATE ... RETURNING: two
clicks racing on one link cannot both succeed.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import asyncpg

from auth.errors import InvalidEmailToken

VERIFY_EMAIL = "verify_email"
PASSWORD_RESET = "password_reset"
TTL_S = {VERIFY_EMAIL: 48 * 3600, PASSWORD_RESET: 3600}  # OWASP: reset links short-lived
TOKEN_BYTES = 32


@dataclass(frozen=True)
class Consumed:
    user_id: str
    email: str


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


async def issue(conn: asyncpg.Connection, *, user_id: str, purpose: str, email: str) -> str:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    async with conn.transaction():
        await conn.execute(
            "UPDATE auth.email_tokens SET used_at = now()"
            " WHERE user_id = $1::uuid AND purpose = $2 AND used_at IS NULL",
            user_id,
            purpose,
        )
        await conn.execute(
            """INSERT INTO auth.email_tokens (token_hash, user_id, purpose, email, expires_at)
               VALUES ($1, $2::uuid, $3, $4, now() + make_interval(secs => $5))""",
            hash_token(token),
            user_id,
            purpose,
            email,
            float(TTL_S[purpose]),
        )
    return token


async def consume(conn: asyncpg.Connection, token: str, *, purpose: str) -> Consumed:
    row = await conn.fetchrow(
        """UPDATE auth.email_tokens SET used_at = now()
           WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
           RETURNING user_id, email""",
        hash_token(token),
        purpose,
    )
    if row is None:
        raise InvalidEmailToken("this link is invalid, expired or already used")
    return Consumed(str(row["user_id"]), row["email"])
