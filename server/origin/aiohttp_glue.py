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
- `aiohttp.http.SERVER_SOFTWARE` is the Server field value aiohttp's own responses carry.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE

SERVER = SERVER_SOFTWARE  # the Server field value, the same as aiohttp's own responses


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
    protocol: asyncio.Protocol = server()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    if write_paused:
        protocol.pause_writing()
    if unanswered:
        protocol.data_received(unanswered)
    if eof and not protocol.eof_received():
        transport.close()
