"""The API's Postgres pool: every wait bounded by `db_timeout_s`, every outcome reported to
the app's DatabaseHealth.

asyncpg waits forever by default: for a pooled connection, and (on release) for the reset or
the cancellation of a timed-out query on a server that no longer answers. A frozen Postgres
would hang every request. Here connecting, acquiring, each statement (`command_timeout`) and
releasing are bounded, and a connection that failed with an outage error is dropped rather
than reset, so the request answers 503 within the bound and the pool reconnects when the
database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

import asyncpg
from asyncpg.pool import PoolAcquireContext

from server.http.dbhealth import DatabaseHealth
from server.http.errors import is_database_outage

# a pool's polite close (each connection says goodbye and waits for the server's answer)
CLOSE_TIMEOUT_S = 5.0


class MonitoredPool(asyncpg.Pool):
    """An asyncpg pool whose `acquire()` defaults to a timeout and reports to `health`."""

    def __init__(self, *args: Any, health: DatabaseHealth, acquire_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.health = health
        self.acquire_timeout_s = acquire_timeout_s

    def acquire(self, *, timeout: float | None = None) -> Any:
        ctx = super().acquire(timeout=self.acquire_timeout_s if timeout is None else timeout)
        return _Acquire(ctx, self.health)


class _Acquire:
    """`async with pool.acquire() as conn` (and `await pool.acquire()`), watched."""

    __slots__ = ("ctx", "health", "conn")

    def __init__(self, ctx: PoolAcquireContext, health: DatabaseHealth) -> None:
        self.ctx = ctx
        self.health = health
        self.conn: Any = None

    async def __aenter__(self) -> Any:
        try:
            self.conn = await self.ctx.__aenter__()
        except Exception as exc:
            if is_database_outage(exc):
                self.health.failed(exc)
            raise
        return self.conn

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and is_database_outage(exc):
            self.health.failed(exc)
            # Its socket is dead or silent: resetting it would wait for an answer that may
            # never come. Dropped, the pool opens a fresh one on a later acquire.
            if self.conn is not None:
                with contextlib.suppress(Exception):
                    self.conn.terminate()
        elif exc is None or isinstance(exc, asyncpg.PostgresError):
            self.health.ok()  # the database answered
        await self.ctx.__aexit__(exc_type, exc, tb)

    def __await__(self) -> Any:
        return self.ctx.__await__()


async def open_pool(dsn: str, *, timeout_s: float, health: DatabaseHealth, max_size: int = 10) -> MonitoredPool:
    """A pool that opens connections on demand, each with `command_timeout`. None at start
    (init_size 0): a server started during a Postgres outage runs and answers 503 until the
    database is up, rather than exiting. No connection floor (min_size 0): asyncpg restores
    a floor from a background task that logs a traceback on every failed attempt, all
    through an outage; here the next request's acquire reconnects instead."""
    pool = MonitoredPool(
        dsn,
        health=health,
        acquire_timeout_s=timeout_s,
        init_size=0,
        min_size=0,
        max_size=max_size,
        # asyncpg.create_pool's defaults
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        connect=None,
        setup=None,
        init=None,
        reset=None,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        # asyncpg.connect: the connect timeout, and every statement's
        timeout=timeout_s,
        command_timeout=timeout_s,
    )
    await pool
    return pool


async def close_pool(pool: asyncpg.Pool) -> None:
    """Close politely when the server answers; drop the sockets when it does not (a frozen
    server never answers the goodbye, and asyncpg's close then raises or waits)."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await pool.close()
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        pool.terminate()
