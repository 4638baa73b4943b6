"""`GET /api/v1/ws`: the real-time socket (docs/realtime.md).

Before the upgrade: a browser's `Origin` must be this server's own or `public_url`'s (403
otherwise: a page elsewhere cannot open a socket with a visitor's token), and the client's
address must have a connection left (429). After it, the first message authenticates
(`{"type": "auth", "token": ...}` within `realtime_auth_timeout_s`); tokens never travel in
the URL, where access logs and proxies would keep them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web
from redis.exceptions import RedisError

from auth import api_keys
from auth.errors import InvalidToken
from auth.tokens import AccessClaims, verify_access_token
from catalog import titles
from catalog.errors import TitleNotFound
from server import keys
from server.http.authn import REVOCATIONS, access_keyring
from server.http.clientip import client_ip
from server.http.errors import ApiError
from server.realtime import parties, protocol
from server.realtime.hub import CLOSE_TIMEOUT_S, HUB, Client, Hub

log = logging.getLogger("streamflix.realtime")


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(request: web.Request) -> bool:
    """No Origin (not a browser) or the server's own origin, as the client reached it or as
    `public_url` names it."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    allowed = {f"{request.scheme}://{request.host}".lower()}
    public_url = request.app[keys.SETTINGS].public_url
    if public_url:
        allowed.add(_origin_of(public_url))
    return origin.lower() in allowed


class Socket:
    """One connection's life: authenticate, register, then read, write and watch the session
    until either side closes."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, hub: Hub, ip: str) -> None:
        self.request = request
        self.ws = ws
        self.hub = hub
        self.ip = ip
        self.settings = request.app[keys.SETTINGS]
        self.client: Client | None = None
        self.role = "viewer"
        self._closing: asyncio.Task[None] | None = None

    def kill(self, code: int, reason: str) -> None:
        """Close from any task; a peer that does not read the close frame is cut off."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.ws.close(code=code, message=reason.encode())
        except (TimeoutError, ConnectionError, RuntimeError):
            transport = self.request.transport
            if transport is not None:
                transport.abort()

    async def authenticate(self) -> AccessClaims | None:
        try:
            msg = await self.ws.receive(timeout=self.settings.realtime_auth_timeout_s)
        except TimeoutError:
            await self.ws.close(code=protocol.CLOSE_UNAUTHORIZED, message=b"authentication timed out")
            return None
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return None  # gone, or over the size limit (aiohttp closes with 1009 itself)
        try:
            if msg.type != WSMsgType.TEXT:
                raise protocol.ProtocolError("malformed_message", "messages are JSON text")
            parsed = protocol.parse(msg.data)
            if parsed["type"] != "auth":
                raise protocol.ProtocolError("auth_required", "")
        except protocol.ProtocolError:
            await self.ws.close(code=protocol.CLOSE_UNAUTHORIZED, message=b"the first message must be auth")
            return None
        token = parsed["token"]
        if api_keys.looks_like_key(token):
            await self.ws.close(code=protocol.CLOSE_FORBIDDEN, message=b"API keys cannot open the socket")
            return None
        try:
            claims = verify_access_token(access_keyring(self.request.app), token)
        except InvalidToken as exc:
            await self.ws.close(code=protocol.CLOSE_UNAUTHORIZED, message=f"invalid token: {exc.code}".encode())
            return None
        revoked = await self._revoked(claims.session_id)
        if revoked is None:
            await self.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"cannot check the session; try again")
            return None
        if revoked:
            await self.ws.close(code=protocol.CLOSE_UNAUTHORIZED, message=b"session revoked")
            return None
        return claims

    async def _revoked(self, session_id: str) -> bool | None:
        """Whether the session was signed out; None when neither Redis nor Postgres answers."""
        revocations = self.request.app.get(REVOCATIONS)
        if revocations is None:
            return False
        try:
            return await revocations.is_revoked(session_id)
        except Exception as exc:  # any outage of both stores: keep the socket, ask again later
            log.info("realtime: revocation check failed (%s)", type(exc).__name__)
            return None

    async def run(self) -> None:
        claims = await self.authenticate()
        if claims is None:
            return
        self.role = claims.role
        client = self.client = Client(
            claims.user_id,
            claims.session_id,
            self.ip,
            self.settings.realtime_send_queue,
            lambda: self.kill(protocol.CLOSE_POLICY, "too slow: messages were not read"),
        )
        if not await self.hub.add(client):
            await self.ws.close(code=protocol.CLOSE_TOO_MANY, message=b"too many connections for this account")
            return
        client.offer({"type": "ready", "user_id": claims.user_id})
        client.offer(protocol.status(self.hub.available))
        tasks = [
            asyncio.create_task(self._write(client), name="realtime-write"),
            asyncio.create_task(self._watch_session(claims.session_id), name="realtime-session"),
        ]
        try:
            await self._read(client)
        finally:
            # aiohttp cancels the handler once the connection is gone, maybe in the middle of
            # this: the slot and the party would be left behind. It runs to its end apart.
            leaving = asyncio.ensure_future(self._leave(client))
            try:
                await asyncio.shield(leaving)
            except asyncio.CancelledError:
                await asyncio.wait([leaving])
                raise
            finally:
                for t in tasks:
                    t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            if self._closing is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._closing

    async def _leave(self, client: Client) -> None:
        """The socket is done: its connection slot is given back and it leaves its party."""
        await self.hub.remove(client)
        party_store = self.request.app.get(parties.PARTIES)
        if client.party is not None and party_store is not None:
            with contextlib.suppress(Exception):  # Redis away: the party expires by itself
                await party_store.leave(client, client.party, closing=True)

    async def _read(self, client: Client) -> None:
        bucket = protocol.TokenBucket(self.settings.realtime_msgs_per_s, self.settings.realtime_msg_burst)
        bad = 0
        async for msg in self.ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            if not bucket.take():
                self.kill(protocol.CLOSE_POLICY, "too many messages")
                continue
            try:
                if msg.type != WSMsgType.TEXT:
                    raise protocol.ProtocolError("malformed_message", "messages are JSON text")
                parsed = protocol.parse(msg.data)
            except protocol.ProtocolError as exc:
                bad += 1
                await client.reply(protocol.error(exc.code, exc.message))
                if bad >= self.settings.realtime_bad_messages:
                    self.kill(protocol.CLOSE_BAD_MESSAGES, "too many malformed messages")
                continue
            if parsed["type"] == "ping":
                await client.reply({"type": "pong"})
            elif parsed["type"] == "time.ping":
                await client.reply(parties.time_pong(parsed))
            elif parsed["type"] == "auth":
                await client.reply(protocol.error("already_authenticated", "this socket is already signed in"))
            else:
                await self._party(client, parsed)

    async def _party(self, client: Client, msg: dict[str, Any]) -> None:
        """A watch party message; a refusal is answered with an error (not counted as
        malformed), and Redis being away with `party_unavailable`."""
        store = self.request.app[parties.PARTIES]
        try:
            if msg["type"] == "party.join":
                await store.join(client, msg["party"], may_play=self._may_play)
            elif msg["type"] == "party.leave":
                if client.party != msg["party"]:
                    raise parties.PartyError(403, "not_in_party", "this socket is not in that party")
                await store.leave(client, msg["party"], closing=False)
                await client.reply({"type": "party.left", "party": msg["party"]})
            elif msg["type"] == "party.control":
                await store.control(client, msg)
            elif msg["type"] == "party.stalled":
                await store.stalled(client, msg)
        except parties.PartyError as exc:
            await client.reply({**protocol.error(exc.code, exc.message), "party": msg["party"]})
        except (RedisError, OSError) as exc:
            log.info("realtime: party message failed (%s)", type(exc).__name__)
            await client.reply(
                {**protocol.error("party_unavailable", "parties are unavailable; try again"), "party": msg["party"]}
            )

    async def _may_play(self, title_id: str) -> None:
        """The viewer may play the title: it exists, is visible (or they are an admin) and
        has media ready; PartyError otherwise."""
        try:
            async with self.request.app[keys.PG].acquire() as conn:
                title = await titles.get_title(conn, title_id)
        except TitleNotFound:
            raise parties.PartyError(404, "title_not_found", "the party's title is gone") from None
        if not (title.visible or self.role == "admin"):
            raise parties.PartyError(404, "title_not_found", "the party's title is gone")
        if not title.playable or title.current_version is None:
            raise parties.PartyError(409, "title_not_ready", "the party's title cannot be played now")

    async def _write(self, client: Client) -> None:
        while True:
            text = await client.queue.get()
            try:
                async with asyncio.timeout(self.settings.realtime_send_timeout_s):
                    await self.ws.send_str(text)
            except TimeoutError:
                client.dropped = True
                self.kill(protocol.CLOSE_POLICY, "too slow: messages were not read")
                return
            except (ConnectionError, RuntimeError):
                return

    async def _watch_session(self, session_id: str) -> None:
        while True:
            await asyncio.sleep(self.settings.realtime_revocation_check_s)
            if await self._revoked(session_id):
                self.kill(protocol.CLOSE_UNAUTHORIZED, "session revoked")
                return


async def serve(request: web.Request) -> web.StreamResponse:
    """Answer an upgrade request: checks, then the socket until it closes."""
    settings = request.app[keys.SETTINGS]
    if not origin_allowed(request):
        raise ApiError(403, "origin_refused", "this origin may not open the socket")
    ws = web.WebSocketResponse(
        heartbeat=settings.realtime_heartbeat_s,
        max_msg_size=settings.realtime_max_msg_bytes,
        receive_timeout=None,
    )
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "websocket_required", "this URL speaks WebSocket: send an Upgrade request")
    hub = request.app[HUB]
    ip = client_ip(request)
    slot = await hub.ip_slot(ip)
    if slot is None:
        raise ApiError(429, "too_many_connections", "too many sockets from this address", headers={"Retry-After": "5"})
    try:
        await ws.prepare(request)
        hub.sockets.add(ws)
        await Socket(request, ws, hub, ip).run()
        if not ws.closed:
            await ws.close(code=protocol.CLOSE_NORMAL)
    finally:
        hub.sockets.discard(ws)
        await hub.release_ip(ip, slot)
    return ws
