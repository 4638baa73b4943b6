"""Tokens in the browser: the access token is refreshed silently before it expires (no 401
ever reaches the viewer), and a session revoked from another device lands on the sign-in
page with a message."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import LiveServer, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def short_token_server(web_settings: Any) -> Iterator[LiveServer]:
    """Access tokens that live 6 s, so the client's refresh (1.5 s before expiry) runs soon."""
    server = LiveServer(dataclasses.replace(web_settings, access_token_ttl_s=6)).start()
    try:
        yield server
    finally:
        server.stop()


def stored_tokens(page: Any) -> dict[str, Any]:
    return json.loads(page.evaluate("() => localStorage.getItem('streamflix.auth')") or "null")


def test_access_token_refreshes_silently(short_token_server: LiveServer, new_context: Any) -> None:
    server = short_token_server
    account = server.register_and_login()
    _ctx, page, watch = new_context()
    sign_in(page, server.url, account)
    first = stored_tokens(page)
    assert first["expires_in"] == 6
    # two refreshes in a row: each new pair is itself scheduled for refresh
    for _ in range(2):
        with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/refresh"), timeout=15_000) as resp:
            pass
        assert resp.value.status == 200
    page.wait_for_timeout(500)
    later = stored_tokens(page)
    assert later["access_token"] != first["access_token"]
    assert later["refresh_token"] != first["refresh_token"]
    # well past the first token's expiry, signed-in pages still load without a 401
    page.get_by_role("link", name="My list").click()
    page.wait_for_url("**/favorites")
    page.get_by_role("heading", name="My list").wait_for()
    page.locator("#account-link").click()
    page.locator("#sessions tbody tr").first.wait_for()
    watch.assert_clean()


def test_revoked_session_lands_on_login(live_server: LiveServer, new_context: Any, screenshot_dir: Path) -> None:
    account = live_server.register_and_login()
    _ctx, page, watch = new_context()
    sign_in(page, live_server.url, account)
    page.get_by_role("link", name="My list").click()
    page.get_by_role("heading", name="My list").wait_for()

    # From another device: sign the browser's session out.
    other = live_server.login(account["email"], account["password"])
    status, body = live_server.api("GET", "/me/sessions", token=other["access_token"])
    assert status == 200, body
    browser_sessions = [s for s in body["items"] if not s["current"] and "Chrome" in s["user_agent"]]
    assert len(browser_sessions) == 1, body
    status, _ = live_server.api("DELETE", f"/me/sessions/{browser_sessions[0]['id']}", token=other["access_token"])
    assert status == 204

    page.locator("#account-link").click()  # the profile page asks the API: 401 session_revoked
    page.wait_for_url("**/login?reason=revoked*")
    page.get_by_text("Your session was signed out").wait_for()
    assert stored_tokens(page) is None
    assert page.locator("#flash").is_hidden(), "no stale 'Welcome back.' next to the message"
    page.get_by_role("link", name="Sign in").wait_for()  # the header shows signed out
    for width in (375, 1440):
        page.set_viewport_size({"width": width, "height": 800})
        page.screenshot(path=str(screenshot_dir / f"login-session-revoked-{width}.png"))
    # the only errors are the API's 401s that told the client the session was gone
    assert watch.page_errors == [] and watch.dialogs == []
    assert all(entry.startswith("401 ") for entry in watch.bad_responses), watch.bad_responses


def test_profile_signs_another_device_out(live_server: LiveServer, new_context: Any) -> None:
    """The profile lists every signed-in device; "Sign out device" ends that one session (its
    token stops working) and leaves this browser signed in."""
    account = live_server.register_and_login()  # the "other device": a script's session
    _ctx, page, watch = new_context(width=375, height=800)
    sign_in(page, live_server.url, account)
    page.locator("#account-link").click()
    rows = page.locator("#sessions tbody tr")
    rows.first.wait_for()
    assert rows.count() == 2
    other = page.locator("#sessions tbody tr:not(.current)")
    assert "this device" not in other.inner_text().lower()
    other.get_by_role("button", name="Sign out device").click()
    page.get_by_text("That device is signed out.").wait_for()
    assert rows.count() == 1 and "this device" in rows.first.inner_text().lower()
    status, body = live_server.api("GET", "/me", token=account["access_token"])
    assert status == 401, body
    page.reload()
    page.locator("#sessions tbody tr.current").wait_for()
    assert page.locator("#sessions tbody tr").count() == 1
    watch.assert_clean()
