"""Webhooks end to end: real receivers (aiohttp servers on 127.0.0.1), the real app's sender,
a title uploaded through the API (tus) and a real worker for `title.ready`; signatures checked by the snippet in
docs/webhooks.md itself; the SSRF guard at registration and at connection."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
import secrets
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from auth.users import create_user
from catalog import webhooks
from media.errors import OutboundRefused
from server.app import create_app
from server.settings import Settings
from tests.support import run_worker_on
from transcoder.outbound import guarded_session

PASSWORD = "correct horse battery"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def documented_verifier() -> Any:
    """The verification snippet of docs/webhooks.md, run as written."""
    text = DOCS.read_text()
    section = text.split("## Verifying a delivery", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "docs/webhooks.md lost its verification snippet"
    scope: dict[str, Any] = {}
    exec(code.group(1), scope)
    return scope["verify_streamflix_signature"]


class Receiver:
    """A webhook receiver: records every delivery; answers `statuses` in turn (then 200)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.got: list[tuple[dict[str, str], bytes, float]] = []
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.server = TestServer(app, host="127.0.0.1")

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read(), time.monotonic()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200, text="thanks")

    @property
    def url(self) -> str:
        return str(self.server.make_url("/hook"))

    def events(self, title_id: str, event: str) -> list[tuple[dict[str, str], bytes, float]]:
        return [g for g in self.got if g[0].get("StreamFlix-Event") == event and title_id.encode() in g[1]]


async def wait_for(cond: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, outbound_allow_private=True, webhook_retry_base_s=1.0, webhook_poll_s=0.1)


@pytest.fixture
async def admin_headers(pg: asyncpg.Connection) -> Any:
    email = f"hooks-{secrets.token_hex(4)}@example.com"
    await create_user(pg, email=email, password=PASSWORD, role="admin")

    async def login(client: Any) -> dict[str, str]:
        r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status == 200, await r.text()
        return {"Authorization": f"Bearer {(await r.json())['access_token']}"}

    return login


@pytest.fixture
async def registered(pg: asyncpg.Connection) -> Any:
    """Endpoints made by a test are removed after it (the database is shared by the session)."""
    made: list[str] = []
    yield made
    for wid in made:
        await pg.execute("UPDATE catalog.webhooks SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL", wid)
        await pg.execute("UPDATE catalog.webhook_deliveries SET status = 'failed' WHERE webhook_id = $1", wid)


async def register(client: Any, headers: dict[str, str], url: str, events: list[str], made: list[str]) -> dict:
    r = await client.post("/api/v1/admin/webhooks", json={"url": url, "events": events}, headers=headers)
    assert r.status == 201, await r.text()
    hook = await r.json()
    made.append(hook["id"])
    assert hook["secret"].startswith("whsec_") and r.headers["Cache-Control"] == "no-store"
    return hook


async def test_title_ready_is_delivered_signed_and_retried(
    aiohttp_client: Any,
    hook_settings: Settings,
    admin_headers: Any,
    registered: list[str],
    clip_factory: Any,
) -> None:
    verify = documented_verifier()
    ok, flaky = Receiver(), Receiver(500)
    await ok.server.start_server()
    await flaky.server.start_server()
    try:
        client = await aiohttp_client(create_app(hook_settings))
        headers = await admin_headers(client)
        events = ["title.created", "title.ready"]
        hook_ok = await register(client, headers, ok.url, events, registered)
        hook_flaky = await register(client, headers, flaky.url, ["title.ready"], registered)

        # the title is uploaded through the API (tus), then a real worker transcodes it
        clip = clip_factory(seconds=2, width=320, height=180)
        data = clip.read_bytes()
        name = f"Hooked {secrets.token_hex(3)}"
        tus = {"Tus-Resumable": "1.0.0", **headers}
        meta = "title " + base64.b64encode(name.encode()).decode() + ",filename " + base64.b64encode(b"c.mp4").decode()
        r = await client.post(
            "/api/v1/uploads/tus",
            data=data,
            headers={
                **tus,
                "Upload-Length": str(len(data)),
                "Upload-Metadata": meta,
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert r.status == 201 and r.headers["Upload-Offset"] == str(len(data)), await r.text()
        upload_id = r.headers["Location"].rsplit("/", 1)[1]
        uploaded = await (await client.get(f"/api/v1/uploads/{upload_id}/status", headers=headers)).json()
        title = await run_worker_on(hook_settings, uploaded["title_id"])
        assert title.status == "ready", title.failure_reason
        assert title.title == name

        (created,) = await wait_for(lambda: ok.events(title.id, "title.created"), 15, "title.created")
        (ready,) = await wait_for(lambda: ok.events(title.id, "title.ready"), 15, "title.ready at the first receiver")
        got_headers, body, _ = ready
        assert verify(hook_ok["secret"], got_headers["StreamFlix-Signature"], body)
        assert not verify(hook_flaky["secret"], got_headers["StreamFlix-Signature"], body)  # another key
        payload = __import__("json").loads(body)
        assert payload["type"] == "title.ready" and payload["id"] == got_headers["StreamFlix-Webhook-Id"]
        assert payload["data"]["title_id"] == title.id and payload["data"]["version"] == title.current_version
        assert created[0]["StreamFlix-Webhook-Id"] != got_headers["StreamFlix-Webhook-Id"]

        # forged and replayed deliveries are refused by the documented check
        assert not verify(hook_ok["secret"], got_headers["StreamFlix-Signature"], body.replace(b"ready", b"reddy"))
        old = int(time.time()) - 3600
        replay = webhooks.signature(hook_ok["secret"], old, body)
        assert not verify(hook_ok["secret"], replay, body)
        assert not verify(hook_ok["secret"], "t=abc,v1=00", body) and not verify(hook_ok["secret"], "", body)

        # the 500 is retried after the retry delay, with the same idempotency id
        first, second = await wait_for(
            lambda: (lambda e: e if len(e) >= 2 else None)(flaky.events(title.id, "title.ready")), 20, "a retry"
        )
        assert first[0]["StreamFlix-Webhook-Id"] == second[0]["StreamFlix-Webhook-Id"]
        assert second[2] - first[2] >= 0.9  # webhook_retry_base_s = 1
        assert verify(hook_flaky["secret"], second[0]["StreamFlix-Signature"], second[1])

        # the delivery log says so
        r = await client.get(f"/api/v1/admin/webhooks/{hook_flaky['id']}/deliveries", headers=headers)
        assert r.status == 200
        (logged,) = [d for d in (await r.json())["items"] if d["payload"]["data"]["title_id"] == title.id]
        assert (logged["status"], logged["attempts"], logged["last_status"]) == ("delivered", 2, 200)
        assert logged["event_id"] == first[0]["StreamFlix-Webhook-Id"]

        # resend: delivered again, same id
        r = await client.post(
            f"/api/v1/admin/webhooks/{hook_flaky['id']}/deliveries/{logged['id']}/resend", headers=headers
        )
        assert r.status == 202, await r.text()
        await wait_for(lambda: len(flaky.events(title.id, "title.ready")) >= 3, 10, "the resend")
        assert flaky.events(title.id, "title.ready")[2][0]["StreamFlix-Webhook-Id"] == logged["event_id"]
        r = await client.post(
            f"/api/v1/admin/webhooks/{hook_ok['id']}/deliveries/{logged['id']}/resend", headers=headers
        )
        assert r.status == 404  # that delivery is not this endpoint's
        r = await client.post(f"/api/v1/admin/webhooks/{hook_ok['id']}/deliveries/x1/resend", headers=headers)
        assert r.status == 404
    finally:
        await ok.server.close()
        await flaky.server.close()


@pytest.mark.parametrize(
    ("url", "code"),
    [
        pytest.param("http://127.0.0.1:9/hook", "url_not_allowed", id="loopback"),
        pytest.param("http://169.254.169.254/latest/meta-data/", "url_not_allowed", id="metadata"),
        pytest.param("http://[::1]/hook", "url_not_allowed", id="ipv6-loopback"),
        pytest.param("http://[::ffff:10.0.0.1]/hook", "url_not_allowed", id="mapped-private"),
        pytest.param("http://10.1.2.3/hook", "url_not_allowed", id="private"),
        pytest.param("http://localhost:8080/hook", "url_not_allowed", id="localhost-name"),
        pytest.param("ftp://example.com/hook", "url_not_allowed", id="ftp"),
        pytest.param("http://user:pw@example.com/hook", "url_not_allowed", id="credentials"),
        pytest.param("http:///hook", "url_not_allowed", id="no-host"),
        pytest.param("http://no-such-host.invalid/hook", "url_not_allowed", id="unresolvable"),
    ],
)
async def test_registration_refuses_urls_the_server_must_not_call(
    app_client: Any, admin_headers: Any, registered: list[str], url: str, code: str
) -> None:
    headers = await admin_headers(app_client)
    r = await app_client.post("/api/v1/admin/webhooks", json={"url": url, "events": ["title.ready"]}, headers=headers)
    assert r.status == 400, await r.text()
    assert (await r.json())["error"]["code"] == code


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"url": "https://example.com/h", "events": ["title.exploded"]}, id="unknown-event"),
        pytest.param({"url": "https://example.com/h", "events": []}, id="no-event"),
        pytest.param({"url": "https://example.com/h"}, id="no-events-field"),
        pytest.param({"url": 5, "events": ["title.ready"]}, id="url-not-a-string"),
    ],
)
async def test_bad_webhook_bodies_are_400(app_client: Any, admin_headers: Any, body: dict) -> None:
    headers = await admin_headers(app_client)
    r = await app_client.post("/api/v1/admin/webhooks", json=body, headers=headers)
    assert r.status == 400, await r.text()


async def test_only_a_person_admin_manages_webhooks(
    app_client: Any, admin_headers: Any, pg: asyncpg.Connection
) -> None:
    body = {"url": "https://example.com/h", "events": ["title.ready"]}
    assert (await app_client.post("/api/v1/admin/webhooks", json=body)).status == 401
    email = f"viewer-{secrets.token_hex(4)}@example.com"
    await create_user(pg, email=email, password=PASSWORD)
    r = await app_client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    viewer = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
    assert (await app_client.post("/api/v1/admin/webhooks", json=body, headers=viewer)).status == 403
    headers = await admin_headers(app_client)
    r = await app_client.post(
        "/api/v1/admin/api-keys", json={"name": "k", "scopes": ["read", "catalog:write"]}, headers=headers
    )
    key = {"Authorization": f"Bearer {(await r.json())['key']}"}
    assert (await app_client.post("/api/v1/admin/webhooks", json=body, headers=key)).status == 403
    assert (await app_client.get("/api/v1/admin/webhooks", headers=key)).status == 403
    r = await app_client.delete("/api/v1/admin/webhooks/00000000-0000-0000-0000-000000000000", headers=headers)
    assert r.status == 404 and (await r.json())["error"]["code"] == "webhook_not_found"
    r = await app_client.get("/api/v1/admin/webhooks/not-a-uuid/deliveries", headers=headers)
    assert r.status == 404


async def test_the_client_refuses_private_addresses_at_connection_time() -> None:
    """A URL checked once could resolve elsewhere later: the sender's own resolver refuses."""
    receiver = Receiver()
    await receiver.server.start_server()
    try:
        async with guarded_session(allow_private=False, timeout_s=5) as session:
            with pytest.raises(OutboundRefused, match="not a public address"):
                await session.post(receiver.url, data=b"{}")  # an IP literal
            with pytest.raises(OutboundRefused, match="resolves to .* not a public address"):
                await session.post(receiver.url.replace("127.0.0.1", "localhost"), data=b"{}")  # a name
        async with guarded_session(allow_private=True, timeout_s=5) as session:
            async with session.post(receiver.url, data=b"{}") as r:
                assert r.status == 200
        assert len(receiver.got) == 1
    finally:
        await receiver.server.close()


async def test_events_come_from_the_titles_table_in_the_same_transaction(pg: asyncpg.Connection) -> None:
    """The trigger: created, failed, deleted; nothing for a change that rolled back; a
    deleted endpoint gets nothing new."""
    hook, _secret = await webhooks.create_webhook(
        pg, "https://example.com/h", ["title.created", "title.failed", "title.deleted"]
    )
    try:
        name = f"Trigger {secrets.token_hex(3)}"
        tid = await pg.fetchval("INSERT INTO catalog.titles (kind, title) VALUES ('movie', $1) RETURNING id", name)
        await pg.execute("UPDATE catalog.titles SET status = 'failed', failure_reason = 'x' WHERE id = $1", tid)
        async with pg.transaction():
            await pg.execute("UPDATE catalog.titles SET status = 'processing' WHERE id = $1", tid)  # not subscribed
        try:
            async with pg.transaction():
                await pg.execute("DELETE FROM catalog.titles WHERE id = $1", tid)
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        events = [d.event for d in reversed(await webhooks.deliveries(pg, hook.id))]
        assert events == ["title.created", "title.failed"]
        await webhooks.delete_webhook(pg, hook.id)
        await pg.execute("DELETE FROM catalog.titles WHERE id = $1", tid)
        assert [d.event for d in reversed(await webhooks.deliveries(pg, hook.id))] == events
    finally:
        await pg.execute("UPDATE catalog.webhooks SET deleted_at = now() WHERE id = $1", hook.id)
        await pg.execute("UPDATE catalog.webhook_deliveries SET status = 'failed' WHERE webhook_id = $1", hook.id)


async def test_a_delivery_gives_up_after_its_day(pg: asyncpg.Connection) -> None:
    hook, _ = await webhooks.create_webhook(pg, "https://example.com/h", ["upload.completed"])
    try:
        await webhooks.emit(pg, "upload.completed", {"upload_id": "u1"})
        (d,) = await webhooks.deliveries(pg, hook.id)
        await pg.execute(
            "UPDATE catalog.webhook_deliveries SET give_up_at = now() + interval '5 seconds' WHERE id = $1", d.id
        )
        assert await webhooks.record_attempt(pg, d, ok=False, status=503, error="down", base_s=1) == "pending"
        (d,) = await webhooks.deliveries(pg, hook.id)
        assert await webhooks.record_attempt(pg, d, ok=False, status=503, error="down", base_s=60) == "failed"
        (d,) = await webhooks.deliveries(pg, hook.id)
        assert (d.status, d.attempts, d.last_status, d.last_error) == ("failed", 2, 503, "down")
    finally:
        await pg.execute("UPDATE catalog.webhooks SET deleted_at = now() WHERE id = $1", hook.id)
