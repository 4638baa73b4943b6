"""The catalog's response cache in Redis, its circuit breaker, and ETag/304 for API GETs.

- Entries live under `{prefix}catalog:c:{version}:{name}`; every write that changes what a
  cached page shows bumps `{prefix}catalog:ver` (INCR), so stale entries are simply never
  read again and expire by TTL: no key scans, no delete races. One Lua call reads the
  version and the entry in one round trip.
- Writes made elsewhere (the transcoder worker publishing a title) reach us as a Postgres
  NOTIFY on `catalog_changed` (a trigger in catalog migration 0002); a listener bumps the
  version.
- In front of Redis, each process keeps a small near cache (a `cachetools.TTLCache` of
  LOCAL_MAX_ENTRIES pages for LOCAL_TTL_S) so a hot page costs no Redis round trip. Every
  process listens for `catalog_changed` and clears it, so another process's write shows
  within the notification delay; at worst (a lost notification) a page is LOCAL_TTL_S old.
- When Redis fails, a breaker (auth.breaker) opens for BREAKER_OPEN_S: requests go straight
  to Postgres without waiting on Redis timeouts, then one request tries Redis again.
- ETag and 304: the If-None-Match rule is server.http.conditional's, the origin's too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from aiohttp import web
from cachetools import TTLCache
from redis.exceptions import RedisError

from auth.breaker import Breaker
from server import keys
from server.http.conditional import if_none_match
from server.http.dbhealth import DB_HEALTH, DatabaseHealth
from server.http.errors import is_database_outage

log = logging.getLogger("streamflix.cache")

VERSION_KEY = "catalog:ver"
ENTRY_PREFIX = "catalog:c:"
# Entries outlive no more than this even if no write bumps the version (popularity moves
# without bumping it).
ENTRY_TTL_S = 120
BREAKER_OPEN_S = 30.0
LOCAL_TTL_S = 2.0
LOCAL_MAX_ENTRIES = 2048
NOTIFY_CHANNEL = "catalog_changed"
LISTEN_RETRY_S = 5.0
# Browsers and CDNs may reuse a shared page this long, then revalidate with If-None-Match.
PUBLIC_CACHE_CONTROL = "public, max-age=10"
PRIVATE_CACHE_CONTROL = "private, no-cache"

T = TypeVar("T")

_GET_LUA = """
local v = redis.call('GET', KEYS[1]) or '0'
return {v, redis.call('GET', ARGV[1] .. v .. ':' .. ARGV[2])}
"""


_REDIS_ERRORS = (RedisError, OSError, TimeoutError)


class ResponseCache:
    def __init__(self, redis: Any, prefix: str, breaker: Breaker | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.breaker = breaker or Breaker(BREAKER_OPEN_S)
        self._get = redis.register_script(_GET_LUA)
        self.attempts = 0  # Redis calls tried (tests check the breaker stops them)
        # name -> entry; `generation` moves on every bump so a page computed before a write is
        # never kept locally after it.
        self.local: TTLCache[str, bytes] = TTLCache(maxsize=LOCAL_MAX_ENTRIES, ttl=LOCAL_TTL_S)
        self.generation = 0
        self._writes: set[asyncio.Task[None]] = set()

    async def call(self, fn: Callable[[Any], Awaitable[T]], default: T) -> T:
        """Run `fn(redis)` unless the breaker is open; any Redis failure trips it."""
        if self.breaker.is_open:
            return default
        self.attempts += 1
        try:
            result = await fn(self.redis)
        except _REDIS_ERRORS as exc:
            if not self.breaker.is_open:
                log.warning("redis unavailable (%s); bypassing it for %.0f s", exc, self.breaker.open_s)
            self.breaker.trip()
            return default
        return result

    def _local_put(self, name: str, entry: bytes, generation: int) -> None:
        if generation == self.generation:
            self.local[name] = entry

    async def lookup(self, name: str) -> tuple[bytes | None, bytes | None, int]:
        """(version, entry, generation). version is None when Redis is unavailable or the
        entry came from the near cache (nothing to store then)."""
        generation = self.generation
        entry = self.local.get(name)
        if entry is not None:
            return None, entry, generation

        async def get(r: Any) -> tuple[bytes | None, bytes | None]:
            version, entry = await self._get(keys=[self.prefix + VERSION_KEY], args=[self.prefix + ENTRY_PREFIX, name])
            return version, entry

        missing: tuple[bytes | None, bytes | None] = (None, None)
        version, entry = await self.call(get, missing)
        if entry is not None:
            self._local_put(name, entry, generation)
        return version, entry, generation

    async def store(self, version: bytes | None, name: str, entry: bytes, generation: int) -> None:
        self._local_put(name, entry, generation)
        if version is None:
            return
        key = self.prefix + ENTRY_PREFIX + version.decode() + ":" + name
        # The answer does not wait for the copy in Redis: one round trip fewer on every miss
        # (suggest runs on each keystroke). The key carries the version it was read under,
        # so a write that lands after a bump is simply never read.
        task = asyncio.create_task(self.call(lambda r: r.set(key, entry, ex=ENTRY_TTL_S), None))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def drain(self) -> None:
        """Wait for the cache writes in flight (shutdown, tests)."""
        while self._writes:
            await asyncio.gather(*list(self._writes))

    async def bump(self) -> None:
        self.generation += 1
        self.local.clear()
        await self.call(lambda r: r.incr(self.prefix + VERSION_KEY), None)


CACHE = web.AppKey("catalog_cache", ResponseCache)


# ---- wiring -------------------------------------------------------------------------------


async def _cache_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    cache = ResponseCache(app[keys.REDIS], settings.redis_prefix)
    app[CACHE] = cache
    health = app.get(DB_HEALTH) or DatabaseHealth()
    task = asyncio.create_task(_listen(settings.database_url, cache, health, settings.db_timeout_s))
    yield
    await cache.drain()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _listen(dsn: str, cache: ResponseCache, health: DatabaseHealth, timeout_s: float) -> None:
    """Bump the cache version on every `catalog_changed` notification; reconnects. During a
    Postgres outage it reports to the app's DatabaseHealth (one log line per outage, shared
    with the requests) and retries every LISTEN_RETRY_S."""
    pending: asyncio.Event = asyncio.Event()

    def on_notify(*_args: Any) -> None:
        pending.set()

    connected_before = False
    while True:
        conn = None
        try:
            # command_timeout: LISTEN itself must not wait forever on a frozen server
            conn = await asyncpg.connect(dsn, timeout=timeout_s, command_timeout=timeout_s)
            await conn.add_listener(NOTIFY_CHANNEL, on_notify)
            health.ok()
            if connected_before:
                await cache.bump()  # changes made while nobody listened
            connected_before = True
            while not conn.is_closed():
                try:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
                    # task's own cancellation when its timeout fires at the same moment.
                    async with asyncio.timeout(LISTEN_RETRY_S):
                        await pending.wait()
                except TimeoutError:
                    # A frozen server never closes the socket: ask it something now and then.
                    await conn.fetchval("SELECT 1")
                    continue
                pending.clear()  # several notifications in a burst: one bump
                await cache.bump()
        except asyncio.CancelledError:
            raise
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if _cancel_asked():
                # asyncpg's connect times out with wait_for, which can turn this task's own
                # cancellation into TimeoutError: the app's shutdown would then wait forever.
                raise asyncio.CancelledError from exc
            if is_database_outage(exc):
                health.failed(exc)
            else:
                log.warning("catalog change listener: %s; retrying in %.0f s", exc, LISTEN_RETRY_S)
        finally:
            if conn is not None:
                # terminate, not close: close waits for an answer a frozen server never sends
                conn.terminate()
        await asyncio.sleep(LISTEN_RETRY_S)


def _cancel_asked() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def install(app: web.Application) -> None:
    """Called by the catalog route modules' `setup`; idempotent. The cache needs the Redis
    client, so its context runs after the app's own (appended later)."""
    if _cache_ctx not in app.cleanup_ctx:
        app.cleanup_ctx.append(_cache_ctx)


# ---- responses ----------------------------------------------------------------------------


def dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def make_etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def respond(
    request: web.Request, body: bytes, etag: str, *, cache_control: str, status: int = 200, hit: bool | None = None
) -> web.Response:
    headers = {"ETag": etag, "Cache-Control": cache_control, "Vary": "Authorization"}
    if hit is not None:
        headers["X-Cache"] = "hit" if hit else "miss"  # for benchmarks and debugging
    # RFC 9110 15.4.5: a 304 carries the validators and caching headers, no body.
    if status == 200 and if_none_match(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def json_etag_response(request: web.Request, data: Any, *, private: bool = True) -> web.Response:
    body = dumps(data)
    cache_control = PRIVATE_CACHE_CONTROL if private else PUBLIC_CACHE_CONTROL
    return respond(request, body, make_etag(body), cache_control=cache_control)


async def cached_json(
    request: web.Request,
    name: str,
    compute: Callable[[], Awaitable[Any]],
    *,
    shared: bool,
    observe: Callable[[bytes], Awaitable[None]] | None = None,
) -> web.Response:
    """A JSON GET answered from the cache when `shared` (the same for every non-admin
    viewer), else computed. `name` identifies the page (bounded length: hash it).
    `observe(body)` sees the body either way (search analytics)."""
    cache = request.app[CACHE]
    version = None
    entry = None
    generation = cache.generation
    if shared:
        version, entry, generation = await cache.lookup(name)
    if entry is not None:
        etag_bytes, _, body = entry.partition(b"\n")
        etag = etag_bytes.decode()
    else:
        body = dumps(await compute())
        etag = make_etag(body)
        if shared:
            await cache.store(version, name, etag.encode() + b"\n" + body, generation)
    if observe is not None:
        await observe(body)
    if not shared:
        cache_control = PRIVATE_CACHE_CONTROL
    elif "Authorization" in request.headers:
        cache_control = "private, max-age=10"
    else:
        cache_control = PUBLIC_CACHE_CONTROL
    return respond(request, body, etag, cache_control=cache_control, hit=entry is not None if shared else None)


def page_name(kind: str, *parts: Any) -> str:
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=16).hexdigest()
    return f"{kind}:{digest}"
