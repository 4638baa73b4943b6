"""API keys: made by an admin (shown once, stored hashed), used as a bearer within their
scopes, listed with their last use, revoked at once; never a viewer, never a key manager."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import asyncpg
import pytest

from auth import api_keys
from auth.users import create_user

PASSWORD = "correct horse battery"


async def login(client: Any, email: str) -> dict[str, str]:
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status == 200, await r.text()
    return {"Authorization": f"Bearer {(await r.json())['access_token']}"}


@pytest.fixture
async def admin(app_client: Any, pg: asyncpg.Connection) -> dict[str, str]:
    email = f"keys-{secrets.token_hex(4)}@example.com"
    await create_user(pg, email=email, password=PASSWORD, role="admin")
    return await login(app_client, email)


async def make_key(client: Any, admin: dict[str, str], *scopes: str, name: str = "ci uploader") -> dict[str, Any]:
    r = await client.post("/api/v1/admin/api-keys", json={"name": name, "scopes": list(scopes)}, headers=admin)
    assert r.status == 201, await r.text()
    assert r.headers["Cache-Control"] == "no-store"
    return await r.json()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_key_is_shown_once_stored_hashed_and_works_within_its_scopes(
    app_client: Any, admin: dict[str, str], pg: asyncpg.Connection
) -> None:
    made = await make_key(app_client, admin, "read", "catalog:write")
    key = made["key"]
    assert key.startswith("sfk_") and made["scopes"] == ["read", "catalog:write"] and made["last_used_at"] is None
    stored = await pg.fetchrow("SELECT * FROM auth.api_keys WHERE id = $1", made["id"])
    secret = key[len("sfk_") + 16 + 1 :]  # the secret may hold "_" itself (base64url)
    assert bytes(stored["secret_sha256"]) == hashlib.sha256(secret.encode()).digest()
    assert secret not in repr(dict(stored))

    # read: the admin job list; catalog:write: create a title
    r = await app_client.get("/api/v1/admin/jobs", headers=bearer(key))
    assert r.status == 200, await r.text()
    r = await app_client.post(
        "/api/v1/titles", json={"kind": "movie", "title": f"Keyed {secrets.token_hex(3)}"}, headers=bearer(key)
    )
    assert r.status == 201, await r.text()

    # listed with its last use, without the key
    r = await app_client.get("/api/v1/admin/api-keys", headers=admin)
    assert r.status == 200
    (listed,) = [k for k in (await r.json())["items"] if k["id"] == made["id"]]
    assert listed["last_used_at"] is not None and "key" not in listed
    assert listed["name"] == "ci uploader"


async def test_a_key_without_the_scope_is_refused(app_client: Any, admin: dict[str, str]) -> None:
    key = (await make_key(app_client, admin, "read"))["key"]
    r = await app_client.post("/api/v1/titles", json={"kind": "movie", "title": "Nope"}, headers=bearer(key))
    assert r.status == 403
    body = await r.json()
    assert body["error"]["code"] == "forbidden" and "catalog:write" in body["error"]["message"]
    writer = (await make_key(app_client, admin, "catalog:write"))["key"]
    r = await app_client.get("/api/v1/admin/jobs", headers=bearer(writer))
    assert r.status == 403 and "'read'" in (await r.json())["error"]["message"]


async def test_a_revoked_key_stops_at_once(app_client: Any, admin: dict[str, str]) -> None:
    made = await make_key(app_client, admin, "read")
    assert (await app_client.get("/api/v1/admin/jobs", headers=bearer(made["key"]))).status == 200
    r = await app_client.delete(f"/api/v1/admin/api-keys/{made['id']}", headers=admin)
    assert r.status == 204
    r = await app_client.get("/api/v1/admin/jobs", headers=bearer(made["key"]))
    assert r.status == 401 and (await r.json())["error"]["code"] == "invalid_token"
    # revoking again is harmless; an unknown id is a 404
    assert (await app_client.delete(f"/api/v1/admin/api-keys/{made['id']}", headers=admin)).status == 204
    r = await app_client.delete("/api/v1/admin/api-keys/0000000000000000", headers=admin)
    assert r.status == 404 and (await r.json())["error"]["code"] == "api_key_not_found"
    r = await app_client.get("/api/v1/admin/api-keys", headers=admin)
    (listed,) = [k for k in (await r.json())["items"] if k["id"] == made["id"]]
    assert listed["revoked_at"] is not None


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"), id="wrong-secret"),
        pytest.param(lambda k: "sfk_" + "0" * 16 + k[20:], id="unknown-id"),
        pytest.param(lambda k: k + "x", id="too-long"),
        pytest.param(lambda k: "sfk_", id="bare-prefix"),
    ],
)
async def test_a_bad_key_is_a_401(app_client: Any, admin: dict[str, str], mangle: Any) -> None:
    key = (await make_key(app_client, admin, "read"))["key"]
    r = await app_client.get("/api/v1/admin/jobs", headers=bearer(mangle(key)))
    assert r.status == 401
    assert (await r.json())["error"] == {"code": "invalid_token", "message": "invalid API key"}


async def test_a_key_is_no_viewer_and_no_key_manager(app_client: Any, admin: dict[str, str]) -> None:
    key = (await make_key(app_client, admin, "read", "catalog:write", "upload"))["key"]
    for method, path in (
        ("GET", "/api/v1/me/favorites"),
        ("GET", "/api/v1/admin/api-keys"),
        ("POST", "/api/v1/admin/api-keys"),
        ("GET", "/api/v1/admin/users"),
    ):
        r = await app_client.request(method, path, json={"name": "x", "scopes": ["read"]}, headers=bearer(key))
        assert r.status == 403, (method, path, await r.text())
    # public routes: the key is anonymous there, and still works
    r = await app_client.get("/api/v1/titles", headers=bearer(key))
    assert r.status == 200


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"name": "x", "scopes": ["admin"]}, id="unknown-scope"),
        pytest.param({"name": "x", "scopes": []}, id="no-scope"),
        pytest.param({"name": "", "scopes": ["read"]}, id="empty-name"),
        pytest.param({"name": "x" * 101, "scopes": ["read"]}, id="long-name"),
        pytest.param({"name": "x", "scopes": "read"}, id="scopes-not-a-list"),
        pytest.param({"name": "x", "scopes": ["read"], "role": "admin"}, id="unknown-field"),
    ],
)
async def test_bad_key_requests_are_400(app_client: Any, admin: dict[str, str], body: dict[str, Any]) -> None:
    r = await app_client.post("/api/v1/admin/api-keys", json=body, headers=admin)
    assert r.status == 400, await r.text()
    assert set((await r.json())["error"]) >= {"code", "message"}


async def test_only_admins_make_keys(app_client: Any, pg: asyncpg.Connection) -> None:
    email = f"viewer-{secrets.token_hex(4)}@example.com"
    await create_user(pg, email=email, password=PASSWORD)
    viewer = await login(app_client, email)
    r = await app_client.post("/api/v1/admin/api-keys", json={"name": "x", "scopes": ["read"]}, headers=viewer)
    assert r.status == 403
    assert (await app_client.get("/api/v1/admin/api-keys")).status == 401


async def test_last_use_is_written_at_most_once_a_minute(pg: asyncpg.Connection) -> None:
    user = await create_user(pg, email=f"k-{secrets.token_hex(4)}@example.com", password=PASSWORD, role="admin")
    made, key = await api_keys.create(pg, "touch", ["read"], user.id)
    first = (await api_keys.verify(pg, key)).id
    t1 = await pg.fetchval("SELECT last_used_at FROM auth.api_keys WHERE id = $1", first)
    await api_keys.verify(pg, key)
    t2 = await pg.fetchval("SELECT last_used_at FROM auth.api_keys WHERE id = $1", first)
    assert t1 is not None and t1 == t2  # the second use within the minute wrote nothing
    await pg.execute("UPDATE auth.api_keys SET last_used_at = now() - interval '2 minutes' WHERE id = $1", first)
    await api_keys.verify(pg, key)
    t3 = await pg.fetchval("SELECT last_used_at FROM auth.api_keys WHERE id = $1", first)
    assert t3 > t2
