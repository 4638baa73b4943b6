"""Range and precondition vectors from nginx's own test suite (nginx-tests range.t,
range_if_range.t, not_modified.t), sent to our origin and to Debian's nginx serving the same
stored file, comparing the status and the headers that matter.

nginx runs with `max_ranges 1` (several ranges -> the whole body, as we do: players never ask
for multipart/byteranges) and `if_modified_since before` (RFC 9110 13.1.3, where nginx's
default is exact-match).
"""

from __future__ import annotations

import aiohttp
import pytest

from media import keys as media_keys
from media.backend import open_storage
from tests.server.nginx_support import Nginx, nginx_or_skip
from tests.server.origin_support import new_title_id, presentation, store_version, token_for

BODY = "".join(f"X{i:03d}XXXXXX" for i in range(100)).encode()  # range.t's t1.html, 1000 bytes

# (id, method, headers); "{etag}" and "{lm}" are replaced by each server's own validators.
VECTORS = [
    # range.t
    ("range", "GET", {"Range": "bytes=0-8"}),
    ("final-bytes", "GET", {"Range": "bytes=-10"}),
    ("final-bytes-explicit", "GET", {"Range": "bytes=990-"}),
    ("more-than-length", "GET", {"Range": "bytes=990-1990"}),
    ("multipart", "GET", {"Range": "bytes=0-9, -10, 10-19"}),
    ("multipart-big", "GET", {"Range": "bytes=0-9, -10, 100000-, 10-19"}),
    ("too-big-first-byte", "GET", {"Range": "bytes=100000-"}),
    ("alpha-first-byte", "GET", {"Range": "bytes=alpha"}),
    ("alpha-last-byte", "GET", {"Range": "bytes=10-alpha"}),
    ("no-hyphen", "GET", {"Range": "bytes=10"}),
    ("no-comma", "GET", {"Range": "bytes=10-11 12-"}),
    ("last-byte-adjusted", "GET", {"Range": "bytes=0-10001"}),
    ("malicious-ranges", "GET", {"Range": "bytes=0-10001, 0-0"}),
    ("max-ranges-not-reached-bad-range", "GET", {"Range": "bytes=0-9, 10000-"}),
    ("suffix-longer-than-body", "GET", {"Range": "bytes=-2000"}),
    ("empty-suffix", "GET", {"Range": "bytes=-0"}),
    ("start-at-size", "GET", {"Range": "bytes=1000-"}),
    ("last-byte", "GET", {"Range": "bytes=999-999"}),
    ("unknown-unit", "GET", {"Range": "items=0-9"}),
    ("unit-upper-case", "GET", {"Range": "BYTES=0-9"}),
    ("trailing-comma", "GET", {"Range": "bytes=0-9,"}),
    ("spaces", "GET", {"Range": "bytes= 0 - 9 "}),
    # range_if_range.t
    ("if-range-wrong", "GET", {"Range": "bytes=0-9", "If-Range": "wrong"}),
    ("if-range-date", "GET", {"Range": "bytes=0-9", "If-Range": "{lm}"}),
    ("if-range-etag", "GET", {"Range": "bytes=0-9", "If-Range": "{etag}"}),
    ("if-range-weak-etag", "GET", {"Range": "bytes=0-9", "If-Range": "W/{etag}"}),
    ("if-range-other-etag", "GET", {"Range": "bytes=0-9", "If-Range": '"other"'}),
    # not_modified.t
    ("ims-2037", "GET", {"If-Modified-Since": "Wed, 08 Jul 2037 22:53:52 GMT"}),
    ("ims-2038", "GET", {"If-Modified-Since": "Tue, 19 Jan 2038 03:14:07 GMT"}),
    ("ims-equal", "GET", {"If-Modified-Since": "{lm}"}),
    ("ims-1990", "GET", {"If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"}),
    ("if-none-match", "GET", {"If-None-Match": "{etag}"}),
    ("if-none-match-fail", "GET", {"If-None-Match": '"foo"'}),
    ("if-none-match-list", "GET", {"If-None-Match": '"foo", "bar", {etag} , "baz"'}),
    ("if-none-match-all", "GET", {"If-None-Match": "*"}),
    ("if-none-match-weak", "GET", {"If-None-Match": "W/{etag}"}),
    ("if-match", "GET", {"If-Match": "{etag}"}),
    ("if-match-fail", "GET", {"If-Match": '"foo"'}),
    ("if-match-list", "GET", {"If-Match": '"foo", "bar", \t{etag} , "baz"'}),
    ("if-match-all", "GET", {"If-Match": "*"}),
    ("if-match-weak-fail", "GET", {"If-Match": "W/{etag}"}),
    ("if-unmodified-since-fail", "GET", {"If-Unmodified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"}),
    ("inm-beats-range", "GET", {"If-None-Match": "{etag}", "Range": "bytes=0-9"}),
    ("head", "HEAD", {}),
    ("head-inm", "HEAD", {"If-None-Match": "{etag}"}),
    ("head-range", "HEAD", {"Range": "bytes=0-9"}),
]


def _fill(headers: dict[str, str], etag: str, lm: str) -> dict[str, str]:
    return {k: v.replace("{etag}", etag).replace("{lm}", lm) for k, v in headers.items()}


@pytest.fixture
async def pair(app_client, settings, tmp_path):
    """(our segment URL, nginx's URL) for the same stored 1000-byte file."""
    nginx_or_skip()
    storage = open_storage(settings.storage_url)
    sv = await store_version(storage, presentation(new_title_id(), "v1", segments=1))
    key = media_keys.object_key(sv.title_id, "v1", "v360/1.m4s")
    await storage.put_bytes(key, BODY)
    root = storage.local_path("x").parent  # the storage root directory
    await storage.close()
    nginx = Nginx(
        tmp_path / "nginx",
        f"""
    server {{
        listen 127.0.0.1:PORT;
        root {root};
        max_ranges 1;
        if_modified_since before;
    }}""",
    ).start()
    token = token_for(settings.secret_key, sv)
    ours = str(app_client.make_url(sv.url("v360/1.m4s", token)))
    try:
        yield ours, f"{nginx.url}/{key}"
    finally:
        nginx.cleanup()


async def _fetch(session, method, url, headers):
    async with session.request(method, url, headers=headers, allow_redirects=False) as r:
        return r.status, r.headers.copy(), await r.read()


async def test_same_answers_as_nginx(pair):
    ours, theirs = pair
    mismatches = []
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        _, oh, _ = await _fetch(s, "GET", ours, {})
        _, nh, _ = await _fetch(s, "GET", theirs, {})
        assert oh["Last-Modified"] == nh["Last-Modified"]  # same file, same mtime
        for name, method, headers in VECTORS:
            o = await _fetch(s, method, ours, _fill(headers, oh["ETag"], oh["Last-Modified"]))
            n = await _fetch(s, method, theirs, _fill(headers, nh["ETag"], nh["Last-Modified"]))
            got, want = _essentials(method, *o), _essentials(method, *n)
            if got != want:
                mismatches.append((name, got, want))
    assert not mismatches, "\n".join(f"{n}: ours {g} nginx {w}" for n, g, w in mismatches)


def _essentials(method, status, headers, body):
    out = {"status": status}
    if status in (206, 416):
        out["content-range"] = headers.get("Content-Range")
    if status in (200, 206):
        out["content-length"] = headers.get("Content-Length")
        out["body"] = body if method == "GET" else b""
    if status in (200, 206, 304):
        out["etag"] = "ETag" in headers
        out["last-modified"] = "Last-Modified" in headers
    return out
