"""Seek thumbnails in real players: Shaka Player and dash.js read the MPD's DASH-IF image
AdaptationSet and hand back a tile of a sprite sheet that loads; the web player shows the
thumbnail of the moment under the pointer on its seek bar (at desktop and phone width), and
of where the keyboard moved it."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

import pytest

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser

SECONDS = 8  # a thumbnail every 2 s: 4 tiles of 160x90 on one 800x450 sheet


@pytest.fixture
def thumbs_title(live_server: Any, clip_factory: Any) -> dict[str, Any]:
    clip = clip_factory(seconds=SECONDS, width=320, height=180)
    return live_server.ingest_ready(clip, title=f"Thumbs {secrets.token_hex(3)}", year=2024, genres=["test"])


LOADED = """async (url) => {
    const img = new Image();
    img.src = url;
    await img.decode();
    return {width: img.naturalWidth, height: img.naturalHeight};
}"""


@pytest.mark.parametrize("engine", ["shaka", "dash"])
def test_dash_players_give_a_thumbnail_that_loads(
    engine: str, live_server: Any, thumbs_title: dict[str, Any], new_context: Any
) -> None:
    viewer = live_server.register_and_login()
    status, playback = live_server.api("POST", f"/titles/{thumbs_title['id']}/playback", token=viewer["access_token"])
    assert status == 200, playback
    _ctx, page, watch = new_context(width=1280, height=720, service_workers="block")
    page.goto(
        f"{live_server.url}/static/dev/player-check.html?engine={engine}&src={quote(playback['dash_url'], safe='')}"
    )
    page.wait_for_function("() => window.check && (check.ready || check.errors.length)")
    assert page.evaluate("check.errors") == []
    for t, tile in ((0.5, 0), (5.0, 2), (7.9, 3)):
        thumb = page.evaluate(f"check.thumbnail({t})")
        assert thumb is not None, t
        assert f"/stream/{thumbs_title['id']}/{thumbs_title['version']}/th/1.jpg?token=" in thumb["url"]
        assert (thumb["x"], thumb["y"], thumb["width"], thumb["height"]) == (160 * tile, 0, 160, 90), (t, thumb)
        assert page.evaluate(LOADED, thumb["url"]) == {"width": 800, "height": 450}
    page.wait_for_function("() => document.getElementById('video').currentTime > 1 || check.errors.length")
    assert page.evaluate("check.errors") == []
    watch.assert_clean()


PREVIEW = """() => {
    const p = document.getElementById('seek-preview');
    const img = document.getElementById('seek-preview-image');
    const frame = img.parentElement.getBoundingClientRect();
    const bar = document.getElementById('seek').getBoundingClientRect();
    const box = p.getBoundingClientRect();
    return {shown: !p.hidden, time: Number(p.dataset.time), loaded: img.complete && img.naturalWidth,
            src: img.getAttribute('src'), transform: img.style.transform,
            frame: [Math.round(frame.width), Math.round(frame.height)],
            inside: box.left >= bar.left - 1 && box.right <= bar.right + 1, label: p.textContent};
}"""


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (375, 667)], ids=["desktop", "phone"])
def test_web_player_shows_the_thumbnail_under_the_pointer(
    width: int, height: int, live_server: Any, thumbs_title: dict[str, Any], new_context: Any
) -> None:
    account = live_server.register_and_login()
    _ctx, page, watch = new_context(width=width, height=height)
    sign_in(page, live_server.url, account)
    page.goto(f"{live_server.url}/watch/{thumbs_title['id']}")
    seek = page.locator("#seek")
    seek.wait_for()
    page.wait_for_function("() => Number(document.getElementById('seek').max) > 0")
    assert page.locator("#seek-preview").is_hidden()
    box = seek.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width

    # 5/8 along the bar is 5 s: the third thumbnail (4-6 s), at x=320 of the sheet
    page.mouse.move(box["x"] + box["width"] * 5 / SECONDS, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "() => { const i = document.getElementById('seek-preview-image'); return i.complete && i.naturalWidth > 0; }"
    )
    state = page.evaluate(PREVIEW)
    assert state["shown"] and state["loaded"] == 800, state
    assert abs(state["time"] - 5) < 0.2, state
    assert f"/stream/{thumbs_title['id']}/{thumbs_title['version']}/th/1.jpg?token=" in state["src"]
    assert state["transform"] == "translate(-320px, 0px)" and state["frame"] == [160, 90], state
    assert state["inside"], state  # never cut off, even at the bar's end on a phone
    assert "0:05" in state["label"]

    # the far end: the last thumbnail, still inside the bar
    page.mouse.move(box["x"] + box["width"] - 1, box["y"] + box["height"] / 2)
    state = page.evaluate(PREVIEW)
    assert state["transform"] == "translate(-480px, 0px)" and state["inside"], state

    # the pointer leaves: the preview goes
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] - 200)
    page.wait_for_function("() => document.getElementById('seek-preview').hidden")

    # keyboard: Tab to the bar, End seeks to the end and previews it
    seek.focus()
    page.keyboard.press("Home")
    page.keyboard.press("End")
    state = page.evaluate(PREVIEW)
    assert state["shown"] and state["transform"] == "translate(-480px, 0px)", state
    page.wait_for_function(f"() => document.getElementById('video').currentTime > {SECONDS - 1.5}")
    watch.assert_clean()


def test_shaka_pairs_each_hls_variant_with_its_iframe_playlist(
    live_server: Any, thumbs_title: dict[str, Any], new_context: Any
) -> None:
    """Shaka Player reads each EXT-X-I-FRAME-STREAM-INF as the trick-mode track of the variant
    of the same resolution and codec, and the I-frame entries leave normal playback alone.

    (Fast-forwarding on them is for native HLS players: over MediaSource, the key frame cut
    from a segment keeps a moof describing the whole segment, which Chrome refuses to append
    unless the player rebuilds the fragment; the vendored Shaka does not. ffprobe decodes
    each range in tests/server/test_origin_thumbnails.py.)"""
    viewer = live_server.register_and_login()
    status, playback = live_server.api("POST", f"/titles/{thumbs_title['id']}/playback", token=viewer["access_token"])
    assert status == 200, playback
    _ctx, page, watch = new_context(width=1280, height=720, service_workers="block")
    src = quote(playback["hls_url"], safe="")
    page.goto(f"{live_server.url}/static/dev/player-check.html?engine=shaka&src={src}")
    page.wait_for_function("() => window.check && (check.ready || check.errors.length)")
    assert page.evaluate("check.errors") == []
    variants = page.evaluate(
        """() => check.player.getManifest().variants.map((v) => {
            const t = v.video.trickModeVideo;
            return {height: v.video.height, codecs: v.video.codecs,
                    trick: t ? {height: t.height, codecs: t.codecs} : null};
        })"""
    )
    assert variants, variants
    for v in variants:
        assert v["trick"] == {"height": v["height"], "codecs": v["codecs"]}, variants
    page.wait_for_function("() => document.getElementById('video').currentTime > 2 || check.errors.length")
    assert page.evaluate("check.errors") == []
    watch.assert_clean()
