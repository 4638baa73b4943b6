"""Watch parties and clock sync over the real socket: two app instances on real sockets
sharing the real Postgres and Redis (as test_realtime does). docs/realtime.md is the
protocol these check."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from typing import Any

import pytest

from catalog import status, titles
from server.app import create_app
from server.settings import Settings
from tests.server.test_realtime import closed_with, login, open_socket, receive_json, until, wait_available


@pytest.fixture
def party_settings(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings,
        realtime_msgs_per_s=50.0,
        realtime_msg_burst=50,
        notifications_poll_s=0,
        webhook_poll_s=0,
        party_host_grace_s=0.6,
        party_idle_s=30.0,
    )


async def ready_movie(pg: Any) -> str:
    movie = await titles.create_title(pg, kind="movie", title=f"Party {secrets.token_hex(3)}")
    await status.publish_ready(pg, movie.id, "v1", duration_s=60)
    return movie.id


def bearer(who: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {who['access_token']}"}


async def two_apps(aiohttp_client: Any, settings: Settings) -> tuple[Any, Any]:
    a = await aiohttp_client(create_app(settings))
    b = await aiohttp_client(create_app(settings))
    await wait_available(a)
    await wait_available(b)
    return a, b


async def new_party(client: Any, host: dict[str, str], title_id: str, **extra: Any) -> dict[str, Any]:
    r = await client.post("/api/v1/parties", json={"title_id": title_id, **extra}, headers=bearer(host))
    assert r.status == 201, await r.text()
    return await r.json()


async def join(ws: Any, party_id: str) -> dict[str, Any]:
    await ws.send_json({"type": "party.join", "party": party_id})
    joined = await until(ws, "party.joined")
    assert joined["party"] == party_id
    return await until(ws, "party.state", party=party_id)


async def test_create_join_control_fan_out_and_late_join(aiohttp_client, party_settings, pg):
    a, b = await two_apps(aiohttp_client, party_settings)
    movie = await ready_movie(pg)
    host, guest, late = await login(a), await login(a), await login(a)
    party = await new_party(a, host, movie)
    assert party["title_id"] == movie and party["host"] == host["user_id"] and party["control"] == "host"
    assert party["join_url"].endswith(f"/watch/{movie}?party={party['id']}")
    assert party["state"]["playing"] is False and party["state"]["seq"] == 0

    host_ws = await open_socket(a, host["access_token"])
    guest_ws = await open_socket(b, guest["access_token"])  # another process
    await join(host_ws, party["id"])
    await join(guest_ws, party["id"])
    members = await until(host_ws, "party.members", party=party["id"])
    assert guest["user_id"] in members["members"]

    # the host plays at 12 s: both get the same stamped state
    before = int(time.time() * 1000)
    await host_ws.send_json({"type": "party.control", "party": party["id"], "action": "play", "position": 12})
    for ws in (host_ws, guest_ws):
        state = await until(ws, "party.state", party=party["id"], seq=1)
        assert state["playing"] is True and state["position"] == 12 and state["rate"] == 1
        assert before <= state["at"] <= int(time.time() * 1000)
    await host_ws.send_json(
        {"type": "party.control", "party": party["id"], "action": "rate", "position": 13, "rate": 1.5}
    )
    state = await until(guest_ws, "party.state", party=party["id"], seq=2)
    assert state["rate"] == 1.5 and state["playing"] is True

    # the guest may not drive a host-controlled party
    await guest_ws.send_json({"type": "party.control", "party": party["id"], "action": "pause", "position": 1})
    refused = await until(guest_ws, "error")
    assert refused["code"] == "host_only"

    # a late joiner gets the state carried forward from `at`
    await asyncio.sleep(0.4)
    late_ws = await open_socket(b, late["access_token"])
    got = await join(late_ws, party["id"])
    expected = 13 + (got["at"] - state["at"]) / 1000 * 1.5
    assert got["seq"] == 2 and abs(got["position"] - expected) < 0.01 and got["position"] > 13.5

    # GET: members see it, a non-member does not
    r = await b.get(f"/api/v1/parties/{party['id']}", headers=bearer(late))
    assert r.status == 200 and late["user_id"] in (await r.json())["members"]
    stranger = await login(a)
    r = await a.get(f"/api/v1/parties/{party['id']}", headers=bearer(stranger))
    assert r.status == 403 and (await r.json())["error"]["code"] == "not_a_party_member"
    r = await a.get("/api/v1/parties/nope", headers=bearer(stranger))
    assert r.status == 404 and (await r.json())["error"]["code"] == "party_not_found"

    # a member leaves: off the list; their control messages are refused
    await late_ws.send_json({"type": "party.leave", "party": party["id"]})
    await until(late_ws, "party.left")
    members = await until(host_ws, "party.members", party=party["id"])
    if late["user_id"] in members["members"]:  # the join's message came first
        members = await until(host_ws, "party.members", party=party["id"])
    assert late["user_id"] not in members["members"]
    await late_ws.send_json({"type": "party.control", "party": party["id"], "action": "pause", "position": 1})
    assert (await until(late_ws, "error"))["code"] == "not_in_party"
    for ws in (host_ws, guest_ws, late_ws):
        await ws.close()


async def test_control_all_lets_any_member_drive(aiohttp_client, party_settings, pg):
    a, b = await two_apps(aiohttp_client, party_settings)
    movie = await ready_movie(pg)
    host, guest = await login(a), await login(a)
    party = await new_party(a, host, movie, control="all")
    host_ws, guest_ws = await open_socket(a, host["access_token"]), await open_socket(b, guest["access_token"])
    await join(host_ws, party["id"])
    await join(guest_ws, party["id"])
    await guest_ws.send_json({"type": "party.control", "party": party["id"], "action": "seek", "position": 42.5})
    state = await until(host_ws, "party.state", party=party["id"], seq=1)
    assert state["position"] == 42.5 and state["playing"] is False
    await host_ws.close()
    await guest_ws.close()


async def test_a_viewer_who_may_not_play_the_title_is_refused(aiohttp_client, party_settings, pg):
    a, _ = await two_apps(aiohttp_client, party_settings)
    viewer = await login(a)
    pending = await titles.create_title(pg, kind="movie", title="Not yet")
    r = await a.post("/api/v1/parties", json={"title_id": pending.id}, headers=bearer(viewer))
    assert r.status == 404, await r.text()  # not visible to viewers yet
    admin = await login(a, role="admin")
    r = await a.post("/api/v1/parties", json={"title_id": pending.id}, headers=bearer(admin))
    assert r.status == 409, await r.text()  # an admin sees it, but there is nothing to play
    r = await a.post("/api/v1/parties", json={"title_id": "no-such-title"}, headers=bearer(viewer))
    assert r.status == 404, await r.text()
    for bad in ({}, {"title_id": 5}, {"title_id": "x", "control": "everyone"}, {"title_id": "x", "role": "host"}):
        r = await a.post("/api/v1/parties", json=bad, headers=bearer(viewer))
        assert r.status == 400, (bad, await r.text())
        assert "error" in await r.json()
    r = await a.post("/api/v1/parties", json={"title_id": "x"})
    assert r.status == 401

    # a party whose title was taken down: joining is refused
    movie = await ready_movie(pg)
    party = await new_party(a, viewer, movie)
    await pg.execute("UPDATE catalog.titles SET status = 'failed', current_version = NULL WHERE id = $1", movie)
    other = await login(a)
    ws = await open_socket(a, other["access_token"])
    await ws.send_json({"type": "party.join", "party": party["id"]})
    assert (await until(ws, "error"))["code"] == "title_not_found"
    await ws.send_json({"type": "party.join", "party": "no-such-party"})
    assert (await until(ws, "error"))["code"] == "party_not_found"
    await ws.close()


async def test_malformed_party_messages_are_answered_with_errors(aiohttp_client, party_settings, pg):
    a, _ = await two_apps(aiohttp_client, party_settings)
    viewer = await login(a)
    ws = await open_socket(a, viewer["access_token"])
    for bad in (
        {"type": "party.join"},
        {"type": "party.control", "party": "p", "action": "jump", "position": 1},
    ):
        await ws.send_json(bad)
        assert (await until(ws, "error"))["code"] == "malformed_message"
    await ws.send_json({"type": "party.control", "party": "p", "action": "rate", "position": 1, "rate": 100})
    assert (await until(ws, "error"))["code"] == "malformed_message"
    code, reason = await closed_with(ws)
    assert code == 4400 and "malformed" in reason


async def test_clock_sync_ping(aiohttp_client, party_settings):
    a, _ = await two_apps(aiohttp_client, party_settings)
    viewer = await login(a)
    ws = await open_socket(a, viewer["access_token"])
    t0 = time.time() * 1000
    await ws.send_json({"type": "time.ping", "t0": t0})
    pong = await until(ws, "time.pong")
    t1 = time.time() * 1000
    assert pong["t0"] == t0 and t0 - 1 <= pong["server"] <= t1 + 1  # one machine, one clock
    await ws.send_json({"type": "time.ping", "t0": "now"})
    assert (await until(ws, "error"))["code"] == "malformed_message"
    await ws.close()


async def test_party_ends_when_the_host_leaves_after_the_grace(aiohttp_client, party_settings, pg):
    a, b = await two_apps(aiohttp_client, party_settings)
    movie = await ready_movie(pg)
    host, guest = await login(a), await login(a)
    party = await new_party(a, host, movie)
    host_ws, guest_ws = await open_socket(a, host["access_token"]), await open_socket(b, guest["access_token"])
    await join(host_ws, party["id"])
    await join(guest_ws, party["id"])

    # the host reloads (socket closes, a new one rejoins on the other process within the grace)
    await host_ws.close()
    host_ws = await open_socket(b, host["access_token"])
    await join(host_ws, party["id"])
    await asyncio.sleep(party_settings.party_host_grace_s + 0.4)
    r = await a.get(f"/api/v1/parties/{party['id']}", headers=bearer(guest))
    assert r.status == 200, await r.text()

    # the guest reloads: still a member
    await guest_ws.close()
    guest_ws = await open_socket(a, guest["access_token"])
    r = await a.get(f"/api/v1/parties/{party['id']}", headers=bearer(guest))
    assert r.status == 200 and guest["user_id"] in (await r.json())["members"]
    await join(guest_ws, party["id"])

    # the host goes away for good: ended after the grace, everyone told
    await host_ws.close()
    ended = await until(guest_ws, "party.ended", timeout=3, party=party["id"])
    assert ended["reason"] == "host_left"
    r = await a.get(f"/api/v1/parties/{party['id']}", headers=bearer(guest))
    assert r.status == 404
    await guest_ws.close()


async def test_the_host_leaving_on_purpose_ends_it_at_once(aiohttp_client, party_settings, pg):
    a, b = await two_apps(aiohttp_client, party_settings)
    movie = await ready_movie(pg)
    host, guest = await login(a), await login(a)
    party = await new_party(a, host, movie)
    host_ws, guest_ws = await open_socket(a, host["access_token"]), await open_socket(b, guest["access_token"])
    await join(host_ws, party["id"])
    await join(guest_ws, party["id"])
    await host_ws.send_json({"type": "party.leave", "party": party["id"]})
    assert (await until(guest_ws, "party.ended", timeout=1, party=party["id"]))["reason"] == "host_left"
    for ws in (host_ws, guest_ws):
        await ws.close()


async def test_party_state_survives_a_process_going_away(aiohttp_client, party_settings, pg):
    a = await aiohttp_client(create_app(party_settings))
    await wait_available(a)
    movie = await ready_movie(pg)
    host, guest = await login(a), await login(a)
    party = await new_party(a, host, movie, control="all")
    guest_ws = await open_socket(a, guest["access_token"])
    await join(guest_ws, party["id"])
    await guest_ws.send_json({"type": "party.control", "party": party["id"], "action": "seek", "position": 30})
    await until(guest_ws, "party.state", party=party["id"], seq=1)
    await guest_ws.close()
    await a.close()  # this process is gone

    b = await aiohttp_client(create_app(party_settings))
    await wait_available(b)
    guest_ws = await open_socket(b, guest["access_token"])
    state = await join(guest_ws, party["id"])
    assert state["seq"] == 1 and state["position"] == 30
    await guest_ws.close()


async def test_wait_for_stalled_pauses_the_party_and_plays_on(aiohttp_client, party_settings, pg):
    a, b = await two_apps(aiohttp_client, party_settings)
    movie = await ready_movie(pg)
    host, guest = await login(a), await login(a)
    party = await new_party(a, host, movie, wait_for_stalled=True)
    host_ws, guest_ws = await open_socket(a, host["access_token"]), await open_socket(b, guest["access_token"])
    await join(host_ws, party["id"])
    await join(guest_ws, party["id"])
    await host_ws.send_json({"type": "party.control", "party": party["id"], "action": "play", "position": 0})
    await until(guest_ws, "party.state", party=party["id"], seq=1)
    await guest_ws.send_json({"type": "party.stalled", "party": party["id"], "stalled": True, "position": 3})
    waiting = await until(host_ws, "party.state", party=party["id"], seq=2)
    assert waiting["playing"] is False and waiting["position"] == 3 and waiting["action"] == "wait"
    await guest_ws.send_json({"type": "party.stalled", "party": party["id"], "stalled": False, "position": 3})
    resumed = await until(host_ws, "party.state", party=party["id"], seq=3)
    assert resumed["playing"] is True and resumed["position"] == 3
    for ws in (host_ws, guest_ws):
        await ws.close()


async def test_party_messages_reach_members_only(aiohttp_client, party_settings, pg):
    a, b = await two_apps(aiohttp_client, party_settings)
    movie = await ready_movie(pg)
    host, bystander = await login(a), await login(a)
    party = await new_party(a, host, movie)
    host_ws, by_ws = await open_socket(a, host["access_token"]), await open_socket(b, bystander["access_token"])
    await join(host_ws, party["id"])
    await host_ws.send_json({"type": "party.control", "party": party["id"], "action": "play", "position": 0})
    await until(host_ws, "party.state", party=party["id"], seq=1)
    await by_ws.send_json({"type": "ping"})
    seen = []
    while (msg := await receive_json(by_ws))["type"] != "pong":
        seen.append(msg["type"])
    assert not [t for t in seen if t.startswith("party.")], seen
    for ws in (host_ws, by_ws):
        await ws.close()


async def test_parties_answer_503_while_redis_is_away(aiohttp_client, party_settings, pg):
    a = await aiohttp_client(create_app(party_settings))
    movie = await ready_movie(pg)
    viewer = await login(a)
    cut = await aiohttp_client(create_app(dataclasses.replace(party_settings, redis_url="redis://127.0.0.1:1/0")))
    r = await cut.post("/api/v1/parties", json={"title_id": movie}, headers=bearer(viewer))
    assert r.status == 503, await r.text()
    assert (await r.json())["error"]["code"] == "parties_unavailable" and r.headers["Retry-After"]
    r = await cut.get("/api/v1/parties/some-party", headers=bearer(viewer))
    assert r.status == 503
