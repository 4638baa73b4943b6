"""Helpers for the accounts HTTP tests."""

from __future__ import annotations

import secrets
from typing import Any

PASSWORD = "correct horse battery"


def unique_email(tag: str = "acct") -> str:
    return f"{tag}-{secrets.token_hex(5)}@example.com"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(client: Any, email: str | None = None, password: str = PASSWORD, **extra: Any) -> dict:
    email = email or unique_email()
    r = await client.post("/api/v1/auth/register", json={"email": email, "password": password, **extra})
    assert r.status == 201, await r.text()
    return await r.json()


async def login(client: Any, email: str, password: str = PASSWORD, **headers: str) -> dict:
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": password}, headers=headers)
    assert r.status == 200, await r.text()
    return await r.json()


async def new_user(client: Any, **extra: Any) -> dict:
    """Register and log in: {"email", "id", "access_token", "refresh_token", ...}."""
    user = await register(client, **extra)
    tokens = await login(client, user["email"])
    return {**user, **tokens}


async def error_code(r: Any) -> str:
    body = await r.json()
    assert set(body) == {"error"}, body
    return body["error"]["code"]
