"""Rendered text compared byte for byte with tests/resources/packager/.

Regenerate after an intended change with STREAMFLIX_UPDATE_GOLDEN=1, then review the diff.
"""

import os
from pathlib import Path

import pytest

from packager.dash import render_mpd
from packager.hls import render_iframes, render_media, render_multivariant
from packager.thumbnails import render_thumbnails
from packager.uris import UriBuilder
from tests.packager.factories import GOLDEN

RESOURCES = Path(__file__).resolve().parents[1] / "resources" / "packager"
RELATIVE = UriBuilder(query="token=abc123")
CDN = UriBuilder("https://cdn.example/stream/t1/v1/", "token=tok_-42&exp=1700000000")


def _cases():
    for name, factory in GOLDEN.items():
        p = factory()
        yield pytest.param(f"{name}.master.m3u8", lambda p=p: render_multivariant(p, RELATIVE), id=f"{name}-master")
        for r in p.renditions:
            if r.kind == "image":
                yield pytest.param(
                    f"{name}.{r.id}.vtt", lambda p=p, r=r: render_thumbnails(p, r.id, RELATIVE), id=f"{name}-{r.id}"
                )
                continue
            yield pytest.param(
                f"{name}.{r.id}.m3u8", lambda p=p, r=r: render_media(p, r.id, RELATIVE), id=f"{name}-{r.id}"
            )
            if r.has_iframes:
                yield pytest.param(
                    f"{name}.{r.id}.iframes.m3u8",
                    lambda p=p, r=r: render_iframes(p, r.id, RELATIVE),
                    id=f"{name}-{r.id}-iframes",
                )
        if p.complete:
            yield pytest.param(f"{name}.mpd", lambda p=p: render_mpd(p, RELATIVE), id=f"{name}-mpd")
    ladder = GOLDEN["ladder"]()
    yield pytest.param("ladder_cdn.master.m3u8", lambda: render_multivariant(ladder, CDN), id="cdn-master")
    yield pytest.param("ladder_cdn.v1080.m3u8", lambda: render_media(ladder, "v1080", CDN), id="cdn-media")
    yield pytest.param("ladder_cdn.mpd", lambda: render_mpd(ladder, CDN), id="cdn-mpd")


@pytest.mark.parametrize(("filename", "render"), list(_cases()))
def test_golden(filename, render):
    text = render()
    path = RESOURCES / filename
    if os.environ.get("STREAMFLIX_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")
