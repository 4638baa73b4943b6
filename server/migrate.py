"""`streamflix migrate`: apply every package's numbered SQL migrations, in order, once.

Each package owns `PKG/migrations/NNNN_name.sql` in its own schema. Applied migrations are
recorded in `public.streamflix_migrations`; a session-level advisory lock makes two processes
running this at once take turns (the second finds nothing left to do).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

# Order matters where a migration reads another package's objects: transcoder/0003 moves the
# source and probe columns out of catalog.titles, so catalog migrates before transcoder.
PACKAGES = ("auth", "catalog", "transcoder")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_ID = 0x5F11A  # arbitrary, constant: the advisory lock key for migrations


@dataclass(frozen=True)
class Migration:
    package: str
    number: int
    name: str
    sql: str


def discover(packages: tuple[str, ...] = PACKAGES) -> list[Migration]:
    found: list[Migration] = []
    for pkg in packages:
        init = importlib.import_module(pkg).__file__
        if init is None:  # a namespace package: no folder of its own to hold migrations
            continue
        root = Path(init).parent / "migrations"
        if not root.is_dir():
            continue
        numbers: set[int] = set()
        for entry in sorted(root.iterdir(), key=lambda e: e.name):
            m = _NAME.match(entry.name)
            if not m:
                continue
            number = int(m.group(1))
            if number in numbers:
                raise RuntimeError(f"two migrations numbered {number:04d} in {pkg}")
            numbers.add(number)
            found.append(Migration(pkg, number, m.group(2), entry.read_text()))
    return found


async def ensure_database(dsn: str) -> None:
    """Create the database named in the DSN when it does not exist yet."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        parts = urlsplit(dsn)
        dbname = parts.path.lstrip("/")
        admin = urlunsplit(parts._replace(path="/postgres"))
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'CREATE DATABASE "{dbname}"')
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            # another process created it between our connect and CREATE DATABASE
            pass
        finally:
            await conn.close()
    else:
        await conn.close()


async def pending(conn: asyncpg.Connection | asyncpg.Pool, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """The migrations this code has that the database has not applied (all of them on a
    database `migrate` never ran on)."""
    if await conn.fetchval("SELECT to_regclass('public.streamflix_migrations')") is None:
        done: set[tuple[str, int]] = set()
    else:
        rows = await conn.fetch("SELECT package, number FROM public.streamflix_migrations")
        done = {(r["package"], r["number"]) for r in rows}
    return [f"{m.package}/{m.number:04d}_{m.name}" for m in discover(packages) if (m.package, m.number) not in done]


async def migrate(dsn: str, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """Apply what is missing; return the names applied (empty when up to date)."""
    await ensure_database(dsn)
    migrations = discover(packages)
    applied: list[str] = []
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
        try:
            await conn.execute(
                """
                CREATE TABLE IF NOT EXISTS public.streamflix_migrations (
                    package text NOT NULL,
                    number integer NOT NULL,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (package, number)
                )
                """
            )
            done = {
                (r["package"], r["number"])
                for r in await conn.fetch("SELECT package, number FROM public.streamflix_migrations")
            }
            for m in migrations:
                if (m.package, m.number) in done:
                    continue
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO public.streamflix_migrations (package, number, name) VALUES ($1, $2, $3)",
                        m.package,
                        m.number,
                        m.name,
                    )
                applied.append(f"{m.package}/{m.number:04d}_{m.name}")
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    finally:
        await conn.close()
    return applied
