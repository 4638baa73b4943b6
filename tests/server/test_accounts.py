"""Accounts over HTTP: registration, login, refresh rotation, logout, profile, sessions,
deletion, admin — and the bad input each route must survive."""

from __future__ import annotations

import dataclasses
import time

import jwt
import pytest

from auth.keyring import KeyRing
from auth.tokens import ALGORITHM, AUDIENCE, ISSUER
from tests.server.accounts_util import PASSWORD, bearer, error_code, login, new_user, register, unique_email

# ---- registration and emails ------------------------------------------------------------


async def test_register_returns_user(app_client):
    email = unique_email("Reg").replace("reg", "Reg")
    user = await register(app_client, email, display_name="Ann")
    assert user["email"] == email and user["display_name"] == "Ann"
    assert user["role"] == "viewer" and user["email_verified"] is False
    assert {"id", "created_at", "updated_at"} <= set(user)
    assert "password" not in str(user) and "hash" not in str(user)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("Mixed.Case-{t}@Example.COM", "mixed.case-{t}@example.com", id="ascii-case"),
        pytest.param("ｆｕｌｌ-{t}@example.com", "FULL-{t}@example.com", id="fullwidth"),
        pytest.param("straße-{t}@example.de", "STRASSE-{t}@example.de", id="sharp-s"),
        pytest.param("e\u0301cole-{t}@example.fr", "\u00c9COLE-{t}@example.fr", id="combining-accent"),
    ],
)
async def test_email_unique_across_case_and_unicode(app_client, first, second):
    import secrets

    t = secrets.token_hex(4)
    first, second = first.format(t=t), second.format(t=t)
    created = await register(app_client, first)
    r = await app_client.post("/api/v1/auth/register", json={"email": second, "password": PASSWORD})
    assert r.status == 409 and await error_code(r) == "email_taken"
    # Either spelling logs into the one account, which keeps the address as first typed.
    tokens = await login(app_client, second)
    r = await app_client.get("/api/v1/me", headers=bearer(tokens["access_token"]))
    assert (await r.json())["id"] == created["id"]


async def test_unknown_email_and_wrong_password_look_alike(app_client):
    user = await register(app_client)
    r1 = await app_client.post("/api/v1/auth/login", json={"email": user["email"], "password": "wrong password!"})
    r2 = await app_client.post("/api/v1/auth/login", json={"email": unique_email(), "password": "wrong password!"})
    assert r1.status == r2.status == 401
    assert await r1.json() == await r2.json()


async def test_unknown_email_and_wrong_password_take_about_the_same_time(app_client):
    """Both run one argon2 verification (an unknown email against a dummy hash). Fastest of
    several interleaved tries, so load noise on a shared machine cannot fake a difference;
    without the dummy hash an unknown email answers ~20x faster than a wrong password."""
    user = await register(app_client)
    nobody = unique_email("nobody")
    times: dict[str, list[float]] = {"wrong": [], "unknown": []}
    for _ in range(4):  # 4 + 4 tries: under the default 10/min per-account limit
        for label, email in (("wrong", user["email"]), ("unknown", nobody)):
            start = time.perf_counter()
            r = await app_client.post("/api/v1/auth/login", json={"email": email, "password": "wrong password!"})
            times[label].append(time.perf_counter() - start)
            assert r.status == 401
    ratio = min(times["unknown"]) / min(times["wrong"])
    assert 0.5 < ratio < 2.0, times


async def test_login_rehashes_a_password_hashed_with_old_parameters(app_client, pg):
    """argon2 parameters changed since the hash was made: the next login upgrades it."""
    from argon2 import PasswordHasher

    user = await register(app_client)
    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    await pg.execute("UPDATE auth.users SET password_hash = $2 WHERE id = $1::uuid", user["id"], old)
    # A wrong password does not touch the hash.
    r = await app_client.post("/api/v1/auth/login", json={"email": user["email"], "password": "wrong password!"})
    assert r.status == 401
    assert await pg.fetchval("SELECT password_hash FROM auth.users WHERE id = $1::uuid", user["id"]) == old
    await login(app_client, user["email"])
    new = await pg.fetchval("SELECT password_hash FROM auth.users WHERE id = $1::uuid", user["id"])
    assert new != old and new.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    await login(app_client, user["email"])  # still the same password
    assert await pg.fetchval("SELECT password_hash FROM auth.users WHERE id = $1::uuid", user["id"]) == new


# ---- refresh rotation and revocation ------------------------------------------------------


async def test_refresh_rotates(app_client):
    u = await new_user(app_client)
    r = await app_client.post("/api/v1/auth/refresh", json={"refresh_token": u["refresh_token"]})
    assert r.status == 200
    pair = await r.json()
    assert pair["token_type"] == "bearer" and pair["expires_in"] == 900
    assert r.headers["Cache-Control"] == "no-store"
    assert pair["refresh_token"] != u["refresh_token"] and pair["access_token"] != u["access_token"]
    r = await app_client.get("/api/v1/me", headers=bearer(pair["access_token"]))
    assert r.status == 200


async def test_reused_refresh_token_kills_the_family(app_client):
    u = await new_user(app_client)
    r = await app_client.post("/api/v1/auth/refresh", json={"refresh_token": u["refresh_token"]})
    newest = await r.json()
    # The stolen (already rotated) token comes back: the session dies.
    r = await app_client.post("/api/v1/auth/refresh", json={"refresh_token": u["refresh_token"]})
    assert r.status == 401 and await error_code(r) == "refresh_token_reused"
    # ...and with it the newest refresh token and every access token of the session.
    r = await app_client.post("/api/v1/auth/refresh", json={"refresh_token": newest["refresh_token"]})
    assert r.status == 401
    for token in (u["access_token"], newest["access_token"]):
        r = await app_client.get("/api/v1/me", headers=bearer(token))
        assert r.status == 401 and await error_code(r) == "session_revoked"
    # Other sessions of the same user are unaffected.
    other = await login(app_client, u["email"])
    assert (await app_client.get("/api/v1/me", headers=bearer(other["access_token"]))).status == 200


async def test_concurrent_refresh_with_one_token_is_a_reuse(app_client):
    import asyncio

    u = await new_user(app_client)
    rs = await asyncio.gather(
        *(app_client.post("/api/v1/auth/refresh", json={"refresh_token": u["refresh_token"]}) for _ in range(2))
    )
    assert sorted(r.status for r in rs) == [200, 401]


async def test_unknown_refresh_token(app_client):
    r = await app_client.post("/api/v1/auth/refresh", json={"refresh_token": "nope"})
    assert r.status == 401 and await error_code(r) == "invalid_token"


async def test_logout_revokes_at_once(app_client):
    u = await new_user(app_client)
    other = await login(app_client, u["email"])
    r = await app_client.post("/api/v1/auth/logout", headers=bearer(u["access_token"]))
    assert r.status == 204
    r = await app_client.get("/api/v1/me", headers=bearer(u["access_token"]))
    assert r.status == 401 and await error_code(r) == "session_revoked"
    r = await app_client.post("/api/v1/auth/refresh", json={"refresh_token": u["refresh_token"]})
    assert r.status == 401
    assert (await app_client.get("/api/v1/me", headers=bearer(other["access_token"]))).status == 200
    r = await app_client.post("/api/v1/auth/logout")
    assert r.status == 401


# ---- profile and password ------------------------------------------------------------------


async def test_patch_display_name(app_client):
    u = await new_user(app_client)
    r = await app_client.patch("/api/v1/me", json={"display_name": "Zoë"}, headers=bearer(u["access_token"]))
    assert r.status == 200 and (await r.json())["display_name"] == "Zoë"


async def test_password_change(app_client):
    u = await new_user(app_client)
    other = await login(app_client, u["email"])
    h = bearer(u["access_token"])
    r = await app_client.patch("/api/v1/me", json={"password": "new password 123"}, headers=h)
    assert r.status == 400 and await error_code(r) == "invalid_body"
    r = await app_client.patch(
        "/api/v1/me", json={"password": "new password 123", "current_password": "not it at all"}, headers=h
    )
    assert r.status == 403 and await error_code(r) == "wrong_password"
    r = await app_client.patch(
        "/api/v1/me", json={"password": "new password 123", "current_password": PASSWORD}, headers=h
    )
    assert r.status == 200
    # Every other session is signed out; this one stays.
    assert (await app_client.get("/api/v1/me", headers=bearer(other["access_token"]))).status == 401
    r = await app_client.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert r.status == 401
    assert (await app_client.get("/api/v1/me", headers=h)).status == 200
    r = await app_client.post("/api/v1/auth/login", json={"email": u["email"], "password": PASSWORD})
    assert r.status == 401
    await login(app_client, u["email"], "new password 123")


# ---- sessions (devices) ------------------------------------------------------------------


async def test_list_and_sign_out_device(app_client):
    u = await new_user(app_client)
    phone = await login(app_client, u["email"], **{"User-Agent": "Phone/1.0 <b>x</b>"})
    r = await app_client.get("/api/v1/me/sessions", headers=bearer(u["access_token"]))
    items = (await r.json())["items"]
    assert len(items) == 2 and sum(i["current"] for i in items) == 1
    phone_item = next(i for i in items if i["user_agent"].startswith("Phone/1.0"))
    assert phone_item["user_agent"] == "Phone/1.0 <b>x</b>" and phone_item["ip"] == "127.0.0.1"
    r = await app_client.delete(f"/api/v1/me/sessions/{phone_item['id']}", headers=bearer(u["access_token"]))
    assert r.status == 204
    assert (await app_client.get("/api/v1/me", headers=bearer(phone["access_token"]))).status == 401
    r = await app_client.get("/api/v1/me/sessions", headers=bearer(u["access_token"]))
    assert len((await r.json())["items"]) == 1
    # Twice, garbage, someone else's: 404 alike.
    stranger = await new_user(app_client)
    r = await app_client.get("/api/v1/me/sessions", headers=bearer(stranger["access_token"]))
    stranger_sid = (await r.json())["items"][0]["id"]
    for sid in (phone_item["id"], "not-a-uuid", "'; DROP TABLE auth.sessions; --", stranger_sid):
        r = await app_client.delete(f"/api/v1/me/sessions/{sid}", headers=bearer(u["access_token"]))
        assert r.status == 404, sid
    assert (await app_client.get("/api/v1/me", headers=bearer(stranger["access_token"]))).status == 200


# ---- account deletion ----------------------------------------------------------------------


async def test_delete_account(app_client, pg):
    u = await new_user(app_client)
    h = bearer(u["access_token"])
    r = await app_client.delete("/api/v1/me", json={"password": "wrong password!"}, headers=h)
    assert r.status == 403
    r = await app_client.delete("/api/v1/me", json={"password": PASSWORD}, headers=h)
    assert r.status == 204
    assert (await app_client.get("/api/v1/me", headers=h)).status == 401
    r = await app_client.post("/api/v1/auth/login", json={"email": u["email"], "password": PASSWORD})
    assert r.status == 401
    assert await pg.fetchval("SELECT count(*) FROM auth.sessions WHERE user_id = $1::uuid", u["id"]) == 0
    # The address is free again.
    await register(app_client, u["email"])


async def test_delete_account_erases_favorites_and_history(app_client, pg, monkeypatch):
    """Through catalog's interface: `catalog.library.erase_viewer(conn, user_id)` is called
    inside the deletion's transaction."""
    library = pytest.importorskip("catalog.library")
    calls = []
    real = library.erase_viewer

    async def spy(conn, user_id):
        calls.append((conn.is_in_transaction(), user_id))
        return await real(conn, user_id)

    monkeypatch.setattr(library, "erase_viewer", spy)
    u = await new_user(app_client)
    r = await app_client.delete("/api/v1/me", json={"password": PASSWORD}, headers=bearer(u["access_token"]))
    assert r.status == 204
    assert calls == [(True, u["id"])]


async def test_delete_account_erases_real_favorites_and_history(app_client, pg):
    """End to end: rows written through the catalog API are gone after DELETE /me."""
    from tests.catalog.fixtures import make_title

    t = await make_title(pg, duration_s=600)
    u = await new_user(app_client)
    h = bearer(u["access_token"])
    assert (await app_client.put(f"/api/v1/me/favorites/{t.id}", headers=h)).status == 204
    r = await app_client.put(f"/api/v1/me/history/{t.id}", json={"position_s": 120}, headers=h)
    assert r.status == 204, await r.text()
    counts = (
        "SELECT (SELECT count(*) FROM catalog.favorites WHERE user_id = $1::uuid) + "
        "(SELECT count(*) FROM catalog.history WHERE user_id = $1::uuid)"
    )
    assert await pg.fetchval(counts, u["id"]) == 2
    r = await app_client.delete("/api/v1/me", json={"password": PASSWORD}, headers=h)
    assert r.status == 204
    assert await pg.fetchval(counts, u["id"]) == 0


async def test_delete_account_rolls_back_when_erasing_fails(app_client, pg, monkeypatch):
    library = pytest.importorskip("catalog.library")

    async def broken(conn, user_id):
        raise RuntimeError("catalog down")

    monkeypatch.setattr(library, "erase_viewer", broken)
    u = await new_user(app_client)
    r = await app_client.delete("/api/v1/me", json={"password": PASSWORD}, headers=bearer(u["access_token"]))
    assert r.status == 500
    # Nothing half-done: the account and its session are still there.
    assert (await app_client.get("/api/v1/me", headers=bearer(u["access_token"]))).status == 200


# ---- admin -----------------------------------------------------------------------------


async def _admin(app_client, pg):
    from auth.users import create_user

    email = unique_email("admin")
    await create_user(pg, email=email, password=PASSWORD, role="admin")
    return {"email": email, **(await login(app_client, email))}


async def test_admin_routes_need_admin(app_client):
    u = await new_user(app_client)
    r = await app_client.get("/api/v1/admin/users", headers=bearer(u["access_token"]))
    assert r.status == 403 and await error_code(r) == "forbidden"
    r = await app_client.patch(
        f"/api/v1/admin/users/{u['id']}", json={"role": "admin"}, headers=bearer(u["access_token"])
    )
    assert r.status == 403
    assert (await app_client.get("/api/v1/admin/users")).status == 401


async def test_admin_lists_users_paginated(app_client, pg):
    admin = await _admin(app_client, pg)
    for _ in range(3):
        await register(app_client)
    seen, cursor = [], None
    while True:
        q = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        r = await app_client.get("/api/v1/admin/users" + q, headers=bearer(admin["access_token"]))
        assert r.status == 200
        page = await r.json()
        assert len(page["items"]) <= 2
        seen += [u["id"] for u in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) >= 4
    assert len(seen) == await pg.fetchval("SELECT count(*) FROM auth.users") or len(seen) >= 4
    for q in ("?limit=0", "?limit=101", "?limit=x", "?cursor=%27%3B--"):
        r = await app_client.get("/api/v1/admin/users" + q, headers=bearer(admin["access_token"]))
        assert r.status == 400, q


async def test_admin_changes_roles_and_demotion_is_immediate(app_client, pg):
    admin = await _admin(app_client, pg)
    other = await _admin(app_client, pg)
    u = await new_user(app_client)
    h = bearer(admin["access_token"])
    r = await app_client.patch(f"/api/v1/admin/users/{u['id']}", json={"role": "admin"}, headers=h)
    assert r.status == 200 and (await r.json())["role"] == "admin"
    r = await app_client.patch(f"/api/v1/admin/users/{u['id']}", json={"role": "root"}, headers=h)
    assert r.status == 400
    r = await app_client.patch(
        "/api/v1/admin/users/00000000-0000-0000-0000-000000000000", json={"role": "admin"}, headers=h
    )
    assert r.status == 404
    # Demote the other admin: their still-valid access token (role "admin" inside) no longer works.
    me = await (await app_client.get("/api/v1/me", headers=bearer(other["access_token"]))).json()
    r = await app_client.patch(f"/api/v1/admin/users/{me['id']}", json={"role": "viewer"}, headers=h)
    assert r.status == 200
    r = await app_client.get("/api/v1/admin/users", headers=bearer(other["access_token"]))
    assert r.status == 403


# ---- bad input ---------------------------------------------------------------------------


async def test_malformed_json(app_client):
    for raw in ("{", "{'email': 1}", "[1,", '{"email": NaN}', "\xff\xfe", "[" * 100000):
        r = await app_client.post(
            "/api/v1/auth/login", data=raw.encode("latin-1"), headers={"Content-Type": "application/json"}
        )
        assert r.status == 400 and await error_code(r) == "invalid_json", raw[:10]
    r = await app_client.post("/api/v1/auth/login", json=["a", "b"])
    assert r.status == 400 and await error_code(r) == "invalid_json"


async def test_not_json_is_415(app_client):
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        r = await app_client.post("/api/v1/auth/login", data=b"email=a", headers={"Content-Type": ctype})
        assert r.status == 415 and await error_code(r) == "unsupported_media_type"


async def test_five_megabyte_body_is_413(app_client):
    body = b'{"email": "' + b"a" * (5 * 1024 * 1024) + b'"}'
    r = await app_client.post("/api/v1/auth/login", data=body, headers={"Content-Type": "application/json"})
    assert r.status == 413 and await error_code(r) == "payload_too_large"


async def test_five_megabyte_chunked_body_is_413(app_client):
    async def chunks():
        for _ in range(80):
            yield b"a" * 65536

    r = await app_client.post("/api/v1/auth/register", data=chunks(), headers={"Content-Type": "application/json"})
    assert r.status == 413 and await error_code(r) == "payload_too_large"


async def test_one_megabyte_password(app_client):
    huge = "p" * 1_000_000
    email = unique_email()
    start = time.perf_counter()
    r = await app_client.post("/api/v1/auth/register", json={"email": email, "password": huge})
    assert r.status == 400
    body = await r.json()
    assert [d["field"] for d in body["error"]["details"]] == ["password"]
    assert huge not in await r.text()  # never echoed
    r = await app_client.post("/api/v1/auth/login", json={"email": email, "password": huge})
    assert r.status == 400
    assert time.perf_counter() - start < 2


async def test_field_errors_are_listed(app_client):
    r = await app_client.post("/api/v1/auth/register", json={"email": "nope", "password": 12345678, "role": "admin"})
    assert r.status == 400
    err = (await r.json())["error"]
    assert err["code"] == "invalid_body"
    assert {d["field"] for d in err["details"]} == {"email", "password", "role"}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("a\x00b", id="nul"),
        pytest.param("\ud800", id="lone-surrogate"),
    ],
)
async def test_unstorable_strings_are_400(app_client, value):
    import json as _json

    for body in (
        {"email": unique_email(), "password": PASSWORD + value},
        {"email": unique_email(), "password": PASSWORD, "display_name": value},
        {"email": value + unique_email(), "password": PASSWORD},
    ):
        raw = _json.dumps(body).encode()  # ensure_ascii: "\ud800" travels as an escape
        r = await app_client.post("/api/v1/auth/register", data=raw, headers={"Content-Type": "application/json"})
        assert r.status == 400, body


SQL = "'; DROP TABLE auth.users; -- \" OR 1=1 --"
SCRIPT = "<script>alert(document.cookie)</script><img src=x onerror=alert(1)>"


@pytest.mark.parametrize("payload", [pytest.param(SQL, id="sql"), pytest.param(SCRIPT, id="script")])
async def test_sql_and_script_text_stored_verbatim(app_client, pg, payload):
    import secrets

    local = "x" + secrets.token_hex(3) + ("'--" if payload is SQL else "<b>")
    email = f"{local}@example.com"
    password = payload + " pw"
    user = await register(app_client, email, password, display_name=payload[:100])
    assert user["email"] == email and user["display_name"] == payload[:100]
    tokens = await login(app_client, email, password)
    h = bearer(tokens["access_token"])
    r = await app_client.patch("/api/v1/me", json={"display_name": payload[:100]}, headers=h)
    me = await r.json()
    assert me["display_name"] == payload[:100] and r.content_type == "application/json"
    r = await app_client.post("/api/v1/auth/refresh", json={"refresh_token": payload})
    assert r.status == 401
    r = await app_client.post("/api/v1/auth/password-reset", json={"token": payload, "password": PASSWORD})
    assert r.status == 400
    r = await app_client.post("/api/v1/auth/verify-email", json={"token": payload})
    assert r.status == 400
    r = await app_client.post("/api/v1/auth/password-reset/request", json={"email": payload})
    assert r.status == 202
    r = await app_client.post("/api/v1/auth/login", json={"email": payload, "password": payload})
    assert r.status == 401
    r = await app_client.get(f"/api/v1/me/sessions/{payload}", headers=h)
    assert r.status in (404, 405)
    assert await pg.fetchval("SELECT count(*) FROM auth.users") >= 1  # still there


@pytest.mark.parametrize("payload", [pytest.param(SQL, id="sql"), pytest.param(SCRIPT, id="script")])
async def test_sql_and_script_text_in_account_and_admin_fields(app_client, pg, payload):
    """The fields the test above does not reach: new and current password on PATCH /me,
    the password on DELETE /me, an admin's role, cursor and user id."""
    u = await new_user(app_client)
    h = bearer(u["access_token"])
    # As the current password: just a wrong one.
    r = await app_client.patch(
        "/api/v1/me", json={"password": "new password 123", "current_password": payload}, headers=h
    )
    assert r.status == 403 and await error_code(r) == "wrong_password"
    r = await app_client.delete("/api/v1/me", json={"password": payload}, headers=h)
    assert r.status == 403 and await error_code(r) == "wrong_password"
    # As the new password: stored (hashed) and usable, like any other text.
    r = await app_client.patch("/api/v1/me", json={"password": payload, "current_password": PASSWORD}, headers=h)
    assert r.status == 200
    await login(app_client, u["email"], payload)
    r = await app_client.delete("/api/v1/me", json={"password": payload}, headers=h)
    assert r.status == 204
    admin = await _admin(app_client, pg)
    ah = bearer(admin["access_token"])
    other = await register(app_client)
    r = await app_client.patch(f"/api/v1/admin/users/{other['id']}", json={"role": payload}, headers=ah)
    assert r.status == 400 and await error_code(r) == "invalid_body"
    r = await app_client.get("/api/v1/admin/users", params={"cursor": payload}, headers=ah)
    assert r.status == 400
    from urllib.parse import quote

    r = await app_client.patch(f"/api/v1/admin/users/{quote(payload, safe='')}", json={"role": "admin"}, headers=ah)
    assert r.status == 404
    assert await pg.fetchval("SELECT role FROM auth.users WHERE id = $1::uuid", other["id"]) == "viewer"


# ---- forged and stale access tokens over HTTP ---------------------------------------------


@pytest.mark.parametrize(
    "case",
    ["alg-none", "wrong-key", "wrong-aud", "wrong-iss", "expired", "unknown-kid", "playback-key", "role-escalation"],
)
async def test_forged_tokens_are_401(app_client, settings, case):
    u = await new_user(app_client)
    ring = KeyRing.from_secrets(settings.secret_key, purpose="access")
    claims = jwt.decode(u["access_token"], options={"verify_signature": False})
    key, kid, alg = ring.current_key, ring.current_kid, ALGORITHM
    if case == "alg-none":
        token = jwt.encode(claims, None, algorithm="none", headers={"kid": kid})
    else:
        if case == "wrong-key":
            key = b"k" * 32
        elif case == "wrong-aud":
            claims["aud"] = "another-service"
        elif case == "wrong-iss":
            claims["iss"] = "https://evil.example"
        elif case == "expired":
            claims["iat"], claims["exp"] = int(time.time()) - 1000, int(time.time()) - 10
        elif case == "unknown-kid":
            kid = "00000000"
        elif case == "playback-key":
            other = KeyRing.from_secrets(settings.secret_key, purpose="playback")
            key, kid = other.current_key, other.current_kid
        elif case == "role-escalation":
            claims["role"] = "admin"
            key = b"guess" * 8
        token = jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})
    r = await app_client.get("/api/v1/me", headers=bearer(token))
    assert r.status == 401
    code = await error_code(r)
    assert code == ("token_expired" if case == "expired" else "invalid_token")
    assert claims["aud"] in (AUDIENCE, "another-service") and ISSUER


async def test_rotated_key_keeps_sessions(aiohttp_client, settings):
    """A secret moved to previous_secret_keys still verifies old tokens; new ones use the new key."""
    from server.app import create_app

    client = await aiohttp_client(create_app(settings))
    u = await new_user(client)
    rotated = dataclasses.replace(settings, secret_key="brand-new-secret", previous_secret_keys=(settings.secret_key,))
    client2 = await aiohttp_client(create_app(rotated))
    assert (await client2.get("/api/v1/me", headers=bearer(u["access_token"]))).status == 200
    fresh = await login(client2, u["email"])
    assert (
        jwt.get_unverified_header(fresh["access_token"])["kid"] != jwt.get_unverified_header(u["access_token"])["kid"]
    )
    # A server that only knows the old key refuses the new kid.
    assert (await client.get("/api/v1/me", headers=bearer(fresh["access_token"]))).status == 401
