"""Access tokens: algorithm pinned, claims required, keys by kid (pure)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from auth.errors import InvalidToken, TokenExpired
from auth.keyring import KeyRing
from auth.tokens import ALGORITHM, AUDIENCE, ISSUER, issue_access_token, verify_access_token

RING = KeyRing.from_secrets("current-secret", ("old-secret",), purpose="access")


def _claims(**over):
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "sid": "s1", "jti": "j1", "iat": now, "exp": now + 60}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def _sign(claims, key=RING.current_key, kid=RING.current_kid, alg=ALGORITHM):
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def _b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def test_round_trip():
    token, exp = issue_access_token(RING, user_id="u1", session_id="s1", role="viewer", ttl_s=900)
    claims = verify_access_token(RING, token)
    assert (claims.user_id, claims.session_id, claims.role, claims.expires_at) == ("u1", "s1", "viewer", exp)
    assert len(claims.jti) == 32


def test_previous_key_still_verifies_after_rotation():
    old = KeyRing.from_secrets("old-secret", purpose="access")
    token, _ = issue_access_token(old, user_id="u1", session_id="s1", role="viewer", ttl_s=900)
    assert verify_access_token(RING, token).user_id == "u1"


def test_alg_none_refused():
    token = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': RING.current_kid})}.{_b64(_claims())}."
    with pytest.raises(InvalidToken, match="algorithm"):
        verify_access_token(RING, token)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_hmac_alg_refused(alg):
    with pytest.raises(InvalidToken, match="algorithm"):
        verify_access_token(RING, _sign(_claims(), alg=alg))


def test_hs256_with_wrong_key():
    with pytest.raises(InvalidToken, match="Signature"):
        verify_access_token(RING, _sign(_claims(), key=b"x" * 32))


def test_unknown_kid():
    with pytest.raises(InvalidToken, match="unknown signing key"):
        verify_access_token(RING, _sign(_claims(), kid="deadbeef"))


def test_missing_kid():
    token = jwt.encode(_claims(), RING.current_key, algorithm=ALGORITHM)
    with pytest.raises(InvalidToken, match="unknown signing key"):
        verify_access_token(RING, token)


def test_key_of_another_purpose_refused():
    playback = KeyRing.from_secrets("current-secret", purpose="playback")
    with pytest.raises(InvalidToken):
        verify_access_token(RING, _sign(_claims(), key=playback.current_key, kid=playback.current_kid))


@pytest.mark.parametrize(
    "over",
    [
        pytest.param({"aud": "someone-else"}, id="wrong-aud"),
        pytest.param({"iss": "evil"}, id="wrong-iss"),
        pytest.param({"aud": None}, id="no-aud"),
        pytest.param({"iss": None}, id="no-iss"),
        pytest.param({"sub": None}, id="no-sub"),
        pytest.param({"sid": None}, id="no-sid"),
        pytest.param({"jti": None}, id="no-jti"),
        pytest.param({"exp": None}, id="no-exp"),
        pytest.param({"iat": None}, id="no-iat"),
        pytest.param({"sid": 7}, id="sid-not-string"),
    ],
)
def test_bad_claims(over):
    with pytest.raises(InvalidToken):
        verify_access_token(RING, _sign(_claims(**over)))


def test_expired():
    now = int(time.time())
    with pytest.raises(TokenExpired):
        verify_access_token(RING, _sign(_claims(iat=now - 120, exp=now - 1)))


def test_expiry_against_injected_clock():
    token, exp = issue_access_token(RING, user_id="u1", session_id="s1", role="viewer", ttl_s=900)
    with pytest.raises(TokenExpired):
        verify_access_token(RING, token, now=exp)


@pytest.mark.parametrize("junk", ["", "a.b", "a.b.c", "💥", "eyJ.eyJ.sig"])
def test_garbage(junk):
    with pytest.raises(InvalidToken):
        verify_access_token(RING, junk)
