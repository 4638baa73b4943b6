"""Ingest from a URL through the API: the title and job at once, a real worker downloads the
source (from a real HTTP server on 127.0.0.1) into storage and transcodes it; private
addresses are refused unless allowed, at the request and again at the fetch."""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from auth.users import create_user
from server.app import create_app
from server.settings import Settings
from tests.support import run_worker_on

PASSWORD = "correct horse battery"


async def admin(client: Any, pg: asyncpg.Connection) -> dict[str, str]:
    email = f"ingest-{secrets.token_hex(4)}@example.com"
    await create_user(pg, email=email, password=PASSWORD, role="admin")
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {(await r.json())['access_token']}"}


def file_server(clip: Path) -> TestServer:
    app = web.Application()

    async def source(_r: web.Request) -> web.StreamResponse:
        return web.FileResponse(clip)

    app.router.add_get("/films/clip.mp4", source)
    return TestServer(app, host="127.0.0.1")


async def test_a_url_is_fetched_by_the_worker_and_transcoded(
    aiohttp_client: Any, settings: Settings, pg: asyncpg.Connection, clip_factory: Any
) -> None:
    allowed = dataclasses.replace(settings, outbound_allow_private=True)
    server = file_server(clip_factory(seconds=2, width=320, height=180))
    await server.start_server()
    try:
        client = await aiohttp_client(create_app(allowed))
        auth = await admin(client, pg)
        url = str(server.make_url("/films/clip.mp4"))
        r = await client.post("/api/v1/ingest", json={"url": url, "title": "Fetched", "year": 2024}, headers=auth)
        assert r.status == 202, await r.text()
        accepted = await r.json()
        assert accepted["status"] == "pending"
        title = await run_worker_on(allowed, accepted["title_id"])
        assert title.status == "ready", title.failure_reason
        source = await pg.fetchval("SELECT source FROM jobs.transcode_jobs WHERE title_id = $1", title.id)
        assert source == f"sources/{title.id}/original.mp4"  # fetched once, kept in storage

        # allowed when asked, refused when fetched: the worker's own check stands
        r = await client.post("/api/v1/ingest", json={"url": url, "title": "Checked twice"}, headers=auth)
        refused = await run_worker_on(settings, (await r.json())["title_id"])
        assert refused.status == "failed" and "not a public address" in (refused.failure_reason or "")
        attempts = await pg.fetchval("SELECT attempts FROM jobs.transcode_jobs WHERE title_id = $1", refused.id)
        assert attempts == 1  # permanent: not retried
    finally:
        await server.close()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        pytest.param({"url": "http://127.0.0.1:9/film.mp4", "title": "x"}, 400, "source_refused", id="loopback"),
        pytest.param({"url": "http://169.254.169.254/latest/", "title": "x"}, 400, "source_refused", id="metadata"),
        pytest.param({"url": "http://[::1]/film.mp4", "title": "x"}, 400, "source_refused", id="ipv6-loopback"),
        pytest.param({"url": "ftp://example.com/film.mp4", "title": "x"}, 400, "source_unavailable", id="ftp"),
        pytest.param({"url": "/etc/passwd", "title": "x"}, 400, "source_unavailable", id="local-path"),
        pytest.param({"url": "https://example.com/f.mp4", "title": ""}, 400, "invalid_body", id="no-title"),
        pytest.param({"title": "x"}, 400, "invalid_body", id="no-url"),
    ],
)
async def test_bad_url_ingests(app_client: Any, pg: asyncpg.Connection, body: dict, status: int, code: str) -> None:
    auth = await admin(app_client, pg)
    before = await pg.fetchval("SELECT count(*) FROM catalog.titles")
    r = await app_client.post("/api/v1/ingest", json=body, headers=auth)
    assert r.status == status, await r.text()
    assert (await r.json())["error"]["code"] == code
    assert await pg.fetchval("SELECT count(*) FROM catalog.titles") == before  # nothing created


async def test_url_ingest_needs_the_upload_scope(app_client: Any, pg: asyncpg.Connection) -> None:
    auth = await admin(app_client, pg)
    r = await app_client.post("/api/v1/admin/api-keys", json={"name": "cms", "scopes": ["catalog:write"]}, headers=auth)
    key = {"Authorization": f"Bearer {(await r.json())['key']}"}
    r = await app_client.post("/api/v1/ingest", json={"url": "https://example.com/f.mp4", "title": "x"}, headers=key)
    assert r.status == 403
