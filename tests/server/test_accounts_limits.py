"""Rate limits (GCRA in Redis) and the revocation check when Redis misbehaves."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import secrets
import socket
import subprocess
import time

import pytest
import redis.asyncio as aioredis

from server.app import create_app
from server.http.ratelimit import Limit, RateLimiter
from tests.conftest import REDIS_URL
from tests.server.accounts_util import PASSWORD, bearer, error_code, login, new_user, register, unique_email

# A loaded machine (load 18 was seen) can take seconds over a few requests, so tests that
# wait for a window never assume a fixed sequence of answers: `Gcra` checks every allowed
# request against what GCRA may allow in the time that really passed on this test's clock,
# and waiting for the window polls (denied requests cost nothing in GCRA) instead of
# sleeping a fixed time. The other tests keep 60 s windows, which nothing refills mid-test.
WINDOW_S = 15
# Redis' clock (TIME, truncated to ms) against this process' monotonic clock.
CLOCK_MARGIN_S = 0.25


class Gcra:
    """The most a limit of `n` per `window_s` may allow since `start()`: the burst of n at
    once, then one every window_s / n seconds."""

    def __init__(self, n: int, window_s: float) -> None:
        self.n, self.interval = n, window_s / n
        self.t0 = 0.0
        self.allowed = 0

    def start(self) -> None:
        self.t0 = time.monotonic()  # before the first request is sent

    def most(self) -> int:
        return self.n + int((time.monotonic() - self.t0 + CLOCK_MARGIN_S) / self.interval)

    def saw_allowed(self) -> None:
        self.allowed += 1
        assert self.allowed <= self.most(), (
            f"allowed {self.allowed} in {time.monotonic() - self.t0:.2f} s; GCRA allows at most {self.most()}"
        )


async def _assert_429(r) -> int:
    assert r.status == 429, await r.text()
    body = await r.json()
    assert body["error"]["code"] == "rate_limited"
    retry_after = int(r.headers["Retry-After"])
    assert retry_after >= 1 and body["error"]["details"]["retry_after"] == retry_after
    return retry_after


async def _poll_until_allowed(send, gcra: Gcra, allowed_status: int, deadline_s: float):
    """Repeat `send()` until it is allowed, within `deadline_s`; every refusal is a proper 429
    whose Retry-After does not exceed one emission interval (rounded up)."""
    deadline = time.monotonic() + deadline_s
    while True:
        r = await send()
        if r.status == allowed_status:
            gcra.saw_allowed()
            return r
        retry_after = await _assert_429(r)
        assert retry_after <= math.ceil(gcra.interval)
        assert time.monotonic() < deadline, f"still limited {deadline_s} s later"
        await asyncio.sleep(0.1)


@pytest.fixture
def limited(settings):
    """Limits on, with a fresh Redis prefix so the per-IP buckets are this test's alone."""
    return dataclasses.replace(
        settings,
        redis_prefix=settings.redis_prefix + secrets.token_hex(3) + ":",
        rate_limit_window_s=60,
        rate_limit_login_per_min=0,
        rate_limit_login_account_per_min=5,
        rate_limit_register_per_min=0,
        rate_limit_reset_per_min=0,
        rate_limit_api_per_min=0,
    )


async def test_fifty_wrong_passwords_then_success_after_the_window(aiohttp_client, limited):
    n = 5  # per WINDOW_S on the account: a burst of 5, then one try every 3 s
    s = dataclasses.replace(limited, rate_limit_login_account_per_min=n, rate_limit_window_s=WINDOW_S)
    client = await aiohttp_client(create_app(s))
    user = await register(client)
    gcra = Gcra(n, WINDOW_S)

    def attempt(password: str):
        return client.post("/api/v1/auth/login", json={"email": user["email"], "password": password})

    statuses = []
    gcra.start()
    for _ in range(50):
        r = await attempt("wrong password!")
        statuses.append(r.status)
        if r.status == 401:
            gcra.saw_allowed()  # checked (and wrong): never more than GCRA allows by now
        else:
            assert await _assert_429(r) <= math.ceil(gcra.interval)
    # The burst is always checked; past it, the limit holds whatever the machine's speed.
    assert statuses[:n] == [401] * n
    assert statuses.count(401) == gcra.allowed and statuses.count(429) == 50 - gcra.allowed >= 1
    # The right password is refused too while limited (it is not checked at all). On a very
    # slow machine a slot may legitimately have opened (checked against GCRA's allowance):
    # then the very next try must be refused.
    for _ in range(3):
        r = await attempt(PASSWORD)
        if r.status == 429:
            await _assert_429(r)
            break
        assert r.status == 200, await r.text()
        gcra.saw_allowed()
    else:
        raise AssertionError("the right password was never refused while the account was limited")
    # ...and is accepted once the window has passed: polled, not a fixed sleep.
    r = await _poll_until_allowed(lambda: attempt(PASSWORD), gcra, 200, WINDOW_S + 10)
    assert (await r.json())["token_type"] == "bearer"


async def test_account_limit_is_per_account_and_case_insensitive(aiohttp_client, limited):
    client = await aiohttp_client(create_app(limited))
    a = await register(client)
    b = await register(client)
    for i in range(5):
        email = a["email"].upper() if i % 2 else a["email"]
        await client.post("/api/v1/auth/login", json={"email": email, "password": "wrong password!"})
    r = await client.post("/api/v1/auth/login", json={"email": a["email"].upper(), "password": PASSWORD})
    assert r.status == 429
    await login(client, b["email"])  # another account is not affected


async def test_per_ip_login_limit(aiohttp_client, limited):
    client = await aiohttp_client(create_app(dataclasses.replace(limited, rate_limit_login_per_min=3)))
    codes = []
    for _ in range(5):
        r = await client.post("/api/v1/auth/login", json={"email": unique_email(), "password": "wrong password!"})
        codes.append(r.status)
    assert codes == [401, 401, 401, 429, 429]


async def test_register_limits(aiohttp_client, limited):
    s = dataclasses.replace(limited, rate_limit_register_per_min=3, rate_limit_register_account_per_min=2)
    client = await aiohttp_client(create_app(s))
    email = unique_email()
    codes = [
        (await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})).status
        for _ in range(3)
    ]
    assert codes == [201, 409, 429]  # per account: 2 per window
    r = await client.post("/api/v1/auth/register", json={"email": unique_email(), "password": PASSWORD})
    assert r.status == 429  # per IP: 3 per window


async def test_reset_limits(aiohttp_client, limited):
    s = dataclasses.replace(limited, rate_limit_reset_per_min=4, rate_limit_reset_account_per_min=2)
    client = await aiohttp_client(create_app(s))
    email = unique_email()
    codes = [(await client.post("/api/v1/auth/password-reset/request", json={"email": email})).status for _ in range(3)]
    assert codes == [202, 202, 429]
    codes = [
        (await client.post("/api/v1/auth/password-reset/request", json={"email": unique_email()})).status
        for _ in range(2)
    ]
    assert codes == [202, 429]


async def test_general_api_limit_per_ip(aiohttp_client, limited):
    n = 5
    s = dataclasses.replace(limited, rate_limit_api_per_min=n, rate_limit_window_s=WINDOW_S)
    client = await aiohttp_client(create_app(s))
    gcra = Gcra(n, WINDOW_S)
    codes = []
    gcra.start()
    for _ in range(8):
        r = await client.get("/api/v1/me")
        codes.append(r.status)
        if r.status == 401:
            gcra.saw_allowed()
        else:
            await _assert_429(r)
    assert codes[:n] == [401] * n and 429 in codes
    await _poll_until_allowed(lambda: client.get("/api/v1/me"), gcra, 401, WINDOW_S + 10)


async def test_gcra_is_atomic_under_concurrency(settings):
    redis = aioredis.from_url(REDIS_URL)
    try:
        rl = RateLimiter(redis, prefix=settings.redis_prefix + secrets.token_hex(3) + ":")
        limit = Limit("burst", 10, 60)
        results = await asyncio.gather(*(rl.hit(limit, "x") for _ in range(50)), return_exceptions=True)
        assert sum(r is None for r in results) == 10
        ttl = await redis.pttl(rl.key(limit, "x"))
        assert 0 < ttl <= 60_000
    finally:
        await redis.aclose()


def _dead_redis_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"  # nothing listens here any more


async def test_redis_down_fails_open_and_revocation_falls_back_to_postgres(aiohttp_client, limited, caplog):
    """Redis down: limits let requests through (logged), and revoked sessions are still
    refused, from Postgres, with the breaker sparing Redis a connection attempt per call."""
    down = dataclasses.replace(limited, redis_url=_dead_redis_url(), rate_limit_api_per_min=1)
    client = await aiohttp_client(create_app(down))
    u = await new_user(client)
    other = await login(client, u["email"])
    for _ in range(3):
        assert (await client.get("/api/v1/me", headers=bearer(u["access_token"]))).status == 200
    assert (await client.post("/api/v1/auth/logout", headers=bearer(u["access_token"]))).status == 204
    r = await client.get("/api/v1/me", headers=bearer(u["access_token"]))
    assert r.status == 401 and await error_code(r) == "session_revoked"
    assert (await client.get("/api/v1/me", headers=bearer(other["access_token"]))).status == 200
    from server.http.authn import REVOCATIONS

    revocations = client.app[REVOCATIONS]
    assert revocations.breaker.is_open and revocations.postgres_checks >= 5
    assert "Redis unavailable" in caplog.text


async def test_revocations_survive_redis_losing_its_data(aiohttp_client, limited):
    """A Redis restart without persistence loses the revocation keys and the marker: the
    check goes to Postgres, and the keys are reloaded from Postgres."""
    from server.http.authn import REVOCATIONS

    client = await aiohttp_client(create_app(limited))
    u = await new_user(client)
    assert (await client.post("/api/v1/auth/logout", headers=bearer(u["access_token"]))).status == 204
    revocations = client.app[REVOCATIONS]
    redis = revocations.redis
    revoked = await redis.keys(limited.redis_prefix + "auth:revoked:*")
    sid = next(k for k in revoked if not k.endswith(b"loaded"))
    # Simulate the restart on this test's keys only (never FLUSHDB a shared Redis).
    await redis.delete(revocations.marker, sid)
    before = revocations.postgres_checks
    r = await client.get("/api/v1/me", headers=bearer(u["access_token"]))
    assert r.status == 401 and revocations.postgres_checks == before + 1
    for _ in range(100):
        if await redis.exists(revocations.marker, sid) == 2:
            break
        await asyncio.sleep(0.02)
    assert await redis.exists(revocations.marker, sid) == 2
    assert 0 < await redis.ttl(sid) <= limited.access_token_ttl_s + 60
    r = await client.get("/api/v1/me", headers=bearer(u["access_token"]))
    assert r.status == 401 and revocations.postgres_checks == before + 1  # Redis answers again


async def test_deleted_account_stays_revoked_after_redis_loses_its_data(aiohttp_client, limited):
    """A deleted account's session rows are gone (cascade), yet its access tokens have not
    expired: the reload from Postgres must still find those sessions (auth.deleted_sessions),
    or the tokens would work again once Redis forgot the revocation keys."""
    from server.http.authn import REVOCATIONS

    client = await aiohttp_client(create_app(limited))
    u = await new_user(client)
    h = bearer(u["access_token"])
    assert (await client.delete("/api/v1/me", json={"password": PASSWORD}, headers=h)).status == 204
    revocations = client.app[REVOCATIONS]
    redis = revocations.redis
    # (A reload may also have copied other tests' revocations from the shared database.)
    keys = [revocations.key(jwt_sid(u["access_token"]))]
    assert await redis.exists(*keys) == 1
    # Expires with the longest access token (plus clock skew), not before it.
    assert limited.access_token_ttl_s < await redis.ttl(keys[0]) <= limited.access_token_ttl_s + 60
    await redis.delete(revocations.marker, *keys)  # this test's keys only
    assert (await client.get("/api/v1/me/favorites", headers=h)).status == 401  # from Postgres
    for _ in range(200):
        if await redis.exists(revocations.marker):
            break
        await asyncio.sleep(0.02)
    before = revocations.postgres_checks
    r = await client.get("/api/v1/me/favorites", headers=h)
    assert r.status == 401 and await error_code(r) == "session_revoked"
    assert revocations.postgres_checks == before  # answered by the reloaded Redis key


def _start_redis(port: int, tmp_path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("redis-server did not start")


async def test_sessions_survive_a_real_redis_restart(aiohttp_client, limited, tmp_path):
    """A private redis-server without persistence, really restarted: live sessions keep
    working (access and refresh), revoked ones stay revoked, and once Redis is back the
    revocations are reloaded into it from Postgres."""
    import shutil

    from server.http.authn import REVOCATIONS
    from server.http.ratelimit import RATE_LIMITER

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _start_redis(port, tmp_path)
    try:
        client = await aiohttp_client(create_app(dataclasses.replace(limited, redis_url=f"redis://127.0.0.1:{port}/0")))
        revocations = client.app[REVOCATIONS]
        revocations.breaker.open_s = 0.2  # keep the test short; the logic is the same
        client.app[RATE_LIMITER].breaker.open_s = 0.2
        u = await new_user(client)
        gone = await login(client, u["email"])
        assert (await client.post("/api/v1/auth/logout", headers=bearer(gone["access_token"]))).status == 204

        proc.terminate()
        proc.wait(10)
        proc = _start_redis(port, tmp_path)  # empty: no RDB, no AOF

        for _ in range(3):  # the first call may meet the dead connection and fall back to Postgres
            assert (await client.get("/api/v1/me", headers=bearer(u["access_token"]))).status == 200
            r = await client.get("/api/v1/me", headers=bearer(gone["access_token"]))
            assert r.status == 401 and await error_code(r) == "session_revoked"
            await asyncio.sleep(0.25)
        r = await client.post("/api/v1/auth/refresh", json={"refresh_token": u["refresh_token"]})
        assert r.status == 200  # refresh tokens live in Postgres
        pair = await r.json()
        assert (await client.get("/api/v1/me", headers=bearer(pair["access_token"]))).status == 200
        # Redis has the revocations again (reloaded from Postgres) and answers alone.
        fresh = aioredis.from_url(f"redis://127.0.0.1:{port}/0")
        try:
            for _ in range(200):
                if await fresh.exists(revocations.marker, revocations.key(jwt_sid(gone["access_token"]))) == 2:
                    break
                await asyncio.sleep(0.02)
                await client.get("/api/v1/me", headers=bearer(gone["access_token"]))
            assert await fresh.exists(revocations.marker, revocations.key(jwt_sid(gone["access_token"]))) == 2
        finally:
            await fresh.aclose()
        before = revocations.postgres_checks
        assert (await client.get("/api/v1/me", headers=bearer(gone["access_token"]))).status == 401
        assert (await client.get("/api/v1/me", headers=bearer(pair["access_token"]))).status == 200
        assert revocations.postgres_checks == before
    finally:
        proc.terminate()
        proc.wait(10)


def jwt_sid(token: str) -> str:
    import jwt

    return jwt.decode(token, options={"verify_signature": False})["sid"]
