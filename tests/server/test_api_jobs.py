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
