"""The player's history reports (every ~10 s while playing, on pause, and when the tab goes
away) and the service worker's cache (the shell only, never API answers or media)."""

from __future__ import annotations

import itertools
import json
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser

VIDEO = "document.getElementById('video')"


@pytest.fixture
def long_title(live_server: Any, clip_factory: Any) -> dict[str, Any]:
    clip = clip_factory(seconds=30, width=640, height=360)
    return live_server.ingest_ready(clip, title=f"Long Walk {secrets.token_hex(2)}", year=2020, genres=["Drama"])


def test_position_reported_every_10s_on_pause_and_on_pagehide(
    live_server: Any, long_title: dict[str, Any], new_context: Any
) -> None:
    account = live_server.register_and_login()
    _ctx, page, watch = new_context()
    sign_in(page, live_server.url, account)
    reports: list[tuple[float, float]] = []  # (monotonic time, position_s)

    def on_request(req: Any) -> None:
        if req.method == "PUT" and "/api/v1/me/history/" in req.url:
            reports.append((time.monotonic(), json.loads(req.post_data)["position_s"]))

    page.on("request", on_request)
    page.goto(f"{live_server.url}/watch/{long_title['id']}")
    page.evaluate(f"() => {{ const v = {VIDEO}; if (v) v.muted = true; }}")
    page.wait_for_function(f"() => {VIDEO} && {VIDEO}.currentTime >= 12", timeout=40_000)
    # one report as playback starts, the next ~10 s later (never one per timeupdate)
    playing = list(reports)
    assert len(playing) >= 2, playing
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(playing)]
    assert all(8.5 <= g <= 13 for g in gaps), playing
    assert playing[0][1] < 3 and playing[1][1] >= 7, playing

    # pause: reported at once, at the paused position
    before = len(reports)
    page.evaluate(f"() => {VIDEO}.pause()")
    paused_at = page.evaluate(f"() => {VIDEO}.currentTime")
    deadline = time.monotonic() + 2
    while len(reports) == before and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert len(reports) == before + 1 and abs(reports[-1][1] - paused_at) < 0.5, (reports, paused_at)

    # the tab goes away mid-play: the pagehide report (fetch keepalive) still lands
    page.evaluate(f"() => {VIDEO}.play()")
    page.wait_for_function(f"t => {VIDEO}.currentTime >= t + 2", arg=paused_at, timeout=15_000)
    tokens = json.loads(page.evaluate("() => localStorage.getItem('streamflix.auth')"))
    left_at = page.evaluate(f"() => {VIDEO}.currentTime")
    page.evaluate("() => { location.href = '/healthz'; }")  # the tab leaves the app
    page.wait_for_url("**/healthz")
    position = None
    deadline = time.monotonic() + 15  # a loaded machine may take a while to deliver it
    while time.monotonic() < deadline:
        status, body = live_server.api("GET", "/me/history", token=tokens["access_token"])
        assert status == 200, body
        position = next(it["position_s"] for it in body["items"] if it["title"]["id"] == long_title["id"])
        if position >= left_at - 0.5:
            break
        time.sleep(0.2)
    assert position is not None and abs(position - left_at) < 1.5, (
        position,
        left_at,
        reports[-3:],
        watch.bad_responses,
        watch.failed_requests,
    )
    watch.assert_clean()


def test_service_worker_caches_the_shell_only(live_server: Any, long_title: dict[str, Any], new_context: Any) -> None:
    base = live_server.url
    account = live_server.register_and_login()
    _ctx, page, watch = new_context()
    page.goto(base + "/")
    page.wait_for_function("() => navigator.serviceWorker.ready.then(() => true)")
    page.reload()  # now the worker controls the page and sees its requests
    page.wait_for_function("() => !!navigator.serviceWorker.controller")
    sign_in(page, base, account)
    page.goto(f"{base}/title/{long_title['id']}")
    page.locator("#play").click()
    page.wait_for_function(f"() => {VIDEO} && {VIDEO}.currentTime >= 1", timeout=30_000)
    page.goto(base + "/favorites")
    page.get_by_role("heading", name="My list").wait_for()
    page.goto(base + "/profile")
    page.locator("#sessions tbody tr").first.wait_for()
    page.goto(base + "/healthz")  # a navigation whose JSON must not replace the cached shell
    page.wait_for_timeout(500)  # cache.put runs after the response
    cached = page.evaluate(
        """async () => {
            const out = [];
            for (const name of await caches.keys()) {
                const cache = await caches.open(name);
                for (const req of await cache.keys()) {
                    const res = await cache.match(req);
                    out.push([req.url, res.headers.get('Content-Type') || '']);
                }
            }
            return out;
        }"""
    )
    paths = {urlsplit(url).path: ctype for url, ctype in cached}
    assert "/" in paths and paths["/"].startswith("text/html"), cached
    assert "/static/js/app.js" in paths, cached
    leaked = [
        p for p in paths if p.startswith(("/api/", "/stream/", "/vendor/")) or p in ("/healthz", "/title", "/favorites")
    ]
    assert leaked == [], cached
    assert all(p == "/" or p.startswith("/static/") or p == "/manifest.webmanifest" for p in paths), cached
    watch.assert_clean()
