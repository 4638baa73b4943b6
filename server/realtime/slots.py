"""Connection slots shared by every `serve` process: the per-account and per-address socket
limits (`realtime_max_per_user`, `realtime_max_per_ip`) hold across processes, not per
process.

Each limited thing (an account, a client address) is a Redis sorted set,
`{prefix}realtime:slots:user:{id}` or `{prefix}realtime:slots:ip:{address}`, whose members are
the open sockets (`{process}:{n}`) scored by when they expire (Redis's clock, ms). A process
renews its sockets' scores every `SLOT_RENEW_S`; a taken slot lives `SLOT_TTL_S` past its last
renewal, so a process that crashed (or lost Redis) frees its slots by itself within that time.
Taking one drops the expired members and adds the new one in one script, so two processes
cannot both take the last slot.

Redis away (or slower than `SLOT_TIMEOUT_S`): the slot is granted and counted by the process
alone (the hub's local limit still applies), and registered in Redis at the next renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("streamflix.realtime")

SLOTS_PREFIX = "realtime:slots:"
SLOT_TTL_S = 30.0
SLOT_RENEW_S = SLOT_TTL_S / 3
SLOT_TIMEOUT_S = 1.0

# KEYS[1]: the set. ARGV: member, limit, ttl ms. 1 when taken, 0 when the set is full.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: the sets; ARGV[1]: ttl ms, then one member per key. Every member's expiry moves on.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', key, ttl)
end
return #KEYS
"""


@dataclass(frozen=True)
class Slot:
    key: str
    member: str


class Slots:
    """This process's slots in the shared sets."""

    def __init__(self, redis: aioredis.Redis, redis_prefix: str) -> None:
        self.redis = redis
        self.prefix = redis_prefix + SLOTS_PREFIX
        self.process = secrets.token_hex(6)
        self._n = itertools.count()
        self.held: set[Slot] = set()
        self._take = redis.register_script(_TAKE)
        self._renew = redis.register_script(_RENEW)

    async def take(self, kind: str, who: str, limit: int) -> Slot | None:
        """One of `who`'s `limit` slots across processes; None when all are taken. With Redis
        away, a slot this process alone counts."""
        slot = Slot(f"{self.prefix}{kind}:{who}", f"{self.process}:{next(self._n)}")
        try:
            async with asyncio.timeout(SLOT_TIMEOUT_S):
                taken = await self._take(keys=[slot.key], args=[slot.member, limit, int(SLOT_TTL_S * 1000)])
        except (RedisError, OSError, TimeoutError) as exc:
            log.info("realtime: connection slots unavailable (%s); the per-process limit applies", type(exc).__name__)
        else:
            if not taken:
                return None
        self.held.add(slot)
        return slot

    async def give_back(self, slot: Slot) -> None:
        """Free `slot` (with Redis away it expires by itself). It is free on every process when
        this returns, even when the caller is cancelled meanwhile (aiohttp cancels a handler
        whose connection went): the removal goes on in a task of its own and is waited for."""
        self.held.discard(slot)
        task = asyncio.ensure_future(self._remove(slot))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait([task])  # bounded by SLOT_TIMEOUT_S
            raise

    async def _remove(self, slot: Slot) -> None:
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(SLOT_TIMEOUT_S):
                await self.redis.zrem(slot.key, slot.member)

    async def renew(self) -> None:
        """Move every held slot's expiry on (and register those taken while Redis was away)."""
        held = list(self.held)
        if not held:
            return
        await self._renew(keys=[s.key for s in held], args=[int(SLOT_TTL_S * 1000), *(s.member for s in held)])
        gone = [s for s in held if s not in self.held]  # given back while the renewal ran
        if gone:
            async with self.redis.pipeline(transaction=False) as pipe:
                for s in gone:
                    pipe.zrem(s.key, s.member)
                await pipe.execute()

    async def run(self) -> None:
        """Renew every `SLOT_RENEW_S` for as long as the process runs."""
        while True:
            await asyncio.sleep(SLOT_RENEW_S)
            try:
                async with asyncio.timeout(SLOT_TIMEOUT_S * 2):
                    await self.renew()
            except (RedisError, OSError, TimeoutError) as exc:
                log.info("realtime: connection slots not renewed (%s)", type(exc).__name__)

    async def give_back_all(self) -> None:
        """On shutdown: free every slot this process holds, in one round trip."""
        held, self.held = list(self.held), set()
        if not held:
            return
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(SLOT_TIMEOUT_S):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for s in held:
                        pipe.zrem(s.key, s.member)
                    await pipe.execute()
