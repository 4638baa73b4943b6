"""POST /api/v1/admin/titles/{id}/subtitles: a new version with the track, nothing re-encoded;
every bad input refused with its own status and code, the title left as it was."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg
import m3u8
import pytest

from auth.users import create_user
from catalog import titles
from media import keys
from media.backend import open_storage
from packager.model import Presentation
from tests.server.origin_support import presentation, ready_title_row, store_version
from tests.server.test_api_keys import PASSWORD, login

SRT = "1\n00:00:01,000 --> 00:00:05,000\nBonjour <i>&</i> bienvenue\n\n2\n00:00:09,000 --> 00:00:10,000\nFin\n"


@pytest.fixture
async def admin(app_client: Any, pg: asyncpg.Connection) -> dict[str, str]:
    email = f"subs-{secrets.token_hex(4)}@example.com"
    await create_user(pg, email=email, password=PASSWORD, role="admin")
    return await login(app_client, email)


@pytest.fixture
async def viewer(app_client: Any, pg: asyncpg.Connection) -> dict[str, str]:
    email = f"subs-viewer-{secrets.token_hex(4)}@example.com"
    await create_user(pg, email=email, password=PASSWORD)
    return await login(app_client, email)


@pytest.fixture
async def ready(settings: Any, pg: asyncpg.Connection) -> Any:
    """A ready title: 3 video segments of 4 s (12 s) and audio, stored."""
    storage = open_storage(settings.storage_url)
    version = "v20240101000000-cccccc"
    title_id = await ready_title_row(pg, version)
    sv = await store_version(storage, presentation(title_id, version))
    await storage.close()
    return sv


def url(title_id: str, query: str = "lang=fr") -> str:
    return f"/api/v1/admin/titles/{title_id}/subtitles?{query}"


async def current_version(pg: asyncpg.Connection, title_id: str) -> str | None:
    return (await titles.get_title(pg, title_id)).current_version


async def test_adds_a_track_as_a_new_version(app_client, admin, ready, settings, pg, user_token):
    r = await app_client.post(url(ready.title_id, "lang=fre&sdh=true"), data=SRT.encode(), headers=admin)
    assert r.status == 201, await r.text()
    body = await r.json()
    assert body["subtitles"] == {
        "id": "t0", "language": "fr", "name": "Français (SDH)", "forced": False, "sdh": True, "default": False
    }  # fmt: skip
    new = body["version"]
    assert new != ready.version and await current_version(pg, ready.title_id) == new
    storage = open_storage(settings.storage_url)
    try:
        model = Presentation.from_json(await storage.get_bytes(keys.model_key(ready.title_id, new)))
        old = Presentation.from_json(await storage.get_bytes(keys.model_key(ready.title_id, ready.version)))
        # every old rendition is still there, with the same bytes (copied, not re-encoded)
        assert model.renditions[: len(old.renditions)] == old.renditions
        for name in ("v360/init.mp4", "v360/1.m4s", "v720/3.m4s"):
            assert await storage.get_bytes(keys.object_key(ready.title_id, new, name)) == await storage.get_bytes(
                keys.object_key(ready.title_id, ready.version, name)
            )
        [t0] = model.subtitles
        assert [s.duration for s in t0.segments] == [4000, 4000, 4000]
        seg2 = (await storage.get_bytes(keys.object_key(ready.title_id, new, "t0/2.vtt"))).decode()
        assert "00:00:01.000 --> 00:00:05.000\nBonjour &amp; bienvenue" in seg2  # crosses 4 s: repeated
        assert "Fin" in (await storage.get_bytes(keys.object_key(ready.title_id, new, "t0/3.vtt"))).decode()
    finally:
        await storage.close()
    # a viewer's playback gets the new version, whose master lists the track
    r = await app_client.post(
        f"/api/v1/titles/{ready.title_id}/playback", headers={"Authorization": f"Bearer {user_token['access_token']}"}
    )
    hls = (await r.json())["hls_url"]
    assert f"/{new}/" in hls
    master = m3u8.loads(await (await app_client.get(hls)).text())
    [subs] = [m for m in master.media if m.type == "SUBTITLES"]
    assert (subs.language, subs.name) == ("fr", "Français (SDH)")
    assert all(v.stream_info.subtitles == "subs" for v in master.playlists)
    # the origin serves the track's playlist and its WebVTT segments, typed as WebVTT
    base = hls.rsplit("/", 1)[0] + "/"
    media = m3u8.loads(await (await app_client.get(base + subs.uri)).text())
    assert [s.uri.split("?")[0] for s in media.segments] == ["1.vtt", "2.vtt", "3.vtt"]
    for _ in range(2):  # the first answer from aiohttp, the next from the fast path's cache
        seg = await app_client.get(base + "t0/" + media.segments[1].uri)
        assert seg.status == 200
        assert seg.headers["Content-Type"] == "text/vtt; charset=utf-8"
        assert "Bonjour &amp; bienvenue" in (await seg.read()).decode("utf-8")
    # a second track gets the next id
    r = await app_client.post(url(ready.title_id, "lang=en&forced=true&name=Signs"), data=SRT.encode(), headers=admin)
    assert r.status == 201, await r.text()
    assert (await r.json())["subtitles"] | {} == {
        "id": "t1", "language": "en", "name": "Signs (forced)", "forced": True, "sdh": False, "default": True
    }  # fmt: skip


@pytest.mark.parametrize(
    ("query", "data", "code"),
    [
        pytest.param("lang=fr", b"\x89PNG\r\n\x1a\n\x00\x00 an image", "not_subtitles", id="not-a-subtitle"),
        pytest.param(
            "lang=fr",
            b"\xef\xbb\xbf1\n00:00:01,000 --> 00:00:02,000\n\xff\xfe\xfd\n",
            "bad_encoding",
            id="bad-encoding",
        ),
        pytest.param(
            "lang=fr",
            b"1\n00:00:01,000 --> 00:00:03,000\na\n\n2\n00:00:02,000 --> 00:00:04,000\nb\n",
            "overlapping_cues",
            id="overlap",
        ),
        pytest.param("lang=fr", b"1\n-00:00:01,000 --> 00:00:02,000\na\n", "negative_time", id="negative"),
        pytest.param("lang=fr", b"1\n00:00:30,000 --> 00:00:31,000\nlate\n", "past_end", id="past-the-end"),
        pytest.param("lang=xx", SRT.encode(), "unknown_language", id="unknown-language"),
        pytest.param("", SRT.encode(), "invalid_query", id="no-language"),
        pytest.param("lang=fr&forced=maybe", SRT.encode(), "invalid_query", id="bad-flag"),
    ],
)
async def test_bad_input_is_400_and_changes_nothing(app_client, admin, ready, settings, pg, query, data, code):
    r = await app_client.post(url(ready.title_id, query), data=data, headers=admin)
    assert r.status == 400, await r.text()
    assert (await r.json())["error"]["code"] == code
    await _unchanged(pg, settings, ready)


ACCENTED = "1\r\n00:00:01,000 --> 00:00:02,000\r\nÇa va, très bien\r\n"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(ACCENTED.encode("utf-8"), id="utf-8"),
        pytest.param(ACCENTED.encode("utf-8-sig"), id="utf-8-bom"),
        pytest.param(ACCENTED.encode("utf-16"), id="utf-16-bom"),
        pytest.param(ACCENTED.encode("utf-16-le"), id="utf-16-le-no-bom"),
        pytest.param(ACCENTED.encode("utf-16-be"), id="utf-16-be-no-bom"),
        pytest.param(ACCENTED.encode("latin-1"), id="latin-1"),
    ],
)
async def test_any_common_encoding_is_stored_as_utf8(app_client, admin, ready, settings, data):
    r = await app_client.post(url(ready.title_id), data=data, headers=admin)
    assert r.status == 201, await r.text()
    storage = open_storage(settings.storage_url)
    try:
        key = keys.object_key(ready.title_id, (await r.json())["version"], "t0/1.vtt")
        stored = await storage.get_bytes(key)
    finally:
        await storage.close()
    assert not stored.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"))  # no BOM carried over
    assert "00:00:01.000 --> 00:00:02.000\nÇa va, très bien\n" in stored.decode("utf-8")  # strict UTF-8, LF


async def _unchanged(pg, settings, ready) -> None:
    assert await current_version(pg, ready.title_id) == ready.version
    storage = open_storage(settings.storage_url)
    try:
        objects = await storage.list(keys.title_prefix(ready.title_id))
        assert {o.key.split("/")[2] for o in objects} == {ready.version}  # no half-made version left
    finally:
        await storage.close()


async def test_fifty_megabyte_body_is_413(app_client, admin, ready, settings, pg):
    r = await app_client.post(url(ready.title_id), data=b"a" * (50 * 1024 * 1024), headers=admin)
    assert r.status == 413
    assert (await r.json())["error"]["code"] == "too_large"
    await _unchanged(pg, settings, ready)


async def test_chunked_body_over_the_cap_is_413(app_client, admin, ready):
    async def body():
        for _ in range(6):
            yield b"a" * (1024 * 1024)

    r = await app_client.post(url(ready.title_id), data=body(), headers=admin)
    assert r.status == 413


async def test_title_not_ready_is_409(app_client, admin, pg):
    t = await titles.create_title(pg, kind="movie", title="Still encoding", status="processing")
    r = await app_client.post(url(t.id), data=SRT.encode(), headers=admin)
    assert r.status == 409
    assert (await r.json())["error"]["code"] == "title_not_ready"


async def test_unknown_title_is_404(app_client, admin):
    r = await app_client.post(url("00000000-0000-4000-8000-000000000000"), data=SRT.encode(), headers=admin)
    assert r.status == 404


async def test_not_admin_is_403_and_anonymous_401(app_client, viewer, ready, settings, pg):
    r = await app_client.post(url(ready.title_id), data=SRT.encode(), headers=viewer)
    assert r.status == 403
    r = await app_client.post(url(ready.title_id), data=SRT.encode())
    assert r.status == 401
    await _unchanged(pg, settings, ready)
