"""The Postgres pool and storage a CLI command needs, opened and closed together."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from media.backend import open_storage
from media.storage import Storage
from server import migrate
from server.settings import Settings


class DatabaseUnavailable(Exception):
    code = "database_unavailable"


@contextlib.asynccontextmanager
async def open_runtime(settings: Settings, *, pool_size: int = 4) -> AsyncIterator[tuple[asyncpg.Pool, Storage]]:
    try:
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=max(2, pool_size))
    except (OSError, asyncpg.PostgresError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DatabaseUnavailable(f"cannot connect to the database ({detail}); is Postgres running?") from exc
    try:
        missing = await migrate.pending(pool)
        if missing:
            raise DatabaseUnavailable(
                f"the database is not migrated ({len(missing)} pending, first {missing[0]}): run `streamflix migrate`"
            )
    except BaseException:
        await pool.close()
        raise
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url, settings.storage_options)
    try:
        yield pool, storage
    finally:
        await storage.close()
        await pool.close()
