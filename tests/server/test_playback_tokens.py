"""auth/playback.py: stateless, window-rounded, key-rotating playback tokens."""

from __future__ import annotations

import re

import pytest

from auth import playback
from auth.errors import (
    PlaybackTokenError,
    PlaybackTokenExpired,
    PlaybackTokenForged,
    PlaybackTokenMalformed,
    PlaybackTokenUnknownKey,
    PlaybackTokenWrongTitle,
    PlaybackTokenWrongVersion,
)

RING = playback.keyring("current-secret")
TITLE = "0b8f3c0e-7d0a-4b8e-9f3a-1c2d3e4f5a6b"
OTHER_TITLE = "1b8f3c0e-7d0a-4b8e-9f3a-1c2d3e4f5a6b"
VERSION = "v20240131120000-a1b2c3"
WINDOW = 6 * 3600
NOW = 1_700_000_000.0


def _sign(now: float = NOW, ring=RING, title: str = TITLE, version: str = VERSION) -> str:
    return playback.sign(ring, title, version, now, WINDOW)[0]


def test_round_trip_and_expiry_on_a_window_boundary():
    token, exp = playback.sign(RING, TITLE, VERSION, NOW, WINDOW)
    assert exp % WINDOW == 0
    # Long enough for a film even when asked at the very end of a window.
    assert WINDOW < exp - NOW <= 2 * WINDOW
    assert playback.verify(RING, token, TITLE, VERSION, NOW) == exp
    assert playback.verify(RING, token, TITLE, VERSION, exp - 1) == exp


def test_same_window_same_token_next_window_new_token():
    start = (int(NOW) // WINDOW) * WINDOW
    a = _sign(start)
    b = _sign(start + WINDOW - 1)
    c = _sign(start + WINDOW)
    assert a == b  # every viewer in the window shares the URL (one CDN cache entry)
    assert c != a


def test_url_safe_and_dollar_free():
    token = _sign()
    assert re.fullmatch(r"[0-9A-Za-z._-]+", token)
    assert "$" not in token and "&" not in token and "%" not in token
    assert len(token) < 100


@pytest.mark.parametrize(
    "mutate,error,code",
    [
        pytest.param(
            lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
            PlaybackTokenForged,
            "playback_token_bad_signature",
            id="forged-signature",
        ),
        pytest.param(
            lambda t: t.replace(t.split(".")[1], str(int(t.split(".")[1]) + 21600)),
            PlaybackTokenForged,
            "playback_token_bad_signature",
            id="edited-expiry",
        ),
        pytest.param(
            lambda t: "ffffffff" + t[8:], PlaybackTokenUnknownKey, "playback_token_unknown_key", id="unknown-kid"
        ),
        pytest.param(lambda t: "", PlaybackTokenMalformed, "playback_token_malformed", id="empty"),
        pytest.param(lambda t: t + ".x", PlaybackTokenMalformed, "playback_token_malformed", id="extra-part"),
        pytest.param(lambda t: t.replace(".", "$"), PlaybackTokenMalformed, "playback_token_malformed", id="dollar"),
        pytest.param(lambda t: t + "A" * 500, PlaybackTokenMalformed, "playback_token_malformed", id="huge"),
        pytest.param(
            lambda t: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
            PlaybackTokenMalformed,
            "playback_token_malformed",
            id="jwt-alg-none",
        ),
    ],
)
def test_bad_tokens(mutate, error, code):
    with pytest.raises(error) as info:
        playback.verify(RING, mutate(_sign()), TITLE, VERSION, NOW)
    assert info.value.code == code
    assert isinstance(info.value, PlaybackTokenError)


def test_expired():
    token, exp = playback.sign(RING, TITLE, VERSION, NOW, WINDOW)
    with pytest.raises(PlaybackTokenExpired) as info:
        playback.verify(RING, token, TITLE, VERSION, exp)
    assert info.value.code == "playback_token_expired"


def test_other_title_and_other_version():
    token = _sign()
    with pytest.raises(PlaybackTokenWrongTitle):
        playback.verify(RING, token, OTHER_TITLE, VERSION, NOW)
    with pytest.raises(PlaybackTokenWrongVersion):
        playback.verify(RING, token, TITLE, "v20240131120000-ffffff", NOW)


def test_other_key_and_rotation():
    other = playback.keyring("someone-elses-secret")
    with pytest.raises(PlaybackTokenUnknownKey):
        playback.verify(RING, _sign(ring=other), TITLE, VERSION, NOW)
    # Rotation: the new secret signs, the previous one still verifies what it signed.
    old_token = _sign()
    rotated = playback.keyring("new-secret", ("current-secret",))
    assert playback.verify(rotated, old_token, TITLE, VERSION, NOW)
    new_token = _sign(ring=rotated)
    assert new_token.split(".")[0] != old_token.split(".")[0]
    assert playback.verify(rotated, new_token, TITLE, VERSION, NOW)
    # ... and once the previous secret is dropped, its tokens stop working.
    with pytest.raises(PlaybackTokenUnknownKey):
        playback.verify(playback.keyring("new-secret"), old_token, TITLE, VERSION, NOW)


def test_playback_key_is_not_the_access_key():
    from auth.keyring import KeyRing

    access = KeyRing.from_secrets("current-secret", purpose="access")
    assert access.current_key != RING.current_key


def test_signature_same_kid_other_secret_is_forged():
    # Same kid can only come from the same key, so forge by hand: right kid, wrong MAC.
    token = _sign()
    kid, exp, scope, sig = token.split(".")
    bad = ".".join([kid, exp, scope, "A" * 43])
    with pytest.raises(PlaybackTokenForged):
        playback.verify(RING, bad, TITLE, VERSION, NOW)
