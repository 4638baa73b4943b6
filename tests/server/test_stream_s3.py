"""The origin on the S3 backend (moto's server over real HTTP): bytes streamed from a ranged
GetObject, never a redirect, always a Content-Length."""
from __future__ import annotations

import dataclasses
import secrets
import time

import pytest

from auth import playback
from media.storage import open_storage
from server.app import create_app
from tests.server.origin_support import new_title_id, presentation, store_version


@pytest.fixture
async def s3_client(aiohttp_client, settings, s3_server):
    s3 = dataclasses.replace(
        settings, storage_url=f"s3://origin-{secrets.token_hex(4)}/media", s3_endpoint_url=s3_server
    )
    storage = open_storage(s3.storage_url, s3.s3_endpoint_url)
    await storage.create_bucket()
    sv = await store_version(storage, presentation(new_title_id(), "v1", segment_size=300_000))
    await storage.close()
    client = await aiohttp_client(create_app(s3))
    token = playback.sign(playback.keyring(s3.secret_key), sv.title_id, "v1", time.time(), 3600)[0]
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
