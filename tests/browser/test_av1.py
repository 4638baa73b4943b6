"""AV1 beside H.264 in real players: hls.js, dash.js and Shaka in headless Chromium (which
decodes AV1) start on the AV1 rendition of a title ingested with `--av1`; told that AV1 is
not supported (MediaSource, canPlayType and MediaCapabilities all say no for av01, as on a
device without an AV1 decoder) they play the H.264 rendition of the same title instead."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

import pytest

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser

VIDEO = "document.getElementById('video')"

# Runs before any page script: every way a player asks about codecs answers "no" for AV1.
REFUSE_AV1 = """
(() => {
  const av1 = (type) => /av01/i.test(String(type));
  const isTypeSupported = MediaSource.isTypeSupported.bind(MediaSource);
  MediaSource.isTypeSupported = (type) => !av1(type) && isTypeSupported(type);
  const canPlayType = HTMLMediaElement.prototype.canPlayType;
  HTMLMediaElement.prototype.canPlayType = function (type) { return av1(type) ? '' : canPlayType.call(this, type); };
  const mc = navigator.mediaCapabilities;
  if (mc) {
    const decodingInfo = mc.decodingInfo.bind(mc);
    mc.decodingInfo = (config) => (config && config.video && av1(config.video.contentType))
      ? Promise.resolve({ supported: false, smooth: false, powerEfficient: false, configuration: config })
      : decodingInfo(config);
  }
})();
"""


@pytest.fixture
def av1_title(live_server: Any, clip_factory: Any) -> dict[str, Any]:
    """8 s at 640x360 with an AV1 copy of its one rung: v360 (H.264) and v360-av1."""
    clip = clip_factory(seconds=8, width=640, height=360)
    return live_server.ingest_ready(clip, title=f"AV1 {secrets.token_hex(3)}", av1_heights=(360,))


def _plays(page: Any, live_server: Any, engine: str, src: str) -> dict[str, Any]:
    page.goto(f"{live_server.url}/static/dev/player-check.html?engine={engine}&src={quote(src, safe='')}")
    page.wait_for_function("() => window.check && (check.ready || check.errors.length)")
    page.wait_for_function(f"() => {VIDEO}.currentTime > 1.5 || check.errors.length", timeout=30_000)
    return page.evaluate(
        f"""() => ({{time: {VIDEO}.currentTime, height: {VIDEO}.videoHeight, codec: check.videoCodec(),
                    errors: check.errors, error: {VIDEO}.error && {VIDEO}.error.code}})"""
    )


@pytest.mark.parametrize("engine", ["hls", "dash", "shaka"])
def test_players_pick_av1_and_fall_back_to_h264(
    engine: str, live_server: Any, av1_title: dict[str, Any], new_context: Any
) -> None:
    viewer = live_server.register_and_login()
    status, playback = live_server.api("POST", f"/titles/{av1_title['id']}/playback", token=viewer["access_token"])
    assert status == 200, playback
    src = playback["hls_url" if engine == "hls" else "dash_url"]

    _ctx, page, watch = new_context(width=960, height=540, service_workers="block")
    state = _plays(page, live_server, engine, src)
    assert state["errors"] == [] and state["error"] is None, state
    assert (state["codec"] or "").startswith("av01.0."), state
    assert state["height"] == 360, state
    assert any("/v360-av1/" in url for _status, url in watch.responses), watch.responses
    watch.assert_clean()

    _ctx, page, watch = new_context(width=960, height=540, service_workers="block")
    page.add_init_script(REFUSE_AV1)
    state = _plays(page, live_server, engine, src)
    assert state["errors"] == [] and state["error"] is None, state
    assert (state["codec"] or "").startswith("avc1."), state
    assert state["height"] == 360, state
    assert not any("/v360-av1/" in url for _status, url in watch.responses), watch.responses
    watch.assert_clean()


def test_the_app_player_names_the_av1_level(live_server: Any, av1_title: dict[str, Any], new_context: Any) -> None:
    """The app's quality menu tells the AV1 and H.264 renditions of one height apart, says
    which one plays, and switches between them."""
    viewer = live_server.register_and_login()
    _ctx, page, watch = new_context(width=1440)
    sign_in(page, live_server.url, viewer)
    page.goto(f"{live_server.url}/watch/{av1_title['id']}")
    page.wait_for_function("() => document.querySelectorAll('#quality option').length >= 3", timeout=20_000)
    labels = page.locator("#quality option").all_inner_texts()
    assert labels[0] == "Auto", labels
    assert sorted(lbl.split(" · ")[0] for lbl in labels[1:]) == ["360p", "360p AV1"], labels
    status = page.locator("#player-status")
    page.wait_for_function("() => document.getElementById('player-status').textContent.startsWith('Playing 360p AV1')")
    page.select_option("#quality", label=next(lbl for lbl in labels if lbl.startswith("360p ·")))
    page.wait_for_function("() => document.getElementById('player-status').textContent === 'Playing 360p'")
    page.wait_for_function(f"() => {VIDEO}.currentTime > 3", timeout=20_000)
    assert status.inner_text() == "Playing 360p"
    watch.assert_clean()
