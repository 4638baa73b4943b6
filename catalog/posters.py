"""Uploaded posters: what is accepted. Pure (the bytes are stored by the server)."""

from __future__ import annotations

from catalog.errors import InvalidPoster

MAX_POSTER_BYTES = 5 * 1024 * 1024
# Magic numbers: JPEG (ISO/IEC 10918-1 SOI marker + the next marker's 0xFF) and PNG (RFC
# 2083 section 3.1 signature). The declared type must agree with the bytes.
SIGNATURES = {
    "image/jpeg": b"\xff\xd8\xff",
    "image/png": b"\x89PNG\r\n\x1a\n",
}


def sniff(data: bytes) -> str | None:
    for content_type, magic in SIGNATURES.items():
        if data.startswith(magic):
            return content_type
    return None


def check_poster(declared: str, data: bytes) -> str:
    """The content type to store, or InvalidPoster."""
    if declared not in SIGNATURES:
        raise InvalidPoster("a poster is image/jpeg or image/png")
    if not data:
        raise InvalidPoster("the poster is empty")
    actual = sniff(data)
    if actual != declared:
        raise InvalidPoster(f"the body is not a {declared.split('/')[1].upper()} image")
    return actual
