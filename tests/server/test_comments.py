"""Timed comments: the API on a real app (Postgres, Redis), and a party's comments delivered
live to its members on another process."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from server.app import create_app
from server.settings import Settings
from tests.server.test_parties import bearer, join, new_party, ready_movie, two_apps
from tests.server.test_realtime import login, open_socket, until, wait_available


@pytest.fixture
def comment_settings(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings, notifications_poll_s=0, webhook_poll_s=0, rate_limit_comments_per_min=4, party_host_grace_s=0.5
    )


async def post(client: Any, who: dict[str, str], title_id: str, **body: Any) -> Any:
    return await client.post(f"/api/v1/titles/{title_id}/comments", json=body, headers=bearer(who))


async def error_code(r: Any) -> str:
    return (await r.json())["error"]["code"]


async def test_comments_listed_by_playback_time_with_limits(aiohttp_client, comment_settings, pg):
    a = await aiohttp_client(create_app(comment_settings))
    movie = await ready_movie(pg)
    viewer = await login(a)
    for position, text in ((30, "later"), (5.5, "<b>early</b>"), (12, "middle")):
        r = await post(a, viewer, movie, body=text, position=position)
        assert r.status == 201, await r.text()
    got = await (await a.get(f"/api/v1/titles/{movie}/comments", headers=bearer(viewer))).json()
    assert [(c["position"], c["body"]) for c in got["items"]] == [(5.5, "<b>early</b>"), (12, "middle"), (30, "later")]
    got = await (await a.get(f"/api/v1/titles/{movie}/comments?from=6&to=30", headers=bearer(viewer))).json()
    assert [c["body"] for c in got["items"]] == ["middle", "later"]
    assert got["items"][0]["user_id"] == viewer["user_id"]

    # the fourth comment in the minute is the last one allowed
    r = await post(a, viewer, movie, body="x", position=1)
    assert r.status == 201
    r = await post(a, viewer, movie, body="one too many", position=1)
    assert r.status == 429 and await error_code(r) == "rate_limited" and "Retry-After" in r.headers

    other = await login(a)
    for bad in (
        {"body": "x" * 501, "position": 1},
        {"body": "   ", "position": 1},
        {"body": "", "position": 1},
        {"body": "hi", "position": -1},
        {"body": "hi"},
        {"body": 5, "position": 1},
        {"body": "hi", "position": "1"},
        {"body": "hi", "position": 1, "html": True},
        {"body": "nul\u0000", "position": 1},
    ):
        r = await post(a, other, movie, **bad)
        assert r.status == 400, (bad, await r.text())
    assert (await post(a, other, movie, body="x" * 500, position=1)).status == 201
    for query in ("from=abc", "from=-1", "to=nan", "from=10&to=5", "limit=0"):
        r = await a.get(f"/api/v1/titles/{movie}/comments?{query}", headers=bearer(other))
        assert r.status == 400, (query, await r.text())
    r = await a.get("/api/v1/titles/not-a-title/comments", headers=bearer(other))
    assert r.status == 404
    assert (await a.get(f"/api/v1/titles/{movie}/comments")).status == 401


async def test_delete_rules_and_report(aiohttp_client, comment_settings, pg):
    a = await aiohttp_client(create_app(comment_settings))
    await wait_available(a)
    movie = await ready_movie(pg)
    author, other, admin = await login(a), await login(a), await login(a, role="admin")
    first = await (await post(a, author, movie, body="first", position=1)).json()
    second = await (await post(a, author, movie, body="second", position=2)).json()
    url = f"/api/v1/titles/{movie}/comments"

    r = await a.delete(f"{url}/{first['id']}", headers=bearer(other))
    assert r.status == 403 and await error_code(r) == "not_allowed"
    assert (await a.delete(f"{url}/{first['id']}", headers=bearer(author))).status == 204
    assert (await a.delete(f"{url}/{first['id']}", headers=bearer(author))).status == 404
    assert (await a.delete(f"{url}/{second['id']}", headers=bearer(admin))).status == 204
    assert (await a.delete(f"{url}/abc", headers=bearer(admin))).status == 404

    # the host of the party a comment was made in may delete it; not after the party is over
    host = await login(a)
    party = await new_party(a, host, movie)
    ws = await open_socket(a, other["access_token"])
    await join(ws, party["id"])
    in_party = await (await post(a, other, movie, body="in the party", position=3, party=party["id"])).json()
    outside = await (await post(a, other, movie, body="outside", position=3)).json()
    assert (await a.delete(f"{url}/{outside['id']}", headers=bearer(host))).status == 403
    assert (await a.delete(f"{url}/{in_party['id']}", headers=bearer(host))).status == 204

    # reports: counted once per person
    target = f"{url}/{outside['id']}/report"
    r = await a.post(target, json={"reason": "spam"}, headers=bearer(author))
    assert r.status == 200 and (await r.json())["reports"] == 1
    r = await a.post(target, json={}, headers=bearer(author))
    assert (await r.json())["reports"] == 1
    r = await a.post(target, json={}, headers=bearer(admin))
    assert (await r.json())["reports"] == 2
    assert (await a.post(target, json={"reason": "x" * 501}, headers=bearer(admin))).status == 400
    assert (await a.post(f"{url}/999999999/report", json={}, headers=bearer(admin))).status == 404
    await ws.close()


async def test_party_comments_delivered_live_to_members_on_another_process(aiohttp_client, comment_settings, pg):
    a, b = await two_apps(aiohttp_client, comment_settings)
    movie = await ready_movie(pg)
    host, guest, stranger = await login(a), await login(a), await login(a)
    party = await new_party(a, host, movie)
    host_ws, guest_ws = await open_socket(a, host["access_token"]), await open_socket(b, guest["access_token"])
    await join(host_ws, party["id"])
    await join(guest_ws, party["id"])

    r = await post(a, host, movie, body="look at this", position=7.25, party=party["id"])
    assert r.status == 201, await r.text()
    live = await until(guest_ws, "party.comment", party=party["id"])
    assert live["comment"]["body"] == "look at this" and live["comment"]["position"] == 7.25
    await a.delete(f"/api/v1/titles/{movie}/comments/{live['comment']['id']}", headers=bearer(host))
    gone = await until(guest_ws, "party.comment_deleted", party=party["id"])
    assert gone["id"] == live["comment"]["id"]

    r = await post(a, stranger, movie, body="let me in", position=1, party=party["id"])
    assert r.status == 403 and await error_code(r) == "not_a_party_member"
    other_movie = await ready_movie(pg)
    r = await post(a, guest, other_movie, body="wrong film", position=1, party=party["id"])
    assert r.status == 400 and await error_code(r) == "wrong_title"
    r = await post(a, guest, movie, body="x", position=1, party="no-such-party")
    assert r.status == 404
    for ws in (host_ws, guest_ws):
        await ws.close()
