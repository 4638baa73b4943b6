"""POST /api/v1/admin/titles/{id}/audio: a real ready title (ingested by the real worker)
gains a track encoded from an uploaded file as a new version, video copied not re-encoded;
every bad input refused with its own status and code, the title left as it was."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import m3u8
import pytest

from auth.users import create_user
from catalog import titles
from media import keys
from media.backend import open_storage
from packager.model import Presentation
from tests.conftest import _ffmpeg
from tests.server.test_api_keys import PASSWORD, login
from tests.support import ingest_and_transcode


def tone(path: Path, seconds: float, hz: int = 880) -> bytes:
    subprocess.run(
        [_ffmpeg(), "-v", "error", "-y",
         "-f", "lavfi", "-i", f"sine=frequency={hz}:sample_rate=44100:duration={seconds}",
         "-c:a", "pcm_s16le", str(path)],
        check=True,
    )  # fmt: skip
    return path.read_bytes()


@pytest.fixture
async def admin(app_client: Any, pg: asyncpg.Connection) -> dict[str, str]:
    email = f"audio-{secrets.token_hex(4)}@example.com"
    await create_user(pg, email=email, password=PASSWORD, role="admin")
    return await login(app_client, email)


@pytest.fixture
async def ready(settings: Any, clip_factory: Any) -> Any:
    """A real ready title: 6 s, one audio stream (440 Hz, untagged)."""
    return await ingest_and_transcode(settings, clip_factory(seconds=6, width=320, height=180), title="Dub me")


def url(title_id: str, query: str = "lang=fr") -> str:
    return f"/api/v1/admin/titles/{title_id}/audio?{query}"


async def _model(settings: Any, title_id: str, version: str) -> Presentation:
    storage = open_storage(settings.storage_url)
    try:
        return Presentation.from_json(await storage.get_bytes(keys.model_key(title_id, version)))
    finally:
        await storage.close()


async def test_adds_a_track_as_a_new_version(app_client, admin, ready, settings, pg, user_token, tmp_path):
    old_version = ready.current_version
    r = await app_client.post(url(ready.id, "lang=fre"), data=tone(tmp_path / "fr.wav", 6), headers=admin)
    assert r.status == 201, await r.text()
    body = await r.json()
    assert body["audio"] == {"id": "a1", "language": "fr", "name": "Français", "channels": 2, "default": False}
    new = body["version"]
    assert new != old_version and (await titles.get_title(pg, ready.id)).current_version == new
    old = await _model(settings, ready.id, old_version)
    model = await _model(settings, ready.id, new)
    assert model.renditions[: len(old.renditions)] == old.renditions  # nothing else changed
    a0, a1 = model.audio
    assert a0.default and not a1.default
    assert [s.duration for s in a1.segments] == [s.duration for s in a0.segments]  # same timeline
    assert a1.codecs == "mp4a.40.2" and a1.sample_rate == 48_000 and a1.bandwidth_avg > 0
    storage = open_storage(settings.storage_url)
    try:
        lowest = model.video[-1].id
        for name in (f"{lowest}/init.mp4", f"{lowest}/1.m4s"):  # copied, same bytes
            assert await storage.get_bytes(keys.object_key(ready.id, new, name)) == await storage.get_bytes(
                keys.object_key(ready.id, old_version, name)
            )
        for n in range(1, len(a1.segments) + 1):
            assert len(await storage.get_bytes(keys.object_key(ready.id, new, f"a1/{n}.m4s"))) > 0
    finally:
        await storage.close()
    # a viewer's playback gets the new version, whose master lists both tracks
    r = await app_client.post(
        f"/api/v1/titles/{ready.id}/playback", headers={"Authorization": f"Bearer {user_token['access_token']}"}
    )
    hls = (await r.json())["hls_url"]
    master = m3u8.loads(await (await app_client.get(hls)).text())
    assert [(m.language, m.name, m.default) for m in master.media if m.type == "AUDIO"][1] == ("fr", "Français", "NO")


@pytest.mark.parametrize(
    ("query", "kind", "code"),
    [
        pytest.param("lang=fr", "text", "invalid_audio", id="not-media"),
        pytest.param("lang=fr", "long", "invalid_audio", id="another-cut"),
        pytest.param("lang=fr", "empty", "invalid_audio", id="empty"),
        pytest.param("lang=xx", "ok", "invalid_query", id="unknown-language"),
        pytest.param("", "ok", "invalid_query", id="no-language"),
        pytest.param("lang=fr&name=" + "n" * 81, "ok", "invalid_query", id="name-too-long"),
    ],
)
async def test_bad_input_is_400_and_changes_nothing(
    app_client, admin, ready, settings, pg, tmp_path, query, kind, code
):
    data = {
        "text": b"these are not the samples you are looking for\n" * 10,
        "long": tone(tmp_path / "long.wav", 12) if kind == "long" else b"",
        "empty": b"",
        "ok": tone(tmp_path / "ok.wav", 6) if kind == "ok" else b"",
    }[kind]
    r = await app_client.post(url(ready.id, query), data=data, headers=admin)
    assert r.status == 400, await r.text()
    assert (await r.json())["error"]["code"] == code
    await _unchanged(pg, settings, ready)


async def test_viewer_403_and_unknown_title_404(app_client, admin, ready, settings, pg, user_token, tmp_path):
    data = tone(tmp_path / "ok.wav", 6)
    r = await app_client.post(
        url(ready.id), data=data, headers={"Authorization": f"Bearer {user_token['access_token']}"}
    )
    assert r.status == 403 and (await r.json())["error"]["code"]
    r = await app_client.post(url("00000000-0000-0000-0000-000000000000"), data=data, headers=admin)
    assert r.status == 404 and (await r.json())["error"]["code"]
    await _unchanged(pg, settings, ready)


async def _unchanged(pg, settings, ready) -> None:
    assert (await titles.get_title(pg, ready.id)).current_version == ready.current_version
    storage = open_storage(settings.storage_url)
    try:
        objects = await storage.list(keys.title_prefix(ready.id))
        assert {o.key.split("/")[2] for o in objects} == {ready.current_version}  # no half-made version left
    finally:
        await storage.close()
