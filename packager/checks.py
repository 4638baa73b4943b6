"""Structural checks shared by every renderer: refuse a model no player could use."""

from __future__ import annotations

import re

from packager.errors import InvalidPresentation, RenditionNotFound
from packager.model import KINDS, Presentation, Rendition

# model.py: ids are path-safe. Also keeps them out of HLS quoted-strings and DASH `$...$`.
RENDITION_ID = re.compile(r"[a-z0-9_-]+")


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


def find_rendition(p: Presentation, rendition_id: str) -> Rendition:
    r = p.rendition(rendition_id)
    if r is None:
        raise RenditionNotFound(f"no rendition {rendition_id!r} in title {p.title_id}")
    return r
