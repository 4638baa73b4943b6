"""The Postgres pool and storage a CLI command needs, opened and closed together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg

from media.backend import open_storage
from media.storage import Storage
from server import migrate
from server.http.database import close_pool
from server.settings import Settings
from transcoder.failures import is_database_outage

log = logging.getLogger("streamflix.cli")

# A statement that has not answered after this is a hung server, not a slow query: asyncpg
# raises TimeoutError, which callers treat as the database being unreachable.
COMMAND_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
# `wait_for`: the first retry of the connection after this, doubling up to the cap.
RETRY_S = 0.5
RETRY_MAX_S = 10.0


class DatabaseUnavailable(Exception):
    code = "database_unavailable"


class Stopped(Exception):
    """The event a caller waited on was set before the database came back."""


def _detail(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


async def _open_pool(settings: Settings, pool_size: int) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(
            settings.database_url,
            # No connection floor: asyncpg keeps a floor by reconnecting in the background and
            # logs a traceback on every failed try, which during an outage floods stderr. The
            # first query below connects (and fails) instead.
            min_size=0,
            max_size=max(2, pool_size),
            timeout=CONNECT_TIMEOUT_S,
            command_timeout=COMMAND_TIMEOUT_S,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(f"cannot connect to the database ({_detail(exc)}); is Postgres running?") from exc
    try:
        try:
            missing = await migrate.pending(pool)
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            raise DatabaseUnavailable(f"cannot connect to the database ({_detail(exc)}); is Postgres running?") from exc
        if missing:
            raise DatabaseUnavailable(
                f"the database is not migrated ({len(missing)} pending, first {missing[0]}): run `streamflix migrate`"
            )
    except BaseException:
        await close_pool(pool)
        raise
    return pool


async def _open_waiting(settings: Settings, pool_size: int, stop: asyncio.Event) -> asyncpg.Pool:
    """`_open_pool`, tried again with backoff while Postgres is unreachable (one log line),
    until it opens or `stop` is set (then Stopped)."""
    delay = RETRY_S
    waiting = False
    while True:
        try:
            pool = await _open_pool(settings, pool_size)
        except DatabaseUnavailable as exc:
            if exc.__cause__ is None or not is_database_outage(exc.__cause__):
                raise  # not migrated, bad credentials: waiting will not help
            if not waiting:
                waiting = True
                log.warning("database unreachable (%s); waiting for it", _detail(exc.__cause__))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                raise Stopped() from None
            delay = min(RETRY_MAX_S, delay * 2)
            continue
        if waiting:
            log.warning("database reachable again")
        return pool


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings, *, pool_size: int = 4, wait_for: asyncio.Event | None = None
) -> AsyncIterator[tuple[asyncpg.Pool, Storage]]:
    """With `wait_for`, an unreachable database is waited for (until the event is set: then
    Stopped) instead of raising DatabaseUnavailable; long-running commands (the worker) use it."""
    if wait_for is not None:
        pool = await _open_waiting(settings, pool_size, wait_for)
    else:
        pool = await _open_pool(settings, pool_size)
    try:
        storage = open_storage(settings.storage_url, settings.s3_endpoint_url, settings.storage_options)
    except BaseException:
        await close_pool(pool)
        raise
    try:
        yield pool, storage
    finally:
        await storage.close()
        await close_pool(pool)
