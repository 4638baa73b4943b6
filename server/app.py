"""The aiohttp application factory: clients opened and closed in cleanup contexts, routes
registered by each route module's `setup(app)`."""
from __future__ import annotations

import logging
from typing import AsyncIterator

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from auth import playback
from media.backend import open_storage
from server import keys
from server.http.errors import MAX_REQUEST_LINE_BYTES, error_middleware
from server.settings import Settings

log = logging.getLogger("streamflix.server")


async def _pg_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=10)
    app[keys.PG] = pool
    yield
    await pool.close()


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    client = aioredis.from_url(
        settings.redis_url, socket_connect_timeout=1, socket_timeout=1, health_check_interval=30
    )
    app[keys.REDIS] = client
    yield
    await client.aclose()


async def _storage_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    app[keys.STORAGE] = storage
    yield
    await storage.close()


def create_app(settings: Settings) -> web.Application:
    from server.http import middlewares

    app = web.Application(
        # Outermost first: preflights, metrics and the access log see the final status.
        middlewares=[middlewares.edge_middleware, error_middleware],
        client_max_size=settings.max_body_bytes,
        handler_args={"max_line_size": MAX_REQUEST_LINE_BYTES},
    )
    middlewares.setup(app)
    app[keys.SETTINGS] = settings
    # One keyring per app: the playback API signs with it, the origin verifies with it.
    app[keys.PLAYBACK_KEYRING] = playback.keyring(settings.secret_key, settings.previous_secret_keys)
    app.cleanup_ctx.extend([_pg_ctx, _redis_ctx, _storage_ctx])
    _register_routes(app)
    return app


def _register_routes(app: web.Application) -> None:
    # Each module owns one area of the surface; import lazily so a module under construction
    # cannot break the others' imports at load time more than once.
    import importlib

    for name in ROUTE_MODULES:
        module = importlib.import_module(name)
        module.setup(app)


ROUTE_MODULES = (
    "server.api.auth",
    "server.api.catalog",
    "server.api.library",
    "server.api.jobs",
    "server.api.playback",
    "server.origin.handlers",
    "server.api.ops",
    "server.web",
)
