"""Postgres down or frozen under a running API: every database-backed route answers a JSON 503
with Retry-After, the log says so once (no traceback per request), and the API is back on the
first request after Postgres is.

The app talks to the test's own database through tests/faultproxy.py; the shared Postgres is
never touched."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from server.api import cache as cache_module
from server.app import create_app
from server.http.dbhealth import DB_HEALTH, DatabaseHealth
from server.http.errors import is_database_outage
from server.settings import Settings
from tests.catalog.fixtures import make_title
from tests.faultproxy import FaultProxy

PASSWORD = "correct horse battery"
# Short, so a frozen database costs the test little; the default is 5 s.
DB_TIMEOUT_S = 0.5
# the app's polite close of its pool, plus room for a slow machine
CLOSE_BOUND_S = 10.0


@pytest.fixture
def pg_proxy(database_url: str) -> Iterator[FaultProxy]:
    with FaultProxy.in_front_of(database_url, 5432) as proxy:
        yield proxy


@pytest.fixture
async def outage_client(aiohttp_client: Any, settings: Settings, pg_proxy: FaultProxy) -> Any:
    proxied = dataclasses.replace(
        settings, database_url=pg_proxy.route(settings.database_url), db_timeout_s=DB_TIMEOUT_S
    )
    return await aiohttp_client(create_app(proxied))


async def _register_and_login(client: Any) -> tuple[str, dict[str, str]]:
    email = f"outage-{secrets.token_hex(4)}@example.com"
    r = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status == 201, await r.text()
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status == 200, await r.text()
    return email, {"Authorization": "Bearer " + (await r.json())["access_token"]}


def _routes(email: str, headers: dict[str, str], title_id: str) -> list[tuple[str, str, dict[str, Any], int]]:
    """(method, path, request kwargs, normal status) for each database-backed route."""
    # a genre nobody has: never an answer from the catalog cache
    titles = f"/api/v1/titles?limit=7&genre=g{secrets.token_hex(5)}"
    return [
        ("GET", "/api/v1/me", {"headers": headers}, 200),
        ("GET", titles, {}, 200),
        ("POST", "/api/v1/auth/login", {"json": {"email": email, "password": PASSWORD}}, 200),
        (
            "POST",
            "/api/v1/auth/register",
            {"json": {"email": f"new-{secrets.token_hex(4)}@example.com", "password": PASSWORD}},
            201,
        ),
        ("PUT", f"/api/v1/me/history/{title_id}", {"headers": headers, "json": {"position_s": 3}}, 204),
    ]


def _messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(text)]


@pytest.mark.parametrize("fault", ["down", "freeze"])
async def test_database_outage_is_a_503_that_heals(outage_client, pg, pg_proxy, caplog, fault):
    client = outage_client
    title = await make_title(pg)  # written directly, not through the proxy
    email, headers = await _register_and_login(client)
    caplog.set_level(logging.INFO, logger="streamflix")
    # Count the lines of this outage only: with this test's 0.5 s database timeout, a busy
    # machine can time a set-up call out (a real, logged, healed outage of its own).
    health = client.app[DB_HEALTH]
    for _ in range(50):
        if (await client.get("/api/v1/me", headers=headers)).status == 200 and not health.down:
            break
        await asyncio.sleep(0.1)
    assert not health.down
    caplog.clear()

    getattr(pg_proxy, fault)()
    for method, path, kwargs, _ in _routes(email, headers, title.id):
        r = await client.request(method, path, **kwargs)
        assert r.status == 503, (method, path, await r.text())
        assert r.headers["Retry-After"] == "5"
        assert r.content_type == "application/json"
        body = await r.json()
        assert body["error"]["code"] == "database_unavailable", body
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}

    pg_proxy.up()
    for method, path, kwargs, status in _routes(email, headers, title.id):
        r = await client.request(method, path, **kwargs)
        assert r.status == status, (method, path, await r.text())

    # one line when it starts, one when it ends; never a traceback
    assert len(_messages(caplog, "database unavailable")) == 1, caplog.text
    assert len(_messages(caplog, "database back")) == 1, caplog.text
    assert not [r for r in caplog.records if r.exc_info], caplog.text
    assert "Traceback" not in caplog.text


async def _until(predicate: Any, what: str, limit_s: float = 15.0) -> None:
    """Wait for a background task to get somewhere (not a speed check: the limit only stops a
    broken test from hanging)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not predicate():
        assert loop.time() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("fault", ["down", "freeze"])
async def test_catalog_listener_rides_out_an_outage(outage_client, pg, pg_proxy, caplog, monkeypatch, fault):
    """The LISTEN/NOTIFY listener, with no request to help it: notices the outage (a frozen
    server too), says so once, retries quietly, reconnects by itself and listens again."""
    monkeypatch.setattr(cache_module, "LISTEN_RETRY_S", 0.1)
    app = outage_client.server.app
    health = app[DB_HEALTH]
    cache = app[cache_module.CACHE]
    caplog.set_level(logging.INFO, logger="streamflix")

    getattr(pg_proxy, fault)()
    await _until(lambda: health.down, "the listener to notice the outage")
    failures = health.failures
    await _until(lambda: health.failures >= failures + 3, "three more failed reconnects")
    pg_proxy.up()
    await _until(lambda: not health.down, "the listener to reconnect")

    generation = cache.generation
    await make_title(pg)  # a catalog change: NOTIFY catalog_changed
    await _until(lambda: cache.generation > generation, "the notification to bump the cache")

    assert len(_messages(caplog, "database unavailable")) == 1, caplog.text
    assert len(_messages(caplog, "database back")) == 1, caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "database" not in r.getMessage()]
    assert not [r for r in caplog.records if r.exc_info], caplog.text


async def test_catalog_listener_stops_when_its_cancel_comes_back_as_a_timeout(monkeypatch):
    """On Python 3.11 asyncpg's connect timeout (asyncio.wait_for) can turn the task's own
    cancellation into TimeoutError when both land together: the listener must stop all the
    same, or the app's shutdown waits for it forever (seen as a hung test teardown)."""
    monkeypatch.setattr(cache_module, "LISTEN_RETRY_S", 0.01)
    connecting = asyncio.Event()

    async def connect(*_args: Any, **_kwargs: Any) -> Any:
        connecting.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise TimeoutError from None  # what wait_for's race hands back

    monkeypatch.setattr(cache_module.asyncpg, "connect", connect)
    task = asyncio.create_task(cache_module._listen("postgresql://unused", object(), DatabaseHealth(), 1.0))
    await asyncio.wait_for(connecting.wait(), 5)
    task.cancel()
    done, _pending = await asyncio.wait([task], timeout=5)
    assert done, "the listener went on after it was cancelled"
    assert task.cancelled()


@pytest.mark.parametrize(
    ("exc", "outage"),
    [
        pytest.param(ConnectionRefusedError(111, "Connect call failed"), True, id="refused"),
        pytest.param(ConnectionResetError(104, "reset"), True, id="reset"),
        pytest.param(OSError(errno.EHOSTUNREACH, "no route"), True, id="unreachable"),
        pytest.param(OSError("Multiple exceptions: [Errno 111] ..., [Errno 99] ..."), True, id="every-address-refused"),
        pytest.param(TimeoutError(), True, id="timeout"),
        pytest.param(asyncpg.ConnectionDoesNotExistError("connection was closed in the middle"), True, id="lost"),
        pytest.param(asyncpg.CannotConnectNowError("starting up"), True, id="starting-up"),
        pytest.param(asyncpg.AdminShutdownError("terminating"), True, id="shutting-down"),
        pytest.param(asyncpg.TooManyConnectionsError("too many"), True, id="full"),
        pytest.param(asyncpg.InterfaceError("pool is closing"), True, id="pool-closing"),
        pytest.param(asyncpg.InterfaceError("connection is closed"), True, id="connection-closed"),
        pytest.param(
            asyncpg.InterfaceError(
                "cannot call Connection.transaction(): connection has been released back to the pool"
            ),
            True,
            id="lost-mid-request",
        ),
        pytest.param(asyncpg.InterfaceError("another operation is in progress"), False, id="misuse"),
        pytest.param(asyncpg.UniqueViolationError("duplicate"), False, id="query-error"),
        pytest.param(FileNotFoundError(2, "no such file"), False, id="missing-file"),
        pytest.param(ValueError("bad"), False, id="bug"),
        pytest.param(
            aiohttp.ClientConnectionResetError("Cannot write to closing transport"), False, id="viewer-went-away"
        ),
    ],
)
def test_is_database_outage(exc, outage):
    assert is_database_outage(exc) is outage


async def test_a_viewer_who_went_away_is_no_error(aiohttp_client, settings, caplog):
    """aiohttp raises "Cannot write to closing transport" when a player aborts a request just
    as the answer starts (hls.js does at every seek): no 500, no traceback, no outage."""

    async def aborted(_request: web.Request) -> web.StreamResponse:
        raise aiohttp.ClientConnectionResetError("Cannot write to closing transport")

    app = create_app(settings)
    app.router.add_get("/test/aborted", aborted)
    client = await aiohttp_client(app)
    r = await client.get("/test/aborted")  # the test client is still there: it sees the 499
    assert r.status == 499
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR or rec.exc_info], caplog.text
    assert app[DB_HEALTH].down_since is None


async def test_server_starts_while_postgres_is_down(aiohttp_client, settings, pg_proxy, caplog):
    """A server started during an outage does not exit: it answers 503 until Postgres is up."""
    pg_proxy.down()
    proxied = dataclasses.replace(
        settings, database_url=pg_proxy.route(settings.database_url), db_timeout_s=DB_TIMEOUT_S
    )
    client = await aiohttp_client(create_app(proxied))
    titles = f"/api/v1/titles?limit=7&genre=g{secrets.token_hex(5)}"
    r = await client.get(titles)
    assert r.status == 503 and (await r.json())["error"]["code"] == "database_unavailable"
    pg_proxy.up()
    r = await client.get(titles)
    assert r.status == 200, await r.text()
    assert not [r for r in caplog.records if r.exc_info], caplog.text


async def test_the_app_stops_while_postgres_is_frozen(outage_client, pg_proxy):
    """SIGTERM during a frozen database: the app's cleanup closes its pool politely only as
    long as the server answers, then drops the sockets. Before, asyncpg's goodbye to the
    frozen server timed out and the cleanup ended in that TimeoutError."""
    client = outage_client
    r = await client.get(f"/api/v1/titles?limit=7&genre=g{secrets.token_hex(5)}")
    assert r.status == 200, await r.text()  # the pool now holds an idle connection
    pg_proxy.freeze()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(client.close(), 30)
    assert loop.time() - started < CLOSE_BOUND_S, f"cleanup took {loop.time() - started:.1f} s"
