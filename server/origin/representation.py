"""A cached representation (a rendered playlist, a stored segment) and what it answers to one
request's Range and preconditions.

The one place that turns the RFC 9110 decision (server/http/conditional.py, pure) into an
answer: 200, 206 or 304 with the header fields each carries, or the 412/416 refusal. Both
front ends read it: handlers.py hands `fields()` to aiohttp, fastpath.py writes `head()`,
the same fields as bytes computed once per representation.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from server.http.conditional import Decision, Validators, evaluate
from server.http.errors import ApiError
from server.http.middlewares import CORS_HEADERS

# RFC 9110 15.4.5: a 304 carries the validators and Cache-Control a 200 would have; CORS too,
# so a player on another origin can read it.
NOT_MODIFIED_FIELDS = ("ETag", "Last-Modified", "Cache-Control", *CORS_HEADERS)
# Statuses answered with the representation; 412 and 416 are refusals (an error body).
ANSWERED = (200, 206, 304)
# Any of these makes a request conditional (If-Range means nothing without Range).
_CONDITIONAL = ("Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since")
_STATUS_LINES = {200: b"HTTP/1.1 200 OK\r\n", 206: b"HTTP/1.1 206 Partial Content\r\n"}


def field_block(headers: dict[str, str]) -> bytes:
    """Header fields as HTTP/1.1 lines."""
    return "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode("latin-1")


def not_modified_fields(headers: dict[str, str]) -> dict[str, str]:
    """The fields of a 304 answering a representation whose 200 has `headers`."""
    return {k: headers[k] for k in NOT_MODIFIED_FIELDS if k in headers}


class Representation:
    """What the answers of one immutable representation need: its validators, the header
    fields of its 200 (Content-Type, ETag, Last-Modified, Cache-Control, Accept-Ranges, CORS)
    and the plain 200 decision; subclasses are frozen dataclasses (cache.py)."""

    validators: Validators
    headers: dict[str, str]
    full: Decision  # the plain 200

    @cached_property
    def header_block(self) -> bytes:
        return field_block(self.headers)

    @cached_property
    def head_200(self) -> bytes:
        """Status line and fields of the plain 200, but Date and Server."""
        return _STATUS_LINES[200] + self.header_block + b"Content-Length: %d\r\n" % self.full.length

    @cached_property
    def head_304(self) -> bytes:
        return b"HTTP/1.1 304 Not Modified\r\n" + field_block(not_modified_fields(self.headers))

    def head(self, d: Decision) -> bytes:
        """Status line and fields of the answer `d` (200, 206 or 304), but Date and Server:
        `fields(d, self.headers)` plus Content-Length, as bytes."""
        if d is self.full:
            return self.head_200
        if d.status == 304:
            return self.head_304
        head = _STATUS_LINES[d.status] + self.header_block
        if d.status == 206:
            head += b"Content-Range: %s\r\n" % (d.content_range or "").encode()
        return head + b"Content-Length: %d\r\n" % d.length


def decide(method: str, h: Any, r: Representation) -> Decision:
    """The answer to a GET or HEAD of `r` with request header fields `h` (a CIMultiDict, or
    anything with `in`, get and getall): 200, 206, 304, 412 or 416 (RFC 9110 13.2.2, 14)."""
    # A plain GET/HEAD (most segment requests) skips the header parsing.
    if not any(name in h for name in _CONDITIONAL):
        return r.full
    return evaluate(
        method,
        r.validators,
        range_header=h.get("Range"),
        if_match=_joined(h, "If-Match"),
        if_none_match=_joined(h, "If-None-Match"),
        if_modified_since=h.get("If-Modified-Since"),
        if_unmodified_since=h.get("If-Unmodified-Since"),
        if_range=h.get("If-Range"),
    )


def _joined(h: Any, name: str) -> str | None:
    # RFC 9110 5.3: several field lines of a list-based field are one comma-separated list.
    values = h.getall(name, None)
    return None if not values else ", ".join(values)


def fields(d: Decision, headers: dict[str, str]) -> dict[str, str]:
    """The header fields of the answer `d` (200, 206 or 304) to a representation whose 200
    has `headers`; Content-Length is the server's to add (d.length)."""
    if d.status == 304:
        return not_modified_fields(headers)
    if d.status == 206:
        # RFC 9110 14.4: the range sent, and the representation's complete length.
        return {**headers, "Content-Range": d.content_range or ""}
    return headers


def refusal(d: Decision) -> ApiError:
    """The error for a decision that is not ANSWERED: 416 (with the Content-Range RFC 9110
    15.5.17 asks for) or 412."""
    if d.status == 416:
        return ApiError(
            416,
            "range_not_satisfiable",
            "the requested range is not satisfiable",
            headers={"Content-Range": d.content_range or ""},
        )
    return ApiError(412, "precondition_failed", "a precondition in the request is not met")
