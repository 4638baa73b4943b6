"""POST /api/v1/titles/{id}/playback: bearer in, tokenised URLs out; the URLs play."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import m3u8
import pytest

from catalog import titles
from media.backend import open_storage
from server.app import create_app
from tests.server.origin_support import presentation, ready_title_row, store_version


@pytest.fixture
async def ready(settings, pg):
    storage = open_storage(settings.storage_url)
    version = "v20240101000000-bbbbbb"
    title_id = await ready_title_row(pg, version)
    sv = await store_version(storage, presentation(title_id, version))
    await storage.close()
    return sv


def _auth(user_token) -> dict[str, str]:
    return {"Authorization": f"Bearer {user_token['access_token']}"}


async def test_needs_a_bearer_token(app_client, ready):
    r = await app_client.post(f"/api/v1/titles/{ready.title_id}/playback")
    assert r.status == 401
    r = await app_client.post(f"/api/v1/titles/{ready.title_id}/playback", headers={"Authorization": "Bearer nonsense"})
    assert r.status == 401


async def test_unknown_and_malformed_title(app_client, user_token):
    for tid in ("00000000-0000-4000-8000-000000000000", "not-a-uuid", "1%27%20OR%201=1"):
        r = await app_client.post(f"/api/v1/titles/{tid}/playback", headers=_auth(user_token))
        assert r.status == 404, tid
        assert (await r.json())["error"]["code"] == "title_not_found"


async def test_not_ready_is_409(app_client, user_token, pg):
    t = await titles.create_title(pg, kind="movie", title="Still encoding", status="processing")
    r = await app_client.post(f"/api/v1/titles/{t.id}/playback", headers=_auth(user_token))
    assert r.status == 409
    assert (await r.json())["error"]["code"] == "title_not_ready"


async def test_urls_play(app_client, user_token, ready, settings):
    r = await app_client.post(f"/api/v1/titles/{ready.title_id}/playback", headers=_auth(user_token))
    assert r.status == 200, await r.text()
    body = await r.json()
    assert set(body) == {"hls_url", "dash_url", "expires_at"}
    assert body["hls_url"].startswith(f"/stream/{ready.title_id}/{ready.version}/master.m3u8?token=")
    assert body["dash_url"].startswith(f"/stream/{ready.title_id}/{ready.version}/manifest.mpd?token=")
    assert "$" not in body["hls_url"]
    exp = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert exp.timestamp() % settings.playback_window_s == 0
    master = await app_client.get(body["hls_url"])
    assert master.status == 200
    base = body["hls_url"].rsplit("/", 1)[0] + "/"
    variant = m3u8.loads(await master.text()).playlists[0].uri
    media = await app_client.get(base + variant)
    assert media.status == 200
    seg_uri = m3u8.loads(await media.text()).segments[0].uri
    seg = await app_client.get(base + variant.split("/")[0] + "/" + seg_uri)
    assert seg.status == 200
    assert (await app_client.get(body["dash_url"])).status == 200
    # Two requests in the same window: the same URL (one CDN cache entry for everybody).
    again = await (await app_client.post(f"/api/v1/titles/{ready.title_id}/playback", headers=_auth(user_token))).json()
    assert again["hls_url"] == body["hls_url"]


async def test_public_url_makes_absolute_urls(aiohttp_client, settings, user_token, ready):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, public_url="https://cdn.example/")))
    # user_token was issued by the other app with the same secret: still valid here.
    r = await client.post(f"/api/v1/titles/{ready.title_id}/playback", headers=_auth(user_token))
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["hls_url"].startswith(f"https://cdn.example/stream/{ready.title_id}/{ready.version}/master.m3u8?token=")
    assert body["dash_url"].startswith("https://cdn.example/stream/")
