"""Typed application keys: the one place where shared clients are reached from a request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import Executor

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from auth.keyring import KeyRing
from media.storage import Storage
from server.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
PG = web.AppKey("pg", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis)
# The storage backend behind the server's circuit breaker (server/storage_guard.py).
STORAGE = web.AppKey("storage", Storage)
# argon2 hashing's own thread pool (`sf-argon2`, settings.password_threads).
PASSWORD_EXECUTOR = web.AppKey("password_executor", Executor)
# Playback tokens (auth/playback.py): signed by server/api/playback.py, verified by the origin.
PLAYBACK_KEYRING = web.AppKey("playback_keyring", KeyRing)

# Called by the origin when a viewer asks for a segment (number) or init segment (None) of a
# version still being encoded that is not in storage yet: (title_id, version, rendition_id,
# number, fallbacks) -> None, where fallbacks are the segments (rendition_id, number) the player
# is likely to want next (server/origin/handlers.py: `fallbacks`). The app's default asks the
# transcoder's queue to make it next (server/app.py); it must not raise for an outage, the
# origin waits either way.
SegmentBumper = Callable[[str, str, str, int | None, tuple[tuple[str, int], ...]], Awaitable[None]]
SEGMENT_BUMPER: web.AppKey[SegmentBumper] = web.AppKey("segment_bumper")
