"""Users in the `auth` schema."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from auth.emails import InvalidEmail, clean_email, email_key
from auth.errors import EmailTaken, InvalidCredentials, InvalidField, LastAdmin, UserNotFound, WrongPassword
from auth.passwords import check_policy, hash_password, needs_rehash, verify_password

ROLES = ("viewer", "admin")


async def _hashing(executor: Executor | None, fn: Callable[..., Any], *args: Any) -> Any:
    """argon2 is CPU-bound (~20-50 ms): off the event loop, in `executor` (the server's own
    `sf-argon2` pool, so logins never queue behind storage threads), else asyncio's default."""
    return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)


MAX_DISPLAY_NAME_LEN = 100


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
            "updated_at": self.updated_at.isoformat(),
        }


_COLUMNS = "id, email, display_name, role, email_verified, created_at, updated_at"


def _user(row: asyncpg.Record | dict[str, Any]) -> User:
    return User(
        **{k: row[k] for k in ("email", "display_name", "role", "email_verified", "created_at", "updated_at")},
        id=str(row["id"]),
    )


def normalize_email(email: str) -> str:
    try:
        return clean_email(email)
    except InvalidEmail as exc:
        raise InvalidField(str(exc), field="email") from exc


async def create_user(
    conn: asyncpg.Connection,
    *,
    email: str,
    password: str,
    display_name: str = "",
    role: str = "viewer",
    executor: Executor | None = None,
) -> User:
    email = normalize_email(email)
    check_policy(password)
    if role not in ROLES:
        raise InvalidField(f"role must be one of {', '.join(ROLES)}", field="role")
    password_hash = await _hashing(executor, hash_password, password)
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO auth.users (email, email_key, display_name, password_hash, role)
                VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}""",
            email,
            email_key(email),
            display_name[:MAX_DISPLAY_NAME_LEN],
            password_hash,
            role,
        )
    except asyncpg.UniqueViolationError as exc:
        raise EmailTaken("an account with this email already exists") from exc
    return _user(row)


async def find_by_email(conn: asyncpg.Connection, email: str) -> User | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM auth.users WHERE email_key = $1", email_key(email))
    return _user(row) if row else None


async def authenticate(
    conn: asyncpg.Connection, *, email: str, password: str, executor: Executor | None = None
) -> User:
    """Unknown email and wrong password fail alike, in about the same time: an unknown email
    is verified against a dummy hash (auth.passwords)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, password_hash FROM auth.users WHERE email_key = $1", email_key(email)
    )
    stored = row["password_hash"] if row else None
    ok = await _hashing(executor, verify_password, stored, password)
    if not ok or row is None:
        raise InvalidCredentials("wrong email or password")
    if needs_rehash(row["password_hash"]):
        new_hash = await _hashing(executor, hash_password, password)
        await conn.execute("UPDATE auth.users SET password_hash = $2 WHERE id = $1", row["id"], new_hash)
    return _user(row)


async def check_password(
    conn: asyncpg.Connection, user_id: str, password: str, *, executor: Executor | None = None
) -> None:
    stored = await conn.fetchval("SELECT password_hash FROM auth.users WHERE id = $1::uuid", user_id)
    if not await _hashing(executor, verify_password, stored, password) or stored is None:
        raise WrongPassword("the current password is wrong")


async def set_password(
    conn: asyncpg.Connection, user_id: str, password: str, *, executor: Executor | None = None
) -> None:
    check_policy(password)
    new_hash = await _hashing(executor, hash_password, password)
    done = await conn.execute(
        "UPDATE auth.users SET password_hash = $2, updated_at = now() WHERE id = $1::uuid", user_id, new_hash
    )
    if done.endswith(" 0"):
        raise UserNotFound("no such user")


async def get_role(conn: asyncpg.Connection, user_id: str) -> str | None:
    return await conn.fetchval("SELECT role FROM auth.users WHERE id = $1::uuid", user_id)


async def admin_ids(conn: asyncpg.Connection) -> list[str]:
    """Every admin's id (whom the transcoder's notifications are for)."""
    rows = await conn.fetch("SELECT id FROM auth.users WHERE role = 'admin' ORDER BY id")
    return [str(r["id"]) for r in rows]


async def get_user(conn: asyncpg.Connection, user_id: str) -> User:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM auth.users WHERE id = $1::uuid", user_id)
    if row is None:
        raise UserNotFound("no such user")
    return _user(row)


async def update_profile(conn: asyncpg.Connection, user_id: str, *, display_name: str) -> User:
    row = await conn.fetchrow(
        f"""UPDATE auth.users SET display_name = $2, updated_at = now()
            WHERE id = $1::uuid RETURNING {_COLUMNS}""",
        user_id,
        display_name[:MAX_DISPLAY_NAME_LEN],
    )
    if row is None:
        raise UserNotFound("no such user")
    return _user(row)


async def mark_verified(conn: asyncpg.Connection, user_id: str, email: str) -> bool:
    """Verify the account only while its address is still the one the link was sent to."""
    done = await conn.execute(
        "UPDATE auth.users SET email_verified = true, updated_at = now() WHERE id = $1::uuid AND email = $2",
        user_id,
        email,
    )
    return not done.endswith(" 0")


async def set_role(conn: asyncpg.Connection, user_id: str, role: str) -> User:
    """Change a role; refuses to demote the last admin (nobody could undo it from the API)."""
    if role not in ROLES:
        raise InvalidField(f"role must be one of {', '.join(ROLES)}", field="role")
    async with conn.transaction():
        # Serialise role changes so two admins demoting each other cannot leave none.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('auth.users.role'))")
        current = await conn.fetchval("SELECT role FROM auth.users WHERE id = $1::uuid", user_id)
        if current is None:
            raise UserNotFound("no such user")
        if current == "admin" and role != "admin":
            admins = await conn.fetchval("SELECT count(*) FROM auth.users WHERE role = 'admin'")
            if admins <= 1:
                raise LastAdmin("cannot demote the last admin")
        row = await conn.fetchrow(
            f"UPDATE auth.users SET role = $2, updated_at = now() WHERE id = $1::uuid RETURNING {_COLUMNS}",
            user_id,
            role,
        )
    return _user(row)


# How long a deleted account's session ids are kept (auth.deleted_sessions) when the caller
# does not say: at least the longest access-token lifetime.
DELETED_SESSIONS_KEEP_S = 24 * 3600


async def delete_user(
    conn: asyncpg.Connection, user_id: str, *, keep_sessions_s: float = DELETED_SESSIONS_KEEP_S
) -> None:
    """Deletes the row; sessions, refresh and email tokens go with it (ON DELETE CASCADE).

    The session ids are kept in `auth.deleted_sessions` for `keep_sessions_s` (pass the
    revocation TTL): access tokens of those sessions are still unexpired, and a Redis that
    lost its revocation keys must find them when it reloads from Postgres."""
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM auth.deleted_sessions WHERE deleted_at < now() - make_interval(secs => $1)",
            float(keep_sessions_s),
        )
        await conn.execute(
            """INSERT INTO auth.deleted_sessions (id) SELECT id FROM auth.sessions WHERE user_id = $1::uuid
               ON CONFLICT (id) DO UPDATE SET deleted_at = now()""",
            user_id,
        )
        done = await conn.execute("DELETE FROM auth.users WHERE id = $1::uuid", user_id)
        if done.endswith(" 0"):
            raise UserNotFound("no such user")


def encode_cursor(user: User) -> str:
    raw = json.dumps([user.created_at.isoformat(), user.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, uid = json.loads(raw)
        return datetime.fromisoformat(created), str(uid)
    except (ValueError, TypeError) as exc:
        raise InvalidField("cursor is not valid", field="cursor") from exc


async def list_users(
    conn: asyncpg.Connection, *, limit: int, cursor: str | None = None
) -> tuple[list[User], str | None]:
    """Oldest first, keyset-paginated on (created_at, id): stable while users sign up."""
    if cursor:
        created, uid = decode_cursor(cursor)
        try:
            rows = await conn.fetch(
                f"""SELECT {_COLUMNS} FROM auth.users WHERE (created_at, id) > ($1, $2::uuid)
                    ORDER BY created_at, id LIMIT $3""",
                created,
                uid,
                limit + 1,
            )
        except (asyncpg.DataError, ValueError) as exc:
            raise InvalidField("cursor is not valid", field="cursor") from exc
    else:
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM auth.users ORDER BY created_at, id LIMIT $1", limit + 1)
    items = [_user(r) for r in rows[:limit]]
    return items, (encode_cursor(items[-1]) if len(rows) > limit else None)
