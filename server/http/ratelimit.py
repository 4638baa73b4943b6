"""Rate limits in Redis: GCRA (the generic cell rate algorithm) in one Lua script, so the
read-decide-write is atomic across every server process sharing the Redis.

A limit "N per W seconds" allows a burst of N, then one request every W/N seconds; a client
that stops for W seconds has its whole allowance back. Only a timestamp per key is stored
(the theoretical arrival time), expiring when it no longer matters.

If Redis fails, requests are let through (fail open) and a warning is logged: a Redis outage
must not lock every viewer out, and argon2 hashing still bounds what a password-guesser gets
per second. A breaker skips Redis for a few seconds after an error instead of paying a
timeout per request.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.typedefs import Handler
from redis.exceptions import RedisError

from auth.breaker import Breaker
from server import keys
from server.http.clientip import client_ip
from server.http.errors import ApiError
from server.settings import Settings

log = logging.getLogger("streamflix.ratelimit")

KEY_PREFIX = "rl:"
BREAKER_OPEN_S = 5.0

# KEYS[1]: bucket. ARGV[1]: emission interval T (ms) = W/N. ARGV[2]: burst tolerance (ms) =
# W - T. Redis' own clock (TIME) keeps all processes on one timeline; allowed in scripts
# since Redis 5 (effects replication).
GCRA_LUA = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, new_tat - now))
return {1, 0}
"""


@dataclass(frozen=True)
class Limit:
    name: str
    count: int  # <= 0: unlimited
    window_s: float


class RateLimited(ApiError):
    def __init__(self, limit: Limit, retry_after_s: float) -> None:
        seconds = max(1, int(retry_after_s + 0.999))
        super().__init__(
            429,
            "rate_limited",
            f"too many requests ({limit.name}); retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
            details={"retry_after": seconds, "limit": limit.name},
        )
        self.retry_after = seconds


class RateLimiter:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str,
        limits: dict[str, Limit] | None = None,
        breaker_s: float = BREAKER_OPEN_S,
    ) -> None:
        self.redis = redis
        self.limits = limits or {}
        self.prefix = prefix
        self.breaker = Breaker(breaker_s)
        self._script = redis.register_script(GCRA_LUA)

    def key(self, limit: Limit, ident: str) -> str:
        return f"{self.prefix}{KEY_PREFIX}{limit.name}:{ident}"

    async def hit(self, limit: Limit, ident: str) -> None:
        """Count one request against `limit` for `ident`; raise RateLimited when over."""
        if limit.count <= 0 or not self.breaker.allow():
            return
        interval_ms = max(1, int(limit.window_s * 1000 / limit.count))
        tolerance_ms = max(0, int(limit.window_s * 1000) - interval_ms)
        try:
            allowed, wait_ms = await self._script(keys=[self.key(limit, ident)], args=[interval_ms, tolerance_ms])
        except (RedisError, OSError) as exc:
            log.warning("rate limits off for %.0f s: Redis unavailable (%s)", self.breaker.open_s, exc)
            self.breaker.trip()
            return
        if not allowed:
            raise RateLimited(limit, int(wait_ms) / 1000)


def account_ident(email_key: str) -> str:
    """Accounts are keyed by a hash of the email key: no addresses in Redis key names."""
    return hashlib.sha256(email_key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)


def install(app: web.Application) -> None:
    """Create the limiter (from a cleanup context, once Redis is open)."""
    settings = app[keys.SETTINGS]
    app[RATE_LIMITER] = RateLimiter(app[keys.REDIS], prefix=settings.redis_prefix, limits=limits(settings))


def limiter(app: web.Application) -> RateLimiter:
    return app[RATE_LIMITER]


def limits(settings: Settings) -> dict[str, Limit]:
    w = settings.rate_limit_window_s
    return {
        "api": Limit("api", settings.rate_limit_api_per_min, w),
        "login_ip": Limit("login_ip", settings.rate_limit_login_per_min, w),
        "login_account": Limit("login_account", settings.rate_limit_login_account_per_min, w),
        "register_ip": Limit("register_ip", settings.rate_limit_register_per_min, w),
        "register_account": Limit("register_account", settings.rate_limit_register_account_per_min, w),
        "reset_ip": Limit("reset_ip", settings.rate_limit_reset_per_min, w),
        "reset_account": Limit("reset_account", settings.rate_limit_reset_account_per_min, w),
        "verify_account": Limit("verify_account", settings.rate_limit_verify_account_per_min, w),
        "comment_user": Limit("comment_user", settings.rate_limit_comments_per_min, w),
    }


async def hit(request: web.Request, name: str, ident: str) -> None:
    rl = limiter(request.app)
    await rl.hit(rl.limits[name], ident)


@web.middleware
async def api_rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The general per-IP limit on `/api/v1`."""
    if request.path.startswith("/api/v1/"):
        await hit(request, "api", client_ip(request))
    return await handler(request)
