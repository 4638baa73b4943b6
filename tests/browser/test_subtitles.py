"""Subtitles, end to end: a source with an embedded English mov_text stream, plus a French
SubRip sidecar given as at `streamflix ingest --subtitle fr:FILE:sdh`, goes through the real
worker; hls.js, dash.js and Shaka Player each list both tracks and, once one is selected,
the cue the browser reports active at time T is the one the file has at T (within 0.5 s);
switching tracks changes the cue text. The web player's Subtitles menu lists the tracks,
switches by keyboard, remembers the choice, and shows a cue holding HTML as literal text."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.browser.conftest import sign_in
from tests.conftest import _ffmpeg
from transcoder.subtitles import read_sidecar

pytestmark = pytest.mark.browser

VIDEO = "document.getElementById('video')"
SLACK_S = 0.5
SECONDS = 16
HOSTILE = "<b>x</b><img src=x onerror=window.__xss=true;alert(1)>"

# (start, end, text): what each track shows when. The two tracks share their timings, so at
# any moment the French cue differs from the English one.
ENGLISH = [(0.5, 3.5, "Hello one"), (4.0, 7.5, "Hello two"), (8.0, 11.5, "Hello three"), (12.0, 15.5, "Hello four")]
FRENCH = [(0.5, 3.5, "Bonjour un"), (4.0, 7.5, "Bonjour deux"), (8.0, 11.5, HOSTILE), (12.0, 15.5, "Bonjour quatre")]

# What the browser shows of the active cues of the track the player shows (every engine here
# draws cues with the browser's own renderer, on a TextTrack of the <video>): each cue's text
# as the WebVTT renderer parses it (getCueAsHTML: entities decoded, markup made into
# elements), read with the time at once. `nodes` lists what the renderer made of each cue.
ACTIVE = f"""() => {{
  const v = {VIDEO};
  const shown = [...v.textTracks].filter((t) => t.mode === 'showing');
  const active = shown.flatMap((t) => [...(t.activeCues || [])]);
  const html = active.map((c) => (c.getCueAsHTML ? c.getCueAsHTML() : null));
  return {{
    t: v.currentTime,
    cues: active.map((c, i) => (html[i] ? html[i].textContent : c.text)),
    nodes: html.map((f) => (f ? [...f.childNodes].map((n) => n.nodeName) : [])),
    showing: shown.length,
  }};
}}"""


def _srt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"00:00:{ms // 1000:02d},{ms % 1000:03d}"


def _srt(cues: list[tuple[float, float, str]]) -> str:
    # SubRip has no escape of its own beyond the HTML entities players read: the hostile cue
    # is written with them, so its text is the literal markup (not tags to strip).
    def text(t: str) -> str:
        return t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    return "\n".join(
        f"{n}\n{_srt_time(a)} --> {_srt_time(b)}\n{text(t)}\n" for n, (a, b, t) in enumerate(cues, start=1)
    )


def expected(cues: list[tuple[float, float, str]], t: float) -> set[str]:
    """The cue texts a player may show at `t`: those whose times, widened by SLACK_S, hold it."""
    return {text for a, b, text in cues if a - SLACK_S <= t <= b + SLACK_S}


_TITLES: dict[str, dict[str, Any]] = {}


@pytest.fixture
def subtitled_title(live_server: Any, tmp_path: Path) -> dict[str, Any]:
    """16 s at 320x180 with an English mov_text stream and a French SDH sidecar."""
    if "subs" in _TITLES:
        return _TITLES["subs"]
    embedded = tmp_path / "embedded.srt"
    embedded.write_text(_srt(ENGLISH), encoding="utf-8")
    clip = tmp_path / "subtitled.mp4"
    subprocess.run(
        [
            _ffmpeg(), "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={SECONDS}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}",
            "-i", str(embedded),
            "-map", "0:v", "-map", "1:a", "-map", "2:s",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "64k", "-c:s", "mov_text",
            "-metadata:s:s:0", "language=eng",
            str(clip),
        ],
        check=True,
    )  # fmt: skip
    sidecar = tmp_path / "film.fr.srt"
    sidecar.write_bytes(_srt(FRENCH).encode("latin-1"))  # an old-style Latin-1 file, as found
    # read_sidecar is the `--subtitle` argument's own type: the file is read and checked as the CLI does
    _TITLES["subs"] = live_server.ingest_ready(
        clip,
        title=f"Subtitled {secrets.token_hex(3)}",
        year=2024,
        genres=["test"],
        description="Two subtitle tracks.",
        subtitles=[read_sidecar(f"fr:{sidecar}:sdh")],
    )
    return _TITLES["subs"]


def _wait_for_cue(page: Any, cues: list[tuple[float, float, str]], timeout_ms: int = 20_000) -> dict[str, Any]:
    """The first sample (time, active cue texts) with a cue of `cues` active; fails with the
    last sample when none shows in time."""
    texts = [text for _a, _b, text in cues]
    try:
        page.wait_for_function(
            f"(texts) => ({ACTIVE})().cues.some((c) => texts.includes(c))", arg=texts, timeout=timeout_ms, polling=50
        )
    except Exception:
        pass
    sample: dict[str, Any] = page.evaluate(ACTIVE)
    assert any(c in texts for c in sample["cues"]), sample
    return sample


def _assert_on_time(sample: dict[str, Any], cues: list[tuple[float, float, str]]) -> None:
    wanted = expected(cues, sample["t"])
    assert sample["cues"] and set(sample["cues"]) <= wanted, (sample, wanted)


@pytest.mark.parametrize("engine", ["hls", "dash", "shaka"])
def test_selected_track_shows_the_cue_of_the_moment(
    engine: str, live_server: Any, subtitled_title: dict[str, Any], new_context: Any
) -> None:
    viewer = live_server.register_and_login()
    status, playback = live_server.api(
        "POST", f"/titles/{subtitled_title['id']}/playback", token=viewer["access_token"]
    )
    assert status == 200, playback
    src = playback["hls_url" if engine == "hls" else "dash_url"]

    _ctx, page, watch = new_context(width=800, height=600, service_workers="block")
    page.goto(f"{live_server.url}/static/dev/player-check.html?engine={engine}&src={quote(src, safe='')}")
    page.wait_for_function(
        "() => window.check && ((check.ready && check.textTracks.length >= 2) || check.errors.length)"
    )
    assert page.evaluate("check.errors") == []
    tracks = page.evaluate("check.textTracks")
    by_lang = {t["lang"]: t for t in tracks}
    assert sorted(by_lang) == ["en", "fr"], tracks  # BCP 47: eng from the stream, fr from the flag
    assert by_lang["en"]["name"] == "English", tracks
    assert by_lang["fr"]["name"] == "Français (SDH)", tracks
    # nothing is forced: no track is shown unasked
    assert page.evaluate(ACTIVE)["cues"] == []

    page.evaluate(f"check.setText({by_lang['en']['index']})")
    english = _wait_for_cue(page, ENGLISH)
    _assert_on_time(english, ENGLISH)

    page.evaluate(f"check.setText({by_lang['fr']['index']})")
    french = _wait_for_cue(page, FRENCH)
    _assert_on_time(french, FRENCH)
    assert not set(french["cues"]) & {text for _a, _b, text in ENGLISH}, french  # the switch changed the text

    page.evaluate("check.setText(-1)")
    page.wait_for_function(f"() => ({ACTIVE})().cues.length === 0", timeout=10_000)
    assert page.evaluate("check.errors") == []
    assert page.evaluate(f"{VIDEO}.error") is None
    watch.assert_clean()


def test_player_page_subtitles_menu_by_keyboard_remembered_and_literal(
    live_server: Any, subtitled_title: dict[str, Any], new_context: Any
) -> None:
    viewer = live_server.register_and_login()
    _ctx, page, watch = new_context(width=390, height=844)  # a phone
    sign_in(page, live_server.url, viewer)
    page.goto(f"{live_server.url}/watch/{subtitled_title['id']}")
    page.wait_for_function("() => document.querySelectorAll('#subtitles option').length === 3", timeout=20_000)
    assert page.is_visible("#subtitles") and page.is_visible("label[for=subtitles]")
    assert page.locator("#subtitles option").all_inner_texts() == ["Off", "English", "Français (SDH)"]
    box = page.locator("#subtitles").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box  # fits a phone
    assert page.input_value("#subtitles") == "-1"  # nothing forced, nothing chosen yet: off
    assert page.evaluate("window.streamflixPlayer.hls.subtitleTrack") == -1

    page.focus("#subtitles")
    page.keyboard.press("ArrowDown")  # a keyboard choice, no mouse: English
    page.wait_for_function("() => window.streamflixPlayer.hls.subtitleTrack === 0", timeout=10_000)
    _assert_on_time(_wait_for_cue(page, ENGLISH), ENGLISH)
    page.keyboard.press("ArrowDown")  # French (SDH)
    page.wait_for_function("() => window.streamflixPlayer.hls.subtitleTrack === 1", timeout=10_000)
    _assert_on_time(_wait_for_cue(page, FRENCH), FRENCH)
    stored = page.evaluate("Object.entries(localStorage).filter(([k]) => k.startsWith('streamflix.subtitles.'))")
    assert [v for _k, v in stored] == ['{"lang":"fr","sdh":true}'], stored

    page.reload()  # the choice is remembered for this viewer
    page.wait_for_function(
        "() => document.querySelectorAll('#subtitles option').length === 3 && window.streamflixPlayer"
        " && window.streamflixPlayer.hls && window.streamflixPlayer.hls.subtitleTrack === 1",
        timeout=20_000,
    )
    assert page.input_value("#subtitles") == "1"

    # The cue holding markup: the browser shows its text, no element is made of it.
    page.evaluate(f"() => {{ window.__xss = false; {VIDEO}.pause(); {VIDEO}.currentTime = 9; }}")
    sample = _wait_for_cue(page, [(8.0, 11.5, HOSTILE)])
    assert sample["cues"] == [HOSTILE], sample
    assert sample["nodes"] == [["#text"]], sample  # one text node: no <b>, no <img>
    assert page.evaluate("""document.querySelectorAll('img[src="x"], .player-stage b').length""") == 0
    assert page.evaluate("window.__xss") is False
    watch.assert_clean()  # no alert() dialog, no request for "x"


SIGNS = [(1.0, 15.0, "A sign in German")]


@pytest.fixture
def forced_title(live_server: Any, tmp_path: Path) -> dict[str, Any]:
    """16 s with no embedded text and two sidecars: English (full) and English forced (signs)."""
    if "forced" in _TITLES:
        return _TITLES["forced"]
    clip = tmp_path / "forced.mp4"
    subprocess.run(
        [
            _ffmpeg(), "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={SECONDS}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
            str(clip),
        ],
        check=True,
    )  # fmt: skip
    full = tmp_path / "full.en.srt"
    full.write_text(_srt(ENGLISH), encoding="utf-8")
    signs = tmp_path / "signs.en.srt"
    signs.write_text(_srt(SIGNS), encoding="utf-8")
    _TITLES["forced"] = live_server.ingest_ready(
        clip,
        title=f"Forced {secrets.token_hex(3)}",
        year=2024,
        genres=["test"],
        description="A forced track.",
        subtitles=[read_sidecar(f"en:{full}"), read_sidecar(f"en:{signs}:forced")],
    )
    return _TITLES["forced"]


def test_player_page_forced_track_shows_unasked_and_off_is_remembered(
    live_server: Any, forced_title: dict[str, Any], subtitled_title: dict[str, Any], new_context: Any
) -> None:
    viewer = live_server.register_and_login()
    _ctx, page, watch = new_context(width=1280, height=800)
    sign_in(page, live_server.url, viewer)
    page.goto(f"{live_server.url}/watch/{forced_title['id']}")
    page.wait_for_function("() => document.querySelectorAll('#subtitles option').length === 3", timeout=20_000)
    assert page.locator("#subtitles option").all_inner_texts() == ["Off", "English", "English (forced)"]
    # no choice yet: the forced track (HLS DEFAULT=YES) is on by itself
    page.wait_for_function("() => window.streamflixPlayer.hls.subtitleTrack === 1", timeout=10_000)
    assert page.input_value("#subtitles") == "1"
    _assert_on_time(_wait_for_cue(page, SIGNS), SIGNS)

    page.focus("#subtitles")
    page.keyboard.press("Home")  # Off, by keyboard
    page.wait_for_function("() => window.streamflixPlayer.hls.subtitleTrack === -1", timeout=10_000)
    page.wait_for_function(f"() => ({ACTIVE})().cues.length === 0", timeout=10_000)
    stored = page.evaluate("Object.entries(localStorage).filter(([k]) => k.startsWith('streamflix.subtitles.'))")
    assert [v for _k, v in stored] == ["off"], stored

    page.reload()  # Off is remembered, over the title's own default
    page.wait_for_function(
        "() => document.querySelectorAll('#subtitles option').length === 3 && window.streamflixPlayer"
        " && window.streamflixPlayer.hls && window.streamflixPlayer.hls.subtitleTrack === -1"
        f" && {VIDEO}.currentTime > 2",
        timeout=20_000,
    )
    assert page.input_value("#subtitles") == "-1"
    assert page.evaluate(ACTIVE)["cues"] == []

    # a language chosen on one title is used on the next title that has it
    page.focus("#subtitles")
    page.keyboard.press("ArrowDown")
    page.wait_for_function("() => window.streamflixPlayer.hls.subtitleTrack === 0", timeout=10_000)
    page.goto(f"{live_server.url}/watch/{subtitled_title['id']}")
    page.wait_for_function(
        "() => document.querySelectorAll('#subtitles option').length === 3 && window.streamflixPlayer"
        " && window.streamflixPlayer.hls && window.streamflixPlayer.hls.subtitleTrack === 0",
        timeout=20_000,
    )
    assert page.input_value("#subtitles") == "0"
    _assert_on_time(_wait_for_cue(page, ENGLISH), ENGLISH)
    watch.assert_clean()
