"""The aiohttp application factory: clients opened and closed in cleanup contexts, routes
registered by each route module's `setup(app)`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import redis.asyncio as aioredis
from aiohttp import web

from auth import playback
from auth.breaker import Breaker
from media.backend import open_storage
from server import keys
from server import web as web_client
from server.api import account as api_account
from server.api import admin as api_admin
from server.api import api_keys as api_api_keys
from server.api import audio as api_audio
from server.api import auth as api_auth
from server.api import catalog as api_catalog
from server.api import comments as api_comments
from server.api import jobs as api_jobs
from server.api import library as api_library
from server.api import notifications as api_notifications
from server.api import openapi, ops
from server.api import parties as api_parties
from server.api import playback as api_playback
from server.api import realtime as api_realtime
from server.api import subtitles as api_subtitles
from server.api import uploads as api_uploads
from server.api import webhooks as api_webhooks
from server.http import middlewares
from server.http.database import close_pool, open_pool
from server.http.dbhealth import DB_HEALTH, DatabaseHealth
from server.http.errors import MAX_REQUEST_LINE_BYTES, error_middleware
from server.origin import handlers as origin_handlers
from server.outbound import webhooks as outbound_webhooks
from server.realtime import hub as realtime_hub
from server.realtime import parties as realtime_parties
from server.realtime import producer as notifications_producer
from server.settings import Settings
from server.storage_guard import GuardedStorage
from transcoder import tasks as transcoder_tasks

log = logging.getLogger("streamflix.server")


async def _pg_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    health = app[DB_HEALTH] = DatabaseHealth()
    pool = await open_pool(settings.database_url, timeout_s=settings.db_timeout_s, health=health)
    app[keys.PG] = pool
    yield
    await close_pool(pool)


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    client = aioredis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=1, health_check_interval=30)
    app[keys.REDIS] = client
    yield
    await client.aclose()


async def _storage_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    backend = open_storage(settings.storage_url, settings.s3_endpoint_url, settings.storage_options)
    storage = GuardedStorage(backend, Breaker(settings.storage_breaker_s))
    app[keys.STORAGE] = storage
    yield
    await storage.close()


async def _password_ctx(app: web.Application) -> AsyncIterator[None]:
    # Its own threads: hashing never waits behind storage calls (or anything else).
    executor = ThreadPoolExecutor(app[keys.SETTINGS].password_threads, thread_name_prefix="sf-argon2")
    app[keys.PASSWORD_EXECUTOR] = executor
    yield
    executor.shutdown(wait=False, cancel_futures=True)


def segment_bumper(app: web.Application) -> keys.SegmentBumper:
    """The origin's default bump: a viewer waits for a segment of a version still being encoded,
    so the transcoder's queue makes that one next (`transcoder.tasks.bump`, on a connection of
    the app's pool). A database outage fails the bump, which the origin logs and ignores."""

    async def bump(
        title_id: str,
        version: str,
        rendition_id: str,
        number: int | None,
        fallbacks: tuple[tuple[str, int], ...],
    ) -> None:
        async with app[keys.PG].acquire() as conn:
            got = await transcoder_tasks.bump(conn, title_id, version, rendition_id, number, fallbacks=fallbacks)
        log.debug("asked for %s/%s of %s %s (and %s): %s", rendition_id, number, title_id, version, fallbacks, got)

    return bump


class RouteModule(Protocol):
    def setup(self, app: web.Application) -> None: ...


def create_app(settings: Settings) -> web.Application:
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
    # Tests replace it before the app starts.
    app[keys.SEGMENT_BUMPER] = segment_bumper(app)
    app.cleanup_ctx.extend([_pg_ctx, _redis_ctx, _storage_ctx, _password_ctx, outbound_webhooks.sender_ctx])
    # The socket hub needs Redis; the notifications producer the pool and the hub.
    # Parties need the hub.
    app.cleanup_ctx.extend([realtime_hub.hub_ctx, realtime_parties.parties_ctx, notifications_producer.producer_ctx])
    _register_routes(app)
    return app


# Each module owns one area of the surface and registers it in its `setup(app)`; the order is
# the order of registration (auth first: its middleware and accounts machinery serve the rest).
ROUTE_MODULES: tuple[RouteModule, ...] = (
    api_auth,
    api_account,
    api_catalog,
    api_library,
    api_playback,
    api_jobs,
    api_admin,
    api_api_keys,
    api_subtitles,
    api_audio,
    api_webhooks,
    api_uploads,
    api_notifications,
    api_realtime,
    api_parties,
    api_comments,
    openapi,
    origin_handlers,
    ops,
    web_client,
)


def _register_routes(app: web.Application) -> None:
    for module in ROUTE_MODULES:
        module.setup(app)
