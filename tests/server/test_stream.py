"""The origin over HTTP (file storage): tokens first, playlists per token, segments with
Range/ETag/CORS, and every kind of bad input (traversal, encodings, bad tokens)."""

from __future__ import annotations

import dataclasses
import time

import m3u8
import pytest
import yarl

from auth import playback
from media.backend import open_storage
from server.app import create_app
from tests.server.origin_support import new_title_id

ORIGIN_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Expose-Headers")


def _assert_cors(r):
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Content-Range" in r.headers["Access-Control-Expose-Headers"]


async def _error_code(r) -> str:
    return (await r.json())["error"]["code"]


async def test_master_playlist(app_client, stored, token):
    r = await app_client.get(stored.url("master.m3u8", token))
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert r.headers["Cache-Control"].startswith("private")
    assert r.headers["ETag"].startswith('"') and r.headers["Accept-Ranges"] == "bytes"
    assert "Last-Modified" in r.headers
    _assert_cors(r)
    text = await r.text()
    assert int(r.headers["Content-Length"]) == len(text.encode())
    pl = m3u8.loads(text)
    uris = [p.uri for p in pl.playlists] + [m.uri for m in pl.media]
    assert uris and all(u.endswith(f"index.m3u8?token={token}") for u in uris)
    # Conditional GET of a playlist: same ETag for the same token.
    r2 = await app_client.get(stored.url("master.m3u8", token), headers={"If-None-Match": r.headers["ETag"]})
    assert r2.status == 304


async def test_media_playlist_and_every_uri_in_it(app_client, stored, token):
    r = await app_client.get(stored.url("v360/index.m3u8", token))
    assert r.status == 200
    pl = m3u8.loads(await r.text())
    assert pl.segment_map[0].uri == f"init.mp4?token={token}"
    assert [s.uri for s in pl.segments] == [f"{n}.m4s?token={token}" for n in (1, 2, 3)]
    for s in pl.segments:
        seg = await app_client.get(stored.url("v360/" + s.uri))
        assert seg.status == 200
        assert await seg.read() == stored.objects["v360/" + s.uri.split("?")[0]]


async def test_mpd(app_client, stored, token):
    r = await app_client.get(stored.url("manifest.mpd", token))
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/dash+xml"
    body = await r.text()
    assert f"$RepresentationID$/$Number$.m4s?token={token}" in body


async def test_segment_headers(app_client, stored, token):
    r = await app_client.get(stored.url("v720/2.m4s", token))
    assert r.status == 200
    data = await r.read()
    assert data == stored.objects["v720/2.m4s"]
    h = r.headers
    assert h["Content-Type"] == "video/mp4"
    assert int(h["Content-Length"]) == len(data)
    assert "Transfer-Encoding" not in h
    assert h["Cache-Control"] == "public, max-age=31536000, immutable"
    assert h["Accept-Ranges"] == "bytes"
    assert h["ETag"].startswith('"') and not h["ETag"].startswith("W/")
    assert "Last-Modified" in h
    _assert_cors(r)
    init = await app_client.get(stored.url("a0/init.mp4", token))
    assert init.status == 200 and init.headers["Content-Type"] == "video/mp4"
    assert await init.read() == stored.objects["a0/init.mp4"]


async def test_segment_ranges_and_preconditions(app_client, stored, token):
    url = stored.url("v360/1.m4s", token)
    data = stored.objects["v360/1.m4s"]
    size = len(data)
    r = await app_client.get(url, headers={"Range": "bytes=100-199"})
    assert r.status == 206
    assert r.headers["Content-Range"] == f"bytes 100-199/{size}"
    assert r.headers["Content-Length"] == "100"
    assert await r.read() == data[100:200]
    r = await app_client.get(url, headers={"Range": "bytes=-50"})
    assert r.status == 206 and await r.read() == data[-50:]
    r = await app_client.get(url, headers={"Range": f"bytes={size - 10}-"})
    assert r.status == 206 and await r.read() == data[-10:]
    r = await app_client.get(url, headers={"Range": f"bytes={size}-"})
    assert r.status == 416
    assert r.headers["Content-Range"] == f"bytes */{size}"
    _assert_cors(r)
    etag = (await app_client.head(url)).headers["ETag"]
    for inm in (etag, "W/" + etag, "*", f'"nope", {etag}'):
        r = await app_client.get(url, headers={"If-None-Match": inm})
        assert r.status == 304, inm
        assert r.headers["ETag"] == etag
        assert await r.read() == b""
    r = await app_client.get(url, headers={"If-None-Match": '"nope"'})
    assert r.status == 200
    r = await app_client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert r.status == 206
    r = await app_client.get(url, headers={"Range": "bytes=0-9", "If-Range": "W/" + etag})
    assert r.status == 200 and await r.read() == data  # If-Range: strong comparison only


@pytest.mark.parametrize(
    "header",
    [
        "bytes=abc",
        "bytes=1-2-3",
        "bytes=--1",
        "bytes=1-0",
        "bytes=,",
        "bytes=0-1,,",
        "bytes=" + "9" * 40 + "-",
    ],
)
async def test_malformed_ranges_are_416(app_client, stored, token, header):
    r = await app_client.get(stored.url("v360/1.m4s", token), headers={"Range": header})
    assert r.status == 416
    assert r.headers["Content-Range"] == f"bytes */{len(stored.objects['v360/1.m4s'])}"


@pytest.mark.parametrize("header", ["items=0-1", "bytes 0-1", "bytes=0-1,2-3"])
async def test_ignored_ranges_are_200(app_client, stored, token, header):
    r = await app_client.get(stored.url("v360/1.m4s", token), headers={"Range": header})
    assert r.status == 200
    assert await r.read() == stored.objects["v360/1.m4s"]


async def test_head_on_every_route(app_client, stored, token):
    for name in ("master.m3u8", "manifest.mpd", "v360/index.m3u8", "v360/init.mp4", "v360/3.m4s"):
        g = await app_client.get(stored.url(name, token))
        h = await app_client.head(stored.url(name, token))
        assert h.status == 200, name
        assert h.headers["Content-Length"] == g.headers["Content-Length"], name
        assert h.headers["ETag"] == g.headers["ETag"], name
        assert await h.read() == b""
        _assert_cors(h)


async def test_options_preflight_on_every_route(app_client, stored):
    for name in ("master.m3u8", "manifest.mpd", "v360/index.m3u8", "v360/init.mp4", "v360/3.m4s"):
        r = await app_client.options(
            stored.url(name),
            headers={
                "Origin": "https://player.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "range, if-none-match",
            },
        )
        assert r.status == 204, name
        _assert_cors(r)
        allowed = r.headers["Access-Control-Allow-Headers"].lower()
        assert "range" in allowed and "if-none-match" in allowed
        assert "GET" in r.headers["Access-Control-Allow-Methods"]
    r = await app_client.options("/api/v1/titles/x/playback", headers={"Access-Control-Request-Method": "POST"})
    assert r.status == 204 and "authorization" in r.headers["Access-Control-Allow-Headers"].lower()


@pytest.mark.parametrize(
    "mutate,code",
    [
        pytest.param(lambda t, s: None, "playback_token_missing", id="missing"),
        pytest.param(lambda t, s: "", "playback_token_missing", id="empty"),
        pytest.param(lambda t, s: t[:-2] + "AA", "playback_token_bad_signature", id="forged"),
        pytest.param(lambda t, s: "junk", "playback_token_malformed", id="malformed"),
        pytest.param(
            lambda t, s: playback.sign(playback.keyring("other key"), s.title_id, s.version, time.time(), 3600)[0],
            "playback_token_unknown_key",
            id="other-key",
        ),
        pytest.param(
            lambda t, s: playback.sign(playback.keyring(s_secret(s)), s.title_id, s.version, time.time() - 86400, 3600)[
                0
            ],
            "playback_token_expired",
            id="expired",
        ),
        pytest.param(
            lambda t, s: playback.sign(playback.keyring(s_secret(s)), new_title_id(), s.version, time.time(), 3600)[0],
            "playback_token_wrong_title",
            id="other-title",
        ),
        pytest.param(
            lambda t, s: playback.sign(playback.keyring(s_secret(s)), s.title_id, "v1", time.time(), 3600)[0],
            "playback_token_wrong_version",
            id="other-version",
        ),
        pytest.param(
            lambda t, s: "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4In0.",
            "playback_token_malformed",
            id="jwt-alg-none",
        ),
    ],
)
async def test_bad_tokens_are_403(app_client, stored, token, settings, mutate, code):
    _SECRETS[stored.title_id] = settings.secret_key
    bad = mutate(token, stored)
    for name in ("master.m3u8", "v360/index.m3u8", "v360/1.m4s", "manifest.mpd", "v360/init.mp4"):
        r = await app_client.get(stored.url(name, bad))
        assert r.status == 403, (name, await r.text())
        assert await _error_code(r) == code
        assert r.headers["Cache-Control"] == "no-store"
        _assert_cors(r)


_SECRETS: dict[str, str] = {}


def s_secret(s) -> str:
    return _SECRETS[s.title_id]


async def test_token_is_checked_before_the_version_exists(app_client, stored):
    # No token, unknown version: 403 (the token comes first; nothing is looked up for free).
    r = await app_client.get(f"/stream/{stored.title_id}/v-nope/master.m3u8")
    assert r.status == 403


async def test_unknown_version_rendition_segment(app_client, stored, settings, token):
    ring = playback.keyring(settings.secret_key)
    t_other = playback.sign(ring, stored.title_id, "v20990101000000-ffffff", time.time(), 3600)[0]
    r = await app_client.get(f"/stream/{stored.title_id}/v20990101000000-ffffff/master.m3u8?token={t_other}")
    assert r.status == 404 and await _error_code(r) == "version_not_found"
    for name, code in [
        ("v999/index.m3u8", "rendition_not_found"),
        ("v999/1.m4s", "rendition_not_found"),
        ("v999/init.mp4", "rendition_not_found"),
        ("v360/0.m4s", "segment_not_found"),
        ("v360/4.m4s", "segment_not_found"),
    ]:
        r = await app_client.get(stored.url(name, token))
        assert r.status == 404, name
        assert await _error_code(r) == code
        _assert_cors(r)
    for name in ("v360/01.m4s", "v360/-1.m4s", "v360/1.mp4", "V360/1.m4s", "v360/1.m4s.bak"):
        r = await app_client.get(stored.url(name, token))
        assert r.status == 404, name


@pytest.mark.parametrize(
    "path",
    [
        "/stream/{t}/{v}/../{v}/v360/1.m4s",
        "/stream/{t}/{v}/v360/../../../../etc/passwd",
        "/stream/{t}/{v}/%2e%2e/%2e%2e/model.json",
        "/stream/{t}/{v}/v360%2F1.m4s",
        "/stream/{t}/{v}/v360/..%2F..%2Fmodel.json",
        "/stream/{t}/%2e%2e/v360/1.m4s",
        "/stream/{t}/{v}/%2e%2e%2f%2e%2e%2fmodel.json/index.m3u8",
        "/stream/{t}/{v}/v360/%2e%2e%5c1.m4s",
        "/stream/{t}/{v}/model.json",
        "/stream/{t}/{v}/v360/init.mp4%00.m4s",
    ],
)
async def test_path_traversal_never_serves_a_file(app_client, stored, token, path):
    url = path.format(t=stored.title_id, v=stored.version) + f"?token={token}"
    # encoded=True: the server sees the path exactly as written (the client would otherwise
    # resolve `..` itself).
    r = await app_client.get(yarl.URL(url, encoded=True))
    body = await r.read()
    # A `..` the server normalises may land on a real route (serving that route's own object)
    # or on the web client's page; never on model.json or anything outside the version.
    assert r.status in (200, 400, 403, 404), (url, r.status)
    assert b"renditions" not in body and b"root:" not in body
    if r.status == 200:
        assert body in stored.objects.values() or body.lstrip().lower().startswith(b"<!doctype html>")


async def test_ten_kilobyte_url(app_client, stored, token):
    for url in (
        stored.url("v360/1.m4s", token) + "&pad=" + "a" * 10_240,
        stored.url("v360/1.m4s", token + "A" * 10_000),
    ):
        r = await app_client.get(url)
        assert r.status == 414
        assert (await r.json())["error"]["code"] == "uri_too_long"
        assert r.headers["Access-Control-Allow-Origin"] == "*"


async def test_version_gone_from_storage_is_404(app_client, stored, token, settings):
    r = await app_client.get(stored.url("v360/1.m4s", token))
    assert r.status == 200
    storage = open_storage(settings.storage_url)
    await storage.delete_prefix(f"titles/{stored.title_id}/")
    await storage.close()
    r = await app_client.get(stored.url("v360/2.m4s", token))
    assert r.status == 404


async def test_segments_do_no_database_or_redis_work(aiohttp_client, settings, stored, token):
    """Once a version is loaded, segments are served with Postgres and Redis unreachable."""
    dead = dataclasses.replace(settings, redis_url="redis://127.0.0.1:1/0")
    client = await aiohttp_client(create_app(dead))
    pool = client.app["pg"] if "pg" in client.app else None  # noqa: F841 - the pool exists, unused
    from server import keys

    await client.app[keys.PG].close()  # any query now raises
    for name in ("master.m3u8", "v360/index.m3u8", "v360/init.mp4", "v360/1.m4s", "manifest.mpd"):
        r = await client.get(stored.url(name, token))
        assert r.status == 200, (name, await r.text())


async def test_warm_segments_touch_no_postgres_redis_or_storage_metadata(app_client, stored, token, monkeypatch):
    """Stronger than the dead-dependencies test above (which would also pass if a middleware
    tried Redis and swallowed the failure): every way into Postgres, Redis and the storage's
    metadata is replaced by a recorder that raises. After the version's model is loaded,
    segments still answer 200 without a single attempt; after each object's first request,
    not even a storage HEAD."""
    from server import keys

    app = app_client.server.app
    calls: list[str] = []

    def refuse(what):
        def call(*args, **kwargs):
            calls.append(what)
            raise AssertionError(f"{what} on the segment path")

        return call

    assert (await app_client.get(stored.url("master.m3u8", token))).status == 200  # loads the model
    import asyncpg.pool

    assert isinstance(app[keys.PG], asyncpg.pool.Pool)
    monkeypatch.setattr(asyncpg.pool.Pool, "acquire", refuse("postgres"))  # Pool has __slots__
    monkeypatch.setattr(asyncpg.pool.Pool, "_acquire", refuse("postgres"))
    app[keys.REDIS].connection_pool.get_connection = refuse("redis")
    names = [n for n in stored.objects if n.endswith((".m4s", "init.mp4"))]
    for name in names:  # first request of each object: one storage HEAD, nothing else
        r = await app_client.get(stored.url(name, token))
        assert r.status == 200, (name, await r.text())
    storage = app[keys.STORAGE]
    storage.head = refuse("storage.head")
    storage.get_bytes = refuse("storage.get_bytes")
    for name in names:
        for method in (app_client.get, app_client.head):
            r = await method(stored.url(name, token), headers={"Range": "bytes=0-99"})
            assert r.status == 206, (name, await r.text())
    for name in ("master.m3u8", "manifest.mpd", "v360/index.m3u8"):
        assert (await app_client.get(stored.url(name, token))).status == 200
    assert calls == []


async def test_key_rotation_keeps_handed_out_urls_playing(aiohttp_client, settings, stored, token):
    """A new STREAMFLIX_SECRET_KEY with the old one in STREAMFLIX_PREVIOUS_SECRET_KEYS: URLs
    signed before the rotation still play, new ones are signed with the new key; once the old
    secret is dropped, the old URLs answer 403 playback_token_unknown_key."""
    rotated = dataclasses.replace(
        settings, secret_key="rotated-" + settings.secret_key, previous_secret_keys=(settings.secret_key,)
    )
    client = await aiohttp_client(create_app(rotated))
    for name in ("master.m3u8", "v360/index.m3u8", "v360/1.m4s"):
        r = await client.get(stored.url(name, token))
        assert r.status == 200, (name, await r.text())
    new = playback.sign(playback.keyring(rotated.secret_key), stored.title_id, stored.version, time.time(), 3600)[0]
    assert new.split(".")[0] != token.split(".")[0]  # another key id
    assert (await client.get(stored.url("v360/1.m4s", new))).status == 200
    dropped = await aiohttp_client(create_app(dataclasses.replace(rotated, previous_secret_keys=())))
    r = await dropped.get(stored.url("v360/1.m4s", token))
    assert r.status == 403 and await _error_code(r) == "playback_token_unknown_key"
    assert (await dropped.get(stored.url("v360/1.m4s", new))).status == 200


@pytest.mark.parametrize("rng", [None, "bytes=1000-5000000"], ids=["whole", "range"])
async def test_aiohttp_handlers_copy_segments_when_the_loop_cannot_sendfile(
    aiohttp_client, settings, stored, monkeypatch, rng
):
    """Under uvloop (or TLS) neither sendfile(2) nor loop.sendfile is available to the aiohttp
    handlers: a big segment goes out whole in chunks under the response's flow control."""
    import asyncio

    from aiohttp import test_utils

    from server.origin import sendfile
    from tests.server.origin_support import presentation, store_in, token_for

    async def no_sendfile(*args, **kwargs):
        raise NotImplementedError

    monkeypatch.setattr(sendfile, "sendfile_now", lambda *args: 0)
    monkeypatch.setattr(asyncio.BaseEventLoop, "sendfile", no_sendfile)
    sv = await store_in(settings, presentation(stored.title_id, "v20240101000000-nosend", segment_size=6 * 1024 * 1024))
    tok = token_for(settings.secret_key, sv)
    plain = await aiohttp_client(test_utils.TestServer(create_app(settings)))  # no fast path
    r = await plain.get(sv.url("v720/1.m4s", tok), headers={"Range": rng} if rng else {})
    whole = sv.objects["v720/1.m4s"]
    assert r.status == (206 if rng else 200)
    assert await r.read() == (whole[1000:5000001] if rng else whole)
