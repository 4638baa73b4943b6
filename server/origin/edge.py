"""What a listening socket serves with: `Runner` is aiohttp's AppRunner with the fast
protocol (fastpath.py) in front of aiohttp's own, on the same port; `EdgeServer` makes one
FastProtocol per connection and holds what they share (the origin's caches, parsed URLs, the
Date field, the metrics recorder), closes idle connections, and shuts down with aiohttp.

`streamflix serve`, the tests' servers and the browser tests' live server all use `Runner`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from server import keys
from server.http import middlewares
from server.http.conditional import http_date
from server.origin import aiohttp_glue, routes
from server.origin.cache import Origin
from server.origin.fastpath import FastProtocol, ParsedRequest, Target
from server.origin.handlers import ORIGIN

KEEPALIVE_S = 75.0  # aiohttp's default keepalive_timeout
SWEEP_S = 5.0


class DateField:
    """The Date field line, formatted once per second."""

    __slots__ = ("second", "value")

    def __init__(self) -> None:
        self.second = -1
        self.value = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.value = b"Date: " + http_date(second).encode() + b"\r\n"
        return self.value


class EdgeServer:
    """The protocol factory a site listens with: FastProtocol per connection, aiohttp's
    `web.Server` (`inner`) for whatever FastProtocol hands over. Stands in for that server in
    the runner, so everything else (connections, shutdown) is delegated to it."""

    def __init__(self, inner: web.Server, app: web.Application) -> None:
        self.inner = inner
        self.app = app
        self.loop = asyncio.get_running_loop()
        self.conns: set[FastProtocol] = set()
        self.closing = False
        self.answered = 0  # requests answered here
        self.handed_over = 0  # connections given to aiohttp
        self.date = DateField()
        settings = app.get(keys.SETTINGS)
        self.trusted = settings.trusted_networks if settings is not None else ()
        self.matcher = routes.Matcher()
        self.urls: dict[bytes, Target] = {}  # raw request target -> parsed (fastpath.URL_CACHE_SIZE)
        self.heads: dict[bytes, ParsedRequest] = {}  # raw request head -> parsed (fastpath.HEAD_CACHE_SIZE)
        # Route label for metrics and access log: the aiohttp route's canonical path.
        self.labels = {name: app.router[routes.route_name(name)].canonical for name in routes.ROUTES}
        self._origin: Origin | None = None
        self._recorder: middlewares.Recorder | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    @property
    def origin(self) -> Origin:
        # After startup (the origin is made in a cleanup context).
        if self._origin is None:
            self._origin = self.app[ORIGIN]
        return self._origin

    @property
    def recorder(self) -> middlewares.Recorder:
        # After startup (the access-log sink is set before the runner starts).
        if self._recorder is None:
            self._recorder = middlewares.Recorder(self.app)
        return self._recorder

    def __call__(self) -> asyncio.Protocol:
        if self.closing:
            return aiohttp_glue.protocol(self.inner)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(SWEEP_S, self._sweep)
        return FastProtocol(self)

    def __getattr__(self, name: str) -> Any:  # connections, requests_count, request_handler, ...
        return getattr(self.inner, name)

    def hand_over(self, conn: FastProtocol, transport: asyncio.Transport, unanswered: bytes) -> None:
        """aiohttp's protocol takes `conn`'s connection over, with the bytes not yet answered."""
        self.conns.discard(conn)
        self.handed_over += 1
        aiohttp_glue.hand_over(self.inner, transport, unanswered, eof=conn.eof, write_paused=conn.write_paused)

    def _sweep(self) -> None:
        """Close connections idle for KEEPALIVE_S (one timer for all, not one per request)."""
        self._sweeper = None
        deadline = self.loop.time() - KEEPALIVE_S
        for conn in list(self.conns):
            if not conn.busy and conn.last_active < deadline:
                conn.close()
        if self.conns and not self.closing:
            self._sweeper = self.loop.call_later(SWEEP_S, self._sweep)

    def pre_shutdown(self) -> None:
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self.conns):
            conn.close_when_idle()
        self.inner.pre_shutdown()

    async def shutdown(self, timeout: float | None = None) -> None:
        deadline = self.loop.time() + (timeout if timeout is not None else 60.0)
        # Polled: a busy flag per connection, not worth an event each (shutdown only).
        while any(c.busy for c in self.conns) and self.loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for conn in list(self.conns):
            conn.abort()
        await self.inner.shutdown(timeout)


class Runner(aiohttp_glue.FrontedRunner):
    """aiohttp's AppRunner with the stream fast path in front of its protocol."""

    def front(self, server: web.Server) -> EdgeServer:
        return EdgeServer(server, self.app)
