"""Accounts benchmark (not a test): login latency under concurrency, and what the
revocation check adds to an authenticated API call.

    .venv/bin/python bench/auth.py [--clients 10] [--seconds 8] [--calls 2000]

Uses the configured Postgres and Redis (STREAMFLIX_DATABASE_URL / STREAMFLIX_REDIS_URL or
the defaults) but a throw-away database and Redis prefix of its own, removed at the end. The
app runs in this process on a free port; client and server share the CPU, so absolute
figures are pessimistic on a small machine.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import asyncpg
from aiohttp import web

from server.app import create_app
from server.http.authn import REVOCATIONS
from server.migrate import migrate
from server.settings import Settings

PASSWORD = "correct horse battery"


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def fmt(samples: list[float]) -> str:
    return f"p50 {pct(samples, 50) * 1000:7.2f} ms   p95 {pct(samples, 95) * 1000:7.2f} ms   (n={len(samples)})"


async def bench(args: argparse.Namespace) -> None:
    base = Settings.load()
    dbname = f"sf_bench_{os.getpid()}_{secrets.token_hex(3)}"
    parts = urlsplit(base.database_url)
    dsn = urlunsplit(parts._replace(path="/" + dbname))
    await migrate(dsn)
    settings = dataclasses.replace(
        base,
        database_url=dsn,
        redis_prefix=f"sfbench:{secrets.token_hex(4)}:",
        rate_limit_api_per_min=0,
        rate_limit_login_per_min=0,
        rate_limit_login_account_per_min=0,
        rate_limit_register_per_min=0,
        rate_limit_register_account_per_min=0,
    )
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        connector = aiohttp.TCPConnector(limit=args.clients * 2)
        async with aiohttp.ClientSession(url, connector=connector) as http:
            await run_all(app, http, args)
    finally:
        await runner.cleanup()
        redis_cleanup = __import__("redis.asyncio", fromlist=["from_url"]).from_url(settings.redis_url)
        async for key in redis_cleanup.scan_iter(match=settings.redis_prefix + "*"):
            await redis_cleanup.delete(key)
        await redis_cleanup.aclose()
        admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
        await admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await admin.close()


async def run_all(app: web.Application, http: aiohttp.ClientSession, args: argparse.Namespace) -> None:
    emails = [f"bench-{i}-{secrets.token_hex(3)}@example.com" for i in range(args.clients)]
    for email in emails:
        r = await http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        assert r.status == 201, await r.text()

    # ---- login at N concurrent clients -------------------------------------------------
    latencies: list[float] = []
    deadline = time.perf_counter() + args.seconds

    async def client(email: str) -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            r = await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            await r.read()
            assert r.status == 200, r.status
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(client(e) for e in emails))
    elapsed = time.perf_counter() - t0
    print(
        f"login, {args.clients} concurrent clients, {elapsed:.1f} s: {fmt(latencies)}   "
        f"{len(latencies) / elapsed:.1f} logins/s  (argon2id m=19MiB t=2 p=1, {os.cpu_count()} CPUs)"
    )

    # ---- the revocation check itself -----------------------------------------------------
    r = await http.post("/api/v1/auth/login", json={"email": emails[0], "password": PASSWORD})
    tokens = await r.json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    revocations = app[REVOCATIONS]
    sid = __import__("jwt").decode(tokens["access_token"], options={"verify_signature": False})["sid"]
    await revocations.is_revoked(sid)  # warm: marker loaded, connection open
    check: list[float] = []
    for _ in range(args.calls):
        t = time.perf_counter()
        await revocations.is_revoked(sid)
        check.append(time.perf_counter() - t)
    print(f"revocation check alone (Redis MGET), sequential:        {fmt(check)}")

    # ---- GET /api/v1/me with and without the check, interleaved blocks --------------------
    real = revocations.is_revoked

    async def never(_sid: str) -> bool:
        return False

    with_check: list[float] = []
    without: list[float] = []
    block = 100
    for _ in range(0, args.calls, block):
        for enabled, out in ((True, with_check), (False, without)):
            revocations.is_revoked = real if enabled else never  # type: ignore[method-assign]  # swapped out to measure its cost
            for _ in range(block):
                t = time.perf_counter()
                r = await http.get("/api/v1/me", headers=headers)
                await r.read()
                out.append(time.perf_counter() - t)
    revocations.is_revoked = real  # type: ignore[method-assign]  # swapped out to measure its cost
    print(f"GET /api/v1/me with the revocation check:               {fmt(with_check)}")
    print(f"GET /api/v1/me with the check disabled:                 {fmt(without)}")
    added50 = (pct(with_check, 50) - pct(without, 50)) * 1000
    added95 = (pct(with_check, 95) - pct(without, 95)) * 1000
    print(
        f"added by the check: p50 {added50:+.3f} ms, p95 {added95:+.3f} ms; "
        f"check alone p95 {pct(check, 95) * 1000:.3f} ms (target < 1 ms)"
    )
    print(
        f"mean per request: with {statistics.mean(with_check) * 1000:.3f} ms, "
        f"without {statistics.mean(without) * 1000:.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--calls", type=int, default=2000)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
