"""A TCP proxy a test owns, to take a dependency away without touching the real service.

    proxy = FaultProxy("127.0.0.1", 5432).start()   # listens on 127.0.0.1:proxy.port
    proxy.down()     # like a stopped server: refuses new connections, resets open ones
    proxy.freeze()   # like a hung server (kill -STOP): accepts, but no byte moves either way
    proxy.up()       # back to normal; frozen connections resume, new ones connect
    proxy.close()

The proxy runs its own event loop in a thread, so it works the same from sync tests, async
tests (whatever their loop) and against separate processes (`streamflix serve`/`worker`
pointed at `proxy.port`). The shared Postgres, Redis and moto stay up for every other test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from tests.support import free_port

_CHUNK = 64 * 1024


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, port: int | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port()
        self.state = "up"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._flowing: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # ---- control (called from the test's thread) ---------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def down(self) -> None:
        """Refuse new connections (ECONNREFUSED) and reset every open one."""
        self._call(self._down())

    def freeze(self) -> None:
        """Keep listening and accepting, but move no byte in either direction."""
        self._call(self._freeze())

    def up(self) -> None:
        self._call(self._up())

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    @classmethod
    def in_front_of(cls, url: str, default_port: int) -> FaultProxy:
        """A proxy (not started) for the server `url` names (postgresql://, redis://, http://)."""
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or default_port)

    def route(self, url: str) -> str:
        """`url` with its host:port replaced by this proxy's (userinfo, path, query kept)."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = (userinfo + "@" if userinfo else "") + f"127.0.0.1:{self.port}"
        return parts._replace(netloc=netloc).geturl()

    def url(self, template: str) -> str:
        """`template` with `{port}` replaced, e.g. "postgresql://postgres@127.0.0.1:{port}/db"."""
        return template.replace("{port}", str(self.port))

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # ---- inside the proxy's loop -------------------------------------------------------

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def _down(self) -> None:
        self.state = "down"
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                # SO_LINGER 0: close sends RST, as a dead server's kernel would
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            writer.transport.abort()
        self._writers.clear()
        assert self._flowing is not None
        self._flowing.set()  # let frozen pumps notice their sockets are gone

    async def _shutdown(self) -> None:
        """Down, then every connection's task ended here: a task left pending in a closed loop
        is reported ("Task was destroyed but it is pending!") whenever it is collected,
        in the log of whichever test runs then."""
        await self._down()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _freeze(self) -> None:
        assert self._flowing is not None
        self.state = "frozen"
        self._flowing.clear()
        await self._listen()

    async def _up(self) -> None:
        assert self._flowing is not None
        self.state = "up"
        self._flowing.set()
        await self._listen()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        self._writers.add(writer)
        try:
            await self._flowing.wait()
            if self.state == "down":
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                return
            self._writers.add(up_writer)
            try:
                await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
            finally:
                self._writers.discard(up_writer)
                up_writer.transport.abort()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                await self._flowing.wait()
                if self.state == "down":
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                if writer.can_write_eof():
                    writer.write_eof()
