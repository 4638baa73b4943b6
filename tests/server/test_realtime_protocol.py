"""The socket protocol's pure parts: what a client message must be, and the inbound limit."""

from __future__ import annotations

import pytest

from server.realtime import protocol


@pytest.mark.parametrize(
    ("text", "code"),
    [
        pytest.param("{not json", "malformed_json", id="not-json"),
        pytest.param("[]", "malformed_message", id="not-an-object"),
        pytest.param('"auth"', "malformed_message", id="a-string"),
        pytest.param("{}", "unknown_type", id="no-type"),
        pytest.param('{"type": "subscribe"}', "unknown_type", id="unknown-type"),
        pytest.param('{"type": "auth"}', "malformed_message", id="auth-without-token"),
        pytest.param('{"type": "auth", "token": 5}', "malformed_message", id="token-not-a-string"),
        pytest.param('{"type": "auth", "token": ""}', "malformed_message", id="empty-token"),
        pytest.param('{"type": "auth", "token": "' + "x" * 5000 + '"}', "malformed_message", id="huge-token"),
    ],
)
def test_refused_messages(text, code):
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.parse(text)
    assert info.value.code == code and info.value.message


def test_accepted_messages():
    assert protocol.parse('{"type": "ping"}') == {"type": "ping"}
    assert protocol.parse('{"type": "auth", "token": "abc"}')["token"] == "abc"


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = protocol.TokenBucket(rate=2.0, burst=3)
    now = bucket.stamp
    assert [bucket.take(now) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(now + 0.5)  # one more after half a second at 2 a second
    assert not bucket.take(now + 0.5)
    assert [bucket.take(now + 100) for _ in range(4)] == [True, True, True, False]  # never more than the burst


def test_server_messages():
    assert protocol.status(False) == {"type": "status", "realtime": "unavailable"}
    assert protocol.error("x", "y") == {"type": "error", "code": "x", "message": "y"}
    assert protocol.dumps({"a": 1}) == '{"a":1}'
