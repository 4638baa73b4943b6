"""The notifications producer: every `serve` process runs one. It turns the title events of
`catalog.notification_events` into notifications (catalog/notifications.py: claimed with
`FOR UPDATE SKIP LOCKED`, so processes share the work and no event is turned twice), then
publishes each to its person's sockets through the hub. A database outage pauses it (logged
once); it never stops the server. The list (`GET /api/v1/me/notifications`) is the record:
a socket that was not connected misses only the live message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from auth import users
from catalog import notifications
from server import keys
from server.realtime.hub import HUB, Hub
from server.settings import Settings

log = logging.getLogger("streamflix.notifications")

OUTAGE_PAUSE_S = 5.0
STOP_TIMEOUT_S = 5.0


class Producer:
    def __init__(self, pool: asyncpg.Pool, hub: Hub, settings: Settings) -> None:
        self.pool = pool
        self.hub = hub
        self.settings = settings
        self.stopping = False

    async def run(self) -> None:
        # The flag as well as the cancellation: on Python 3.11 a cancellation that lands as
        # an inner wait_for (asyncpg's acquire) completes can be lost, and the loop go on.
        while not self.stopping:
            try:
                made = await self.produce_once()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                # The app's pool reports an outage to its DatabaseHealth, which logs it once
                # when it starts and once when it ends; the events wait meanwhile.
                log.debug("notifications: paused (%s)", type(exc).__name__)
                await asyncio.sleep(OUTAGE_PAUSE_S)
                continue
            if not made:
                await asyncio.sleep(self.settings.notifications_poll_s)

    async def produce_once(self) -> int:
        """One batch: make the notifications, then publish them. Returns how many were made."""
        async with self.pool.acquire(timeout=self.settings.db_timeout_s) as conn:
            if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM catalog.notification_events)"):
                return 0
            admins = await users.admin_ids(conn)
            made = await notifications.produce(conn, admin_ids=admins)
        for n in made:
            await self.hub.publish(n.user_id, {"type": "notification", "notification": n.to_json()})
        return len(made)


async def producer_ctx(app: web.Application) -> AsyncIterator[None]:
    """Runs the producer beside the app (after the pool and the hub); off when
    `notifications_poll_s` is 0."""
    settings = app[keys.SETTINGS]
    if settings.notifications_poll_s <= 0:
        yield
        return
    producer = Producer(app[keys.PG], app[HUB], settings)
    task = asyncio.create_task(producer.run(), name="notifications-producer")
    yield
    producer.stopping = True
    task.cancel()
    await asyncio.wait([task], timeout=STOP_TIMEOUT_S)
    if not task.done():
        log.warning("notifications: the producer did not stop within %.0f s; left behind", STOP_TIMEOUT_S)
