"""Opaque keyset cursors for browse: base64url(JSON) + "." + base64url(HMAC-SHA256).

Pure: takes a key and values, returns text. The cursor is bound to the filter it was issued
for (its `scope`), so a cursor copied onto another query is refused instead of returning a
page of something else. Anything that does not verify is `InvalidCursor` (a 400), whatever
bytes a client sends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from catalog.errors import InvalidCursor

MAX_CURSOR_CHARS = 512
_MAC_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def derive_key(secret: str) -> bytes:
    """A key for cursors only, so a cursor MAC can never be replayed as another token."""
    return hmac.new(secret.encode(), b"streamflix catalog cursor v1", hashlib.sha256).digest()


def _mac(key: bytes, scope: str, payload: str) -> bytes:
    return hmac.new(key, f"{scope}\n{payload}".encode(), hashlib.sha256).digest()[:_MAC_BYTES]


def encode(key: bytes, scope: str, position: list[Any]) -> str:
    payload = _b64(json.dumps(position, separators=(",", ":")).encode())
    return f"{payload}.{_b64(_mac(key, scope, payload))}"


def decode(key: bytes, scope: str, cursor: str) -> list[Any]:
    if not cursor or len(cursor) > MAX_CURSOR_CHARS or cursor.count(".") != 1:
        raise InvalidCursor("the cursor is not one this server issued")
    payload, mac = cursor.split(".")
    try:
        given = _unb64(mac)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("the cursor is not one this server issued") from exc
    if not hmac.compare_digest(given, _mac(key, scope, payload)):
        raise InvalidCursor("the cursor is not one this server issued, or belongs to another query")
    try:
        position = json.loads(_unb64(payload))
    except (binascii.Error, ValueError) as exc:  # only reachable with the key: defence in depth
        raise InvalidCursor("the cursor is malformed") from exc
    if not isinstance(position, list):
        raise InvalidCursor("the cursor is malformed")
    return position
