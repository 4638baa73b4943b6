"""The real-time socket's protocol, pure: the messages, the close codes, the inbound limit.
docs/realtime.md is the reference for clients; this module and that page change together.

Every frame is a text frame holding one JSON object with a `type`.

Client to server: `{"type": "auth", "token": "<access token>"}` (first, once),
`{"type": "ping"}` (answered `{"type": "pong"}`), `{"type": "time.ping", "t0": ms}` (answered
`{"type": "time.pong", "t0": ..., "server": ms}`), and the watch party's `party.join`,
`party.leave`, `party.control`, `party.stalled` (parties.py).
Server to client: `{"type": "ready", "user_id": ...}` (after auth), `{"type": "notification",
"notification": {...}}`, `{"type": "unread", "count": n}`, `{"type": "status", "realtime":
"available" | "unavailable"}`, `{"type": "error", "code": ..., "message": ...}`, `{"type": "pong"}`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, TypeGuard

# RFC 6455 section 7.4.1 codes, and the 4000-4999 range applications define.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008  # a flood of messages, a client too slow to read what it is sent
CLOSE_TOO_BIG = 1009  # a message over the size limit (aiohttp closes with it itself)
CLOSE_UNAUTHORIZED = 4401  # no auth in time, a bad token, a revoked session
CLOSE_FORBIDDEN = 4403  # a valid credential that may not use the socket (an API key)
CLOSE_TOO_MANY = 4429  # over the per-user or per-address connection limit
CLOSE_BAD_MESSAGES = 4400  # too many malformed messages

CLIENT_TYPES = frozenset({"auth", "ping", "time.ping", "party.join", "party.leave", "party.control", "party.stalled"})
MAX_TOKEN_CHARS = 4096
MAX_PARTY_ID_CHARS = 64
PARTY_ACTIONS = ("play", "pause", "seek", "rate")
MIN_RATE = 0.25
MAX_RATE = 4.0
MAX_POSITION_S = 7 * 24 * 3600.0


class ProtocolError(Exception):
    """A message the server cannot use; `code` goes into the error message sent back."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse(text: str) -> dict[str, Any]:
    """One client message: a JSON object with a known `type` (and, for auth, a token)."""
    try:
        msg = json.loads(text)
    except ValueError:
        raise ProtocolError("malformed_json", "a message is one JSON object") from None
    if not isinstance(msg, dict):
        raise ProtocolError("malformed_message", "a message is one JSON object")
    kind = msg.get("type")
    if kind not in CLIENT_TYPES:
        raise ProtocolError("unknown_type", f"type must be one of {', '.join(sorted(CLIENT_TYPES))}")
    if kind == "auth":
        token = msg.get("token")
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise ProtocolError("malformed_message", "auth needs a token (a string)")
    elif kind == "time.ping":
        if not _number(msg.get("t0")):
            raise ProtocolError("malformed_message", "time.ping needs t0 (the client's clock, a number)")
    elif kind.startswith("party."):
        _party_message(msg)
    return msg


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _party_message(msg: dict[str, Any]) -> None:
    party = msg.get("party")
    if not isinstance(party, str) or not party or len(party) > MAX_PARTY_ID_CHARS:
        raise ProtocolError("malformed_message", f"{msg['type']} needs party (a party id)")
    if msg["type"] in ("party.control", "party.stalled"):
        position = msg.get("position")
        if not _number(position) or not 0 <= position <= MAX_POSITION_S:
            raise ProtocolError("malformed_message", "position must be a number of seconds, 0 or more")
    if msg["type"] == "party.control":
        if msg.get("action") not in PARTY_ACTIONS:
            raise ProtocolError("malformed_message", f"action must be one of {', '.join(PARTY_ACTIONS)}")
        rate = msg.get("rate")
        if msg["action"] == "rate" and not (_number(rate) and MIN_RATE <= rate <= MAX_RATE):
            raise ProtocolError("malformed_message", f"rate must be a number from {MIN_RATE} to {MAX_RATE}")
    if msg["type"] == "party.stalled" and not isinstance(msg.get("stalled"), bool):
        raise ProtocolError("malformed_message", "party.stalled needs stalled (true or false)")


def dumps(msg: dict[str, Any]) -> str:
    return json.dumps(msg, separators=(",", ":"))


def error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


def status(available: bool) -> dict[str, Any]:
    return {"type": "status", "realtime": "available" if available else "unavailable"}


@dataclass
class TokenBucket:
    """`burst` messages at once, then `rate` a second: `take()` is False past that."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)
        self.stamp = time.monotonic()

    def take(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True
