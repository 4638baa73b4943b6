"""The viewer's journey in a real browser: register, sign in, search with a typo and
pick the suggestion, watch 5 s, leave, come back and resume near where it stopped; a
favourite that survives reloads; and not one console error, failed request or HTTP error."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

VIDEO = "document.getElementById('video')"


@pytest.fixture
def harbour(live_server: Any, clip_factory: Any) -> dict[str, Any]:
    clip = clip_factory(seconds=30, width=640, height=360)
    return live_server.ingest_ready(
        clip,
        title=f"Midnight Harbour {secrets.token_hex(2)}",
        year=2023,
        genres=["Drama", "Mystery"],
        description="A lighthouse keeper finds a boat that is not on any chart.",
    )


def shot(page: Any, directory: Path, name: str) -> None:
    page.screenshot(path=str(directory / f"{name}-{page.viewport_size['width']}.png"), full_page=True)


def test_register_search_watch_resume_and_favorite(
    live_server: Any, harbour: dict[str, Any], new_context: Any, screenshot_dir: Path
) -> None:
    base = live_server.url
    email = f"journey-{secrets.token_hex(4)}@example.com"
    password = "a long enough pass phrase"
    _ctx, page, watch = new_context(width=1440, height=900)

    # -- register, then sign in --------------------------------------------------------
    page.goto(base + "/")
    page.get_by_role("link", name="Register").click()
    page.wait_for_url("**/register")
    page.fill("#display_name", "Journey Tester")
    page.fill("#email", email)
    page.fill("#password", password)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/login?**")
    assert page.locator("#email").input_value() == email
    page.fill("#password", password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")
    page.get_by_role("link", name="Journey Tester").wait_for()

    # -- search with a typo, pick the suggestion ----------------------------------------
    suggest_calls: list[str] = []
    page.on("request", lambda r: suggest_calls.append(r.url) if "/api/v1/search/suggest" in r.url else None)
    box = page.locator("#search-input")
    box.click()
    box.press_sequentially("midnigt harbur", delay=60)  # keystrokes: the debounce runs
    option = page.get_by_role("option", name=harbour["title"])
    option.wait_for()
    # debounced: 14 keystrokes 60 ms apart ask for suggestions once or twice, not per key
    assert 1 <= len(suggest_calls) <= 4, suggest_calls
    assert "harbur" in suggest_calls[-1], suggest_calls
    option.click()
    page.wait_for_url(f"**/title/{harbour['id']}")
    page.get_by_role("heading", name=harbour["title"], exact=True).wait_for()

    # -- play for at least 5 s ----------------------------------------------------------
    page.locator("#play").click()
    page.wait_for_url(f"**/watch/{harbour['id']}")
    page.evaluate(f"() => {{ const v = {VIDEO}; if (v) v.muted = true; }}")
    page.wait_for_function(f"() => {VIDEO} && {VIDEO}.currentTime >= 6", timeout=30_000)
    # -- leave (inside the app): the player reports where it stopped ---------------------
    with page.expect_response(lambda r: "/api/v1/me/history/" in r.url and r.request.method == "PUT") as put:
        stopped_at = page.evaluate(f"() => {VIDEO}.currentTime")
        page.get_by_role("link", name="Home", exact=True).click()
    assert put.value.status == 204
    page.wait_for_url(base + "/")
    # the home page now offers it under "Continue watching"
    page.locator('section[data-row="continue"] .card-title', has_text=harbour["title"]).wait_for()

    # -- come back: the player resumes within 10 s of where it stopped --------------------
    page.goto(f"{base}/title/{harbour['id']}")
    play = page.locator("#play")
    play.wait_for()
    assert "Resume" in play.inner_text()
    play.click()
    page.wait_for_function(f"() => {VIDEO} && !{VIDEO}.paused && {VIDEO}.currentTime > 0", timeout=30_000)
    resumed_at = page.evaluate(f"() => {VIDEO}.currentTime")
    assert abs(resumed_at - stopped_at) <= 10, (stopped_at, resumed_at)
    assert resumed_at >= stopped_at - 10 and resumed_at > 3, (stopped_at, resumed_at)

    # -- favourites survive reloads -----------------------------------------------------
    page.goto(f"{base}/title/{harbour['id']}")
    fav = page.locator("#favorite-toggle")
    assert fav.get_attribute("aria-pressed") == "false"
    with page.expect_response(lambda r: "/api/v1/me/favorites/" in r.url and r.request.method == "PUT"):
        fav.click()
    page.wait_for_function("() => document.querySelector('#favorite-toggle').getAttribute('aria-pressed') === 'true'")
    page.reload()
    page.locator("#favorite-toggle[aria-pressed='true']").wait_for()
    page.get_by_role("link", name="My list").click()
    page.wait_for_url("**/favorites")
    page.get_by_role("link", name=harbour["title"]).wait_for()
    page.reload()
    page.get_by_role("link", name=harbour["title"]).wait_for()

    # -- sign out: the session ends on the server too ------------------------------------
    tokens = json.loads(page.evaluate("() => localStorage.getItem('streamflix.auth')"))
    with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/logout")) as out:
        page.locator("#sign-out").click()
    assert out.value.status in (200, 204)
    page.wait_for_url(base + "/")
    page.get_by_text("You are signed out.").wait_for()
    page.get_by_role("link", name="Sign in").first.wait_for()
    assert page.evaluate("() => localStorage.getItem('streamflix.auth')") is None
    assert live_server.api("GET", "/me", token=tokens["access_token"])[0] == 401
    status, _ = live_server.api("POST", "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert status in (400, 401)

    watch.assert_clean()
