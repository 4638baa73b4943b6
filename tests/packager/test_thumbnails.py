"""The thumbnails' WebVTT index read back cue by cue, against the model's sheets."""

import json
import re
from dataclasses import replace
from fractions import Fraction
from urllib.parse import parse_qs, urlsplit

import pytest

from packager.errors import InvalidPresentation, RenditionNotFound
from packager.hls import render_multivariant
from packager.model import Presentation
from packager.thumbnails import render_thumbnails, timestamp
from packager.uris import UriBuilder
from tests.packager.factories import audio, ladder_video, presentation, thumbnails, trickplay, video

TOKEN = "tok_-9Zx"
REL = UriBuilder(query=f"token={TOKEN}")
ABS = UriBuilder("https://cdn.example/stream/t1/v1/", f"token={TOKEN}&exp=1700000000")
TIMING = re.compile(r"^(\d{2,}):(\d{2}):(\d{2})\.(\d{3}) --> (\d{2,}):(\d{2}):(\d{2})\.(\d{3})$")


def _seconds(h, m, s, ms) -> Fraction:
    return Fraction(int(h) * 3600 + int(m) * 60 + int(s)) + Fraction(int(ms), 1000)


def parse(text: str) -> list[tuple[Fraction, Fraction, str, tuple[int, ...]]]:
    """(start, end, sheet URI, (x, y, w, h)) per cue, as a WebVTT reader takes it apart."""
    assert text.startswith("WEBVTT\n\n")
    out = []
    for block in text[len("WEBVTT\n\n") :].strip("\n").split("\n\n"):
        timing, payload = block.split("\n")
        m = TIMING.match(timing)
        assert m, timing
        uri, _, fragment = payload.partition("#xywh=")
        out.append((_seconds(*m.groups()[:4]), _seconds(*m.groups()[4:]), uri, tuple(map(int, fragment.split(",")))))
    return out


@pytest.mark.parametrize(
    "th",
    [
        pytest.param(thumbnails(18.5), id="one-partial-sheet"),
        pytest.param(thumbnails(100), id="two-full-sheets"),
        pytest.param(thumbnails(731.3, interval_s=5, tiles="5x5", tile_h=68), id="long-5s"),
        pytest.param(thumbnails(9, tiles="10x1"), id="one-row"),
    ],
)
@pytest.mark.parametrize("uri", [pytest.param(REL, id="relative"), pytest.param(ABS, id="absolute")])
def test_cues_cover_the_title_and_stay_inside_their_sheet(th, uri):
    p = presentation(video(), th)
    cues = parse(render_thumbnails(p, th.id, uri))
    columns, rows = th.grid
    step = Fraction(th.tile_duration, th.timescale)
    assert cues[0][0] == 0 and cues[-1][1] == Fraction(sum(s.duration for s in th.segments), th.timescale)
    for (_, end, _, _), (start, _, _, _) in zip(cues, cues[1:], strict=False):
        assert end == start  # no gap, no overlap
    for i, (start, end, sheet_uri, (x, y, w, h)) in enumerate(cues):
        assert start == i * step and 0 < end - start <= step
        assert (w, h) == (th.width // columns, th.height // rows)
        assert 0 <= x and x + w <= th.width and 0 <= y and y + h <= th.height
        number = th.start_number + i // (columns * rows)
        assert (x // w, y // h) == ((i % (columns * rows)) % columns, (i % (columns * rows)) // columns)
        parts = urlsplit(sheet_uri)
        assert sheet_uri.split("?")[0] == (f"{uri.base}{th.id}/{number}.jpg" if uri.base else f"{number}.jpg")
        assert parse_qs(parts.query)["token"] == [TOKEN]


def test_index_of_a_video_rendition_refused():
    with pytest.raises(RenditionNotFound):
        render_thumbnails(trickplay(), "v720", REL)


def test_impossible_sheet_refused():
    p = presentation(video(), replace(thumbnails(), width=None))
    with pytest.raises(InvalidPresentation):
        render_thumbnails(p, "th", REL)


@pytest.mark.parametrize(
    ("t", "text"),
    [
        pytest.param(Fraction(0), "00:00:00.000", id="zero"),
        pytest.param(Fraction(18501, 1000), "00:00:18.501", id="millis"),
        pytest.param(Fraction(2, 3), "00:00:00.666", id="floored"),
        pytest.param(Fraction(3600 * 101 + 61), "101:01:01.000", id="over-99-hours"),
    ],
)
def test_timestamp(t, text):
    assert timestamp(t) == text


def test_models_stored_before_thumbnails_and_key_samples_still_load():
    p = trickplay()
    text = p.to_json()
    assert Presentation.from_json(text) == p
    old = presentation(*ladder_video()[1:4:2], audio())
    old_text = old.to_json()
    # unknown key ranges are left out of each segment, as models written before them were
    assert "key_offset" not in old_text and "key_size" not in old_text
    data = json.loads(old_text)
    for r in data["renditions"]:
        del r["tiles"], r["tile_duration"]  # the fields a model from before thumbnails lacks
    loaded = Presentation.from_json(json.dumps(data))
    assert loaded == old and not any(r.has_iframes for r in loaded.video) and not loaded.images
    assert "I-FRAME" not in render_multivariant(loaded, REL)
