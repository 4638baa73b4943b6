"""A CDN in front of the origin: Debian's nginx with proxy_cache, configured as docs/origin.md
says a real CDN should be (cache key = the full URL, origin Cache-Control respected, one
upstream fetch per object at a time). Twenty viewers, each with their own account, press play
on the same title; the origin must serve each segment once."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import secrets
from collections import Counter

import aiohttp
import m3u8
import pytest

from server.app import create_app
from tests.server.nginx_support import Nginx, nginx_or_skip

VIEWERS = 20

# The same directives docs/origin.md gives for a CDN (kept in sync by hand).
CDN_CONFIG = """
    proxy_cache_path {prefix}/cache levels=1:2 keys_zone=streamflix:10m max_size=1g inactive=7d use_temp_path=off;
    server {{
        listen 127.0.0.1:PORT;
        location / {{
            proxy_pass http://127.0.0.1:{origin_port};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_cache streamflix;
            # The whole URL, token included: viewers in the same window share one entry, and
            # a URL without a valid token is a miss the origin refuses.
            proxy_cache_key $scheme$proxy_host$request_uri;
            # One upstream fetch per object; concurrent viewers wait for it.
            proxy_cache_lock on;
            proxy_cache_lock_timeout 30s;
            proxy_cache_lock_age 30s;
            # Lifetimes come from the origin's Cache-Control (segments immutable for a year,
            # playlists private, errors no-store); nothing is cached without it.
            proxy_cache_revalidate on;
            proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
"""


@pytest.mark.slow
async def test_cdn_serves_each_segment_once(aiohttp_client, ready_title, tmp_path, caplog):
    nginx_or_skip()
    settings = dataclasses.replace(
        ready_title["settings"],
        rate_limit_register_per_min=10_000,
        rate_limit_login_per_min=10_000,
        rate_limit_api_per_min=1_000_000,
    )
    origin = await aiohttp_client(create_app(settings))
    cdn = Nginx(tmp_path / "cdn", CDN_CONFIG.format(prefix=tmp_path / "cdn", origin_port=origin.server.port)).start()
    title_id = ready_title["id"]
    try:
        with caplog.at_level(logging.INFO, logger="streamflix.access"):
            async with aiohttp.ClientSession(cdn.url) as s:
                results = await asyncio.gather(*(_watch(s, title_id) for _ in range(VIEWERS)))
    finally:
        cdn.cleanup()

    hls_urls = {r["hls_url"] for r in results}
    assert len(hls_urls) == 1, "viewers in the same window must get the same URL"
    media_requests = sum(r["media_requests"] for r in results)
    statuses = Counter(st for r in results for st in r["cache_status"])
    origin_hits: Counter[str] = Counter()
    for rec in caplog.records:
        if rec.name != "streamflix.access":
            continue
        entry = json.loads(rec.getMessage())
        assert "token" not in entry["path"]
        if entry["path"].endswith((".m4s", "init.mp4")):
            assert entry["status"] == 200
            origin_hits[entry["path"]] += 1
    objects = {p for r in results for p in r["objects"]}
    assert set(origin_hits) == objects
    assert all(n == 1 for n in origin_hits.values()), origin_hits.most_common(3)
    hit_ratio = 1 - sum(origin_hits.values()) / media_requests
    assert hit_ratio >= 0.95, (hit_ratio, statuses)


async def _watch(s: aiohttp.ClientSession, title_id: str) -> dict:
    email = f"cdn-{secrets.token_hex(4)}@example.com"
    password = "correct horse battery staple"
    r = await s.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert r.status == 201, await r.text()
    r = await s.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert r.status == 200, await r.text()
    bearer = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
    r = await s.post(f"/api/v1/titles/{title_id}/playback", headers=bearer)
    assert r.status == 200, await r.text()
    urls = await r.json()

    out = {"hls_url": urls["hls_url"], "media_requests": 0, "cache_status": [], "objects": set()}

    async def get(url: str) -> bytes:
        async with s.get(url) as resp:
            assert resp.status == 200, (url, resp.status, await resp.text())
            body = await resp.read()
            path = url.split("?")[0]
            if path.endswith((".m4s", "init.mp4")):
                out["media_requests"] += 1
                out["objects"].add(path)
                out["cache_status"].append(resp.headers.get("X-Cache-Status"))
                assert int(resp.headers["Content-Length"]) == len(body)
            return body

    base = urls["hls_url"].split("?")[0].rsplit("/", 1)[0] + "/"
    master = m3u8.loads((await get(urls["hls_url"])).decode())
    variants = [p.uri for p in master.playlists] + [m.uri for m in master.media if m.uri]
    for variant in variants:
        rendition_base = base + variant.split("/")[0] + "/"
        media = m3u8.loads((await get(base + variant)).decode())
        await get(rendition_base + media.segment_map[0].uri)
        for seg in media.segments:
            await get(rendition_base + seg.uri)
    # The DASH MPD names the same segment URLs: fetching it must not add origin traffic.
    mpd = (await get(urls["dash_url"])).decode()
    assert "$Number$.m4s?token=" in mpd
    return out
