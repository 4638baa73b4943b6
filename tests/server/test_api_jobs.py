"""`GET /api/v1/admin/jobs`: admins see jobs with status, progress, attempts and error."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg

from auth.users import create_user

PASSWORD = "correct horse battery"


async def login(client: Any, email: str) -> dict[str, str]:
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status == 200, await r.text()
    return {"Authorization": f"Bearer {(await r.json())['access_token']}"}


async def test_admin_jobs(app_client: Any, ready_title: dict[str, Any], pg: asyncpg.Connection) -> None:
    admin = f"ops-{secrets.token_hex(4)}@example.com"
    viewer = f"viewer-{secrets.token_hex(4)}@example.com"
    await create_user(pg, email=admin, password=PASSWORD, role="admin")
    await create_user(pg, email=viewer, password=PASSWORD)

    r = await app_client.get("/api/v1/admin/jobs")
    assert r.status == 401
    r = await app_client.get("/api/v1/admin/jobs", headers=await login(app_client, viewer))
    assert r.status == 403

    headers = await login(app_client, admin)
    r = await app_client.get("/api/v1/admin/jobs", params={"title_id": ready_title["id"]}, headers=headers)
    assert r.status == 200, await r.text()
    body = await r.json()
    (job,) = body["items"]
    assert job["title_id"] == ready_title["id"]
    assert (job["status"], job["progress"], job["attempts"], job["error"]) == ("done", 100, 1, None)
    assert isinstance(body["queue_depth"], int)

    r = await app_client.get("/api/v1/admin/jobs", params={"title_id": "nope"}, headers=headers)
    assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_query"
    r = await app_client.get("/api/v1/admin/jobs", params={"limit": "0"}, headers=headers)
    assert r.status == 400


async def test_admin_retry_puts_a_failed_title_back_in_the_queue(
    app_client: Any, ready_title: dict[str, Any], pg: asyncpg.Connection, settings: Any, tmp_path: Any
) -> None:
    from tests.support import ingest_and_transcode

    not_media = tmp_path / "not-media.mp4"
    not_media.write_bytes(b"this is not a video")
    failed = await ingest_and_transcode(settings, not_media, title=f"Broken {secrets.token_hex(3)}")
    assert failed.status == "failed"

    admin = f"ops-{secrets.token_hex(4)}@example.com"
    viewer = f"viewer-{secrets.token_hex(4)}@example.com"
    await create_user(pg, email=admin, password=PASSWORD, role="admin")
    await create_user(pg, email=viewer, password=PASSWORD)
    path = f"/api/v1/admin/titles/{failed.id}/retry"
    assert (await app_client.post(path)).status == 401
    assert (await app_client.post(path, headers=await login(app_client, viewer))).status == 403
    headers = await login(app_client, admin)

    r = await app_client.post(f"/api/v1/admin/titles/{ready_title['id']}/retry", headers=headers)
    assert r.status == 409, await r.text()
    assert (await r.json())["error"]["code"] == "title_not_failed"
    for unknown in ("8d7bd5a1-0000-4000-8000-000000000000", "nope"):
        r = await app_client.post(f"/api/v1/admin/titles/{unknown}/retry", headers=headers)
        assert r.status == 404 and (await r.json())["error"]["code"] == "title_not_found"

    r = await app_client.post(path, headers=headers)
    assert r.status == 202, await r.text()
    job = await r.json()
    assert (job["title_id"], job["status"], job["attempts"], job["deferrals"]) == (failed.id, "queued", 0, 0)
    assert job["max_attempts"] == settings.job_max_attempts
    r = await app_client.get(f"/api/v1/titles/{failed.id}", headers=headers)
    assert (await r.json())["status"] == "pending"
    r = await app_client.get("/api/v1/admin/jobs", params={"title_id": failed.id}, headers=headers)
    assert [j["status"] for j in (await r.json())["items"]] == ["queued", "failed"]  # the old one kept

    r = await app_client.post(path, headers=headers)  # pending now: not failed any more
    assert r.status == 409 and (await r.json())["error"]["code"] == "title_not_failed"

    spec = await (await app_client.get("/api/v1/openapi.json")).json()
    op = spec["paths"]["/api/v1/admin/titles/{title_id}/retry"]["post"]
    assert {"202", "404", "409"} <= set(op["responses"])
