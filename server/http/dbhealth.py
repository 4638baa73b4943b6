"""Is Postgres answering? One state per app, so an outage is logged once when it starts and
once when it ends, however many requests and background tasks run into it meanwhile."""

from __future__ import annotations

import logging
import time

from aiohttp import web

log = logging.getLogger("streamflix.server")


def describe(exc: BaseException) -> str:
    """One line for a log: the exception's type and its first line of text."""
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class DatabaseHealth:
    """`failed(exc)` on every outage error, `ok()` whenever a query succeeds: logs
    "database unavailable ..." on the first failure and "database back ..." on the first
    success after it, and nothing in between."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self.log = logger
        self.down_since: float | None = None
        self.failures = 0  # during the current outage

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.log.warning(
                "database unavailable (%s): database-backed requests answer 503 until it is back", describe(exc)
            )

    def ok(self) -> None:
        if self.down_since is None:
            return
        elapsed = time.monotonic() - self.down_since
        self.log.info("database back after %.1f s (%d failed calls)", elapsed, self.failures)
        self.down_since = None
        self.failures = 0


DB_HEALTH = web.AppKey("db_health", DatabaseHealth)
