"""Playback tokens: stateless capabilities for one title version until a window boundary.

    {kid}.{exp}.{scope}.{sig}        e.g. 3f9a0c1b.1712361600.Zm9vYmFy.<43 url-safe chars>

- `kid`: which key of the ring signed it (8 hex), so keys rotate without breaking URLs.
- `exp`: Unix seconds, always a multiple of the window (docs/origin.md):
  every viewer who asks within the same window gets the same token, hence the same URLs, so a
  CDN keyed on the full URL keeps one copy of each segment for all of them.
- `scope`: 4 + 4 url-safe characters hashed from the title id and the version. Not a secret:
  it only lets `verify` say "wrong title" or "wrong version" rather than "bad signature".
- `sig`: HMAC-SHA256 over kid, exp, title id and version with the ring's "playback" key.

Only [0-9a-f.A-Za-z_-] appear: no `$` (a DASH template identifier, ISO/IEC 23009-1 5.3.9.4.4),
no `&`, `=`, `%` or `/`, so the token can sit in a query string, an HLS URI line and a
SegmentTemplate unescaped. Verifying is one HMAC: no database or Redis round trip.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from auth.errors import (
    PlaybackTokenExpired,
    PlaybackTokenForged,
    PlaybackTokenMalformed,
    PlaybackTokenUnknownKey,
    PlaybackTokenWrongTitle,
    PlaybackTokenWrongVersion,
)
from auth.keyring import KeyRing

PURPOSE = "playback"
# the last group is the signature: 32 bytes, base64url
_TOKEN = re.compile(r"([0-9a-f]{8})\.([0-9]{1,12})\.([A-Za-z0-9_-]{4})([A-Za-z0-9_-]{4})\.([A-Za-z0-9_-]{43})")
# A token is ~70 characters; refuse anything much longer before running a regex over it.
MAX_TOKEN_LEN = 128


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _hint(value: str) -> str:
    return _b64(hashlib.sha256(value.encode()).digest()[:3])


def _mac(key: bytes, kid: str, exp: int, title_id: str, version: str) -> bytes:
    # "\n" cannot occur in a title id or a version, so the fields cannot be shifted into
    # each other to forge another scope.
    msg = f"sf-playback-v1\n{kid}\n{exp}\n{title_id}\n{version}".encode()
    return hmac.new(key, msg, hashlib.sha256).digest()


def expiry(now: float, window_s: int) -> int:
    """The window boundary at least one full window after `now`: every request in the same
    window gets the same expiry, and every token lives between one and two windows (a film
    started at the end of a window still has a whole window to play)."""
    if window_s <= 0:
        raise ValueError("window_s must be positive")
    return (int(now) // window_s + 2) * window_s


def sign(ring: KeyRing, title_id: str, version: str, now: float, window_s: int) -> tuple[str, int]:
    """Returns (token, expires_at in Unix seconds)."""
    exp = expiry(now, window_s)
    kid = ring.current_kid
    sig = _mac(ring.current_key, kid, exp, title_id, version)
    return f"{kid}.{exp}.{_hint(title_id)}{_hint(version)}.{_b64(sig)}", exp


def verify(ring: KeyRing, token: str, title_id: str, version: str, now: float) -> int:
    """Check `token` for (title_id, version) at `now`; return its expiry.

    Raises, in this order: PlaybackTokenMalformed, PlaybackTokenUnknownKey,
    PlaybackTokenWrongTitle / PlaybackTokenWrongVersion, PlaybackTokenForged,
    PlaybackTokenExpired. The signature is checked before the expiry, so a token whose `exp`
    was edited is reported as forged, not as expired.
    """
    if len(token) > MAX_TOKEN_LEN:
        raise PlaybackTokenMalformed("playback token is malformed")
    m = _TOKEN.fullmatch(token)
    if m is None:
        raise PlaybackTokenMalformed("playback token is malformed")
    kid, exp_text, title_hint, version_hint, sig_text = m.groups()
    key = ring.get(kid)
    if key is None:
        raise PlaybackTokenUnknownKey("playback token was signed with an unknown key")
    if not hmac.compare_digest(title_hint, _hint(title_id)):
        raise PlaybackTokenWrongTitle("playback token is for another title")
    if not hmac.compare_digest(version_hint, _hint(version)):
        raise PlaybackTokenWrongVersion("playback token is for another version of this title")
    exp = int(exp_text)
    # Compared as text, not decoded: base64 ignores the last character's spare bits, and one
    # capability must have exactly one spelling (one URL, one CDN cache entry). Constant-time:
    # the time taken says nothing about how much of a guess matched.
    if not hmac.compare_digest(sig_text, _b64(_mac(key, kid, exp, title_id, version))):
        raise PlaybackTokenForged("playback token signature does not match")
    if exp <= now:
        raise PlaybackTokenExpired("playback token has expired: ask for a new playback URL")
    return exp


def keyring(secret: str, previous: tuple[str, ...] = ()) -> KeyRing:
    return KeyRing.from_secrets(secret, previous, purpose=PURPOSE)
