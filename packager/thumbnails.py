"""The WebVTT index of a thumbnails (image) rendition. Pure: values in, text out.

One cue per thumbnail, its payload the sprite sheet's URI with a media fragment naming the
tile (`3.jpg?token=...#xywh=160,90,160,90`, W3C Media Fragments URI 1.0 section 4.2.1):
the de facto format of hls.js-based players, Video.js, JW Player and Plyr. Cues follow each
other without a gap and the last one ends where the rendition ends, so every instant of the
title has exactly one thumbnail.
"""

from __future__ import annotations

from fractions import Fraction

from packager.checks import check_presentation, find_rendition
from packager.errors import RenditionNotFound
from packager.model import Presentation, Rendition
from packager.timing import seconds
from packager.uris import UriBuilder


def render_thumbnails(p: Presentation, rendition_id: str, uri: UriBuilder) -> str:
    """The index of image rendition `rendition_id`; its URIs are written as a media
    playlist's (relative to `{rendition_id}/`, each carrying `uri.query`)."""
    check_presentation(p)
    r = find_rendition(p, rendition_id)
    if r.kind != "image":
        raise RenditionNotFound(f"rendition {rendition_id!r} of title {p.title_id} is not thumbnails")
    lines = ["WEBVTT", ""]
    for start, end, number, (x, y, w, h) in cues(r):
        lines += [
            f"{timestamp(seconds(start, r.timescale))} --> {timestamp(seconds(end, r.timescale))}",
            f"{uri.segment(r, number)}#xywh={x},{y},{w},{h}",
            "",
        ]
    return "\n".join(lines)


def cues(r: Rendition) -> list[tuple[int, int, int, tuple[int, int, int, int]]]:
    """(start tick, end tick, sheet number, (x, y, w, h) in the sheet) per thumbnail."""
    columns, rows = r.grid
    tile_w, tile_h = (r.width or 0) // columns, (r.height or 0) // rows
    step = r.tile_duration or 1
    out = []
    start = r.start_time
    for number, segment in enumerate(r.segments, start=r.start_number):
        end_of_sheet = start + segment.duration
        for k in range(columns * rows):
            t = start + k * step
            if t >= end_of_sheet:
                break
            x, y = (k % columns) * tile_w, (k // columns) * tile_h
            out.append((t, min(t + step, end_of_sheet), number, (x, y, tile_w, tile_h)))
        start = end_of_sheet
    return out


def timestamp(t: Fraction) -> str:
    """W3C WebVTT 4.1 cue timestamp, hh:mm:ss.ttt (milliseconds rounded down, so a cue never
    ends after the next one starts)."""
    ms = int(t * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"
