"""/api/v1/me/*: favorites, history, continue watching, recommendations over HTTP."""

from __future__ import annotations

import time

import pytest

from tests.catalog.fixtures import make_series, make_title, viewer_headers  # noqa: F401

UNKNOWN = "00000000-0000-0000-0000-000000000000"


async def test_me_routes_need_a_token(app_client):
    for method, path in [
        ("GET", "/api/v1/me/favorites"),
        ("PUT", f"/api/v1/me/favorites/{UNKNOWN}"),
        ("GET", "/api/v1/me/history"),
        ("GET", "/api/v1/me/continue-watching"),
        ("GET", "/api/v1/me/recommendations"),
    ]:
        r = await app_client.request(method, path)
        assert r.status == 401, path


async def test_favorites_round_trip(app_client, pg, viewer_headers):
    t = await make_title(pg)
    url = f"/api/v1/me/favorites/{t.id}"
    assert (await app_client.put(url, headers=viewer_headers)).status == 204
    assert (await app_client.put(url, headers=viewer_headers)).status == 204
    r = await app_client.get("/api/v1/me/favorites", headers=viewer_headers)
    assert [i["id"] for i in (await r.json())["items"]] == [t.id]
    assert r.headers["Cache-Control"].startswith("private")
    r2 = await app_client.get("/api/v1/me/favorites", headers={**viewer_headers, "If-None-Match": r.headers["ETag"]})
    assert r2.status == 304
    assert (await app_client.delete(url, headers=viewer_headers)).status == 204
    assert (await app_client.delete(url, headers=viewer_headers)).status == 204
    r = await app_client.get("/api/v1/me/favorites", headers=viewer_headers)
    assert (await r.json())["items"] == []


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_favorite_unknown_title_is_404(app_client, viewer_headers, method):
    for bad in (UNKNOWN, "not-a-uuid"):
        r = await app_client.request(method, f"/api/v1/me/favorites/{bad}", headers=viewer_headers)
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "title_not_found"


async def test_favorite_not_ready_is_409(app_client, pg, viewer_headers):
    t = await make_title(pg, ready=False)
    r = await app_client.put(f"/api/v1/me/favorites/{t.id}", headers=viewer_headers)
    assert r.status == 409 and (await r.json())["error"]["code"] == "title_not_ready"


async def test_history_and_stale_tab(app_client, pg, viewer_headers):
    t = await make_title(pg, duration_s=1000)
    url = f"/api/v1/me/history/{t.id}"
    now_ms = int(time.time() * 1000)
    r = await app_client.put(url, json={"position_s": 400, "client_ts": now_ms - 1000}, headers=viewer_headers)
    assert r.status == 204, await r.text()
    # the stale tab: an older clock, an earlier position -> ignored, still 204
    r = await app_client.put(url, json={"position_s": 10, "client_ts": now_ms - 60_000}, headers=viewer_headers)
    assert r.status == 204
    r = await app_client.get("/api/v1/me/history", headers=viewer_headers)
    [item] = (await r.json())["items"]
    assert item["title"]["id"] == t.id and item["position_s"] == 400 and "updated_at" in item
    r = await app_client.put(
        url, json={"position_s": 500.5, "client_ts": "2999-01-01T00:00:00Z"}, headers=viewer_headers
    )
    assert r.status == 204  # a future clock is taken as "now"
    r = await app_client.put(url, json={"position_s": 501}, headers=viewer_headers)
    assert r.status == 204
    [item] = (await (await app_client.get("/api/v1/me/history", headers=viewer_headers)).json())["items"]
    assert item["position_s"] == 501


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"position_s": -1}, id="negative"),
        pytest.param({"position_s": -0.001}, id="slightly-negative"),
        pytest.param({"position_s": "10"}, id="string"),
        pytest.param({"position_s": True}, id="bool"),
        pytest.param({}, id="missing"),
        pytest.param({"position_s": 1, "duration_s": 0}, id="zero-duration"),
        pytest.param({"position_s": 1, "client_ts": "yesterday"}, id="bad-ts"),
        pytest.param({"position_s": 1, "client_ts": 5}, id="ts-out-of-range"),
        # year 1 at +14:00 does not fit a UTC datetime: once a 500 from the driver
        pytest.param({"position_s": 1, "client_ts": "0001-01-01T00:00:00+14:00"}, id="ts-iso-underflow"),
        pytest.param({"position_s": 1, "client_ts": "9999-12-31T23:59:59-14:00"}, id="ts-iso-overflow"),
        pytest.param({"position_s": 1, "client_ts": "1999-12-31T23:59:59Z"}, id="ts-iso-before-2000"),
        pytest.param({"position_s": 1, "extra": 1}, id="unknown-field"),
    ],
)
async def test_history_bad_bodies(app_client, pg, viewer_headers, body):
    t = await make_title(pg)
    r = await app_client.put(f"/api/v1/me/history/{t.id}", json=body, headers=viewer_headers)
    assert r.status == 400, await r.text()


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param('{"position_s": 1e400}', id="exponent-overflows-to-inf"),
        pytest.param('{"position_s": -1e400}', id="negative-inf"),
        pytest.param('{"position_s": ' + "9" * 400 + "}", id="400-nines"),
        pytest.param('{"position_s": ' + "9" * 400 + ".5}", id="400-nines-fraction"),
        pytest.param('{"position_s": 1, "duration_s": 1e400}', id="duration-inf"),
        pytest.param('{"position_s": 1, "duration_s": ' + "9" * 400 + "}", id="duration-400-nines"),
    ],
)
async def test_history_huge_numbers_are_a_400(app_client, pg, viewer_headers, raw):
    t = await make_title(pg)
    headers = {**viewer_headers, "Content-Type": "application/json"}
    r = await app_client.put(f"/api/v1/me/history/{t.id}", data=raw, headers=headers)
    assert r.status == 400, await r.text()
    error = (await r.json())["error"]
    assert error["code"] == "invalid_body"
    assert "finite" in error["message"]


async def test_history_past_duration_is_clamped(app_client, pg, viewer_headers):
    t = await make_title(pg, duration_s=100)
    r = await app_client.put(f"/api/v1/me/history/{t.id}", json={"position_s": 1e9}, headers=viewer_headers)
    assert r.status == 204
    [item] = (await (await app_client.get("/api/v1/me/history", headers=viewer_headers)).json())["items"]
    assert item["position_s"] == 100 and item["finished"] is True


async def test_history_unknown_and_not_ready(app_client, pg, viewer_headers):
    r = await app_client.put(f"/api/v1/me/history/{UNKNOWN}", json={"position_s": 1}, headers=viewer_headers)
    assert r.status == 404
    t = await make_title(pg, ready=False)
    r = await app_client.put(f"/api/v1/me/history/{t.id}", json={"position_s": 1}, headers=viewer_headers)
    assert r.status == 409


async def test_continue_watching_next_episode(app_client, pg, viewer_headers):
    series, eps = await make_series(pg, "CW Show", [(1, 1), (1, 2)])
    movie = await make_title(pg, duration_s=1000)
    await app_client.put(f"/api/v1/me/history/{movie.id}", json={"position_s": 120}, headers=viewer_headers)
    await app_client.put(f"/api/v1/me/history/{eps[0].id}", json={"position_s": 599}, headers=viewer_headers)
    r = await app_client.get("/api/v1/me/continue-watching", headers=viewer_headers)
    items = (await r.json())["items"]
    assert {(i["title"]["id"], i["position_s"]) for i in items} == {(movie.id, 120), (eps[1].id, 0)}
    assert all(set(i) >= {"title", "position_s", "updated_at"} for i in items)


async def test_recommendations_have_reasons(app_client, pg, viewer_headers):
    await make_title(pg)
    r = await app_client.get("/api/v1/me/recommendations", headers=viewer_headers)
    assert r.status == 200
    items = (await r.json())["items"]
    assert items and all(i["reason"] for i in items)
    top = next(i for i in items if i["kind"] == "movie")
    watched = top["id"]
    # finish the top movie: it never comes back
    t = await make_title(pg, duration_s=100, genres=top["genres"])
    await app_client.put(f"/api/v1/me/history/{watched}", json={"position_s": 10_000}, headers=viewer_headers)
    r = await app_client.get("/api/v1/me/recommendations", headers=viewer_headers)
    ids = [i["id"] for i in (await r.json())["items"]]
    assert watched not in ids
    assert t.id in ids or not top["genres"]
