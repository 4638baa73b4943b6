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
        pytest.param('{"type": "time.ping"}', "malformed_message", id="ping-without-t0"),
        pytest.param('{"type": "time.ping", "t0": true}', "malformed_message", id="t0-a-bool"),
        pytest.param('{"type": "party.join", "party": ""}', "malformed_message", id="empty-party"),
        pytest.param('{"type": "party.join", "party": "' + "p" * 65 + '"}', "malformed_message", id="long-party"),
        pytest.param(
            '{"type": "party.control", "party": "p", "action": "play"}', "malformed_message", id="no-position"
        ),
        pytest.param(
            '{"type": "party.control", "party": "p", "action": "play", "position": -1}',
            "malformed_message",
            id="negative-position",
        ),
        pytest.param(
            '{"type": "party.control", "party": "p", "action": "play", "position": 1e400}',
            "malformed_message",
            id="infinite-position",
        ),
        pytest.param(
            '{"type": "party.control", "party": "p", "action": "rate", "position": 1}',
            "malformed_message",
            id="rate-without-rate",
        ),
        pytest.param(
            '{"type": "party.control", "party": "p", "action": "rate", "position": 1, "rate": 0}',
            "malformed_message",
            id="rate-zero",
        ),
        pytest.param(
            '{"type": "party.stalled", "party": "p", "position": 1, "stalled": "yes"}',
            "malformed_message",
            id="stalled-not-a-bool",
        ),
    ],
)
def test_refused_messages(text, code):
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.parse(text)
    assert info.value.code == code and info.value.message


def test_accepted_messages():
    assert protocol.parse('{"type": "ping"}') == {"type": "ping"}
    assert protocol.parse('{"type": "auth", "token": "abc"}')["token"] == "abc"
    assert protocol.parse('{"type": "time.ping", "t0": 1.5}')["t0"] == 1.5
    msg = '{"type": "party.control", "party": "p", "action": "rate", "position": 3, "rate": 1.5}'
    assert protocol.parse(msg)["rate"] == 1.5


def test_party_position_is_carried_forward_while_playing():
    from server.realtime.parties import Party

    base = dict(id="p", title_id="t", host="h", control="host", wait_for_stalled=False, seq=1, created_at=0)
    playing = Party(position=10.0, rate=1.5, playing=True, at=1_000, **base)
    assert playing.position_at(3_000) == pytest.approx(13.0)
    assert playing.state(now=3_000)["position"] == pytest.approx(13.0)
    assert playing.state()["at"] == 1_000 and playing.state()["position"] == 10.0
    paused = Party(position=10.0, rate=1.5, playing=False, at=1_000, **base)
    assert paused.position_at(60_000) == 10.0


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
