"""Structural checks shared by every renderer: refuse a model no player could use."""

from __future__ import annotations

import re

from packager.errors import InvalidPresentation, RenditionNotFound
from packager.model import KINDS, Presentation, Rendition

# model.py: ids are path-safe. Also keeps them out of HLS quoted-strings and DASH `$...$`.
RENDITION_ID = re.compile(r"[a-z0-9_-]+")
# An image rendition's grid, "COLUMNSxROWS" (the DASH-IF thumbnail_tile value).
TILES = re.compile(r"[1-9][0-9]{0,2}x[1-9][0-9]{0,2}")


def check_presentation(p: Presentation) -> None:
    """Raise `InvalidPresentation` unless every rendition can be written out."""
    if not p.renditions:
        raise InvalidPresentation(f"title {p.title_id} version {p.version} has no renditions")
    seen: set[str] = set()
    for r in p.renditions:
        _check_rendition(r)
        if r.id in seen:
            raise InvalidPresentation(f"duplicate rendition id {r.id!r}")
        seen.add(r.id)


def _check_rendition(r: Rendition) -> None:
    if not RENDITION_ID.fullmatch(r.id):
        raise InvalidPresentation(f"rendition id {r.id!r} is not [a-z0-9_-]+")
    if r.kind not in KINDS:
        raise InvalidPresentation(f"rendition {r.id}: unknown kind {r.kind!r}")
    if not r.segments:
        raise InvalidPresentation(f"rendition {r.id} has no segments")
    if r.timescale <= 0:
        raise InvalidPresentation(f"rendition {r.id}: timescale must be > 0")
    if any(s.duration <= 0 for s in r.segments):
        raise InvalidPresentation(f"rendition {r.id}: segment durations must be > 0")
    if r.start_number < 0 or r.start_time < 0:
        raise InvalidPresentation(f"rendition {r.id}: negative start number or time")
    if not r.codecs or any(c in r.codecs for c in '"\r\n'):
        raise InvalidPresentation(f"rendition {r.id}: invalid codecs {r.codecs!r}")
    if r.kind == "image":
        _check_image(r)
    for s in r.segments:
        if (s.key_offset is None) != (s.key_size is None) or (s.key_end is not None and s.key_end > s.size):
            raise InvalidPresentation(f"rendition {r.id}: key sample range outside its segment")


def _check_image(r: Rendition) -> None:
    if not r.tiles or not TILES.fullmatch(r.tiles):
        raise InvalidPresentation(f"rendition {r.id}: image tiles {r.tiles!r} is not COLUMNSxROWS")
    if not r.tile_duration or r.tile_duration <= 0:
        raise InvalidPresentation(f"rendition {r.id}: image tile duration must be > 0")
    if not r.width or not r.height:
        raise InvalidPresentation(f"rendition {r.id}: image sheet width and height are required")
    if r.start_time:
        raise InvalidPresentation(f"rendition {r.id}: thumbnails start at the title's start")
    columns, rows = r.grid
    if r.width % columns or r.height % rows:
        raise InvalidPresentation(f"rendition {r.id}: a {r.width}x{r.height} sheet is not a {r.tiles} grid")
    # DASH addresses the sheets with one SegmentTemplate@duration (DASH-IF IOP 6.2.6): every
    # sheet but the last is full, the last one is no longer than a full one.
    full = r.tile_duration * columns * rows
    if any(s.duration != full for s in r.segments[:-1]) or r.segments[-1].duration > full:
        raise InvalidPresentation(f"rendition {r.id}: every sheet but the last must hold {r.tiles} tiles")


def find_rendition(p: Presentation, rendition_id: str) -> Rendition:
    r = p.rendition(rendition_id)
    if r is None:
        raise RenditionNotFound(f"no rendition {rendition_id!r} in title {p.title_id}")
    return r
