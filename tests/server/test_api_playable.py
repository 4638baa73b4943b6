"""The API for a `playable` title (its first version still being encoded): listed, shown with
its status, playable through POST /playback, filterable by admins, and never served from the
response cache as the status it had before."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets

import m3u8
import pytest

from catalog import status, titles
from media.backend import open_storage
from server.api.openapi import build_spec
from server.app import create_app
from server.settings import Settings
from tests.catalog.fixtures import admin_headers, make_title  # noqa: F401
from tests.server.origin_support import presentation, store_version

VERSION = "v20240101000000-pppppp"


def _auth(user_token) -> dict[str, str]:
    return {"Authorization": f"Bearer {user_token['access_token']}"}


@pytest.fixture
async def playable(settings, pg):
    """A title whose first version is stored with a progressive model and marked playable."""
    t = await titles.create_title(pg, kind="movie", title="Playable " + secrets.token_hex(3), status="processing")
    storage = open_storage(settings.storage_url)
    try:
        await store_version(storage, dataclasses.replace(presentation(t.id, VERSION), progressive=True))
    finally:
        await storage.close()
    assert await status.mark_playable(pg, t.id, VERSION, duration_s=12.0)
    return t.id


async def test_playback_answers_for_a_playable_title(app_client, user_token, playable):
    r = await app_client.post(f"/api/v1/titles/{playable}/playback", headers=_auth(user_token))
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["hls_url"].startswith(f"/stream/{playable}/{VERSION}/master.m3u8?token=")
    master = await app_client.get(body["hls_url"])
    assert master.status == 200
    assert m3u8.loads(await master.text()).playlists


async def test_a_playable_title_shows_its_status(app_client, user_token, playable):
    r = await app_client.get(f"/api/v1/titles/{playable}")
    assert r.status == 200
    body = await r.json()
    assert (body["status"], body["duration_s"]) == ("playable", 12.0)
    assert body["published_at"] is not None


async def test_admins_filter_by_playable(app_client, pg, admin_headers, playable):
    ready = await make_title(pg)
    r = await app_client.get("/api/v1/titles", params={"status": "playable", "limit": "100"}, headers=admin_headers)
    assert r.status == 200, await r.text()
    ids = {t["id"] for t in (await r.json())["items"]}
    assert playable in ids and ready.id not in ids
    assert all(t["status"] == "playable" for t in (await r.json())["items"])


async def test_the_cache_does_not_keep_a_title_processing_after_it_turned_playable(app_client, pg):
    """The worker marks a title playable from another process: the NOTIFY trigger bumps the
    cache, so a listing cached while it was processing shows it at once."""
    tag = "Progressive" + secrets.token_hex(3)
    t = await make_title(pg, title=f"{tag} Film", ready=False)
    await status.mark_processing(pg, t.id)
    await asyncio.sleep(0.3)  # let the listener settle any pending bump
    r = await app_client.get("/api/v1/search", params={"q": tag})
    assert (await r.json())["items"] == []
    assert (await app_client.get(f"/api/v1/titles/{t.id}")).status == 404  # not visible yet
    assert await status.mark_playable(pg, t.id, "v1", duration_s=5.0)
    for _ in range(50):
        items = (await (await app_client.get("/api/v1/search", params={"q": tag})).json())["items"]
        if items:
            break
        await asyncio.sleep(0.1)
    assert [(i["id"], i["status"]) for i in items] == [(t.id, "playable")]
    r = await app_client.get(f"/api/v1/titles/{t.id}")
    assert r.status == 200 and (await r.json())["status"] == "playable"
    # ...and when it completes, the page shows it ready
    await status.publish_ready(pg, t.id, "v1", duration_s=5.0)
    for _ in range(50):
        if (await (await app_client.get(f"/api/v1/titles/{t.id}")).json())["status"] == "ready":
            break
        await asyncio.sleep(0.1)
    assert (await (await app_client.get(f"/api/v1/titles/{t.id}")).json())["status"] == "ready"


def test_the_openapi_status_enum_has_playable():
    spec = build_spec(create_app(Settings(secret_key="openapi-document")))
    schema = spec["components"]["schemas"]["Title"]["properties"]["status"]
    assert "playable" in schema["enum"]
