"""The notifications bell in a real Chromium: a title the viewer favorited becomes ready on
the server, the bell's count goes up live over the socket, the list shows the title as text
(never HTML), and "Mark all read" clears the count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.browser.conftest import LiveServer, sign_in

pytestmark = pytest.mark.browser

XSS_TITLE = '<img src=x onerror=alert("bell")>'


def test_bell_counts_live_and_lists_as_text(live_server: LiveServer, new_context: Any, screenshot_dir: Path) -> None:
    account = live_server.register_and_login()
    title = live_server.create_title(kind="movie", title=XSS_TITLE, status="ready")
    status, _ = live_server.api("PUT", f"/me/favorites/{title['id']}", token=account["access_token"])
    assert status in (200, 201, 204)
    _ctx, page, watch = new_context()
    sign_in(page, live_server.url, account)
    page.wait_for_selector(".bell-slot[data-live='yes']", timeout=10_000)
    assert page.locator("#bell-count").is_hidden()

    async def new_version() -> None:
        from catalog import status as title_status

        conn = await asyncpg.connect(live_server.settings.database_url)
        try:
            await title_status.publish_ready(conn, title["id"], "v-bell", duration_s=10)
        finally:
            await conn.close()

    async def forget() -> None:
        """The title is ready on a version with no media: the other pages' tests, which share
        this server's catalog, must not list it (its poster would be a 404)."""
        from catalog import titles

        conn = await asyncpg.connect(live_server.settings.database_url)
        try:
            await titles.delete_title_tree(conn, title["id"])
        finally:
            await conn.close()

    try:
        live_server.call(new_version())
        _see_it_and_read_it(page, screenshot_dir)
    finally:
        live_server.call(forget())
    watch.assert_clean()


def _see_it_and_read_it(page: Any, screenshot_dir: Path) -> None:
    count = page.locator("#bell-count")
    count.wait_for(state="visible", timeout=10_000)
    assert count.inner_text() == "1"
    page.locator("#bell").click()
    item = page.locator("#bell-list .bell-item").first
    item.wait_for()
    assert XSS_TITLE in item.inner_text()  # the characters, as text
    assert page.locator("#bell-list img").count() == 0
    page.screenshot(path=str(screenshot_dir / "notifications-bell-1440.png"))
    with page.expect_response(lambda r: r.url.endswith("/api/v1/me/notifications/read")):
        page.locator("#bell-read-all").click()
    count.wait_for(state="hidden", timeout=5_000)
    assert page.locator("#bell-list .unread").count() == 0
