"""The catalog cache: Redis entries keyed by a version, NOTIFY-driven invalidation, and the
API answering from Postgres with a breaker when Redis is down."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import socket

import pytest

from auth.breaker import Breaker
from server.api import cache
from server.app import create_app
from server.http.conditional import if_none_match
from tests.catalog.fixtures import admin_headers, make_title  # noqa: F401


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_and_closes():
    clock = Clock()
    b = Breaker(open_s=30, clock=clock)
    assert not b.is_open
    b.trip()
    assert b.is_open
    clock.now += 29.9
    assert b.is_open
    clock.now += 0.2
    assert not b.is_open  # half-open: the next call tries Redis again


@pytest.mark.parametrize(
    "header,match",
    [
        pytest.param(None, False, id="absent"),
        pytest.param('"abc"', True, id="exact"),
        pytest.param('W/"abc"', True, id="weak"),
        pytest.param('"x", "abc"', True, id="list"),
        pytest.param("*", True, id="star"),
        pytest.param('"abcd"', False, id="other"),
        pytest.param("abc", False, id="unquoted"),
    ],
)
def test_etag_matches(header, match):
    """The API's If-None-Match rule (server.http.conditional's)."""
    assert if_none_match(header, '"abc"') is match


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_redis_down_answers_from_postgres(aiohttp_client, settings, pg):
    t = await make_title(pg, title="Redisless " + secrets.token_hex(3))
    down = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    app = create_app(down)
    client = await aiohttp_client(app)
    r = await client.get("/api/v1/titles?limit=100&sort=newest")
    assert r.status == 200
    c = app[cache.CACHE]
    assert c.breaker.is_open  # degraded: answering from Postgres, Redis bypassed
    attempts = c.attempts
    for path in (f"/api/v1/titles/{t.id}", "/api/v1/search?q=redisless", "/api/v1/search/suggest?q=redi"):
        r = await client.get(path)
        assert r.status == 200, path
    assert t.id in [i["id"] for i in (await (await client.get("/api/v1/search?q=redisless")).json())["items"]]
    assert c.attempts == attempts, "the open breaker stops Redis calls"
    assert await c.call(lambda r: r.ping(), "skipped") == "skipped"  # not even a ping while open
    # after the open period one call tries again (and fails again here)
    c.breaker.reset()
    await client.get("/api/v1/titles?limit=7")  # a page not in the near cache yet
    assert c.attempts == attempts + 1 and c.breaker.is_open


async def test_redis_up_keeps_the_breaker_closed(app_client):
    c = app_client.app[cache.CACHE]
    assert await c.call(lambda r: r.ping(), None) is True
    assert not c.breaker.is_open


async def test_pages_are_stored_in_redis(app_client, settings):
    q = "stored" + secrets.token_hex(3)
    r = await app_client.get("/api/v1/search", params={"q": q})
    assert r.status == 200
    await app_client.app[cache.CACHE].drain()  # the copy in Redis is written after the answer
    redis = app_client.app[cache.CACHE].redis
    version = (await redis.get(settings.redis_prefix + cache.VERSION_KEY) or b"0").decode()
    key = f"{settings.redis_prefix}{cache.ENTRY_PREFIX}{version}:{cache.page_name('search', q, 20)}"
    entry = await redis.get(key)
    assert entry is not None and entry.split(b"\n", 1)[0].decode() == r.headers["ETag"]
    assert 0 < await redis.ttl(key) <= cache.ENTRY_TTL_S


async def test_admin_requests_bypass_the_cache(app_client, pg, admin_headers):
    t = await make_title(pg, ready=False)
    r = await app_client.get(f"/api/v1/titles/{t.id}", headers=admin_headers)
    assert r.status == 200 and r.headers["Cache-Control"].startswith("private")


async def test_worker_writes_invalidate_through_notify(app_client, pg):
    """A title published by another process (here: straight SQL, as the transcoder does)
    shows up without anyone calling the cache: the NOTIFY trigger bumps the version."""
    tag = "Notify" + secrets.token_hex(3)
    t = await make_title(pg, title=f"{tag} Film", ready=False)
    await asyncio.sleep(0.3)  # let the listener settle any pending bump
    r = await app_client.get("/api/v1/search", params={"q": tag})
    assert (await r.json())["items"] == []
    from catalog import status

    await status.publish_ready(pg, t.id, "v2", duration_s=5)
    for _ in range(50):
        r = await app_client.get("/api/v1/search", params={"q": tag})
        if (await r.json())["items"]:
            break
        await asyncio.sleep(0.1)
    assert [i["id"] for i in (await r.json())["items"]] == [t.id]


async def test_near_cache_never_keeps_a_page_computed_before_a_write(app_client):
    c = app_client.app[cache.CACHE]
    name = "test:" + secrets.token_hex(4)
    version, entry, generation = await c.lookup(name)
    assert entry is None
    await c.bump()  # a write lands while the page is being computed
    await c.store(version, name, b'"e"\n{}', generation)
    assert c.local.get(name) is None
    _, entry, generation = await c.lookup("other" + name)
    await c.store(None, "other" + name, b'"e"\n{}', generation)
    assert (await c.lookup("other" + name))[1] == b'"e"\n{}'
