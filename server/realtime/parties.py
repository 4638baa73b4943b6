"""Watch parties (docs/realtime.md): people watching one title together, kept in step over the
socket. The state lives in Redis with an expiry, never in one process's memory, so any `serve`
process can answer for a party and a member's reload may land on another one.

Keys (under the Redis prefix): `party:{id}` a hash (title, host, settings, and the playback
state: `position` seconds at server time `at` ms, `rate`, `playing`, `seq`), and
`party:{id}:members` a set of user ids. Both expire `party_idle_s` after the last sign of life:
each process renews the parties its sockets joined every third of that, so a party with a
member connected anywhere lives, and one nobody is in goes away by itself.

A control action is stamped by a Lua script (atomic across processes): the next `seq`, the
server's clock as `at`, and the new state, which is fanned out as `party.state` to every member
on every process (the hub's party channel). A late joiner gets the current state with the
position carried forward to now.

The host leaving ends the party: at once with `party.leave`, after `party_host_grace_s` when the
host's socket closes (a reload rejoins within it and cancels the end).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from server import keys
from server.realtime.hub import HUB, Client, Hub
from server.settings import Settings

log = logging.getLogger("streamflix.realtime")

CONTROLS = ("host", "all")

# KEYS: the party hash, its members. ARGV: position, at, rate ('' keeps), playing ('' keeps),
# ttl. Answers the new hash as a flat list, or nil when the party is gone.
_STAMP = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HINCRBY', KEYS[1], 'seq', 1)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'rate', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'playing', ARGV[4]) end
redis.call('HSET', KEYS[1], 'position', ARGV[1], 'at', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return redis.call('HGETALL', KEYS[1])
"""


class PartyError(Exception):
    """A party message or request that cannot be done; `code` is the error's code, `status`
    the HTTP status when it comes from the API."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Party:
    id: str
    title_id: str
    host: str
    control: str
    wait_for_stalled: bool
    position: float
    rate: float
    playing: bool
    at: int
    seq: int
    created_at: int

    @classmethod
    def from_hash(cls, party_id: str, h: dict[str, str]) -> Party:
        return cls(
            id=party_id,
            title_id=h["title_id"],
            host=h["host"],
            control=h["control"],
            wait_for_stalled=h.get("wait_for_stalled") == "1",
            position=float(h["position"]),
            rate=float(h["rate"]),
            playing=h["playing"] == "1",
            at=int(h["at"]),
            seq=int(h["seq"]),
            created_at=int(h["created_at"]),
        )

    def position_at(self, when_ms: int) -> float:
        """Where playback is at server time `when_ms`: carried forward from `at` while playing."""
        if not self.playing:
            return self.position
        return max(0.0, self.position + (when_ms - self.at) / 1000.0 * self.rate)

    def state(self, *, now: int | None = None) -> dict[str, Any]:
        """The `party.state` message; with `now`, the position carried forward to it (a late
        joiner's view), else as stamped."""
        at = self.at if now is None else now
        return {
            "type": "party.state",
            "party": self.id,
            "at": at,
            "position": round(self.position_at(at), 3),
            "rate": self.rate,
            "playing": self.playing,
            "seq": self.seq,
        }

    def to_json(self, members: list[str], public_url: str | None) -> dict[str, Any]:
        base = (public_url or "").rstrip("/")
        return {
            "id": self.id,
            "title_id": self.title_id,
            "host": self.host,
            "control": self.control,
            "wait_for_stalled": self.wait_for_stalled,
            "join_url": f"{base}/watch/{self.title_id}?party={self.id}",
            "members": sorted(members),
            "state": self.state(now=now_ms()),
        }


def _decode(raw: dict[Any, Any]) -> dict[str, str]:
    def text(x: Any) -> str:
        return x.decode() if isinstance(x, bytes) else str(x)

    return {text(k): text(v) for k, v in raw.items()}


class Parties:
    """The parties as Redis holds them, and this process's part: its sockets' memberships, the
    renewals and the host's grace timers."""

    def __init__(self, settings: Settings, redis: aioredis.Redis, hub: Hub) -> None:
        self.settings = settings
        self.redis = redis
        self.hub = hub
        self.prefix = settings.redis_prefix + "party:"
        self.grace: dict[str, asyncio.Task[None]] = {}
        self._stamp = redis.register_script(_STAMP)

    def _key(self, party_id: str) -> str:
        return self.prefix + party_id

    def _members_key(self, party_id: str) -> str:
        return self.prefix + party_id + ":members"

    @property
    def ttl(self) -> int:
        return max(1, int(self.settings.party_idle_s))

    # ---- the store ------------------------------------------------------------------------

    async def create(self, title_id: str, host: str, control: str, wait_for_stalled: bool) -> Party:
        party_id = secrets.token_urlsafe(12)
        at = now_ms()
        fields: dict[Any, Any] = {
            "title_id": title_id,
            "host": host,
            "control": control,
            "wait_for_stalled": "1" if wait_for_stalled else "0",
            "position": "0",
            "rate": "1",
            "playing": "0",
            "at": str(at),
            "seq": "0",
            "created_at": str(at),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(party_id), mapping=fields)
            pipe.sadd(self._members_key(party_id), host)
            pipe.expire(self._key(party_id), self.ttl)
            pipe.expire(self._members_key(party_id), self.ttl)
            await pipe.execute()
        return Party.from_hash(party_id, fields)

    async def get(self, party_id: str) -> tuple[Party, list[str]]:
        """The party and its members; PartyError 404 when there is none (ended, expired, or
        never made)."""
        if not party_id or len(party_id) > 64:
            raise PartyError(404, "party_not_found", "no such party (it may have ended)")
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._key(party_id))
            pipe.smembers(self._members_key(party_id))
            raw, members = await pipe.execute()
        if not raw:
            raise PartyError(404, "party_not_found", "no such party (it may have ended)")
        names = sorted(m.decode() if isinstance(m, bytes) else m for m in members)
        return Party.from_hash(party_id, _decode(raw)), names

    async def stamp(self, party_id: str, position: float, rate: float | None, playing: bool | None) -> Party:
        raw = await self._stamp(
            keys=[self._key(party_id), self._members_key(party_id)],
            args=[
                repr(float(position)),
                now_ms(),
                "" if rate is None else repr(float(rate)),
                "" if playing is None else ("1" if playing else "0"),
                self.ttl,
            ],
        )
        if not raw:
            raise PartyError(404, "party_not_found", "no such party (it may have ended)")
        flat = [x.decode() if isinstance(x, bytes) else x for x in raw]
        return Party.from_hash(party_id, dict(zip(flat[::2], flat[1::2], strict=True)))

    async def end(self, party_id: str, reason: str) -> None:
        deleted = await self.redis.delete(self._key(party_id), self._members_key(party_id), self._stalled_key(party_id))
        if deleted:
            await self.hub.publish_party(party_id, {"type": "party.ended", "party": party_id, "reason": reason})

    def _stalled_key(self, party_id: str) -> str:
        return self.prefix + party_id + ":stalled"

    # ---- socket messages ------------------------------------------------------------------

    async def join(self, client: Client, party_id: str, *, may_play: Any) -> None:
        """`party.join`: the viewer must be allowed to play the title (`may_play(title_id)`
        raises PartyError otherwise). A socket is in one party at a time."""
        party, members = await self.get(party_id)
        await may_play(party.title_id)
        if client.party is not None and client.party != party_id:
            await self.leave(client, client.party, closing=False)
        client.party = party_id
        if client.user_id == party.host:
            task = self.grace.pop(party_id, None)
            if task is not None:
                task.cancel()
            await self.redis.hdel(self._key(party_id), "host_away")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(self._members_key(party_id), client.user_id)
            pipe.expire(self._key(party_id), self.ttl)
            pipe.expire(self._members_key(party_id), self.ttl)
            await pipe.execute()
        if client.user_id not in members:
            members = sorted({*members, client.user_id})
            await self.hub.publish_party(
                party_id, {"type": "party.members", "party": party_id, "members": members, "host": party.host}
            )
        client.offer(
            {
                "type": "party.joined",
                "party": party_id,
                "title_id": party.title_id,
                "host": party.host,
                "control": party.control,
                "wait_for_stalled": party.wait_for_stalled,
                "members": members,
            }
        )
        client.offer(party.state(now=now_ms()))

    async def leave(self, client: Client, party_id: str, *, closing: bool) -> None:
        """`party.leave` (closing=False) or the socket closing while in the party. A member who
        leaves is taken off the list; one whose socket closes stays a member (a reload comes
        back). The host ends the party: at once by leaving, after the grace by closing."""
        if client.party != party_id:
            return
        client.party = None
        if any(c.user_id == client.user_id for c in self.hub.party_members_local(party_id)):
            return  # another of the person's sockets here is still in it
        try:
            party, members = await self.get(party_id)
        except PartyError:
            return
        if client.user_id == party.host:
            if not closing:
                await self.end(party_id, "host_left")
            else:
                token = secrets.token_hex(8)
                await self.redis.hset(self._key(party_id), "host_away", token)
                old = self.grace.pop(party_id, None)
                if old is not None:
                    old.cancel()
                self.grace[party_id] = asyncio.create_task(self._end_after_grace(party_id, token))
            return
        if not closing:
            await self.redis.srem(self._members_key(party_id), client.user_id)
            await self.hub.publish_party(
                party_id,
                {
                    "type": "party.members",
                    "party": party_id,
                    "members": [m for m in members if m != client.user_id],
                    "host": party.host,
                },
            )

    async def _end_after_grace(self, party_id: str, token: str) -> None:
        try:
            await asyncio.sleep(self.settings.party_host_grace_s)
            away = await self.redis.hget(self._key(party_id), "host_away")
            if away is not None and (away.decode() if isinstance(away, bytes) else away) == token:
                await self.end(party_id, "host_left")
        except (RedisError, OSError) as exc:
            log.info("party %s: could not end after the host left (%s); it expires by itself", party_id, exc)
        finally:
            if self.grace.get(party_id) is asyncio.current_task():
                del self.grace[party_id]

    async def control(self, client: Client, msg: dict[str, Any]) -> None:
        """`party.control`: play, pause, seek or rate, by the host (or anyone in the party with
        `control: "all"`); stamped and fanned out to every member."""
        party_id = msg["party"]
        if client.party != party_id:
            raise PartyError(403, "not_in_party", "join the party first")
        party, _ = await self.get(party_id)
        if party.control == "host" and client.user_id != party.host:
            raise PartyError(403, "host_only", "only the host controls this party")
        action = msg["action"]
        position = msg["position"]
        rate = msg.get("rate")
        playing = {"play": True, "pause": False}.get(action)
        stamped = await self.stamp(party_id, position, rate if action == "rate" else None, playing)
        await self.hub.publish_party(party_id, {**stamped.state(), "by": client.user_id, "action": action})

    async def stalled(self, client: Client, msg: dict[str, Any]) -> None:
        """`party.stalled`: a member's player is waiting for data (or no longer is). With
        `wait_for_stalled`, the party pauses at that member's position while anyone is
        stalled and plays on when nobody is; by default the others go on and the stalled
        member catches up."""
        party_id = msg["party"]
        if client.party != party_id:
            raise PartyError(403, "not_in_party", "join the party first")
        party, _ = await self.get(party_id)
        if not party.wait_for_stalled:
            return
        key = self._stalled_key(party_id)
        if msg["stalled"]:
            added = await self.redis.sadd(key, client.user_id)
            await self.redis.expire(key, self.ttl)
            if added and party.playing:
                await self.redis.hset(self._key(party_id), "resume", "1")
                stamped = await self.stamp(party_id, msg["position"], None, False)
                await self.hub.publish_party(party_id, {**stamped.state(), "by": client.user_id, "action": "wait"})
        else:
            await self.redis.srem(key, client.user_id)
            if await self.redis.scard(key) == 0 and await self.redis.hget(self._key(party_id), "resume"):
                await self.redis.hdel(self._key(party_id), "resume")
                stamped = await self.stamp(party_id, party.position, None, True)
                await self.hub.publish_party(party_id, {**stamped.state(), "by": client.user_id, "action": "resume"})

    # ---- this process ---------------------------------------------------------------------

    async def renew(self) -> None:
        """Keep alive the parties this process's sockets are in."""
        ids = {c.party for mine in self.hub.clients.values() for c in mine if c.party is not None}
        if not ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for party_id in ids:
                pipe.expire(self._key(party_id), self.ttl, xx=True)
                pipe.expire(self._members_key(party_id), self.ttl, xx=True)
            await pipe.execute()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(max(0.5, self.settings.party_idle_s / 3))
            try:
                await self.renew()
            except (RedisError, OSError) as exc:
                log.info("parties: renewal failed (%s)", type(exc).__name__)


PARTIES = web.AppKey("realtime_parties", Parties)


def time_pong(msg: dict[str, Any]) -> dict[str, Any]:
    """`time.ping` answered with the server's clock in ms: the client takes the offset of the
    sample with the smallest round trip, offset = server - (t0 + t1) / 2."""
    return {"type": "time.pong", "t0": msg["t0"], "server": now_ms()}


async def parties_ctx(app: web.Application) -> AsyncIterator[None]:
    """The process's parties, beside the hub (after it)."""
    parties = app[PARTIES] = Parties(app[keys.SETTINGS], app[keys.REDIS], app[HUB])
    task = asyncio.create_task(parties.run(), name="realtime-parties")
    yield
    task.cancel()
    for t in list(parties.grace.values()):
        t.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
