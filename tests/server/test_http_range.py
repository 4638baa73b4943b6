"""server/http/conditional.py: RFC 9110 preconditions and byte ranges, table-driven."""

from __future__ import annotations

import pytest

from server.http.conditional import Validators, etag_matches, evaluate, http_date, if_none_match, parse_http_date

LM = 1_700_000_000
V = Validators(size=1000, etag='"abc"', last_modified=LM)


@pytest.mark.parametrize(
    "header,status,content_range",
    [
        pytest.param("bytes=0-8", 206, "bytes 0-8/1000", id="first-9"),
        pytest.param("bytes=-10", 206, "bytes 990-999/1000", id="suffix"),
        pytest.param("bytes=990-", 206, "bytes 990-999/1000", id="open-ended"),
        pytest.param("bytes=990-1990", 206, "bytes 990-999/1000", id="past-end-clamped"),
        pytest.param("bytes=-2000", 206, "bytes 0-999/1000", id="suffix-longer-than-body"),
        pytest.param("bytes=0-0", 206, "bytes 0-0/1000", id="one-byte"),
        pytest.param("bytes=999-999", 206, "bytes 999-999/1000", id="last-byte"),
        pytest.param("BYTES=1-2", 206, "bytes 1-2/1000", id="unit-case-insensitive"),
        pytest.param("bytes= 1 - 2 ", 206, "bytes 1-2/1000", id="spaces"),
        pytest.param("bytes=0-9, 100000-", 206, "bytes 0-9/1000", id="one-satisfiable-of-two"),
        pytest.param("bytes=0-9, -10, 10-19", 200, None, id="multiple-ranges-full"),
        pytest.param("bytes=0-10001, 0-0", 200, None, id="overlapping-full"),
        pytest.param("items=0-1", 200, None, id="unknown-unit-ignored"),
        pytest.param("bytes=1000-", 416, "bytes */1000", id="start-at-size"),
        pytest.param("bytes=100000-", 416, "bytes */1000", id="start-past-size"),
        pytest.param("bytes=-0", 416, "bytes */1000", id="empty-suffix"),
        pytest.param("bytes=alpha", 416, "bytes */1000", id="alpha-first"),
        pytest.param("bytes=10-alpha", 416, "bytes */1000", id="alpha-last"),
        pytest.param("bytes=10", 416, "bytes */1000", id="no-hyphen"),
        pytest.param("bytes=10-11 12-", 416, "bytes */1000", id="no-comma"),
        pytest.param("bytes=", 416, "bytes */1000", id="empty-set"),
        pytest.param("bytes=5-1", 416, "bytes */1000", id="last-before-first"),
        pytest.param("bytes=99999999999999999999-", 416, "bytes */1000", id="overflow"),
        # past Python's int() digit limit (4300): over the offset limit like "overflow" (a 416),
        # not a ValueError out of the parser; leading zeros do not count
        pytest.param("bytes=" + "9" * 5000 + "-", 416, "bytes */1000", id="thousands-of-digits-first"),
        pytest.param("bytes=0-" + "9" * 5000, 416, "bytes */1000", id="thousands-of-digits-last"),
        pytest.param("bytes=-" + "9" * 5000, 416, "bytes */1000", id="thousands-of-digits-suffix"),
        pytest.param("bytes=" + "0" * 5000 + "5-6", 206, "bytes 5-6/1000", id="thousands-of-leading-zeros"),
    ],
)
def test_ranges(header, status, content_range):
    d = evaluate("GET", V, range_header=header)
    assert (d.status, d.content_range) == (status, content_range)
    if status == 206:
        first, last = map(int, content_range.split()[1].split("/")[0].split("-"))
        assert (d.start, d.length) == (first, last - first + 1)
    if status == 200:
        assert (d.start, d.length) == (0, 1000)


def test_head_with_range_gets_the_get_headers():
    # RFC 9110 9.3.2; nginx answers 206 too (test_nginx_parity "head-range").
    assert evaluate("HEAD", V, range_header="bytes=0-1").status == 206
    assert evaluate("POST", V, range_header="bytes=0-1").status == 200


@pytest.mark.parametrize(
    "if_range,status",
    [
        pytest.param('"abc"', 206, id="etag-matches"),
        pytest.param('W/"abc"', 200, id="weak-never-matches"),
        pytest.param('"other"', 200, id="etag-differs"),
        pytest.param(http_date(LM), 206, id="date-equal"),
        pytest.param(http_date(LM + 1), 200, id="date-differs"),
        pytest.param("wrong", 200, id="garbage"),
    ],
)
def test_if_range(if_range, status):
    assert evaluate("GET", V, range_header="bytes=0-9", if_range=if_range).status == status


@pytest.mark.parametrize(
    "kwargs,status",
    [
        pytest.param({"if_none_match": '"abc"'}, 304, id="inm"),
        pytest.param({"if_none_match": '"foo"'}, 200, id="inm-fail"),
        pytest.param({"if_none_match": '"foo", "bar", "abc" , "baz"'}, 304, id="inm-list"),
        pytest.param({"if_none_match": "*"}, 304, id="inm-star"),
        pytest.param({"if_none_match": 'W/"abc"'}, 304, id="inm-weak-comparison"),
        pytest.param({"if_match": '"abc"'}, 200, id="im"),
        pytest.param({"if_match": '"foo"'}, 412, id="im-fail"),
        pytest.param({"if_match": '"foo", "bar",\t"abc" , "baz"'}, 200, id="im-list"),
        pytest.param({"if_match": "*"}, 200, id="im-star"),
        pytest.param({"if_match": 'W/"abc"'}, 412, id="im-weak-fails-strong-comparison"),
        pytest.param({"if_modified_since": http_date(LM)}, 304, id="ims-equal"),
        pytest.param({"if_modified_since": http_date(LM + 3600)}, 304, id="ims-later"),
        pytest.param({"if_modified_since": http_date(LM - 1)}, 200, id="ims-earlier"),
        pytest.param({"if_modified_since": "Wed, 08 Jul 2037 22:53:52 GMT"}, 304, id="ims-2037"),
        pytest.param({"if_modified_since": "not a date"}, 200, id="ims-invalid-ignored"),
        pytest.param({"if_none_match": '"foo"', "if_modified_since": http_date(LM)}, 200, id="inm-overrides-ims"),
        pytest.param({"if_unmodified_since": http_date(LM - 1)}, 412, id="ius-fail"),
        pytest.param({"if_unmodified_since": http_date(LM)}, 200, id="ius-ok"),
        pytest.param({"if_none_match": '"abc"', "range_header": "bytes=0-1"}, 304, id="inm-before-range"),
    ],
)
def test_preconditions(kwargs, status):
    assert evaluate("GET", V, **kwargs).status == status


def test_dates_all_three_formats():
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777
    assert parse_http_date("Sun Nov  6 08:49:37 1994") == 784111777
    assert parse_http_date("garbage") is None


def test_etag_matching():
    assert etag_matches('W/"abc"', '"abc"', weak=True)
    assert not etag_matches('W/"abc"', '"abc"', weak=False)
    assert not etag_matches('"ab"', '"abc"', weak=True)


@pytest.mark.parametrize(
    ("header", "etag", "matches"),
    [
        pytest.param(None, '"abc"', False, id="absent"),
        pytest.param("", '"abc"', False, id="empty"),
        pytest.param('"abc"', '"abc"', True, id="same"),
        pytest.param('W/"abc"', '"abc"', True, id="weak-header"),
        pytest.param('"abc"', 'W/"abc"', True, id="weak-etag"),
        pytest.param('"x", "abc"', '"abc"', True, id="in-list"),
        pytest.param('"ab"', '"abc"', False, id="other"),
        pytest.param("*", '"abc"', True, id="star"),
    ],
)
def test_if_none_match(header, etag, matches):
    assert if_none_match(header, etag) is matches
