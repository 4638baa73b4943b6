"""A minimal circuit breaker: after a failure, skip the dependency for `open_s` seconds,
then let calls through to probe it again (half-open; the next failure reopens it).

The one breaker of the project: token revocation and the rate limiter use it in front of
Redis, and so does the API response cache (server/api/cache.py). Callers log the failure;
`is_open` tells them whether they already did.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Breaker:
    def __init__(self, open_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.open_s = open_s
        self._clock = clock
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return self._clock() < self._open_until

    def allow(self) -> bool:
        return not self.is_open

    def trip(self) -> None:
        self._open_until = self._clock() + self.open_s

    def reset(self) -> None:
        self._open_until = 0.0
