"""Catalog test helpers: titles made with catalog functions (ready through status.publish_ready),
an admin's and a viewer's tokens, and a unique genre per test so shared-database tests see
only their own titles."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from catalog import status, titles


async def make_title(
    conn: Any,
    *,
    kind: str = "movie",
    title: str | None = None,
    ready: bool = True,
    duration_s: float = 600.0,
    version: str = "v1",
    **fields: Any,
) -> titles.Title:
    t = await titles.create_title(conn, kind=kind, title=title or f"Title {secrets.token_hex(4)}", **fields)
    if ready and kind != "series":
        await status.publish_ready(conn, t.id, version, duration_s=duration_s)
    return await titles.get_title(conn, t.id)


async def make_series(conn: Any, name: str, episodes: list[tuple[int, int]], *, ready: bool = True, **fields: Any):
    """A series (status pending, so only its ready episodes make it visible) and episodes."""
    series = await titles.create_title(conn, kind="series", title=name, status="pending", **fields)
    eps = []
    for season, number in episodes:
        eps.append(
            await make_title(
                conn,
                kind="episode",
                title=f"{name} S{season}E{number}",
                series_id=series.id,
                season_number=season,
                episode_number=number,
                ready=ready,
                genres=fields.get("genres", ()),
            )
        )
    return await titles.get_title(conn, series.id), eps


async def login(client: Any, email: str, password: str) -> str:
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert r.status == 200, await r.text()
    return (await r.json())["access_token"]


@pytest.fixture
def genre() -> str:
    return f"g{secrets.token_hex(5)}"


@pytest.fixture
async def admin_headers(app_client: Any, pg: Any) -> dict[str, str]:
    from auth import users

    email = f"admin-{secrets.token_hex(4)}@example.com"
    password = "correct horse battery admin"
    await users.create_user(pg, email=email, password=password, role="admin")
    return {"Authorization": "Bearer " + await login(app_client, email, password)}


@pytest.fixture
def viewer_headers(user_token: dict[str, str]) -> dict[str, str]:
    return {"Authorization": "Bearer " + user_token["access_token"]}


async def viewer_id(client: Any, headers: dict[str, str]) -> str:
    r = await client.get("/api/v1/me", headers=headers)
    assert r.status == 200
    return (await r.json())["id"]
