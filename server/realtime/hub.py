"""The per-process hub: the sockets this `serve` process holds, and the Redis pub/sub fan-out
that carries a message for a person to their sockets on every process.

A message for user U is published on one channel (`{prefix}realtime:users`) as
`{"user_id": U, "message": {...}}`; every process's hub is subscribed and hands it to U's
sockets it holds. A message for a watch party (parties.py) goes the same way on
`{prefix}realtime:parties` as `{"party": P, "message": {...}}`, to the sockets that joined P.
Redis keeps nothing here: a socket that is not connected when a message is
published misses it (notifications are kept in Postgres and listed by the API).

While Redis is unreachable the hub tells every socket `{"type": "status", "realtime":
"unavailable"}`, retries with backoff (0.5 s doubling to 5 s), and says `"available"` when it
is subscribed again. A message published meanwhile is delivered to this process's sockets
only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from server import keys
from server.realtime import protocol
from server.realtime.slots import Slot, Slots
from server.settings import Settings

log = logging.getLogger("streamflix.realtime")

CHANNEL = "realtime:users"
PARTY_CHANNEL = "realtime:parties"
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0
# The subscription is idle most of the time: a PING this often notices a Redis that went away.
PING_EVERY_S = 2.0
PING_TIMEOUT_S = 2.0
CLOSE_TIMEOUT_S = 1.0


class Client:
    """One authenticated socket: who it is, and its bounded outbox. A client whose outbox is
    full (it does not read what it is sent) is dropped by calling `on_overflow`."""

    def __init__(self, user_id: str, session_id: str, ip: str, queue_size: int, on_overflow: Callable[[], None]):
        self.user_id = user_id
        self.session_id = session_id
        self.ip = ip
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self.on_overflow = on_overflow
        self.dropped = False
        self.party: str | None = None  # the watch party this socket joined (parties.py)
        self.slot: Slot | None = None  # its account's connection slot (slots.py)

    def offer(self, msg: dict[str, Any]) -> bool:
        if self.dropped:
            return False
        try:
            self.queue.put_nowait(protocol.dumps(msg))
        except asyncio.QueueFull:
            self.dropped = True
            self.on_overflow()
            return False
        return True

    async def reply(self, msg: dict[str, Any]) -> None:
        """An answer to the client's own message (pong, error): waits for room, so a client
        that sends without reading stops being read (TCP pushes back) rather than dropped."""
        if not self.dropped:
            await self.queue.put(protocol.dumps(msg))


class Hub:
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis  # the app's client: publishing and the liveness PING
        self.channel = settings.redis_prefix + CHANNEL
        self.party_channel = settings.redis_prefix + PARTY_CHANNEL
        self.clients: dict[str, set[Client]] = {}
        self.per_ip: Counter[str] = Counter()
        self.slots = Slots(redis, settings.redis_prefix)
        self.available = False
        self.stopping = False
        # Every open socket, signed in or not: closed with 1001 when the server shuts down.
        self.sockets: set[web.WebSocketResponse] = set()

    # ---- connections -------------------------------------------------------------------

    async def ip_slot(self, ip: str) -> Slot | None:
        """Take one of the address's connections (on every process: slots.py); None when it
        has them all."""
        if self.per_ip[ip] >= self.settings.realtime_max_per_ip:
            return None
        self.per_ip[ip] += 1  # before the await: two connects here cannot both take the last one
        slot = await self.slots.take("ip", ip, self.settings.realtime_max_per_ip)
        if slot is None:
            self._release_local_ip(ip)
        return slot

    async def release_ip(self, ip: str, slot: Slot) -> None:
        try:
            await self.slots.give_back(slot)
        finally:
            self._release_local_ip(ip)

    def _release_local_ip(self, ip: str) -> None:
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]

    async def add(self, client: Client) -> bool:
        """Register an authenticated socket; False when its user has all their connections
        (on every process: slots.py)."""
        mine = self.clients.setdefault(client.user_id, set())
        if len(mine) >= self.settings.realtime_max_per_user:
            return False
        mine.add(client)  # before the await, as for addresses
        client.slot = await self.slots.take("user", client.user_id, self.settings.realtime_max_per_user)
        if client.slot is None:
            self._forget(client)
            return False
        return True

    async def remove(self, client: Client) -> None:
        """Unregister the socket: its slot is free on every process once it is gone here."""
        try:
            if client.slot is not None:
                await self.slots.give_back(client.slot)
                client.slot = None
        finally:
            self._forget(client)

    def _forget(self, client: Client) -> None:
        mine = self.clients.get(client.user_id)
        if mine is not None:
            mine.discard(client)
            if not mine:
                del self.clients[client.user_id]

    def count(self, user_id: str) -> int:
        return len(self.clients.get(user_id, ()))

    # ---- delivery ------------------------------------------------------------------------

    def deliver_local(self, user_id: str, msg: dict[str, Any]) -> int:
        """Hand `msg` to this process's sockets of `user_id`; returns how many took it."""
        return sum(c.offer(msg) for c in list(self.clients.get(user_id, ())))

    def broadcast_local(self, msg: dict[str, Any]) -> None:
        for mine in list(self.clients.values()):
            for c in list(mine):
                c.offer(msg)

    async def publish(self, user_id: str, msg: dict[str, Any]) -> bool:
        """Send `msg` to every socket of `user_id` on every process. With Redis away, this
        process's sockets still get it; returns whether it went through Redis."""
        try:
            await self.redis.publish(self.channel, json.dumps({"user_id": user_id, "message": msg}))
        except (RedisError, OSError) as exc:
            log.info("realtime: publish failed (%s); delivering on this process only", type(exc).__name__)
            self.deliver_local(user_id, msg)
            return False
        return True

    def deliver_party_local(self, party_id: str, msg: dict[str, Any]) -> int:
        """Hand `msg` to this process's sockets that joined `party_id`. A `party.ended`
        message also takes them out of it."""
        n = 0
        for mine in list(self.clients.values()):
            for c in list(mine):
                if c.party == party_id:
                    n += c.offer(msg)
                    if msg.get("type") == "party.ended":
                        c.party = None
        return n

    def party_members_local(self, party_id: str) -> list[Client]:
        return [c for mine in self.clients.values() for c in mine if c.party == party_id]

    async def publish_party(self, party_id: str, msg: dict[str, Any]) -> bool:
        """Send `msg` to every socket in the party on every process (this process's only,
        with Redis away); returns whether it went through Redis."""
        try:
            await self.redis.publish(self.party_channel, json.dumps({"party": party_id, "message": msg}))
        except (RedisError, OSError) as exc:
            log.info("realtime: party publish failed (%s); delivering on this process only", type(exc).__name__)
            self.deliver_party_local(party_id, msg)
            return False
        return True

    def _dispatch(self, data: bytes | str, channel: bytes | str | None = None) -> None:
        if isinstance(channel, bytes):
            channel = channel.decode()
        party = channel == self.party_channel
        try:
            envelope = json.loads(data)
            target, msg = envelope["party" if party else "user_id"], envelope["message"]
        except (ValueError, KeyError, TypeError):
            log.warning("realtime: ignored a malformed message on %s", channel or self.channel)
            return
        if isinstance(target, str) and isinstance(msg, dict):
            if party:
                self.deliver_party_local(target, msg)
            else:
                self.deliver_local(target, msg)

    def _set_available(self, available: bool) -> None:
        if available != self.available:
            self.available = available
            self.broadcast_local(protocol.status(available))

    # ---- the subscription ----------------------------------------------------------------

    async def run(self) -> None:
        """Stay subscribed: reconnect with backoff for as long as the process runs."""
        delay = RETRY_FIRST_S
        down_logged = False
        while not self.stopping:
            sub = aioredis.from_url(self.settings.redis_url, socket_connect_timeout=1)
            pubsub = sub.pubsub(ignore_subscribe_messages=True)
            try:
                async with asyncio.timeout(PING_TIMEOUT_S):
                    await pubsub.subscribe(self.channel, self.party_channel)
                if down_logged:
                    log.info("realtime: Redis is back, fan-out resumes")
                    down_logged = False
                self._set_available(True)
                delay = RETRY_FIRST_S
                next_ping = time.monotonic() + PING_EVERY_S
                while True:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is not None and msg.get("type") == "message":
                        self._dispatch(msg["data"], msg.get("channel"))
                    if time.monotonic() >= next_ping:
                        async with asyncio.timeout(PING_TIMEOUT_S):
                            await self.redis.ping()
                        next_ping = time.monotonic() + PING_EVERY_S
            except (RedisError, OSError, TimeoutError) as exc:
                if not down_logged:
                    log.warning("realtime: Redis unreachable (%s); sockets told, retrying", type(exc).__name__)
                    down_logged = True
                self._set_available(False)
            finally:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
                # task's own cancellation when the inner call finishes at the same moment.
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(CLOSE_TIMEOUT_S):
                        await pubsub.aclose()
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(CLOSE_TIMEOUT_S):
                        await sub.aclose()
            if self.stopping:
                return
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX_S, delay * 2)


HUB = web.AppKey("realtime_hub", Hub)


async def close_all(app: web.Application) -> None:
    """On shutdown: close every socket (1001, going away) so clients reconnect to another
    process at once and the server's shutdown does not wait for them."""
    hub = app.get(HUB)
    if hub is None:
        return
    sockets = list(hub.sockets)
    if sockets:
        await asyncio.wait(
            [
                asyncio.ensure_future(ws.close(code=protocol.CLOSE_GOING_AWAY, message=b"server shutting down"))
                for ws in sockets
            ],
            timeout=CLOSE_TIMEOUT_S,
        )


async def hub_ctx(app: web.Application) -> AsyncIterator[None]:
    """The process's hub and its subscription, beside the app (after the Redis client)."""
    hub = app[HUB] = Hub(app[keys.SETTINGS], app[keys.REDIS])
    tasks = [
        asyncio.create_task(hub.run(), name="realtime-hub"),
        asyncio.create_task(hub.slots.run(), name="realtime-slots"),
    ]
    yield
    hub.stopping = True
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S * 3)
    await hub.slots.give_back_all()
