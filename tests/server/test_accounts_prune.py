"""`streamflix users prune` (auth/prune.py): expired tokens and dead sessions go, nothing a
viewer can still use does."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from tests.server.accounts_util import login, register

ROOT = Path(__file__).resolve().parents[2]


async def _session_id(pg, email: str) -> str:
    return str(
        await pg.fetchval(
            "SELECT s.id FROM auth.sessions s JOIN auth.users u ON u.id = s.user_id WHERE lower(u.email) = lower($1) "
            "ORDER BY s.created_at DESC LIMIT 1",
            email,
        )
    )


async def test_prune_keeps_what_is_live(app_client, pg, settings):
    # live: logged in, refreshed once (its first refresh token is used but unexpired)
    live = await register(app_client)
    tokens = await login(app_client, live["email"])
    r = await app_client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status == 200
    live_refresh = (await r.json())["refresh_token"]
    live_sid = await _session_id(pg, live["email"])
    # revoked long ago: logged out, then aged past the access-token lifetime
    old = await register(app_client)
    old_tokens = await login(app_client, old["email"])
    r = await app_client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {old_tokens['access_token']}"})
    assert r.status in (200, 204)
    old_sid = await _session_id(pg, old["email"])
    await pg.execute("UPDATE auth.sessions SET revoked_at = now() - interval '1 day' WHERE id = $1::uuid", old_sid)
    # revoked just now: stays (its access tokens may still be live, Redis reloads it)
    fresh = await register(app_client)
    fresh_tokens = await login(app_client, fresh["email"])
    await app_client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {fresh_tokens['access_token']}"})
    fresh_sid = await _session_id(pg, fresh["email"])
    # abandoned: every refresh token expired long ago, no activity since
    gone = await register(app_client)
    await login(app_client, gone["email"])
    gone_sid = await _session_id(pg, gone["email"])
    await pg.execute(
        "UPDATE auth.refresh_tokens SET expires_at = now() - interval '2 days' WHERE session_id = $1::uuid", gone_sid
    )
    await pg.execute("UPDATE auth.sessions SET last_seen_at = now() - interval '31 days' WHERE id = $1::uuid", gone_sid)
    # email tokens: one expired, one used but unexpired
    uid = await pg.fetchval("SELECT id FROM auth.users WHERE lower(email) = lower($1)", live["email"])
    expired_hash, used_hash = secrets.token_bytes(32), secrets.token_bytes(32)
    await pg.execute(
        "INSERT INTO auth.email_tokens (token_hash, user_id, purpose, email, expires_at, used_at) VALUES "
        "($3, $1, 'verify_email', $2, now() - interval '1 hour', NULL), "
        "($4, $1, 'password_reset', $2, now() + interval '1 hour', now())",
        uid,
        live["email"],
        expired_hash,
        used_hash,
    )

    env = {
        **os.environ,
        "STREAMFLIX_DATABASE_URL": settings.database_url,
        "STREAMFLIX_DATA_DIR": settings.data_dir,
        "STREAMFLIX_SECRET_KEY": settings.secret_key,
    }
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "server.cli", "users", "prune", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout)
    assert counts["sessions"] >= 2 and counts["refresh_tokens"] >= 1 and counts["email_tokens"] >= 1

    sessions = {str(r["id"]) for r in await pg.fetch("SELECT id FROM auth.sessions")}
    assert live_sid in sessions and fresh_sid in sessions
    assert old_sid not in sessions and gone_sid not in sessions
    kept = {
        bytes(r["token_hash"])
        for r in await pg.fetch("SELECT token_hash FROM auth.email_tokens WHERE user_id = $1", uid)
    }
    assert expired_hash not in kept
    assert used_hash in kept  # used but unexpired: a second click still says "already used"
    # The live viewer notices nothing: its current refresh token rotates, its first one is
    # still recognised as reused.
    r = await app_client.post("/api/v1/auth/refresh", json={"refresh_token": live_refresh})
    assert r.status == 200
    r = await app_client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status == 401

    # Running it again finds nothing more of these.
    again = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "server.cli", "users", "prune"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0 and again.stdout.startswith("pruned ")
