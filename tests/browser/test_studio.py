"""The admin studio in Chromium: files picked on the upload panel go up over tus (resuming
after the network goes offline mid-upload and comes back), each with its own progress, and become titles in the
table; an API key and a webhook are made from the page, their secrets shown once."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from server.settings import Settings
from tests.browser.conftest import LiveServer, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def studio_server(web_settings: Settings) -> Iterator[LiveServer]:
    # the webhook form registers an endpoint on 127.0.0.1: allowed here
    server = LiveServer(dataclasses.replace(web_settings, outbound_allow_private=True)).start()
    try:
        yield server
    finally:
        server.stop()


def uploads_named(server: LiveServer, filename: str) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(server.settings.database_url)
        try:
            rows = await conn.fetch(
                "SELECT status, received, length, title_id FROM jobs.uploads WHERE metadata->>'filename' = $1", filename
            )
            return [dict(r) for r in rows]
        finally:
            await conn.close()

    return server.call(go())


def test_upload_keys_and_webhooks_from_the_admin_page(
    studio_server: LiveServer, new_context: Any, clip_factory: Any, tmp_path: Path
) -> None:
    base = studio_server.url
    admin = studio_server.create_admin()
    clip = clip_factory(seconds=2, width=320, height=180)
    big = tmp_path / f"big-{os.getpid()}-{os.urandom(3).hex()}.mp4"
    big.write_bytes(os.urandom(40 * 1024 * 1024))  # three 16 MiB requests
    ctx, page, watch = new_context()
    sign_in(page, base, admin)

    # the network goes away (Playwright's offline mode) as the second request with bytes
    # starts, and comes back 1.5 s later: tus-js-client asks the offset and goes on
    patches = {"n": 0, "offline": False}

    def cut(route: Any) -> None:
        if route.request.method == "PATCH":
            patches["n"] += 1
            if patches["n"] == 2:
                ctx.set_offline(True)
                patches["offline"] = True
        route.continue_()

    page.route("**/api/v1/uploads/tus/**", cut)
    page.goto(base + "/admin")
    page.locator("#drop-zone").wait_for()
    page.set_input_files("#upload-input", [str(clip), str(big)])
    rows = page.locator(".upload-row")
    assert rows.count() == 2
    rows.nth(0).locator("input[type=text]").fill("Dropped clip")
    rows.nth(1).locator("input[type=text]").fill("Big upload")
    rows.nth(0).get_by_role("button", name="Upload").click()
    rows.nth(1).get_by_role("button", name="Upload").click()
    for _ in range(600):
        if patches["offline"]:
            break
        page.wait_for_timeout(50)
    assert patches["offline"], "no second request was seen"
    page.wait_for_timeout(1500)
    ctx.set_offline(False)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.upload-row')].every((r) => r.dataset.state === 'done')"
        " || [...document.querySelectorAll('.upload-row')].some((r) => r.dataset.state === 'error')",
        timeout=60_000,
    )
    assert page.locator(".upload-row[data-state=done]").count() == 2, page.locator(".upload-row").all_inner_texts()
    assert patches["n"] >= 5  # 1 + 3 requests, and the one cut by the outage sent again

    # stored as sent, one upload per file (the retry resumed, it did not start over)
    (clip_up,) = uploads_named(studio_server, clip.name)
    (big_up,) = uploads_named(studio_server, big.name)
    assert clip_up["status"] == big_up["status"] == "completed"
    stored = Path(studio_server.settings.storage_url[len("file://") :])
    stored_big = next((stored / "sources" / str(big_up["title_id"])).glob("original*"))
    assert hashlib.sha256(stored_big.read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()

    # the titles appear in the table
    page.locator("#admin-titles", has_text="Big upload").wait_for()
    page.locator("#admin-titles", has_text="Dropped clip").wait_for()

    # an API key, shown once
    page.fill("#key-form input[name=name]", "uploader")
    page.check("#key-form input[value=upload]")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator(".secret-value").first
    secret.wait_for()
    assert secret.input_value().startswith("sfk_")
    page.locator("#api-keys", has_text="uploader").wait_for()

    # a webhook: its signing secret shown once; a bad URL is an error on the form
    page.fill("#hook-form input[name=url]", "http://127.0.0.1:9/hook")
    page.get_by_role("button", name="Add webhook").click()
    page.locator(".secret-value").nth(1).wait_for()
    assert page.locator(".secret-value").nth(1).input_value().startswith("whsec_")
    page.locator("#webhooks details", has_text="127.0.0.1:9/hook").wait_for()
    watch.allow_status = lambda status, url: status == 400 and url.endswith("/api/v1/admin/webhooks")
    page.fill("#hook-form input[name=url]", "ftp://127.0.0.1/hook")
    page.get_by_role("button", name="Add webhook").click()
    page.locator("#hook-form + .form-error", has_text="http").wait_for()

    # the requests the outage cut, and the refused webhook URL, all on purpose
    watch.failed_requests = [f for f in watch.failed_requests if "ERR_INTERNET_DISCONNECTED" not in f]
    watch.console_errors = [
        e
        for e in watch.console_errors
        if "ERR_INTERNET_DISCONNECTED" not in e and not ("status of 400" in e and "/api/v1/admin/webhooks" in e)
    ]
    watch.assert_clean()
