"""Signing keys selected by `kid`: the current key signs, previous keys still verify, so a
key rotates without logging anyone out or breaking playback URLs."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class KeyRing:
    current_kid: str
    keys: dict[str, bytes]  # kid -> key (current and previous)

    @classmethod
    def from_secrets(cls, secret: str, previous: tuple[str, ...] = (), *, purpose: str) -> KeyRing:
        """Derive one key per purpose ("access", "playback", ...) from each configured secret,
        so a token of one kind can never be replayed as another."""
        keys: dict[str, bytes] = {}
        current_kid = ""
        for i, s in enumerate((secret, *previous)):
            key = hmac.new(s.encode(), purpose.encode(), hashlib.sha256).digest()
            kid = hashlib.sha256(key).hexdigest()[:8]
            keys.setdefault(kid, key)
            if i == 0:
                current_kid = kid
        return cls(current_kid, keys)

    @property
    def current_key(self) -> bytes:
        return self.keys[self.current_kid]

    def get(self, kid: str) -> bytes | None:
        return self.keys.get(kid)
