"""Real players: hls.js, dash.js and Shaka Player (on the DASH URL) in headless chromium play a title from the origin
(token-bearing URLs from POST /playback), switch rendition with ABR off, seek, and keep going,
with no player error, no console error and no HTTP error on any request."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

import pytest

pytestmark = pytest.mark.browser

VIDEO = "document.getElementById('video')"


@pytest.fixture
def ladder_title(live_server: Any, clip_factory: Any) -> dict[str, Any]:
    """12 s at 854x480: a two-rung ladder (480p and 360p), three 4 s segments per rung."""
    clip = clip_factory(seconds=12, width=854, height=480)
    return live_server.ingest_ready(
        clip, title=f"Ladder {secrets.token_hex(3)}", year=2024, genres=["test"], description="Two rungs."
    )


@pytest.mark.parametrize("engine", ["hls", "dash", "shaka"])
def test_player_plays_switches_rendition_and_seeks(
    engine: str, live_server: Any, ladder_title: dict[str, Any], new_context: Any
) -> None:
    viewer = live_server.register_and_login()
    status, playback = live_server.api("POST", f"/titles/{ladder_title['id']}/playback", token=viewer["access_token"])
    assert status == 200, playback
    src = playback["hls_url" if engine == "hls" else "dash_url"]

    _ctx, page, watch = new_context(width=1280, height=720, service_workers="block")
    page.goto(f"{live_server.url}/static/dev/player-check.html?engine={engine}&src={quote(src, safe='')}")
    page.wait_for_function("() => window.check && (check.ready || check.errors.length)")
    assert page.evaluate("check.errors") == []
    levels = page.evaluate("check.levels")
    assert len(levels) >= 2, levels

    # 1. it starts and advances
    page.wait_for_function(f"() => {VIDEO}.currentTime > 1 || check.errors.length", timeout=20_000)
    assert page.evaluate("check.errors") == []
    t1 = page.evaluate(f"{VIDEO}.currentTime")

    # 2. a forced switch (ABR off) to a rendition other than the one showing
    showing = page.evaluate(f"{VIDEO}.videoHeight")
    target = next(lvl for lvl in sorted(levels, key=lambda lvl: lvl["height"]) if lvl["height"] != showing)
    page.evaluate(f"check.setLevel({target['index']})")
    page.wait_for_function(
        f"() => (check.renderedHeight === {target['height']} && {VIDEO}.videoHeight === {target['height']})"
        " || check.errors.length",
        timeout=20_000,
    )
    assert page.evaluate("check.errors") == []
    assert page.evaluate(f"{VIDEO}.currentTime") > t1

    # 3. a seek forward, then playback carries on from there
    page.evaluate(f"{VIDEO}.currentTime = 6")
    page.wait_for_function(
        f"() => ({VIDEO}.currentTime >= 10 && !{VIDEO}.seeking) || check.errors.length", timeout=25_000
    )
    state = page.evaluate(
        f"""() => {{
            const v = {VIDEO};
            let played = 0;
            for (let i = 0; i < v.played.length; i++) played += v.played.end(i) - v.played.start(i);
            return {{time: v.currentTime, played, height: v.videoHeight, error: v.error && v.error.code,
                     errors: check.errors, switches: check.switches}};
        }}"""
    )
    assert state["errors"] == [] and state["error"] is None, state
    assert state["played"] >= 5, state  # at least 5 s of media actually played
    assert state["height"] == target["height"], state  # the forced rendition stayed

    # every request (playlists/MPD, init and media segments, the page, the libraries) < 400
    stream_hits = [url for status, url in watch.responses if "/stream/" in url]
    assert any(".m4s" in u or "seg" in u for u in stream_hits), stream_hits
    watch.assert_clean()
