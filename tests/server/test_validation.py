"""The one UUID parser and the one `limit` parser of request input."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from server.http.errors import ApiError
from server.http.validation import Body, FiniteNumber, parse_limit, parse_uuid


class _Report(Body):
    value: FiniteNumber


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(float("inf"), id="inf"),
        pytest.param(float("-inf"), id="minus-inf"),
        pytest.param(float("nan"), id="nan"),
        pytest.param(10**400, id="int-too-big-for-a-float"),
        pytest.param(-(10**400), id="negative-int-too-big"),
    ],
)
def test_finite_number_refuses(value):
    with pytest.raises(ValidationError, match="finite"):
        _Report(value=value)


@pytest.mark.parametrize("value", [0, 1.5, -2, 10**300, 1.7e308])
def test_finite_number_keeps(value):
    assert _Report(value=value).value == value


@pytest.mark.parametrize(
    "raw,message",
    [
        pytest.param("0", "between 1 and 100", id="zero"),
        pytest.param("-1", "between 1 and 100", id="negative"),
        pytest.param("1000000000", "between 1 and 100", id="huge"),
        pytest.param("ten", "whole number", id="text"),
        pytest.param("1.5", "whole number", id="fraction"),
        pytest.param(" 5", "whole number", id="space"),
        pytest.param("9" * 5000, "whole number", id="thousands-of-digits"),
    ],
)
def test_limit_out_of_range_is_a_400(raw, message):
    with pytest.raises(ApiError, match=message) as info:
        parse_limit(raw, default=20, maximum=100)
    assert (info.value.status, info.value.code) == (400, "invalid_query")


@pytest.mark.parametrize("raw", [None, ""])
def test_limit_absent_is_the_default(raw):
    assert parse_limit(raw, default=20, maximum=100) == 20


def test_limit_up_to_the_maximum():
    assert parse_limit("1", default=20, maximum=100) == 1
    assert parse_limit("100", default=20, maximum=100) == 100


def test_uuid_canonical_form_or_the_routes_error():
    assert parse_uuid("6F9619FF-8B86-D011-B42D-00CF4FC964FF", LookupError()) == "6f9619ff-8b86-d011-b42d-00cf4fc964ff"
    for bad in ("not-a-uuid", "'; DROP TABLE x; --", ""):
        with pytest.raises(LookupError, match="no such"):
            parse_uuid(bad, LookupError("no such thing"))
