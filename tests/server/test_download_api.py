"""Downloads end to end: the real worker's MP4, the playback answer's `download_url`, and the
origin's download route (token scope, the per-title and global switches, Range, HEAD,
preconditions, Content-Disposition), served as `streamflix serve` serves it (fast path in
front of aiohttp)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

import asyncpg
import pytest

from auth import playback
from catalog import titles
from media import keys as media_keys
from packager.model import Presentation
from server import keys
from server.app import create_app
from server.cli import main
from server.http.errors import ApiError
from server.origin.downloads import DownloadGate, content_disposition
from server.origin.handlers import DOWNLOADS
from tests.catalog.fixtures import admin_headers  # noqa: F401
from tests.transcoder.jobs_support import cli_env
from transcoder.download import download_key


def _auth(user_token: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {user_token['access_token']}"}


async def _play(client: Any, title_id: str, user_token: dict[str, str]) -> dict[str, Any]:
    r = await client.post(f"/api/v1/titles/{title_id}/playback", headers=_auth(user_token))
    assert r.status == 200, await r.text()
    return await r.json()


async def _error(r: Any) -> str:
    body = await r.json()
    return body["error"]["code"]


async def test_download_url_serves_the_mp4(app_client: Any, user_token: Any, ready_title: dict[str, Any]) -> None:
    tid, version = ready_title["id"], ready_title["version"]
    body = await _play(app_client, tid, user_token)
    assert set(body) == {"hls_url", "dash_url", "expires_at", "download_url", "thumbnails_url"}
    token = body["hls_url"].split("?token=")[1]
    assert body["download_url"] == f"/stream/{tid}/{version}/dl/download.mp4?token={token}"
    data = app_client.app[keys.STORAGE].local_path(download_key(tid, version)).read_bytes()
    for _ in range(2):  # the second one would be the fast path's, which hands this route over
        r = await app_client.get(body["download_url"])
        assert r.status == 200
        assert await r.read() == data
        assert r.headers["Content-Type"] == "video/mp4"
        assert r.headers["Content-Length"] == str(len(data))
        assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert r.headers["Accept-Ranges"] == "bytes"
        cd = r.headers["Content-Disposition"]
        assert cd.startswith('attachment; filename="ready-') and cd.endswith('.mp4"')
    etag = r.headers["ETag"]

    r = await app_client.get(body["download_url"], headers={"Range": "bytes=100-299"})
    assert r.status == 206
    assert r.headers["Content-Range"] == f"bytes 100-299/{len(data)}"
    assert await r.read() == data[100:300]
    r = await app_client.get(body["download_url"], headers={"Range": f"bytes={len(data) + 5}-"})
    assert r.status == 416

    r = await app_client.head(body["download_url"])
    assert r.status == 200 and await r.read() == b""
    assert r.headers["Content-Length"] == str(len(data)) and "attachment" in r.headers["Content-Disposition"]

    r = await app_client.get(body["download_url"], headers={"If-None-Match": etag})
    assert r.status == 304
    r = await app_client.get(body["download_url"], headers={"Range": "bytes=0-9", "If-Range": etag})
    assert r.status == 206 and await r.read() == data[:10]


async def test_token_scope(app_client: Any, user_token: Any, ready_title: dict[str, Any], pg: Any) -> None:
    tid, version = ready_title["id"], ready_title["version"]
    ring = app_client.app[keys.PLAYBACK_KEYRING]
    window = ready_title["settings"].playback_window_s
    path = f"/stream/{tid}/{version}/dl/download.mp4"
    other = await titles.create_title(pg, kind="movie", title="Another", status="processing")

    cases = {
        "another title": playback.sign(ring, other.id, version, time.time(), window)[0],
        "another version": playback.sign(ring, tid, "v20200101000000-aaaaaa", time.time(), window)[0],
        "expired": playback.sign(ring, tid, version, time.time() - 3 * window, window)[0],
        "forged": playback.sign(playback.keyring("another secret"), tid, version, time.time(), window)[0],
    }
    for what, token in cases.items():
        r = await app_client.get(f"{path}?token={token}")
        assert r.status == 403, what
        assert (await _error(r)).startswith("playback_token"), what
    r = await app_client.get(path)
    assert r.status in (401, 403) and "token" in await _error(r)

    good = playback.sign(ring, tid, version, time.time(), window)[0]
    # A download route on a rendition that is not a download, and no playlist for the download.
    r = await app_client.get(
        f"/stream/{tid}/{version}/{await _video_id(app_client, tid, version)}/download.mp4?token={good}"
    )
    assert r.status == 404 and await _error(r) == "download_not_found"
    r = await app_client.get(f"/stream/{tid}/{version}/dl/index.m3u8?token={good}")
    assert r.status == 404
    r = await app_client.get(f"/stream/{tid}/{version}/dl/1.mp4?token={good}")
    assert r.status == 404
    assert (await app_client.get(f"{path}?token={good}")).status == 200


async def _video_id(client: Any, tid: str, version: str) -> str:
    raw = await client.app[keys.STORAGE].get_bytes(media_keys.model_key(tid, version))
    return Presentation.from_json(raw).video[0].id


async def test_title_switch(
    app_client: Any,
    user_token: Any,
    ready_title: dict[str, Any],
    admin_headers: Any,
) -> None:
    tid = ready_title["id"]
    app_client.app[DOWNLOADS].ttl_s = 0  # the flag is read on every download request
    url = (await _play(app_client, tid, user_token))["download_url"]
    assert (await app_client.get(url)).status == 200

    r = await app_client.patch(f"/api/v1/titles/{tid}", json={"downloads_enabled": False}, headers=admin_headers)
    assert r.status == 200 and (await r.json())["downloads_enabled"] is False
    assert "download_url" not in await _play(app_client, tid, user_token)
    # the URL handed out earlier, its token still valid: refused, by aiohttp and the fast path
    for _ in range(2):
        r = await app_client.get(url)
        assert r.status == 403 and await _error(r) == "downloads_disabled"
    r = await app_client.head(url)
    assert r.status == 403
    # the stream itself still plays
    hls = (await _play(app_client, tid, user_token))["hls_url"]
    assert (await app_client.get(hls)).status == 200

    for bad in (None, "yes", 1):
        r = await app_client.patch(f"/api/v1/titles/{tid}", json={"downloads_enabled": bad}, headers=admin_headers)
        assert r.status == 400, bad
        assert (await r.json())["error"]["code"]
    r = await app_client.patch(f"/api/v1/titles/{tid}", json={"downloads_enabled": True}, headers=admin_headers)
    assert (await r.json())["downloads_enabled"] is True
    assert (await app_client.get(url)).status == 200
    r = await app_client.get(f"/api/v1/titles/{tid}", headers=admin_headers)
    assert (await r.json())["downloads_enabled"] is True


async def test_server_switch(aiohttp_client: Any, settings: Any, user_token: Any, ready_title: dict[str, Any]) -> None:
    client = await aiohttp_client(create_app(dataclasses.replace(settings, downloads=False)))
    tid, version = ready_title["id"], ready_title["version"]
    body = await _play(client, tid, user_token)
    assert "download_url" not in body and "hls_url" in body
    token = body["hls_url"].split("?token=")[1]
    r = await client.get(f"/stream/{tid}/{version}/dl/download.mp4?token={token}")
    assert r.status == 403 and await _error(r) == "downloads_disabled"


async def test_no_download_in_the_model(app_client: Any, user_token: Any, ready_title: dict[str, Any]) -> None:
    """An older version, published before downloads existed: no URL, and the route is a 404."""
    tid, version = ready_title["id"], ready_title["version"]
    storage = app_client.app[keys.STORAGE]
    key = media_keys.model_key(tid, version)
    p = Presentation.from_json(await storage.get_bytes(key))
    old = dataclasses.replace(p, renditions=tuple(r for r in p.renditions if r.kind != "download"))
    await storage.put_bytes(key, old.to_json().encode())
    body = await _play(app_client, tid, user_token)
    assert "download_url" not in body
    token = body["hls_url"].split("?token=")[1]
    r = await app_client.get(f"/stream/{tid}/{version}/dl/download.mp4?token={token}")
    assert r.status == 404


def test_content_disposition() -> None:
    assert content_disposition("the-film.mp4") == 'attachment; filename="the-film.mp4"'
    assert content_disposition("été-à-paris.mp4") == (
        "attachment; filename=\"ete-a-paris.mp4\"; filename*=UTF-8''%C3%A9t%C3%A9-%C3%A0-paris.mp4"
    )
    assert (
        content_disposition("東京.mp4") == "attachment; filename=\"video.mp4\"; filename*=UTF-8''%E6%9D%B1%E4%BA%AC.mp4"
    )
    assert content_disposition(None) == 'attachment; filename="video.mp4"'
    assert content_disposition('a"b\\c.mp4') == "attachment; filename=\"abc.mp4\"; filename*=UTF-8''a%22b%5Cc.mp4"


async def test_gate_reads_each_title_once_per_ttl() -> None:
    """The origin never asks Postgres per request: one read per title per TTL, and a flag that
    cannot be read again keeps the last one known."""
    calls: list[str] = []
    answers: dict[str, Any] = {"a": True, "b": False}

    async def lookup(title_id: str) -> bool:
        calls.append(title_id)
        answer = answers[title_id]
        if isinstance(answer, Exception):
            raise answer
        return bool(answer)

    gate = DownloadGate(lookup, enabled=True, ttl_s=60)
    for _ in range(3):
        await gate.check("a")
        with pytest.raises(ApiError) as info:
            await gate.check("b")
        assert info.value.status == 403
    assert calls == ["a", "b"]
    gate.ttl_s = 0
    gate.flags["a"] = (True, 0.0)  # due
    answers["a"] = OSError("database down")
    await gate.check("a")  # the last flag known
    answers["c"] = OSError("database down")
    with pytest.raises(OSError):
        await gate.check("c")  # never known: the outage's answer
    with pytest.raises(ApiError):
        await DownloadGate(lookup, enabled=False).check("a")


def test_titles_downloads_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Any, pg_title: str
) -> None:
    """`streamflix titles downloads ID on|off`, shown by `titles show`; bad input: one line."""
    for k, v in cli_env(settings).items():
        if k.startswith("STREAMFLIX_"):
            monkeypatch.setenv(k, v)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = run("titles", "downloads", pg_title, "off")
    assert code == 0 and out == f"downloads off for {pg_title} (CLI title)\n"
    code, out, _ = run("titles", "show", pg_title)
    assert code == 0 and "downloads   off" in out
    code, out, _ = run("titles", "show", pg_title, "--json")
    assert json.loads(out)["downloads_enabled"] is False
    code, out, _ = run("titles", "downloads", pg_title, "on")
    assert code == 0 and "downloads on" in out
    code, out, _ = run("titles", "show", pg_title, "--json")
    assert json.loads(out)["downloads_enabled"] is True

    code, _, err = run("titles", "downloads", "00000000-0000-4000-8000-000000000000", "off")
    assert code == 1 and err.count("\n") == 1 and "no title" in err
    with pytest.raises(SystemExit) as exit_info:
        run("titles", "downloads", pg_title, "maybe")
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.fixture
def pg_title(settings: Any) -> str:
    async def make() -> str:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return (await titles.create_title(conn, kind="movie", title="CLI title", status="processing")).id
        finally:
            await conn.close()

    return asyncio.run(make())
