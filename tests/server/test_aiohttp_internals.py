"""The aiohttp internals the origin relies on (server/origin/aiohttp_glue.py, and the tests'
EdgeTestServer in tests/support.py) are still there and still behave as relied on.

When one of these fails, aiohttp changed under the fast path: the stream routes would break or
silently lose the fast path. Fix server/origin/aiohttp_glue.py for the new aiohttp, or keep
the aiohttp pin in pyproject.toml below the version that changed it.
"""

from __future__ import annotations

import asyncio
import inspect

import aiohttp
import pytest
from aiohttp import test_utils, web, web_protocol, web_runner
from aiohttp.http import SERVER_SOFTWARE

from server.origin import aiohttp_glue


def changed(what: str) -> str:
    return (
        f"aiohttp {aiohttp.__version__} changed {what}. server/origin/aiohttp_glue.py relies on it: "
        "adapt that module, or check the aiohttp pin in pyproject.toml (the range the fast path "
        "is tested on) and keep aiohttp below this version."
    )


def calls(function: object, *needles: str) -> bool:
    source = inspect.getsource(function)  # type: ignore[arg-type] # any function or class
    return all(n in source for n in needles)


def test_server_software_is_the_server_field():
    assert isinstance(SERVER_SOFTWARE, str) and SERVER_SOFTWARE.startswith("Python/"), changed(
        "aiohttp.http.SERVER_SOFTWARE (the Server field value)"
    )


def test_runner_makes_its_server_in_make_server():
    make = getattr(web.AppRunner, "_make_server", None)
    assert make is not None and inspect.iscoroutinefunction(make), changed("AppRunner._make_server (gone or not async)")
    assert list(inspect.signature(make).parameters) == ["self"], changed("AppRunner._make_server's signature")
    assert calls(web_runner.BaseRunner.setup, "self._make_server()"), changed(
        "BaseRunner.setup (no longer makes its server with _make_server)"
    )


def test_runner_shuts_its_server_down_through_pre_shutdown_and_shutdown():
    assert calls(web_runner.BaseRunner.cleanup, ".pre_shutdown()", ".shutdown("), changed(
        "BaseRunner.cleanup (no longer calls server.pre_shutdown() and server.shutdown(timeout))"
    )
    assert list(inspect.signature(web.Server.shutdown).parameters) == ["self", "timeout"], changed(
        "web.Server.shutdown's signature"
    )
    assert callable(getattr(web.Server, "pre_shutdown", None)), changed("web.Server.pre_shutdown (gone)")


def test_server_makes_a_protocol_that_can_take_a_connection_over():
    assert issubclass(web_protocol.RequestHandler, asyncio.Protocol), changed(
        "web_protocol.RequestHandler (no longer an asyncio.Protocol)"
    )
    for name in ("connection_made", "data_received", "eof_received", "pause_writing"):
        # Its own, not asyncio's no-op defaults: a hand-over must reach aiohttp's code.
        method = getattr(web_protocol.RequestHandler, name, None)
        assert method is not None and method is not getattr(asyncio.BaseProtocol, name, None), changed(
            f"RequestHandler.{name}"
        )
    ret = inspect.signature(web.Server.__call__).return_annotation
    assert "RequestHandler" in str(ret), changed("web.Server.__call__ (no longer makes a RequestHandler)")


def test_test_server_makes_its_runner_in_make_runner():
    make = getattr(test_utils.TestServer, "_make_runner", None)
    assert make is not None and inspect.iscoroutinefunction(make), changed(
        "test_utils.TestServer._make_runner (tests/support.py's EdgeTestServer overrides it)"
    )


class _HandOverEverything:
    """A front that gives each connection to aiohttp at its first bytes, as the fast path
    does with a request it does not answer."""

    def __init__(self, inner: web.Server) -> None:
        self.inner = inner
        self.handed_over = 0

    def __call__(self) -> asyncio.Protocol:
        front = self

        class Handing(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                front.handed_over += 1
                aiohttp_glue.hand_over(front.inner, self.transport, data, eof=False, write_paused=False)  # type: ignore[arg-type] # a Transport

        return Handing()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


class _Runner(aiohttp_glue.FrontedRunner):
    def front(self, server: web.Server) -> _HandOverEverything:
        self.made = _HandOverEverything(server)
        return self.made


async def test_a_fronted_runner_serves_and_hands_connections_over():
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = _Runner(app, handle_signals=False)
    await runner.setup()
    try:
        assert isinstance(runner.server, _HandOverEverything), changed(
            "AppRunner (the object _make_server returns is no longer the runner's server)"
        )
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(2):  # the connection goes on under aiohttp
                writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                assert head.startswith(b"HTTP/1.1 200"), changed(
                    f"RequestHandler taking a live connection over: {head!r}"
                )
                assert await reader.readexactly(5) == b"hello"
        finally:
            writer.close()
        assert runner.made.handed_over == 1
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("name", ["pre_shutdown", "shutdown"])
def test_edge_server_stands_in_for_what_the_runner_calls(name):
    from server.origin.edge import EdgeServer

    assert callable(getattr(EdgeServer, name)), name


def test_request_handler_answers_parse_errors_through_handle_error():
    """JsonErrorHandler overrides handle_error and is built from web.Server's _loop/_kwargs."""
    params = list(inspect.signature(web_protocol.RequestHandler.handle_error).parameters)
    assert params[:5] == ["self", "request", "status", "exc", "message"], changed("RequestHandler.handle_error")
    assert calls(web_protocol.RequestHandler._make_error_handler, "self.handle_error("), changed(
        "how RequestHandler answers a request it cannot parse"
    )
    assert calls(web.Server.__call__, "RequestHandler(self, loop=self._loop, **self._kwargs)"), changed(
        "how web.Server makes its protocol"
    )
