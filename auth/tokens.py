"""Access tokens: short-lived JWTs (HS256 pinned), key chosen by `kid` from a key ring."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jwt

from auth.errors import InvalidToken, TokenExpired
from auth.keyring import KeyRing

if TYPE_CHECKING:
    from jwt.types import Options

ISSUER = "streamflix"
AUDIENCE = "streamflix-api"
ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "sid", "jti"]


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str
    role: str
    jti: str
    expires_at: int


def issue_access_token(
    ring: KeyRing, *, user_id: str, session_id: str, role: str, ttl_s: int, now: float | None = None
) -> tuple[str, int]:
    """Returns (token, expires_at)."""
    iat = int(now if now is not None else time.time())
    exp = iat + ttl_s
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user_id,
        "sid": session_id,
        "role": role,
        "jti": uuid.uuid4().hex,
        "iat": iat,
        "exp": exp,
    }
    token = jwt.encode(claims, ring.current_key, algorithm=ALGORITHM, headers={"kid": ring.current_kid})
    return token, exp


def verify_access_token(ring: KeyRing, token: str, *, now: float | None = None) -> AccessClaims:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken("malformed access token") from exc
    # The algorithm is pinned: "none" and anything but HS256 are refused before verification.
    if header.get("alg") != ALGORITHM:
        raise InvalidToken("unsupported token algorithm")
    key = ring.get(str(header.get("kid", "")))
    if key is None:
        raise InvalidToken("unknown signing key")
    # With an explicit `now` (tests, clock-injected callers) expiry is judged against it.
    options: Options = {"require": REQUIRED_CLAIMS, "verify_exp": now is None}
    try:
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER, options=options, leeway=0
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpired("access token expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"invalid access token: {exc}") from exc
    if now is not None and claims["exp"] <= now:
        raise TokenExpired("access token expired")
    if not isinstance(claims.get("sid"), str) or not isinstance(claims.get("sub"), str):
        raise InvalidToken("invalid access token: malformed sub or sid")
    return AccessClaims(
        user_id=str(claims["sub"]),
        session_id=str(claims["sid"]),
        role=str(claims.get("role", "viewer")),
        jti=str(claims["jti"]),
        expires_at=int(claims["exp"]),
    )
