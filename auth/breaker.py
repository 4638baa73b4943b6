"""A minimal circuit breaker: after a failure, skip the dependency for `open_s` seconds,
then let calls through to probe it again (the next failure reopens it).

The one breaker of the project: token revocation and the rate limiter use it in front of
Redis, the API response cache (server/api/cache.py) too, and the server's storage guard
(server/storage_guard.py) in front of storage. Callers log the failure; `is_open` tells them
whether they already did.

Two ways to ask:

- `allow()`: every call goes through once the open period is over (fine for Redis, where a
  failed call costs a one-second timeout and the caller has a fallback);
- `admit()`: half-open after the open period, letting exactly one probe through; the others
  are refused until the probe reports `success()` (closed) or `trip()` (open again). For a
  dependency whose failed call holds a thread for seconds (a hung storage endpoint), so a
  recovering outage costs one call, not one per request. A probe that never reports (its
  caller was cancelled) is replaced after another `open_s`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


class Breaker:
    def __init__(self, open_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.open_s = open_s
        self._clock = clock
        self._open_until = 0.0
        self._probing_until = 0.0  # while a half-open probe is out
        self._tripped = False  # a failure not yet followed by a success

    @property
    def is_open(self) -> bool:
        return self._clock() < self._open_until

    @property
    def state(self) -> str:
        """CLOSED, OPEN (refusing) or HALF_OPEN (open period over, not yet proven healthy)."""
        if self.is_open:
            return OPEN
        return HALF_OPEN if self._tripped else CLOSED

    @property
    def retry_after(self) -> float:
        """Seconds until the open period ends (at least 1: the Retry-After a refusal carries)."""
        return max(1.0, self._open_until - self._clock())

    def allow(self) -> bool:
        return not self.is_open

    def admit(self) -> bool:
        """True when a call may go to the dependency: always while closed; once per open
        period while half-open (that call is the probe); never while open."""
        now = self._clock()
        if now < self._open_until:
            return False
        if not self._tripped:
            return True
        if now < self._probing_until:
            return False  # a probe is out: wait for its answer
        self._probing_until = now + self.open_s
        return True

    def success(self) -> None:
        """A call went through: close (a half-open probe proved the dependency healthy)."""
        if self._tripped:
            self._tripped = False
            self._probing_until = 0.0

    def trip(self) -> None:
        self._open_until = self._clock() + self.open_s
        self._tripped = True
        self._probing_until = 0.0

    def reset(self) -> None:
        self._open_until = 0.0
        self._tripped = False
        self._probing_until = 0.0
