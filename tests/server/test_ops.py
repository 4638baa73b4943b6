"""/healthz, /readyz, /metrics and the JSON access log."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time

from server.app import create_app
from tests.server.origin_support import new_title_id, presentation, store_in, token_for


async def test_healthz(app_client):
    r = await app_client.get("/healthz")
    assert r.status == 200
    body = await r.json()
    assert body["status"] == "ok" and isinstance(body["pid"], int)
    assert r.headers["Access-Control-Allow-Origin"] == "*"


async def test_readyz_ok(app_client):
    r = await app_client.get("/readyz")
    assert r.status == 200, await r.text()
    assert (await r.json())["checks"] == {"postgres": "ok", "redis": "ok", "storage": "ok"}


async def test_readyz_lists_a_dead_redis(aiohttp_client, settings):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, redis_url="redis://127.0.0.1:1/0")))
    started = time.monotonic()
    r = await client.get("/readyz")
    assert time.monotonic() - started < 5
    assert r.status == 503
    assert r.headers["Retry-After"]
    body = await r.json()
    assert body["down"] == ["redis"]
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["redis"] == "degraded"
    # ... because the API still answers from Postgres.
    assert (await client.get("/api/v1/titles")).status == 200
    # /healthz does not care.
    assert (await client.get("/healthz")).status == 200


async def test_metrics(app_client, settings):
    sv = await store_in(settings, presentation(new_title_id(), "v1"))
    token = token_for(settings.secret_key, sv)
    for _ in range(3):
        assert (await app_client.get(sv.url("v360/1.m4s", token))).status == 200
    assert (await app_client.get(sv.url("v360/1.m4s", "bad"))).status == 403
    r = await app_client.get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await r.text()
    seg_route = "/stream/{title_id}/{version}/{rendition}/{number}.m4s"
    assert f'streamflix_http_requests_total{{method="GET",route="{seg_route}",status="200"' in text
    assert f'route="{seg_route}",status="403"' in text
    assert "streamflix_http_request_duration_seconds_bucket{" in text
    size = len(sv.objects["v360/1.m4s"])
    line = next(
        line
        for line in text.splitlines()
        if line.startswith("streamflix_http_response_bytes_total") and seg_route in line
    )
    # three segments plus the 403's small JSON error body
    assert 3 * size < int(line.rsplit(" ", 1)[1]) < 3 * size + 500
    assert "streamflix_transcode_jobs_queued " in text
    assert token not in text


async def test_access_log_is_json_without_tokens(app_client, settings, caplog, user_token):
    sv = await store_in(settings, presentation(new_title_id(), "v1"))
    token = token_for(settings.secret_key, sv)
    with caplog.at_level(logging.INFO, logger="streamflix.access"):
        await app_client.get(sv.url("v360/1.m4s", token))
        await app_client.get(sv.url("master.m3u8", token))
        await app_client.get(sv.url("v360/1.m4s", "forged" + token))
        await app_client.post(
            "/api/v1/auth/login", json={"email": user_token["email"], "password": user_token["password"]}
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "streamflix.access"]
    assert len(lines) >= 4
    for line in lines:
        entry = json.loads(line)
        assert {"method", "route", "status", "bytes", "duration_ms", "path"} <= set(entry)
        assert "token" not in entry["path"]
    everything = "\n".join(lines) + caplog.text
    assert token not in everything
    assert user_token["password"] not in everything
    first = json.loads(lines[0])
    assert first["status"] == 200 and first["bytes"] == len(sv.objects["v360/1.m4s"])
    assert first["route"] == "/stream/{title_id}/{version}/{rendition}/{number}.m4s"


def _concrete(path: str) -> str:
    """A request path for a route template (values need not exist: only the route matters)."""
    values = {
        "title_id": new_title_id(),
        "version": "v1",
        "rendition": "v360",
        "number": "1",
        "session_id": new_title_id(),
        "user_id": new_title_id(),
        "path": "nope.css",
        "name": "nope.js",
    }
    return re.sub(r"{(\w+)(?::[^}]*)?}", lambda m: values.get(m.group(1), "x"), path)


async def test_head_and_options_on_every_route(app_client):
    """Bad input: HEAD and OPTIONS on every route of the app. HEAD answers what GET
    answers, without a body; OPTIONS is a CORS preflight allowing the route's methods and
    Range; both carry CORS headers whatever the status."""
    routes = []
    for resource in app_client.server.app.router.resources():
        info = resource.get_info()
        template = info.get("formatter") or info.get("path")
        if template:
            routes.append((template, {route.method for route in resource}))
    assert len(routes) > 30
    for template, methods in routes:
        path = _concrete(template)
        if "GET" in methods:
            g = await app_client.get(path)
            h = await app_client.head(path)
            assert h.status == g.status, (template, g.status, h.status)
            assert await h.read() == b"", template
            assert h.headers["Access-Control-Allow-Origin"] == "*", template
        method = sorted(methods - {"HEAD"})[0]
        r = await app_client.options(
            path,
            headers={
                "Origin": "https://player.example",
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "range, authorization",
            },
        )
        assert r.status == 204, (template, r.status)
        allowed = {m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")}
        assert methods <= allowed, (template, methods, allowed)
        assert "range" in r.headers["Access-Control-Allow-Headers"].lower(), template
        assert r.headers["Access-Control-Allow-Origin"] == "*", template
