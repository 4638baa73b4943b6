"""Users in the `auth` schema."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from auth.errors import EmailTaken, InvalidCredentials, UserNotFound
from auth.passwords import check_policy, hash_password, needs_rehash, verify_password

ROLES = ("viewer", "admin")


@dataclass(frozen=True)
class User:
    id: str
    email: str
    display_name: str
    role: str
    email_verified: bool
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "display_name": self.display_name,
            "role": self.role,
            "email_verified": self.email_verified,
            "created_at": self.created_at.isoformat(),
        }


_COLUMNS = "id, email, display_name, role, email_verified, created_at, updated_at"


def _user(row: asyncpg.Record) -> User:
    return User(**{**dict(row), "id": str(row["id"])})


def normalize_email(email: str) -> str:
    return email.strip()


async def create_user(
    conn: asyncpg.Connection,
    *,
    email: str,
    password: str,
    display_name: str = "",
    role: str = "viewer",
) -> User:
    check_policy(password)
    # argon2 is CPU-bound (~20-50 ms): keep the event loop free.
    password_hash = await asyncio.to_thread(hash_password, password)
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO auth.users (email, display_name, password_hash, role)
                VALUES ($1, $2, $3, $4) RETURNING {_COLUMNS}""",
            normalize_email(email),
            display_name,
            password_hash,
            role,
        )
    except asyncpg.UniqueViolationError as exc:
        raise EmailTaken("an account with this email already exists") from exc
    return _user(row)


async def authenticate(conn: asyncpg.Connection, *, email: str, password: str) -> User:
    """Unknown email and wrong password fail alike, in about the same time."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, password_hash FROM auth.users WHERE lower(email) = lower($1)",
        normalize_email(email),
    )
    stored = row["password_hash"] if row else None
    ok = await asyncio.to_thread(verify_password, stored, password)
    if not ok or row is None:
        raise InvalidCredentials("wrong email or password")
    if needs_rehash(stored):
        new_hash = await asyncio.to_thread(hash_password, password)
        await conn.execute(
            "UPDATE auth.users SET password_hash = $2, updated_at = now() WHERE id = $1", row["id"], new_hash
        )
    return _user({k: row[k] for k in row.keys() if k != "password_hash"})


async def get_user(conn: asyncpg.Connection, user_id: str) -> User:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM auth.users WHERE id = $1::uuid", user_id)
    if row is None:
        raise UserNotFound("no such user")
    return _user(row)
