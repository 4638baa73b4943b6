"""Every use of aiohttp beyond its documented API, in one module: how the fast protocol gets
in front of aiohttp's on the same sockets, and hands a connection back to it.

What this relies on (tests/server/test_aiohttp_internals.py checks each, and pyproject.toml
pins aiohttp to the range where that test passes):

- `AppRunner._make_server()` (private) is where a runner makes its `web.Server`, and the
  runner and its sites use what it returns only as a protocol factory (`server()`), through
  `pre_shutdown()` and `shutdown(timeout)`, and for a few attributes (`connections`,
  `requests_count`, ...) that a stand-in can delegate;
- `web.Server()` returns aiohttp's per-connection protocol (`RequestHandler`), which takes a
  live connection over when given its transport (`connection_made`) and then the bytes not
  yet answered (`data_received`), and honours `pause_writing` and `eof_received`;
- `aiohttp.http.SERVER_SOFTWARE` is the Server field value aiohttp's own responses carry;
- `web_protocol.RequestHandler(server, loop=server._loop, **server._kwargs)` is what
  `web.Server()` makes, and a request it cannot parse (bad Content-Length, Content-Length with
  Transfer-Encoding, a header over the limit) is answered by the return value of
  `handle_error(request, status, exc, message)`, which JsonErrorHandler overrides.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web, web_protocol
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from server.http.errors import error_response

SERVER = SERVER_SOFTWARE  # the Server field value, the same as aiohttp's own responses

log = logging.getLogger("streamflix.server")


class JsonErrorHandler(web_protocol.RequestHandler):
    """aiohttp's per-connection protocol, except that a request it cannot parse is answered in
    the one JSON error shape and logged as one INFO line: malformed requests are the client's
    problem (scanners, broken proxies, smuggling attempts), not an ERROR with a traceback."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500 or not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        reason = " ".join(str(message or exc.message or type(exc).__name__).split())[:200]
        limit = exc.args[1] if isinstance(exc, LineTooLong) and len(exc.args) > 1 else None
        if limit is not None and limit == self.max_field_size and limit != self.max_line_size:
            # RFC 6585 section 5: a header field over the limit
            status, code = 431, "header_fields_too_large"
        elif limit is not None and limit == self.max_line_size:
            # RFC 9110 section 15.5.15: the request line (its URI) over the limit
            status, code = 414, "uri_too_long"
        else:
            code = "malformed_request" if status == 400 else "bad_request"
        log.info("malformed HTTP request from %s: %d %s", request.remote, status, reason)
        if request.writer.output_size > 0:
            # as aiohttp: part of a response went out, no room for another
            raise ConnectionError("response already started; cannot send the error")
        resp = error_response(status, code, f"malformed HTTP request: {reason}")
        resp.force_close()
        return resp


def protocol(server: web.Server) -> web_protocol.RequestHandler:
    """What `server()` makes (aiohttp's protocol for one connection), as JsonErrorHandler."""
    return JsonErrorHandler(server, loop=server._loop, **server._kwargs)  # noqa: SLF001 # see the module doc


class FrontedRunner(web.AppRunner):
    """aiohttp's AppRunner whose sites listen with `front(server)` instead of the app's
    `web.Server`: a protocol factory that stands in for that server (see the module doc)."""

    def front(self, server: web.Server) -> Any:
        raise NotImplementedError

    async def _make_server(self) -> Any:
        return self.front(await super()._make_server())


def hand_over(
    server: web.Server, transport: asyncio.Transport, unanswered: bytes, *, eof: bool, write_paused: bool
) -> None:
    """aiohttp's protocol takes a live connection over, with the bytes not yet answered (a
    request it then parses and answers as if it had read it itself)."""
    handler: asyncio.Protocol = protocol(server)
    transport.set_protocol(handler)
    handler.connection_made(transport)
    if write_paused:
        handler.pause_writing()
    if unanswered:
        handler.data_received(unanswered)
    if eof and not handler.eof_received():
        transport.close()
