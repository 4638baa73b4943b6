"""Revoked sessions: Postgres is the record (`auth.sessions.revoked_at`), Redis the fast path.

Every authenticated request asks Redis one question in one round trip:
`MGET {prefix}auth:revoked:loaded {prefix}auth:revoked:{sid}`.

- marker present: Redis is authoritative, the session is revoked iff its key exists. Keys
  expire with the longest access token (`ttl_s`): after that the token is dead anyway.
- marker missing: Redis lost its data (a restart without persistence, a flush, eviction).
  This request asks Postgres, and one background task reloads every session revoked within
  `ttl_s` from Postgres into Redis, then sets the marker (in one MULTI).
- Redis errors (down, timeout): this request asks Postgres, and a breaker keeps asking
  Postgres for `breaker_s` seconds instead of paying a Redis timeout on every call.

A revocation whose Redis write fails is retried in the background until it lands (or the
access tokens it guards have expired), so a Redis blip cannot resurrect a session.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterable
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from auth import sessions
from auth.breaker import Breaker

log = logging.getLogger("streamflix.auth")

REVOKED_PREFIX = "auth:revoked:"
LOADED_MARKER = "auth:revoked:loaded"
# Tokens are checked with zero leeway, but servers' clocks may differ a little.
CLOCK_SKEW_S = 60
BREAKER_OPEN_S = 5.0
RETRY_DELAY_S = 1.0


class RevocationList:
    def __init__(
        self,
        redis: aioredis.Redis,
        pool: asyncpg.Pool,
        *,
        prefix: str,
        access_ttl_s: int,
        breaker_s: float = BREAKER_OPEN_S,
    ) -> None:
        self.redis = redis
        self.pool = pool
        self.prefix = prefix
        self.ttl_s = access_ttl_s + CLOCK_SKEW_S
        self.breaker = Breaker(breaker_s)
        self._reload: asyncio.Task[object] | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self.postgres_checks = 0  # observable in tests and the benchmark

    def key(self, session_id: str) -> str:
        return f"{self.prefix}{REVOKED_PREFIX}{session_id}"

    @property
    def marker(self) -> str:
        return self.prefix + LOADED_MARKER

    async def is_revoked(self, session_id: str) -> bool:
        if self.breaker.allow():
            try:
                loaded, revoked = await self.redis.mget(self.marker, self.key(session_id))
            except (RedisError, OSError) as exc:
                log.warning(
                    "revocation check: Redis unavailable (%s); using Postgres for %.0f s", exc, self.breaker.open_s
                )
                self.breaker.trip()
            else:
                if loaded is not None:
                    return revoked is not None
                self._start_reload()
        self.postgres_checks += 1
        async with self.pool.acquire() as conn:
            return await sessions.is_revoked(conn, session_id)

    async def mark(self, session_ids: Iterable[str]) -> None:
        """Publish revocations already committed to Postgres."""
        ids = list(session_ids)
        if not ids:
            return
        try:
            await self._write(ids)
        except (RedisError, OSError) as exc:
            log.warning("revocation of %d session(s) not yet in Redis (%s); retrying", len(ids), exc)
            self.breaker.trip()
            self._spawn(self._retry(ids, time.monotonic() + self.ttl_s))

    async def _write(self, ids: list[str]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.set(self.key(sid), b"1", ex=self.ttl_s)
            await pipe.execute()

    async def _retry(self, ids: list[str], give_up_at: float) -> None:
        while time.monotonic() < give_up_at:
            await asyncio.sleep(RETRY_DELAY_S)
            try:
                await self._write(ids)
                return
            except (RedisError, OSError):
                continue

    def _start_reload(self) -> None:
        if self._reload is None or self._reload.done():
            self._reload = self._spawn(self.reload())

    async def reload(self) -> int:
        """Copy recent revocations from Postgres into Redis and set the marker, atomically."""
        try:
            async with self.pool.acquire() as conn:
                ids = await sessions.revoked_since(conn, self.ttl_s)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Postgres is down: the request that started this reload fell back to Postgres
            # too and reported the outage (one line for the whole outage, not one per
            # request). The next request to find the marker missing tries again.
            log.debug("could not read revocations from Postgres: %s", exc)
            return 0
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for sid in ids:
                    pipe.set(self.key(sid), b"1", ex=self.ttl_s)
                pipe.set(self.marker, b"1")
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("could not reload revocations into Redis: %s", exc)
            self.breaker.trip()
            return 0
        log.info("reloaded %d revoked session(s) into Redis", len(ids))
        return len(ids)

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> asyncio.Task[object]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
