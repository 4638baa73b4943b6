"""Storage that stops answering: moto's S3 server behind a fault proxy (tests/faultproxy.py),
taken `down` (connections refused) or `freeze`d (accepted, then silent, like `kill -STOP`).

What must hold: every storage-backed request answers 503 with Retry-After, no-store and the
one JSON error shape, promptly (never a hang, never a 500), on both front ends; logins keep
answering while storage calls hang; and it heals by itself once storage is back."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import test_utils

from server.app import create_app
from server.settings import Settings
from tests.faultproxy import FaultProxy
from tests.server.origin_support import (
    StoredVersion,
    new_title_id,
    presentation,
    ready_title_row,
    store_in,
    token_for,
)

READ_TIMEOUT_S = 2.0
BREAKER_S = 1.0
# What "promptly" allows on a shared 2-core machine: the read timeout plus scheduling slack.
SLACK_S = 2.0


@dataclasses.dataclass
class Outage:
    settings: Settings
    proxy: FaultProxy
    sv: StoredVersion
    token: str


@pytest.fixture
async def outage(settings: Settings, s3_server: str) -> AsyncIterator[Outage]:
    """A version with 20 segments per rendition in moto; the settings point the server at
    moto through a fault proxy, with short timeouts so the test is short."""
    bucket = f"outage-{secrets.token_hex(4)}"
    direct = dataclasses.replace(settings, storage_url=f"s3://{bucket}/media", s3_endpoint_url=s3_server)
    sv = await store_in(direct, presentation(new_title_id(), "v1", segments=20, segment_size=4000), create_bucket=True)
    port = int(s3_server.rsplit(":", 1)[1])
    proxy = FaultProxy("127.0.0.1", port).start()
    proxied = dataclasses.replace(
        direct,
        s3_endpoint_url=f"http://127.0.0.1:{proxy.port}",
        s3_read_timeout_s=READ_TIMEOUT_S,
        s3_connect_timeout_s=1.0,
        storage_breaker_s=BREAKER_S,
    )
    try:
        yield Outage(proxied, proxy, sv, token_for(proxied.secret_key, sv))
    finally:
        proxy.close()


def segment_names(sv: StoredVersion) -> list[str]:
    return sorted(name for name in sv.objects if name.endswith(".m4s"))


async def assert_unavailable(r: Any, what: str) -> None:
    assert r.status == 503, (what, r.status, await r.text())
    assert int(r.headers["Retry-After"]) >= 1, what
    assert r.headers["Cache-Control"] == "no-store", what
    body = await r.json()
    assert set(body) == {"error"} and body["error"]["code"] in ("storage_unavailable", "storage_busy"), body


async def timed(coro: Any) -> tuple[Any, float]:
    start = time.monotonic()
    r = await coro
    await r.read()
    return r, time.monotonic() - start


async def test_frozen_storage_50_concurrent_segments_answer_503_within_the_read_timeout(aiohttp_client, outage):
    """More concurrent requests than storage threads, every thread hung on a frozen endpoint:
    none waits for a thread without bound. Then the breaker is open: 503 at once. Then
    storage comes back: 200 again within 5 s."""
    o = outage
    client = await aiohttp_client(create_app(o.settings))
    names = segment_names(o.sv)
    assert len(names) >= 50
    for name in names:  # warm: the model and each segment's size and ETag are cached
        r = await client.head(o.sv.url(name, o.token))
        assert r.status == 200, name
    o.proxy.freeze()

    results = await asyncio.wait_for(
        asyncio.gather(*(timed(client.get(o.sv.url(name, o.token))) for name in names[:50])),
        READ_TIMEOUT_S * 5,  # the old code hung for minutes: fail instead of waiting
    )
    for r, _ in results:
        await assert_unavailable(r, "segment while frozen")
    slowest = max(elapsed for _, elapsed in results)
    assert slowest < READ_TIMEOUT_S + SLACK_S, f"slowest answer took {slowest:.1f} s"

    # The breaker is open now: no storage call, no wait.
    r, elapsed = await timed(client.get(o.sv.url(names[50], o.token)))
    await assert_unavailable(r, "segment with the breaker open")
    assert elapsed < 1.0, f"{elapsed:.2f} s with the breaker open"

    o.proxy.up()
    deadline = time.monotonic() + 5
    while True:
        r = await client.get(o.sv.url(names[0], o.token))
        if r.status == 200:
            assert await r.read() == o.sv.objects[names[0]]
            break
        assert r.status == 503
        assert time.monotonic() < deadline, "segments still refused 5 s after storage came back"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("front", ["edge", "aiohttp"])
async def test_down_storage_answers_503_everywhere_then_heals(aiohttp_client, outage, pg, front):
    """Refused connections: segments, a playlist whose model is not loaded yet, a poster and
    /readyz all answer 503 promptly, on the fast path's server and on aiohttp's alone."""
    o = outage
    app = create_app(o.settings)
    client = await aiohttp_client(app if front == "edge" else test_utils.TestServer(app))
    title_id = await ready_title_row(pg, o.sv.version)
    names = segment_names(o.sv)
    o.proxy.down()

    checks = {
        "segment": o.sv.url(names[0], o.token),
        "playlist": o.sv.url("v360/index.m3u8", o.token),
        "master": o.sv.url("master.m3u8", o.token),
        "poster": f"/api/v1/titles/{title_id}/poster",
    }
    for what, url in checks.items():
        r, elapsed = await timed(client.get(url))
        await assert_unavailable(r, what)
        assert elapsed < READ_TIMEOUT_S + SLACK_S, (what, elapsed)
    r = await client.get("/readyz")
    assert r.status == 503 and r.headers["Retry-After"] and r.headers["Cache-Control"] == "no-store"
    assert (await r.json())["checks"]["storage"] == "down"

    o.proxy.up()
    deadline = time.monotonic() + 5
    while (await client.get(checks["segment"])).status != 200:
        assert time.monotonic() < deadline, "segments still refused 5 s after storage came back"
        await asyncio.sleep(0.2)
    r = await client.get(checks["master"])
    assert r.status == 200
    assert (await client.get("/readyz")).status == 200


async def test_first_request_after_storage_hangs_takes_about_the_read_timeout(aiohttp_client, outage):
    """The first call to hang trips the breaker: one read timeout, not retries of it."""
    o = outage
    client = await aiohttp_client(create_app(o.settings))
    o.proxy.freeze()
    r, elapsed = await timed(client.get(o.sv.url("master.m3u8", o.token)))
    await assert_unavailable(r, "master while frozen")
    assert elapsed < READ_TIMEOUT_S + SLACK_S, f"{elapsed:.1f} s"
    r, elapsed = await timed(client.get(o.sv.url("v720/1.m4s", o.token)))
    await assert_unavailable(r, "segment right after")
    assert elapsed < 1.0


async def test_login_answers_while_storage_calls_hang(aiohttp_client, outage):
    """Readiness probes and segment requests hang on a frozen storage; a login started
    after them completes while they are still hanging (hashing has threads of its own)."""
    o = outage
    settings = dataclasses.replace(o.settings, s3_read_timeout_s=4.0)
    client = await aiohttp_client(create_app(settings))
    email, password = f"frozen-{secrets.token_hex(4)}@example.com", "correct horse battery"
    r = await client.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert r.status == 201
    names = segment_names(o.sv)
    o.proxy.freeze()

    hung = [asyncio.ensure_future(timed(client.get("/readyz"))) for _ in range(8)]
    hung += [asyncio.ensure_future(timed(client.get(o.sv.url(name, o.token)))) for name in names[:12]]
    await asyncio.sleep(0.3)  # let them reach storage
    login = await asyncio.wait_for(client.post("/api/v1/auth/login", json={"email": email, "password": password}), 10)
    assert login.status == 200, await login.text()
    assert "access_token" in await login.json()
    still_hanging = sum(not t.done() for t in hung[8:])
    assert still_hanging, "the segment requests should still be waiting on storage"
    for r, _ in await asyncio.gather(*hung[8:]):
        await assert_unavailable(r, "segment while frozen")
    for r, _ in await asyncio.gather(*hung[:8]):
        assert r.status == 503
