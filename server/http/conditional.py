"""Conditional and range requests for one static representation (RFC 9110 sections 13, 14).

Pure: header values in, a decision out. The server turns the decision into a response; the
tests run the same vectors against nginx serving the same file (tests/server/test_nginx_parity.py).

Where RFC 9110 leaves a choice, this module does what nginx's static handler does with
`max_ranges 1; if_modified_since before;` (the configuration the parity test uses):

- a syntactically invalid byte-range set is rejected with 416 (RFC 9110 14.2 allows "ignore
  or reject"; nginx rejects);
- more than one satisfiable range is answered with the whole representation, 200 (RFC 9110
  14.2: a server MAY ignore Range; players never ask for multipart/byteranges);
- a range unit other than `bytes` is ignored (RFC 9110 14.2: MUST ignore).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import formatdate, mktime_tz, parsedate_tz
from functools import lru_cache

# RFC 9110 8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE
_ETAG = re.compile(r'(W/)?("[^"]*")')
# Python ints do not overflow; nginx refuses offsets beyond off_t (416). Do the same.
_MAX_OFFSET = 2**63 - 1
_MAX_OFFSET_DIGITS = len(str(_MAX_OFFSET))


@dataclass(frozen=True)
class Validators:
    """What the conditional headers are evaluated against."""

    size: int
    etag: str  # a strong entity-tag, quotes included: '"abc"'
    last_modified: int  # Unix seconds (HTTP-dates have one-second resolution)


@dataclass(frozen=True)
class Decision:
    status: int  # 200, 206, 304, 412 or 416
    start: int = 0
    length: int = 0  # bytes of body to send (GET); 0 for 304/412/416
    content_range: str | None = None


def http_date(ts: float) -> str:
    """IMF-fixdate (RFC 9110 5.6.7)."""
    return formatdate(ts, usegmt=True)


@lru_cache(maxsize=512)
def parse_http_date(text: str) -> int | None:
    """Any of the three HTTP-date formats (RFC 9110 5.6.7 requires accepting all), or None."""
    try:
        parsed = parsedate_tz(text)
        return None if parsed is None else int(mktime_tz(parsed))
    except (TypeError, ValueError, OverflowError):
        return None


def _tags(value: str) -> list[tuple[bool, str]]:
    return [(bool(m.group(1)), m.group(2)) for m in _ETAG.finditer(value)]


def etag_matches(value: str, etag: str, *, weak: bool) -> bool:
    """Does an If-Match / If-None-Match list match `etag` (strong, quoted)?

    RFC 9110 8.8.3.2: weak comparison ignores the W/ flag; strong comparison needs both tags
    strong. `*` matches any current representation (13.1.1, 13.1.2).
    """
    value = value.strip()
    if value == "*":
        return True
    for is_weak, opaque in _tags(value):
        if opaque == etag and (weak or not is_weak):
            return True
    return False


def if_none_match(header: str | None, etag: str) -> bool:
    """Does an If-None-Match field value match `etag` (quoted, weak or strong)? RFC 9110
    13.1.2: the weak comparison, and `*` matches any current representation; True means a GET
    or HEAD is answered 304. The one ETag/If-None-Match rule of the API and the origin."""
    if not header:
        return False
    return etag_matches(header, etag.removeprefix("W/"), weak=True)


def evaluate(
    method: str,
    v: Validators,
    *,
    range_header: str | None = None,
    if_match: str | None = None,
    if_none_match: str | None = None,
    if_modified_since: str | None = None,
    if_unmodified_since: str | None = None,
    if_range: str | None = None,
) -> Decision:
    """Decide the status and the byte range for a GET or HEAD of `v`."""
    full = Decision(200, 0, v.size)
    # RFC 9110 13.2.2: preconditions in this order, then Range.
    # Step 1, 13.1.1: If-Match uses the strong comparison; failing it is 412.
    if if_match is not None:
        if not etag_matches(if_match, v.etag, weak=False):
            return Decision(412)
    # Step 2, 13.1.4: If-Unmodified-Since only without If-Match; an invalid date is ignored.
    elif if_unmodified_since is not None:
        date = parse_http_date(if_unmodified_since)
        if date is not None and v.last_modified > date:
            return Decision(412)
    # Step 3, 13.1.2: If-None-Match uses the weak comparison; a match is 304 for GET/HEAD.
    if if_none_match is not None:
        if etag_matches(if_none_match, v.etag, weak=True):
            return Decision(304 if method in ("GET", "HEAD") else 412)
    # Step 4, 13.1.3: If-Modified-Since only without If-None-Match, only for GET/HEAD;
    # not modified when the representation is no newer than the date.
    elif if_modified_since is not None and method in ("GET", "HEAD"):
        date = parse_http_date(if_modified_since)
        if date is not None and v.last_modified <= date:
            return Decision(304)
    # Step 5, 14.2: range handling is defined for GET; 9.3.2: HEAD gets the header fields the
    # same GET would, so a HEAD with Range sees the 206's (nginx does the same).
    if range_header is None or method not in ("GET", "HEAD"):
        return full
    # 13.1.5: If-Range with a non-matching validator means "send me the whole thing". An
    # entity-tag is compared strongly (a weak tag never matches); a date must equal
    # Last-Modified exactly.
    if if_range is not None and not _if_range_matches(if_range.strip(), v):
        return full
    return _range(range_header, v.size)


def _if_range_matches(value: str, v: Validators) -> bool:
    if value.startswith('"') or value.startswith("W/"):
        return value == v.etag
    date = parse_http_date(value)
    return date is not None and date == v.last_modified


def _range(header: str, size: int) -> Decision:
    full = Decision(200, 0, size)
    # RFC 9110 14.1.1: the unit is case-insensitive; any other unit is ignored (14.2).
    if header[:6].lower() != "bytes=":
        return full
    ranges = _parse(header[6:], size)
    if ranges is None:  # syntax error: reject like nginx (RFC 9110 14.2 "ignore or reject")
        return _unsatisfiable(size)
    if isinstance(ranges, str):  # "full"
        return full
    if not ranges:  # 15.5.17: none of the ranges is satisfiable
        return _unsatisfiable(size)
    start, end = ranges[0]  # end exclusive
    return Decision(206, start, end - start, f"bytes {start}-{end - 1}/{size}")


def _unsatisfiable(size: int) -> Decision:
    # 15.5.17: a 416 to a byte-range request SHOULD carry Content-Range: bytes */complete-length
    return Decision(416, content_range=f"bytes */{size}")


def _parse(spec: str, size: int) -> list[tuple[int, int]] | str | None:
    """The byte-range set as [start, end) pairs clamped to `size` (RFC 9110 14.1.2), keeping
    only satisfiable ones; None on a syntax error; "full" where nginx answers 200 (a second
    satisfiable range: RFC 9110 14.2 lets a server ignore Range; players never ask for
    multipart/byteranges)."""
    out: list[tuple[int, int]] = []
    n = len(spec)
    i = 0

    def skip_spaces(j: int) -> int:
        while j < n and spec[j] == " ":
            j += 1
        return j

    def digits(j: int) -> tuple[int, int] | None:
        k = j
        while k < n and "0" <= spec[k] <= "9":
            k += 1
        if k == j:
            return None
        # int() refuses over 4300 digits (ValueError); 19 significant digits already pass the
        # limit, so a longer number is refused before it is converted.
        significant = spec[j:k].lstrip("0")
        if len(significant) > _MAX_OFFSET_DIGITS:
            return None
        value = int(significant or "0")
        if value > _MAX_OFFSET:
            return None
        return value, k

    while True:
        i = skip_spaces(i)
        if i < n and spec[i] == "-":
            got = digits(i + 1)
            if got is None:
                return None
            last, i = got
            # 14.1.2: a suffix longer than the representation selects all of it
            start, end = max(size - last, 0), size
        else:
            got = digits(i)
            if got is None:
                return None
            start, i = got
            i = skip_spaces(i)
            if i >= n or spec[i] != "-":
                return None
            i = skip_spaces(i + 1)
            if i >= n or spec[i] == ",":
                end = size  # 14.1.2: "first-pos-" means to the end of the representation
            else:
                got = digits(i)
                if got is None:
                    return None
                last, i = got
                end = size if last >= size else last + 1  # last-pos past the end is clamped
        i = skip_spaces(i)
        if i < n and spec[i] != ",":
            return None
        if start < end:
            out.append((start, end))
            if len(out) > 1:
                return "full"  # a second range: nginx (max_ranges 1) stops here
        elif start == 0:
            return "full"
        if i >= n:
            break
        i += 1
    return out
