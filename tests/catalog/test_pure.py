"""Pure catalog logic: cursors, query parsing, progress rules, poster sniffing."""

from __future__ import annotations

import base64
import json

import pytest

from catalog import browse, cursor, posters, search
from catalog.errors import InvalidCursor, InvalidHistory, InvalidPoster, InvalidQuery
from catalog.library import compute_progress

KEY = cursor.derive_key("secret")


def test_cursor_round_trip():
    c = cursor.encode(KEY, "scope", ["2024-01-01T00:00:00+00:00", "id"])
    assert cursor.decode(KEY, "scope", c) == ["2024-01-01T00:00:00+00:00", "id"]


def _forge(payload: object) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return body + ".AAAAAAAAAAAAAAAAAAAAAA"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("garbage", id="no-dot"),
        pytest.param("a.b.c", id="two-dots"),
        pytest.param("!!!.???", id="not-base64"),
        pytest.param(_forge([0, "x"]), id="forged-mac"),
        pytest.param("x" * 5000, id="huge"),
        pytest.param("é.é", id="non-ascii"),
        pytest.param(cursor.encode(cursor.derive_key("other"), "scope", [1, "x"]), id="other-key"),
        pytest.param(cursor.encode(KEY, "other-scope", [1, "x"]), id="other-query"),
    ],
)
def test_cursor_forged(text):
    with pytest.raises(InvalidCursor):
        cursor.decode(KEY, "scope", text)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"kind": "cartoon"}, id="kind"),
        pytest.param({"sort": "oldest"}, id="sort"),
        pytest.param({"year": "nineteen"}, id="year-text"),
        pytest.param({"year": "99999"}, id="year-range"),
        pytest.param({"genre": "x" * 101}, id="genre-long"),
        pytest.param({"status": "deleted"}, id="status"),
    ],
)
def test_browse_bad_params(params):
    with pytest.raises(InvalidQuery):
        browse.parse_browse(params, admin=True)


def test_browse_scope_binds_filters():
    a = browse.parse_browse({"genre": "Drama"}, admin=False)
    b = browse.parse_browse({"genre": "comedy"}, admin=False)
    assert a.genre == "drama" and a.scope != b.scope
    assert browse.parse_browse({}, admin=True).scope != browse.parse_browse({}, admin=False).scope


@pytest.mark.parametrize(
    "raw,expected",
    [
        pytest.param(None, "", id="none"),
        pytest.param("", "", id="empty"),
        pytest.param("   \t\n ", "", id="whitespace"),
        pytest.param("  the   matrix ", "the matrix", id="collapse"),
        pytest.param("ｍａｔｒｉｘ", "matrix", id="fullwidth-nfkc"),
        pytest.param("a\x00b\x07c", "abc", id="controls-dropped"),
        pytest.param("🎬 film", "🎬 film", id="emoji"),
        pytest.param("שלום עולם", "שלום עולם", id="rtl"),
    ],
)
def test_normalize_query(raw, expected):
    assert search.normalize_query(raw) == expected


def test_normalize_query_too_long():
    with pytest.raises(InvalidQuery, match="at most 200"):
        search.normalize_query("a" * 10_000)


@pytest.mark.parametrize(
    "query,expected",
    [
        pytest.param("the ma", "'the':* & 'ma':*", id="words"),
        pytest.param("Ma", "'ma':*", id="casefold"),
        pytest.param("'&|!:*\\", None, id="metacharacters-only"),
        pytest.param("o'brien", "'o':* & 'brien':*", id="quote-splits"),
        pytest.param("🎬", None, id="emoji"),
        pytest.param("שלום", "'שלום':*", id="rtl"),
    ],
)
def test_prefix_tsquery(query, expected):
    assert search.prefix_tsquery(query) == expected


@pytest.mark.parametrize(
    "position,client_duration,title_duration,expected",
    [
        pytest.param(10, None, 100.0, (10.0, 100.0, False), id="in-progress"),
        pytest.param(95, None, 100.0, (95.0, 100.0, True), id="finished-at-95"),
        pytest.param(250, None, 100.0, (100.0, 100.0, True), id="past-end-clamped"),
        pytest.param(30, 40, None, (30.0, 40.0, False), id="client-duration"),
        pytest.param(30, 40, 100.0, (30.0, 100.0, False), id="title-duration-wins"),
        pytest.param(30, None, None, (30.0, None, False), id="no-duration"),
    ],
)
def test_compute_progress(position, client_duration, title_duration, expected):
    p = compute_progress(position, client_duration, title_duration)
    assert (p.position_s, p.duration_s, p.finished) == expected


@pytest.mark.parametrize(
    "position,duration",
    [
        pytest.param(-1, None, id="negative"),
        pytest.param(float("nan"), None, id="nan"),
        pytest.param(float("inf"), None, id="inf"),
        pytest.param(True, None, id="bool"),
        pytest.param(10, 0, id="zero-duration"),
        pytest.param(10, -5, id="negative-duration"),
    ],
)
def test_compute_progress_rejects(position, duration):
    with pytest.raises(InvalidHistory):
        compute_progress(position, duration, None)


JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 20
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20


@pytest.mark.parametrize(
    "declared,data,ok",
    [
        pytest.param("image/jpeg", JPEG, True, id="jpeg"),
        pytest.param("image/png", PNG, True, id="png"),
        pytest.param("image/png", JPEG, False, id="declared-png-is-jpeg"),
        pytest.param("image/jpeg", b"<svg/>", False, id="svg-as-jpeg"),
        pytest.param("image/jpeg", b"", False, id="empty"),
        pytest.param("image/gif", b"GIF89a", False, id="gif"),
    ],
)
def test_check_poster(declared, data, ok):
    if ok:
        assert posters.check_poster(declared, data) == declared
    else:
        with pytest.raises(InvalidPoster):
            posters.check_poster(declared, data)
