"""The origin on the S3 backend (moto's server over real HTTP): bytes streamed from a ranged
GetObject, never a redirect, always a Content-Length."""

from __future__ import annotations

import dataclasses
import secrets

import pytest

from server.app import create_app
from tests.server.origin_support import new_title_id, presentation, store_in, token_for


@pytest.fixture
async def s3_client(aiohttp_client, settings, s3_server):
    s3 = dataclasses.replace(
        settings, storage_url=f"s3://origin-{secrets.token_hex(4)}/media", s3_endpoint_url=s3_server
    )
    sv = await store_in(s3, presentation(new_title_id(), "v1", segment_size=300_000), create_bucket=True)
    client = await aiohttp_client(create_app(s3))
    token = token_for(s3.secret_key, sv)
    return client, sv, token


async def test_segments_from_s3(s3_client):
    client, sv, token = s3_client
    data = sv.objects["v720/2.m4s"]
    r = await client.get(sv.url("v720/2.m4s", token), allow_redirects=False)
    assert r.status == 200
    assert r.headers["Content-Length"] == str(len(data))
    assert "Transfer-Encoding" not in r.headers
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert r.headers["ETag"].startswith('"') and "Last-Modified" in r.headers
    assert await r.read() == data
    etag = r.headers["ETag"]
    r = await client.get(sv.url("v720/2.m4s", token), headers={"Range": "bytes=1000-1999"})
    assert r.status == 206
    assert r.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    assert r.headers["Content-Length"] == "1000"
    assert await r.read() == data[1000:2000]
    r = await client.get(sv.url("v720/2.m4s", token), headers={"Range": "bytes=-100"})
    assert r.status == 206 and await r.read() == data[-100:]
    r = await client.get(sv.url("v720/2.m4s", token), headers={"Range": f"bytes={len(data)}-"})
    assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{len(data)}"
    r = await client.get(sv.url("v720/2.m4s", token), headers={"If-None-Match": etag})
    assert r.status == 304
    h = await client.head(sv.url("v720/2.m4s", token))
    assert h.status == 200 and h.headers["Content-Length"] == str(len(data)) and await h.read() == b""
    for name in ("master.m3u8", "manifest.mpd", "a0/index.m3u8", "a0/init.mp4"):
        r = await client.get(sv.url(name, token))
        assert r.status == 200, name
    r = await client.get(sv.url("a0/init.mp4", token))
    assert await r.read() == sv.objects["a0/init.mp4"]


@pytest.fixture(params=["file", "s3"])
async def either_backend(request, aiohttp_client, settings):
    """The same hand-built version served from local files and from S3 (moto over HTTP)."""
    if request.param == "s3":
        s = dataclasses.replace(
            settings,
            storage_url=f"s3://origin-{secrets.token_hex(4)}/media",
            s3_endpoint_url=request.getfixturevalue("s3_server"),
        )
    else:
        s = settings
    sv = await store_in(s, presentation(new_title_id(), "v1", segment_size=50_000), create_bucket=request.param == "s3")
    client = await aiohttp_client(create_app(s))
    token = token_for(s.secret_key, sv)
    return client, sv, token


ROUTES = [
    ("master.m3u8", "application/vnd.apple.mpegurl", "private"),
    ("manifest.mpd", "application/dash+xml", "private"),
    ("v360/index.m3u8", "application/vnd.apple.mpegurl", "private"),
    ("v360/init.mp4", "video/mp4", "public, max-age=31536000, immutable"),
    ("v360/2.m4s", "video/mp4", "public, max-age=31536000, immutable"),
]


async def test_every_route_get_and_head_headers_on_both_backends(either_backend):
    """Content-Type, Content-Length (never chunked), strong ETag, Last-Modified,
    Accept-Ranges, Cache-Control and CORS on GET and HEAD of every kind of object; 206, 416,
    304 and If-Range on each; CORS and no-store on the errors too."""
    client, sv, token = either_backend
    for name, ctype, cache in ROUTES:
        url = sv.url(name, token)
        g = await client.get(url, allow_redirects=False)
        body = await g.read()
        h = await client.head(url, allow_redirects=False)
        assert (g.status, h.status) == (200, 200), name
        assert await h.read() == b""
        if name in sv.objects:
            assert body == sv.objects[name]
        for r in (g, h):
            hd = r.headers
            assert hd["Content-Type"] == ctype, name
            assert hd["Content-Length"] == str(len(body)), name
            assert "Transfer-Encoding" not in hd, name
            assert hd["ETag"].startswith('"') and not hd["ETag"].startswith("W/"), name
            assert "Last-Modified" in hd and hd["Accept-Ranges"] == "bytes", name
            assert hd["Cache-Control"].startswith(cache), name
            assert hd["Access-Control-Allow-Origin"] == "*" and "Content-Range" in hd["Access-Control-Expose-Headers"]
        etag, size = g.headers["ETag"], len(body)
        r = await client.get(url, headers={"Range": "bytes=10-19"})
        assert r.status == 206 and r.headers["Content-Range"] == f"bytes 10-19/{size}", name
        assert await r.read() == body[10:20] and r.headers["Access-Control-Allow-Origin"] == "*"
        r = await client.get(url, headers={"Range": "bytes=-7"})
        assert r.status == 206 and await r.read() == body[-7:], name
        r = await client.get(url, headers={"Range": f"bytes={size}-"})
        assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{size}", name
        assert r.headers["Access-Control-Allow-Origin"] == "*" and r.headers["Cache-Control"] == "no-store"
        r = await client.get(url, headers={"If-None-Match": etag})
        assert r.status == 304 and r.headers["ETag"] == etag, name
        r = await client.get(url, headers={"Range": "bytes=0-3", "If-Range": etag})
        assert r.status == 206, name
        r = await client.get(url, headers={"Range": "bytes=0-3", "If-Range": '"other"'})
        assert r.status == 200 and await r.read() == body, name
        for bad in ("junk", None):
            r = await client.get(sv.url(name, bad))
            assert r.status == 403, name
            assert r.headers["Access-Control-Allow-Origin"] == "*" and r.headers["Cache-Control"] == "no-store"
            assert int(r.headers["Content-Length"]) == len(await r.read())
    r = await client.get(sv.url("v360/9.m4s", token))
    assert r.status == 404 and r.headers["Access-Control-Allow-Origin"] == "*"
