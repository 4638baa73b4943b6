"""The real-time socket end to end: two app instances on real sockets sharing the real
Postgres and Redis, clients speaking WebSocket to them; Redis taken away through a proxy the
test owns. docs/realtime.md is the protocol these check."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import secrets
import socket
import struct
import time
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import WSMsgType

from server import keys
from server.app import create_app
from server.realtime.hub import HUB
from server.settings import Settings
from tests.faultproxy import FaultProxy

PASSWORD = "correct horse battery"
WS = "/api/v1/ws"


@pytest.fixture
def rt_settings(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings,
        realtime_auth_timeout_s=1.0,
        realtime_revocation_check_s=0.3,
        realtime_max_per_user=3,
        realtime_send_queue=8,
        realtime_send_timeout_s=2.0,
        realtime_msgs_per_s=2.0,
        realtime_msg_burst=10,
        notifications_poll_s=0.1,
        webhook_poll_s=0,
    )


async def login(client: Any, role: str = "viewer") -> dict[str, str]:
    email = f"rt-{secrets.token_hex(4)}@example.com"
    r = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status == 201, await r.text()
    if role == "admin":
        conn = await asyncpg.connect(client.app[keys.SETTINGS].database_url)
        try:
            await conn.execute("UPDATE auth.users SET role = 'admin' WHERE lower(email) = lower($1)", email)
        finally:
            await conn.close()
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status == 200, await r.text()
    body = await r.json()
    me = await (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})).json()
    return {**body, "user_id": me["id"]}


async def receive_json(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    return json.loads(msg.data)


async def until(ws: Any, kind: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
    """The next message of `type` kind (and `match`), skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {kind} {match} within {timeout} s"
        msg = await receive_json(ws, left)
        if msg["type"] == kind and all(msg.get(k) == v for k, v in match.items()):
            return msg


async def closed_with(ws: Any, timeout: float = 5.0) -> tuple[int | None, str]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "the socket was not closed"
        msg = await ws.receive(timeout=left)
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
            return ws.close_code, (msg.extra or "")


async def open_socket(client: Any, token: str) -> Any:
    ws = await client.ws_connect(WS)
    await ws.send_json({"type": "auth", "token": token})
    ready = await until(ws, "ready")
    assert ready["user_id"]
    return ws


async def wait_available(client: Any, timeout: float = 5.0) -> None:
    hub = client.app[HUB]
    deadline = time.monotonic() + timeout
    while not hub.available:
        assert time.monotonic() < deadline, "the hub never subscribed to Redis"
        await asyncio.sleep(0.05)


async def test_a_message_published_on_one_process_reaches_sockets_on_another(aiohttp_client, rt_settings):
    a = await aiohttp_client(create_app(rt_settings))
    b = await aiohttp_client(create_app(rt_settings))
    await wait_available(a)
    await wait_available(b)
    viewer = await login(a)
    other = await login(a)
    on_a = await open_socket(a, viewer["access_token"])
    on_b = await open_socket(b, viewer["access_token"])
    bystander = await open_socket(b, other["access_token"])

    assert await b.app[HUB].publish(viewer["user_id"], {"type": "notification", "notification": {"text": "hi"}})
    for ws in (on_a, on_b):
        got = await until(ws, "notification")
        assert got["notification"]["text"] == "hi"
    await bystander.send_json({"type": "ping"})
    assert (await until(bystander, "pong"))["type"] == "pong"  # nothing else arrived before it
    for ws in (on_a, on_b, bystander):
        await ws.close()


async def _favorite(client: Any, token: str, title_id: str) -> None:
    r = await client.put(f"/api/v1/me/favorites/{title_id}", headers={"Authorization": f"Bearer {token}"})
    assert r.status in (200, 201, 204), await r.text()


async def test_notifications_from_title_events_live_and_listed(aiohttp_client, rt_settings, pg):
    from catalog import status, titles

    a = await aiohttp_client(create_app(rt_settings))
    b = await aiohttp_client(create_app(rt_settings))
    await wait_available(a)
    await wait_available(b)
    viewer = await login(a)
    admin = await login(a, role="admin")
    movie = await titles.create_title(pg, kind="movie", title=f"Movie {secrets.token_hex(3)}", status="ready")
    series = await titles.create_title(pg, kind="series", title="The Series")
    await _favorite(a, viewer["access_token"], movie.id)
    await _favorite(a, viewer["access_token"], series.id)
    viewer_ws = await open_socket(b, viewer["access_token"])
    admin_ws = await open_socket(a, admin["access_token"])

    # a favorited movie gets a new version: ready again
    await status.publish_ready(pg, movie.id, "v2", duration_s=10)
    got = await until(viewer_ws, "notification")
    assert got["notification"]["kind"] == "title_ready" and got["notification"]["title_id"] == movie.id
    assert movie.title in got["notification"]["text"]
    got = await until(admin_ws, "notification")
    assert got["notification"]["kind"] == "transcode_ready"

    # a new episode of a favorited series: playable, then ready (told once)
    episode = await titles.create_title(
        pg, kind="episode", title="Pilot", series_id=series.id, season_number=1, episode_number=1
    )
    await status.mark_playable(pg, episode.id, "e1", duration_s=5)
    got = await until(viewer_ws, "notification")
    assert got["notification"]["kind"] == "episode_available"
    assert got["notification"]["data"]["series_title"] == "The Series"
    await status.publish_ready(pg, episode.id, "e1", duration_s=5)
    assert (await until(admin_ws, "notification"))["notification"]["kind"] == "transcode_ready"

    # a failure is for admins
    broken = await titles.create_title(pg, kind="movie", title="Broken")
    await status.mark_failed(pg, broken.id, "ffmpeg exited 1")
    got = await until(admin_ws, "notification")
    assert got["notification"]["kind"] == "transcode_failed" and "ffmpeg exited 1" in got["notification"]["text"]

    # the record: newest first, unread counted, paged
    auth = {"Authorization": f"Bearer {viewer['access_token']}"}
    await asyncio.sleep(0.5)  # the producer's next rounds: nothing more may come for the viewer
    r = await a.get("/api/v1/me/notifications", headers=auth)
    assert r.status == 200, await r.text()
    page = await r.json()
    assert [n["kind"] for n in page["items"]] == ["episode_available", "title_ready"], page
    assert page["unread"] == 2 and page["next_before"] is None
    r = await a.get("/api/v1/me/notifications?limit=1", headers=auth)
    first = await r.json()
    assert len(first["items"]) == 1 and first["next_before"] == first["items"][0]["id"]
    r = await a.get(f"/api/v1/me/notifications?limit=1&before={first['next_before']}", headers=auth)
    assert [n["kind"] for n in (await r.json())["items"]] == ["title_ready"]

    # an event replayed notifies no one twice (the unique key)
    await pg.execute(
        """INSERT INTO catalog.notification_events (event, data)
           VALUES ('title.ready', jsonb_build_object('title_id', $1::text, 'kind', 'movie', 'title', $2::text,
                                                     'version', 'v2'))""",
        movie.id,
        movie.title,
    )
    await asyncio.sleep(0.6)
    assert (await (await a.get("/api/v1/me/notifications", headers=auth)).json())["unread"] == 2

    # marking read: some, then all; every socket of the person hears the new count
    r = await b.post("/api/v1/me/notifications/read", json={"ids": [first["items"][0]["id"]]}, headers=auth)
    assert r.status == 200 and (await r.json())["unread"] == 1
    assert (await until(viewer_ws, "unread"))["count"] == 1
    r = await b.post("/api/v1/me/notifications/read", json={"all": True}, headers=auth)
    assert (await r.json())["unread"] == 0
    # someone else's ids change nothing of theirs
    admin_auth = {"Authorization": f"Bearer {admin['access_token']}"}
    before = (await (await a.get("/api/v1/me/notifications", headers=admin_auth)).json())["unread"]
    r = await a.post("/api/v1/me/notifications/read", json={"ids": [first["items"][0]["id"]]}, headers=admin_auth)
    assert (await r.json())["unread"] == before >= 3
    await viewer_ws.close()
    await admin_ws.close()


@pytest.mark.parametrize(
    ("body", "query"),
    [
        pytest.param({}, "", id="neither-ids-nor-all"),
        pytest.param({"ids": [1], "all": True}, "", id="both"),
        pytest.param({"ids": ["x"]}, "", id="ids-not-numbers"),
        pytest.param(None, "?before=abc", id="bad-cursor"),
        pytest.param(None, "?limit=0", id="bad-limit"),
    ],
)
async def test_notification_requests_refused_clearly(app_client, user_token, body, query):
    auth = {"Authorization": f"Bearer {user_token['access_token']}"}
    if body is None:
        r = await app_client.get("/api/v1/me/notifications" + query, headers=auth)
    else:
        r = await app_client.post("/api/v1/me/notifications/read", json=body, headers=auth)
    assert r.status == 400, await r.text()
    assert set((await r.json())["error"]) >= {"code", "message"}
    r = await app_client.get("/api/v1/me/notifications")
    assert r.status == 401


async def test_authentication_is_the_first_message(aiohttp_client, rt_settings):
    client = await aiohttp_client(create_app(rt_settings))
    viewer = await login(client)

    ws = await client.ws_connect(WS)  # says nothing
    started = time.monotonic()
    code, reason = await closed_with(ws)
    assert code == 4401 and "timed out" in reason and time.monotonic() - started < 3

    ws = await client.ws_connect(WS)
    await ws.send_json({"type": "auth", "token": "not-a-token"})
    assert (await closed_with(ws))[0] == 4401

    ws = await client.ws_connect(WS)
    await ws.send_json({"type": "ping"})
    code, reason = await closed_with(ws)
    assert code == 4401 and "auth" in reason

    # a token in the URL is no credential
    ws = await client.ws_connect(f"{WS}?token={viewer['access_token']}")
    assert (await closed_with(ws))[0] == 4401


async def test_a_revoked_session_is_disconnected_within_seconds(aiohttp_client, rt_settings):
    client = await aiohttp_client(create_app(rt_settings))
    viewer = await login(client)
    ws = await open_socket(client, viewer["access_token"])
    r = await client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {viewer['access_token']}"})
    assert r.status == 204
    started = time.monotonic()
    code, reason = await closed_with(ws)
    assert code == 4401 and reason == "session revoked"
    assert time.monotonic() - started < 3
    # and it cannot come back
    ws = await client.ws_connect(WS)
    await ws.send_json({"type": "auth", "token": viewer["access_token"]})
    code, reason = await closed_with(ws)
    assert code == 4401 and reason == "session revoked"


async def test_refused_before_the_upgrade(aiohttp_client, rt_settings):
    client = await aiohttp_client(create_app(rt_settings))
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(WS, headers={"Origin": "https://evil.example"})
    assert info.value.status == 403
    r = await client.get(WS, headers={"Origin": "https://evil.example"})
    assert r.status == 403 and (await r.json())["error"]["code"] == "origin_refused"
    # the server's own origin and the configured public URL are welcome
    own = f"http://{client.server.host}:{client.server.port}"
    (await client.ws_connect(WS, headers={"Origin": own})).exception()
    public = await aiohttp_client(create_app(dataclasses.replace(rt_settings, public_url="https://tv.example/app")))
    ws = await public.ws_connect(WS, headers={"Origin": "https://tv.example"})
    await ws.close()
    # not an upgrade at all
    r = await client.get(WS)
    assert r.status == 400 and (await r.json())["error"]["code"] == "websocket_required"


async def test_bad_messages_sizes_and_floods(aiohttp_client, rt_settings):
    client = await aiohttp_client(create_app(rt_settings))
    viewer = await login(client)

    ws = await open_socket(client, viewer["access_token"])
    await ws.send_str("x" * (rt_settings.realtime_max_msg_bytes + 1))
    assert (await closed_with(ws))[0] == 1009

    ws = await open_socket(client, viewer["access_token"])
    await ws.send_str("{not json")
    assert (await until(ws, "error"))["code"] == "malformed_json"
    await ws.send_json({"type": "subscribe"})
    assert (await until(ws, "error"))["code"] == "unknown_type"
    await ws.send_json({"type": "ping"})
    await until(ws, "pong")  # still open after two offences
    await ws.send_str("[]")
    assert (await until(ws, "error"))["code"] == "malformed_message"
    assert (await closed_with(ws))[0] == 4400

    ws = await open_socket(client, viewer["access_token"])
    for _ in range(rt_settings.realtime_msg_burst + 5):
        await ws.send_json({"type": "ping"})
    code, reason = await closed_with(ws)
    assert code == 1008 and reason == "too many messages"


async def test_per_user_connection_limit(aiohttp_client, rt_settings):
    client = await aiohttp_client(create_app(rt_settings))
    viewer = await login(client)
    sockets = [await open_socket(client, viewer["access_token"]) for _ in range(rt_settings.realtime_max_per_user)]
    extra = await client.ws_connect(WS)
    await extra.send_json({"type": "auth", "token": viewer["access_token"]})
    code, reason = await closed_with(extra)
    assert code == 4429 and "too many" in reason
    await sockets[0].close()
    for _ in range(50):  # the server sees the close, then a slot is free again
        if client.app[HUB].count(viewer["user_id"]) < rt_settings.realtime_max_per_user:
            break
        await asyncio.sleep(0.02)
    (await open_socket(client, viewer["access_token"])).exception()


def _frame(text: str) -> bytes:
    """One masked client text frame (RFC 6455 section 5.2), for a client that never reads."""
    data = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81]) + (
        bytes([0x80 | len(data)]) if len(data) < 126 else bytes([0x80 | 126]) + struct.pack("!H", len(data))
    )
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def test_a_client_that_never_reads_is_dropped(aiohttp_client, rt_settings):
    client = await aiohttp_client(create_app(rt_settings))
    viewer = await login(client)
    hub = client.app[HUB]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (client.server.host, client.server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(
        sock,
        (
            f"GET {WS} HTTP/1.1\r\nHost: {client.server.host}:{client.server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        + _frame(json.dumps({"type": "auth", "token": viewer["access_token"]})),
    )
    for _ in range(100):
        if hub.count(viewer["user_id"]):
            break
        await asyncio.sleep(0.02)
    assert hub.count(viewer["user_id"]) == 1
    big = {"type": "notification", "notification": {"text": "x" * 3000}}
    longest = 0
    started = time.monotonic()
    while hub.count(viewer["user_id"]) and time.monotonic() - started < 15:
        hub.deliver_local(viewer["user_id"], big)
        longest = max([longest] + [c.queue.qsize() for c in hub.clients.get(viewer["user_id"], ())])
        await asyncio.sleep(0.001)
    assert hub.count(viewer["user_id"]) == 0, "the client that never reads was not dropped"
    assert longest <= rt_settings.realtime_send_queue
    sock.close()


def _own_prefix(settings: Settings, **changes: Any) -> Settings:
    """A Redis prefix of the test's own: the connection slots of other tests (same address,
    same session prefix) cannot count here."""
    return dataclasses.replace(settings, redis_prefix=f"{settings.redis_prefix}{secrets.token_hex(4)}:", **changes)


async def _refused(client: Any, token: str) -> tuple[int | None, str]:
    ws = await client.ws_connect(WS)
    await ws.send_json({"type": "auth", "token": token})
    return await closed_with(ws)


async def test_the_per_user_limit_holds_across_processes(aiohttp_client, rt_settings):
    settings = _own_prefix(rt_settings)  # realtime_max_per_user=3
    a = await aiohttp_client(create_app(settings))
    b = await aiohttp_client(create_app(settings))
    viewer = await login(a)
    token = viewer["access_token"]
    on_a = [await open_socket(a, token) for _ in range(2)]
    on_b = await open_socket(b, token)
    for client in (a, b):  # 3 in all: neither process takes a fourth
        code, reason = await _refused(client, token)
        assert (code, reason) == (4429, "too many connections for this account")
    await on_a[0].close()
    for _ in range(100):  # the server sees the close and gives the slot back
        if a.app[HUB].count(viewer["user_id"]) < 2:
            break
        await asyncio.sleep(0.02)
    again = await open_socket(b, token)
    for ws in (on_a[1], on_b, again):
        await ws.close()


async def test_the_per_address_limit_holds_across_processes(aiohttp_client, rt_settings):
    settings = _own_prefix(rt_settings, realtime_max_per_ip=2)
    a = await aiohttp_client(create_app(settings))
    b = await aiohttp_client(create_app(settings))
    held = [await a.ws_connect(WS), await b.ws_connect(WS)]
    for client in (a, b):
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await client.ws_connect(WS)
        assert info.value.status == 429
    await held[0].close()
    for _ in range(100):
        if not a.app[HUB].per_ip:
            break
        await asyncio.sleep(0.02)
    held.append(await b.ws_connect(WS))
    for ws in held[1:]:
        await ws.close()


async def test_a_crashed_processs_slots_expire(aiohttp_client, rt_settings):
    """What a process that died without giving its slots back leaves in Redis: members whose
    expiry is past free their slots, members still within it hold them."""
    import redis.asyncio as aioredis

    from server.realtime.slots import SLOTS_PREFIX

    settings = _own_prefix(rt_settings, realtime_max_per_ip=2)
    client = await aiohttp_client(create_app(settings))
    key = f"{settings.redis_prefix}{SLOTS_PREFIX}ip:127.0.0.1"
    r = aioredis.from_url(settings.redis_url)
    try:
        secs, micros = await r.time()
        now_ms = secs * 1000 + micros // 1000
        await r.zadd(key, {"dead:0": now_ms - 1, "dead:1": now_ms - 1})  # expired
        held = [await client.ws_connect(WS) for _ in range(2)]
        assert 0 < await r.pttl(key) <= 30_000  # the set itself goes with its last slot
        for ws in held:
            await ws.close()
        for _ in range(100):
            if not await r.zcard(key):
                break
            await asyncio.sleep(0.02)
        await r.zadd(key, {"dead:0": now_ms + 60_000, "dead:1": now_ms + 60_000})  # not yet
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await client.ws_connect(WS)
        assert info.value.status == 429
    finally:
        await r.delete(key)
        await r.aclose()


async def test_with_redis_down_the_per_process_limit_holds(aiohttp_client, rt_settings):
    import redis.asyncio as aioredis

    from server.realtime.slots import SLOTS_PREFIX

    with FaultProxy.in_front_of(rt_settings.redis_url, 6379) as proxy:
        settings = _own_prefix(rt_settings, redis_url=proxy.route(rt_settings.redis_url))
        client = await aiohttp_client(create_app(settings))
        viewer = await login(client)
        token = viewer["access_token"]
        proxy.down()
        held = [await open_socket(client, token) for _ in range(settings.realtime_max_per_user)]
        code, _ = await _refused(client, token)
        assert code == 4429
        proxy.up()
        # once Redis is back, the renewal registers what was taken without it
        await client.app[HUB].slots.renew()
        r = aioredis.from_url(rt_settings.redis_url)
        try:
            key = f"{settings.redis_prefix}{SLOTS_PREFIX}user:{viewer['user_id']}"
            assert await r.zcard(key) == settings.realtime_max_per_user
        finally:
            await r.aclose()
        for ws in held:
            await ws.close()
        await client.close()  # while the proxy still runs


async def test_redis_down_then_back(aiohttp_client, rt_settings):
    with FaultProxy.in_front_of(rt_settings.redis_url, 6379) as proxy:
        settings = dataclasses.replace(rt_settings, redis_url=proxy.route(rt_settings.redis_url))
        client = await aiohttp_client(create_app(settings))
        await wait_available(client)
        viewer = await login(client)
        ws = await open_socket(client, viewer["access_token"])
        await until(ws, "status", realtime="available")

        proxy.down()
        await until(ws, "status", timeout=8, realtime="unavailable")
        await ws.send_json({"type": "ping"})  # the socket works otherwise
        await until(ws, "pong")
        hub = client.app[HUB]
        assert not await hub.publish(viewer["user_id"], {"type": "notification", "notification": {"text": "local"}})
        assert (await until(ws, "notification"))["notification"]["text"] == "local"

        proxy.up()
        await until(ws, "status", timeout=10, realtime="available")
        assert await hub.publish(viewer["user_id"], {"type": "notification", "notification": {"text": "via redis"}})
        assert (await until(ws, "notification"))["notification"]["text"] == "via redis"
        await ws.close()
        await client.close()  # while the proxy still runs


async def test_per_address_limit_answers_429_before_the_upgrade(aiohttp_client, rt_settings):
    client = await aiohttp_client(create_app(dataclasses.replace(rt_settings, realtime_max_per_ip=2)))
    held = [await client.ws_connect(WS) for _ in range(2)]
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(WS)
    assert info.value.status == 429
    r = await client.get(
        WS,
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        },
    )
    assert r.status == 429 and (await r.json())["error"]["code"] == "too_many_connections"
    assert r.headers["Retry-After"]
    for ws in held:
        await ws.close()


async def test_an_api_key_cannot_open_the_socket(aiohttp_client, rt_settings):
    from auth import api_keys

    client = await aiohttp_client(create_app(rt_settings))
    admin = await login(client, role="admin")
    conn = await asyncpg.connect(rt_settings.database_url)
    try:
        _key, secret = await api_keys.create(conn, "rt", ["read"], admin["user_id"])
    finally:
        await conn.close()
    ws = await client.ws_connect(WS)
    await ws.send_json({"type": "auth", "token": secret})
    code, reason = await closed_with(ws)
    assert code == 4403 and "API keys" in reason


async def test_deleting_the_account_deletes_its_notifications(app_client, user_token, pg):
    from catalog import notifications

    auth = {"Authorization": f"Bearer {user_token['access_token']}"}
    me = await (await app_client.get("/api/v1/me", headers=auth)).json()
    await pg.execute(
        """INSERT INTO catalog.notifications (user_id, kind, key, data)
           VALUES ($1::uuid, 'title_ready', 'title_ready:x:v', '{"text": "t"}')""",
        me["id"],
    )
    assert (await (await app_client.get("/api/v1/me/notifications", headers=auth)).json())["unread"] == 1
    r = await app_client.delete("/api/v1/me", json={"password": user_token["password"]}, headers=auth)
    assert r.status == 204, await r.text()
    assert await notifications.unread_count(pg, me["id"]) == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("REALTIME_MAX_MSG_BYTES", "0", id="size-zero"),
        pytest.param("REALTIME_MAX_PER_USER", "-1", id="negative-limit"),
        pytest.param("REALTIME_REVOCATION_CHECK_S", "0", id="no-recheck"),
        pytest.param("REALTIME_MSGS_PER_S", "many", id="not-a-number"),
    ],
)
def test_bad_realtime_settings_are_named(tmp_path, name, value):
    from server.settings import ConfigError

    with pytest.raises(ConfigError, match=f"STREAMFLIX_{name}"):
        Settings.load(
            env={f"STREAMFLIX_{name}": value, "STREAMFLIX_DATA_DIR": str(tmp_path), "STREAMFLIX_SECRET_KEY": "k"}
        )


async def test_shutdown_closes_sockets_going_away(aiohttp_client, rt_settings):
    client = await aiohttp_client(create_app(rt_settings))
    viewer = await login(client)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(client.make_url(WS))
        await ws.send_json({"type": "auth", "token": viewer["access_token"]})
        await until(ws, "ready")
        started = time.monotonic()
        closing = asyncio.create_task(client.server.close())
        code, reason = await closed_with(ws)
        await closing
        assert code == 1001 and reason == "server shutting down"
        assert time.monotonic() - started < 3
