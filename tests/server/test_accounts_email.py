"""Verification and password-reset mail through a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import re
import secrets
from collections.abc import Iterator
from email.message import EmailMessage
from urllib.parse import unquote

import pytest
from aiosmtpd.controller import Controller

from server.app import create_app
from tests.server.accounts_util import PASSWORD, bearer, error_code, login, register, unique_email
from tests.support import free_port

LINK = re.compile(r"(https?://\S+?)/#/(verify-email|reset-password)\?token=(\S+)")


class Mailbox:
    port: int  # the SMTP server's, set once it listens

    def __init__(self) -> None:
        # parsed with the default policy, so each is an EmailMessage
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        self.messages.append(
            (list(envelope.rcpt_tos), email.message_from_bytes(envelope.content, policy=email.policy.default))
        )
        return "250 OK"

    async def wait_for(self, rcpt: str, subject_word: str, timeout: float = 10.0) -> EmailMessage:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for rcpts, msg in self.messages:
                if rcpt in rcpts and subject_word in msg["Subject"]:
                    return msg
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {subject_word!r} mail for {rcpt}; got {[r for r, _ in self.messages]}")

    def count(self, rcpt: str) -> int:
        return sum(rcpt in rcpts for rcpts, _ in self.messages)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=True)
    controller.start()
    box.port = controller.port
    yield box
    controller.stop()


@pytest.fixture
async def client(aiohttp_client, settings, mailbox):
    s = dataclasses.replace(
        settings, smtp_url=f"smtp://127.0.0.1:{mailbox.port}", mail_from="StreamFlix <tv@example.com>"
    )
    return await aiohttp_client(create_app(s))


def link_of(msg: EmailMessage) -> tuple[str, str, str]:
    body = msg.get_content()
    m = LINK.search(body)
    assert m, body
    return m.group(1), m.group(2), unquote(m.group(3))


async def test_register_sends_verification(client, mailbox):
    user = await register(client)
    msg = await mailbox.wait_for(user["email"], "Confirm")
    assert msg["From"] == "StreamFlix <tv@example.com>" and msg["To"] == user["email"]
    base, kind, token = link_of(msg)
    assert kind == "verify-email" and base == str(client.make_url("")).rstrip("/")
    r = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert r.status == 200 and (await r.json()) == {"email_verified": True}
    tokens = await login(client, user["email"])
    me = await (await client.get("/api/v1/me", headers=bearer(tokens["access_token"]))).json()
    assert me["email_verified"] is True
    # Single use.
    r = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert r.status == 400 and await error_code(r) == "invalid_email_token"


async def test_verification_request_resends(client, mailbox):
    user = await register(client)
    first = await mailbox.wait_for(user["email"], "Confirm")
    tokens = await login(client, user["email"])
    assert (await client.post("/api/v1/auth/verify-email/request")).status == 401
    r = await client.post("/api/v1/auth/verify-email/request", headers=bearer(tokens["access_token"]))
    assert r.status == 202
    for _ in range(200):
        if mailbox.count(user["email"]) == 2:
            break
        await asyncio.sleep(0.02)
    second = [m for rcpts, m in mailbox.messages if user["email"] in rcpts][-1]
    # Only the newest link works.
    r = await client.post("/api/v1/auth/verify-email", json={"token": link_of(first)[2]})
    assert r.status == 400
    r = await client.post("/api/v1/auth/verify-email", json={"token": link_of(second)[2]})
    assert r.status == 200


async def test_password_reset(client, mailbox):
    user = await register(client)
    a = await login(client, user["email"])
    b = await login(client, user["email"])
    r = await client.post("/api/v1/auth/password-reset/request", json={"email": user["email"]})
    assert r.status == 202
    _, kind, token = link_of(await mailbox.wait_for(user["email"], "Reset"))
    assert kind == "reset-password"
    r = await client.post("/api/v1/auth/password-reset", json={"token": token, "password": "short"})
    assert r.status == 400
    r = await client.post("/api/v1/auth/password-reset", json={"token": token, "password": "brand new password"})
    assert r.status == 204
    # Every session is revoked: access and refresh tokens alike.
    for s in (a, b):
        assert (await client.get("/api/v1/me", headers=bearer(s["access_token"]))).status == 401
        r = await client.post("/api/v1/auth/refresh", json={"refresh_token": s["refresh_token"]})
        assert r.status == 401
    r = await client.post("/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert r.status == 401
    await login(client, user["email"], "brand new password")
    # A used reset link does nothing.
    r = await client.post("/api/v1/auth/password-reset", json={"token": token, "password": "attacker password"})
    assert r.status == 400 and await error_code(r) == "invalid_email_token"
    await login(client, user["email"], "brand new password")


async def test_used_reset_link_is_refused(client, mailbox):
    """A reset link works once: replayed (a mail read later, a link in browser history), it
    changes nothing and signs no one out."""
    user = await register(client)
    await client.post("/api/v1/auth/password-reset/request", json={"email": user["email"]})
    _, _, token = link_of(await mailbox.wait_for(user["email"], "Reset"))
    r = await client.post("/api/v1/auth/password-reset", json={"token": token, "password": "first new password"})
    assert r.status == 204
    session = await login(client, user["email"], "first new password")
    r = await client.post("/api/v1/auth/password-reset", json={"token": token, "password": "attacker password"})
    assert r.status == 400 and await error_code(r) == "invalid_email_token"
    await login(client, user["email"], "first new password")
    r = await client.post("/api/v1/auth/login", json={"email": user["email"], "password": "attacker password"})
    assert r.status == 401
    assert (await client.get("/api/v1/me", headers=bearer(session["access_token"]))).status == 200


async def test_reset_request_is_the_same_for_unknown_addresses(client, mailbox):
    user = await register(client)
    await mailbox.wait_for(user["email"], "Confirm")
    nobody = unique_email("nobody")
    r1 = await client.post("/api/v1/auth/password-reset/request", json={"email": user["email"]})
    r2 = await client.post("/api/v1/auth/password-reset/request", json={"email": nobody})
    assert r1.status == r2.status == 202 and await r1.json() == await r2.json()
    await mailbox.wait_for(user["email"], "Reset")
    await asyncio.sleep(0.2)
    assert mailbox.count(nobody) == 0


async def test_reset_mail_goes_to_the_stored_address(client, mailbox):
    t = secrets.token_hex(4)
    stored = f"straße-{t}@example.de"
    await register(client, stored)
    r = await client.post("/api/v1/auth/password-reset/request", json={"email": f"STRASSE-{t}@EXAMPLE.DE"})
    assert r.status == 202
    msg = await mailbox.wait_for(stored, "Reset")
    assert str(msg["To"]) == stored
    assert mailbox.count(f"STRASSE-{t}@EXAMPLE.DE") == 0


async def test_only_newest_reset_link_works(client, mailbox):
    user = await register(client)
    for _ in range(2):
        await client.post("/api/v1/auth/password-reset/request", json={"email": user["email"]})
        await asyncio.sleep(0.3)
    resets = [m for rcpts, m in mailbox.messages if user["email"] in rcpts and "Reset" in m["Subject"]]
    assert len(resets) == 2
    r = await client.post("/api/v1/auth/password-reset", json={"token": link_of(resets[0])[2], "password": "x" * 12})
    assert r.status == 400
    r = await client.post("/api/v1/auth/password-reset", json={"token": link_of(resets[1])[2], "password": "x" * 12})
    assert r.status == 204


async def test_expired_reset_link(client, mailbox, pg):
    user = await register(client)
    await client.post("/api/v1/auth/password-reset/request", json={"email": user["email"]})
    _, _, token = link_of(await mailbox.wait_for(user["email"], "Reset"))
    await pg.execute(
        "UPDATE auth.email_tokens SET expires_at = now() - interval '1 second' WHERE user_id = $1::uuid", user["id"]
    )
    r = await client.post("/api/v1/auth/password-reset", json={"token": token, "password": "brand new password"})
    assert r.status == 400 and await error_code(r) == "invalid_email_token"


async def test_expired_verification_link(client, mailbox, pg):
    user = await register(client)
    _, _, token = link_of(await mailbox.wait_for(user["email"], "Confirm"))
    expires = await pg.fetchval(
        "SELECT expires_at - created_at FROM auth.email_tokens WHERE user_id = $1::uuid AND purpose = 'verify_email'",
        user["id"],
    )
    assert expires.total_seconds() == 48 * 3600
    await pg.execute(
        "UPDATE auth.email_tokens SET expires_at = now() - interval '1 second' WHERE user_id = $1::uuid", user["id"]
    )
    r = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert r.status == 400 and await error_code(r) == "invalid_email_token"
    tokens = await login(client, user["email"])
    me = await (await client.get("/api/v1/me", headers=bearer(tokens["access_token"]))).json()
    assert me["email_verified"] is False


async def test_forged_host_header_does_not_reach_the_link(client, mailbox):
    """Password-reset poisoning: the link must not point at a Host the client chose."""
    user = await register(client)
    r = await client.post(
        "/api/v1/auth/password-reset/request", json={"email": user["email"]}, headers={"Host": "evil.example"}
    )
    assert r.status == 202
    base, _, _ = link_of(await mailbox.wait_for(user["email"], "Reset"))
    assert "evil.example" not in base


async def test_public_url_is_used(aiohttp_client, settings, mailbox):
    s = dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{mailbox.port}", public_url="https://tv.example.com/")
    client = await aiohttp_client(create_app(s))
    user = await register(client)
    base, _, _ = link_of(await mailbox.wait_for(user["email"], "Confirm"))
    assert base == "https://tv.example.com"


async def test_tokens_stored_hashed(client, mailbox, pg):
    user = await register(client)
    _, _, token = link_of(await mailbox.wait_for(user["email"], "Confirm"))
    rows = await pg.fetch("SELECT token_hash FROM auth.email_tokens WHERE user_id = $1::uuid", user["id"])
    assert rows and all(token.encode() not in bytes(r["token_hash"]) for r in rows)
    assert (
        await pg.fetchval("SELECT count(*) FROM auth.email_tokens WHERE token_hash = sha256($1::text::bytea)", token)
        == 1
    )


async def test_log_mailer_when_smtp_unset(app_client, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="streamflix.mail")
    user = await register(app_client)
    for _ in range(100):
        if any(user["email"] in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.02)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert user["email"] in text and "/#/verify-email?token=" in text
