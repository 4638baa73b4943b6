"""Operations routes, outside /api/v1: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from server import keys
from server.http.middlewares import METRICS
from transcoder import jobs

# Each dependency gets this long to answer a readiness probe (probes typically time out at 1-5 s).
READY_TIMEOUT_S = 1.0
READY_RETRY_AFTER_S = 5

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """200 while the process lives: no dependency is consulted (a liveness probe that failed
    on a database outage would restart every server at once)."""
    return web.json_response({"status": "ok", "pid": os.getpid()}, headers={"Cache-Control": "no-store"})


async def _check(name: str, probe: Callable[[], Awaitable[Any]]) -> tuple[str, str | None]:
    try:
        await asyncio.wait_for(probe(), READY_TIMEOUT_S)
        return name, None
    except TimeoutError:
        return name, f"no answer within {READY_TIMEOUT_S:g} s"
    except Exception as exc:  # any failure means "not ready"; the reason goes in the body
        return name, " ".join(str(exc).split())[:200] or type(exc).__name__


DEGRADABLE = frozenset({"redis"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """200 only while Postgres, Redis and storage all answer, each within READY_TIMEOUT_S;
    else 503 listing what is down, with Retry-After."""
    app = request.app

    async def postgres() -> None:
        async with app[keys.PG].acquire(timeout=READY_TIMEOUT_S) as conn:
            await conn.fetchval("SELECT 1")

    async def redis() -> None:
        await app[keys.REDIS].ping()

    async def storage() -> None:
        await app[keys.STORAGE].ping()

    results = await asyncio.gather(_check("postgres", postgres), _check("redis", redis), _check("storage", storage))
    down = {name: reason for name, reason in results if reason is not None}
    # Without Redis the API still answers from Postgres (catalog cache bypassed, sessions
    # checked in Postgres), so Redis is reported "degraded" rather than "down"; the status
    # stays 503 while any dependency is unreachable.
    checks = {
        name: "ok" if reason is None else ("degraded" if name in DEGRADABLE else "down") for name, reason in results
    }
    headers = {"Cache-Control": "no-store"}
    if not down:
        return web.json_response({"status": "ready", "checks": checks}, headers=headers)
    headers["Retry-After"] = str(READY_RETRY_AFTER_S)
    return web.json_response(
        {
            "status": "unavailable",
            "down": sorted(down),
            "checks": checks,
            "error": {
                "code": "dependency_unavailable",
                "message": "; ".join(f"{k}: {v}" for k, v in sorted(down.items())),
            },
        },
        status=503,
        headers=headers,
    )


async def _queue_depth(app: web.Application) -> float | None:
    try:
        async with app[keys.PG].acquire(timeout=READY_TIMEOUT_S) as conn:
            return float(await asyncio.wait_for(jobs.queue_depth(conn), READY_TIMEOUT_S))
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        return 0.0  # not migrated yet: nothing queued
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return None  # Postgres is down: leave the sample out rather than report a false 0


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format. The queue depth is read here, at scrape time, never per request."""
    depth = await _queue_depth(request.app)
    text = request.app[METRICS].render(
        {"streamflix_transcode_jobs_queued": ("Transcode jobs waiting for a worker.", depth)}
    )
    return web.Response(
        body=text.encode(),
        # The Prometheus text exposition format's media type.
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8", "Cache-Control": "no-store"},
    )


def setup(app: web.Application) -> None:
    app.add_routes(routes)
