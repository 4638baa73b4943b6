"""Typed application keys: the one place where shared clients are reached from a request."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from auth.keyring import KeyRing
from media.storage import Storage
from server.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
PG = web.AppKey("pg", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis)
STORAGE = web.AppKey("storage", Storage)
# Playback tokens (auth/playback.py): signed by server/api/playback.py, verified by the origin.
PLAYBACK_KEYRING = web.AppKey("playback_keyring", KeyRing)
