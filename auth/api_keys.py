"""API keys: long-lived bearer credentials for machines, with scopes.

    sfk_{id}_{secret}        e.g. sfk_3f9a0c1b2d4e5f60_<43 url-safe characters>

- `id`: 16 hex characters, the row's key; shown in lists, not a secret.
- `secret`: 32 random bytes, base64url. Only its SHA-256 is stored, so the key is shown once,
  at creation. A key carries 256 bits: a fast hash is enough (nothing to brute-force), and
  verifying costs one indexed row read.
- The `sfk_` prefix tells a key from an access token (a JWT) at a glance, and makes leaked
  keys easy to find with secret scanners.

Scopes (`SCOPES`): `read` (GET the API as an admin would), `catalog:write` (create, edit,
delete titles; retry jobs), `upload` (send media). A key acts only within its scopes; creating
or revoking keys needs a person signed in as an admin, never a key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from auth.errors import InvalidField, InvalidToken

PREFIX = "sfk_"
SCOPES = ("read", "catalog:write", "upload")
NAME_MAX = 100
# last_used_at is written at most this often per key: a busy key must not turn every request
# into a row update.
TOUCH_EVERY_S = 60

_KEY = re.compile(r"sfk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_COLUMNS = "id, name, scopes, created_by, created_at, last_used_at, revoked_at"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_by: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _key(row: Mapping[str, Any]) -> ApiKey:
    data = dict(row)
    data["scopes"] = tuple(data["scopes"])
    data["created_by"] = str(data["created_by"]) if data["created_by"] else None
    return ApiKey(**data)


def looks_like_key(token: str) -> bool:
    return token.startswith(PREFIX)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes, deduplicated in `SCOPES` order; InvalidField for none or an unknown one."""
    given = set(scopes)
    unknown = sorted(given - set(SCOPES))
    if unknown:
        raise InvalidField(f"unknown scope {unknown[0]!r}: one of {', '.join(SCOPES)}", field="scopes")
    if not given:
        raise InvalidField("a key needs at least one scope", field="scopes")
    return tuple(s for s in SCOPES if s in given)


def check_name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > NAME_MAX:
        raise InvalidField(f"a key's name is 1 to {NAME_MAX} characters", field="name")
    return name


async def create(conn: asyncpg.Connection, name: str, scopes: Iterable[str], created_by: str) -> tuple[ApiKey, str]:
    """A new key: (its row, the key itself, which is never stored nor shown again)."""
    key_id = secrets.token_hex(8)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
    row = await conn.fetchrow(
        f"""INSERT INTO auth.api_keys (id, name, secret_sha256, scopes, created_by)
            VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}""",
        key_id,
        check_name(name),
        _digest(secret),
        list(check_scopes(scopes)),
        created_by,
    )
    return _key(row), f"{PREFIX}{key_id}_{secret}"


async def verify(conn: asyncpg.Connection, token: str) -> ApiKey:
    """The live key `token` is, its last use recorded (at most every TOUCH_EVERY_S).
    InvalidToken for a malformed, unknown, wrong or revoked key: one message for all, so
    a caller learns nothing about which ids exist."""
    m = _KEY.fullmatch(token)
    if m is None:
        raise InvalidToken("invalid API key")
    key_id, secret = m.groups()
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, secret_sha256 FROM auth.api_keys WHERE id = $1 AND revoked_at IS NULL", key_id
    )
    if row is None or not hmac.compare_digest(bytes(row["secret_sha256"]), _digest(secret)):
        raise InvalidToken("invalid API key")
    await conn.execute(
        """UPDATE auth.api_keys SET last_used_at = now()
            WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))""",
        key_id,
        float(TOUCH_EVERY_S),
    )
    return _key({k: v for k, v in row.items() if k != "secret_sha256"})


async def list_keys(conn: asyncpg.Connection) -> list[ApiKey]:
    """Every key, newest first, revoked ones included (marked)."""
    return [_key(r) for r in await conn.fetch(f"SELECT {_COLUMNS} FROM auth.api_keys ORDER BY created_at DESC, id")]


async def revoke(conn: asyncpg.Connection, key_id: str) -> ApiKey | None:
    """Revoke a key (idempotent: revoking twice keeps the first time). None: no such key."""
    row = await conn.fetchrow(
        f"""UPDATE auth.api_keys SET revoked_at = coalesce(revoked_at, now())
             WHERE id = $1 RETURNING {_COLUMNS}""",
        key_id,
    )
    return _key(row) if row else None
