"""Several audio languages, end to end: a source with two audio streams (a 440 Hz tone tagged
English, an 880 Hz tone tagged French) goes through the real worker, and hls.js, dash.js and
Shaka Player each list both tracks with their language, start on the default (English) and,
after a switch, play the French one: the page measures the dominant frequency of what the
<video> element actually decodes (WebAudio AnalyserNode), so a switch that only changes a
label, or a packager that points both tracks at the same media, fails."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.browser.conftest import sign_in
from tests.conftest import _ffmpeg

pytestmark = pytest.mark.browser

VIDEO = "document.getElementById('video')"
TOLERANCE_HZ = 40

# Routes the element's decoded audio through an analyser (and a silent gain: nothing is
# heard) and answers the frequency of the loudest FFT bin, null while it is silence.
MEASURE = """() => {
  if (!window.__tone) {
    const v = document.getElementById('video');
    const ctx = new AudioContext();
    const src = ctx.createMediaElementSource(v);
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 8192;
    const silent = ctx.createGain();
    silent.gain.value = 0;
    src.connect(analyser);
    analyser.connect(silent);
    silent.connect(ctx.destination);
    v.muted = false; // a muted element feeds the graph silence
    v.volume = 1;
    const bins = new Float32Array(analyser.frequencyBinCount);
    window.__tone = () => {
      analyser.getFloatFrequencyData(bins);
      let best = 0;
      for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
      return bins[best] > -70 ? (best * ctx.sampleRate) / analyser.fftSize : null;
    };
    window.__ctx = ctx;
  }
  return true;
}"""


# The browser tests' database and storage live for the session: one encode serves every test.
_TITLES: dict[str, dict[str, Any]] = {}


@pytest.fixture
def two_language_title(live_server: Any, tmp_path: Path) -> dict[str, Any]:
    """16 s at 320x180 with two audio streams: eng 440 Hz (first: the default), fre 880 Hz."""
    if "two" in _TITLES:
        return _TITLES["two"]
    clip = tmp_path / "two-languages.mp4"
    seconds = 16
    subprocess.run(
        [
            _ffmpeg(), "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=880:sample_rate=48000:duration={seconds}",
            "-map", "0:v", "-map", "1:a", "-map", "2:a",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "96k",
            "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fre",
            "-disposition:a:0", "default", "-disposition:a:1", "0",
            str(clip),
        ],
        check=True,
    )  # fmt: skip
    _TITLES["two"] = live_server.ingest_ready(
        clip, title=f"Languages {secrets.token_hex(3)}", year=2024, genres=["test"], description="Two languages."
    )
    return _TITLES["two"]


@pytest.mark.parametrize("engine", ["hls", "dash", "shaka"])
def test_audio_switch_changes_what_is_heard(
    engine: str, live_server: Any, two_language_title: dict[str, Any], new_context: Any
) -> None:
    viewer = live_server.register_and_login()
    status, playback = live_server.api(
        "POST", f"/titles/{two_language_title['id']}/playback", token=viewer["access_token"]
    )
    assert status == 200, playback
    src = playback["hls_url" if engine == "hls" else "dash_url"]

    _ctx, page, watch = new_context(width=800, height=600, service_workers="block")
    page.goto(f"{live_server.url}/static/dev/player-check.html?engine={engine}&src={quote(src, safe='')}")
    page.wait_for_function(
        "() => window.check && ((check.ready && check.audioTracks.length >= 2) || check.errors.length)"
    )
    assert page.evaluate("check.errors") == []
    tracks = page.evaluate("check.audioTracks")
    langs = sorted(t["lang"] for t in tracks)
    assert langs == ["en", "fr"], tracks  # BCP 47, normalised from eng/fre
    names = {t["lang"]: t["name"] for t in tracks}
    assert names == {"en": "English", "fr": "Français"}, tracks

    page.wait_for_function(f"() => {VIDEO}.currentTime > 0.5 || check.errors.length", timeout=20_000)
    page.evaluate(MEASURE)
    tone = _wait_for_tone(page, 440)
    assert abs(tone - 440) <= TOLERANCE_HZ, tone  # the default is the source's default (English)
    english = next(t["index"] for t in tracks if t["lang"] == "en")
    assert page.evaluate("check.audioIndex") == english

    french = next(t["index"] for t in tracks if t["lang"] == "fr")
    page.evaluate(f"check.setAudio({french})")
    tone = _wait_for_tone(page, 880)
    assert abs(tone - 880) <= TOLERANCE_HZ, tone
    assert page.evaluate("check.errors") == []
    assert page.evaluate(f"{VIDEO}.error") is None
    watch.assert_clean()


def test_player_page_audio_menu_switches_by_keyboard_and_is_remembered(
    live_server: Any, two_language_title: dict[str, Any], new_context: Any
) -> None:
    viewer = live_server.register_and_login()
    _ctx, page, watch = new_context(width=1280, height=800)
    sign_in(page, live_server.url, viewer)
    page.goto(f"{live_server.url}/watch/{two_language_title['id']}")
    page.wait_for_function("() => document.querySelectorAll('#audio option').length === 2", timeout=20_000)
    assert page.is_visible("#audio") and page.is_visible("label[for=audio]")
    assert page.locator("#audio option").all_inner_texts() == ["English", "Français"]
    assert page.evaluate("window.streamflixPlayer.hls.audioTrack") == 0  # the source's default
    assert page.input_value("#audio") == "0"  # and the menu shows it (an arrow key starts from it)

    # A viewer chooses once the film plays: hls.js settles its first audio track before that.
    page.wait_for_function("() => document.querySelector('#video').currentTime > 0.5", timeout=20_000)
    page.focus("#audio")
    page.keyboard.press("ArrowDown")  # a keyboard choice, no mouse
    page.wait_for_function("() => window.streamflixPlayer.hls.audioTrack === 1", timeout=10_000)
    stored = page.evaluate("Object.entries(localStorage).filter(([k]) => k.startsWith('streamflix.audio.'))")
    assert [v for _k, v in stored] == ["fr"], stored

    page.reload()  # the choice is remembered for this viewer
    page.wait_for_function(
        "() => document.querySelectorAll('#audio option').length === 2 && window.streamflixPlayer"
        " && window.streamflixPlayer.hls && window.streamflixPlayer.hls.audioTrack === 1",
        timeout=20_000,
    )
    assert page.input_value("#audio") == "1"
    watch.assert_clean()


def _wait_for_tone(page: Any, hz: int, timeout_ms: int = 20_000) -> float:
    """The dominant frequency once it is within tolerance of `hz` (or the last one measured
    when the timeout passes, for the assertion's message)."""
    try:
        page.wait_for_function(
            f"() => {{ const f = window.__tone(); return f !== null && Math.abs(f - {hz}) <= {TOLERANCE_HZ}; }}",
            timeout=timeout_ms,
            polling=100,
        )
    except Exception:
        pass
    return float(page.evaluate("window.__tone() || -1"))
