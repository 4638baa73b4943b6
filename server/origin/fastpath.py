"""The hot path of the origin: `/stream` requests answered from the origin's caches by a plain
asyncio protocol, every other request (and every stream request it does not fully handle) by
aiohttp, on the same port and the same connections.

Why: a playlist or segment cache hit costs a few microseconds of our own work, but aiohttp's
request machinery (request and response objects, router, middlewares, signals, payload
writer) costs several times that, and segments and playlists are nearly all of an origin's
requests. Measured in bench/serve.py against nginx.

How, per connection (`FastProtocol`):

- bytes are framed by the blank line that ends a request head; a head that does not start
  with `GET /stream/` or `HEAD /stream/`, is over HEAD_LIMIT, is not HTTP/1.1, announces a body
  (Content-Length, Transfer-Encoding), asks for an upgrade or Expect, fails to parse
  (httptools, the llhttp parser uvicorn uses), has a path or query outside the plain form our
  own URLs use (route regexes from server/origin/handlers.py, `?token=` and nothing else), repeats a
  conditional header, or whose answer would be anything but 200, 206 or 304 (a bad token,
  an unknown rendition, 412, 416, a missing file) is not answered here: the connection is
  handed to aiohttp's own protocol with every byte not yet answered, so aiohttp answers that
  request (and the rest of the connection) exactly as it always has, errors included;
- what is answered here is answered by the same code the aiohttp handlers use
  (stream.target, stream.decide, the cached Document / StoredObject headers), recorded in the
  same metrics and access log (middlewares.record), and loads on a cache miss (the rendition
  model, an object's size and ETag) await the same Origin loaders;
- a segment's head is sent with MSG_MORE on a second descriptor of the connection's socket
  (so it leaves in the body's first packet, like nginx's tcp_nopush), then its body goes to
  sendfile(2) from a bare descriptor of the file; what the socket does not take at once goes
  out by waiting for writability on that second descriptor (the transport's own epoll
  registration is untouched) and calling sendfile(2) again, on asyncio and uvloop alike
  (without a second descriptor: loop.sendfile, or chunks under flow control on uvloop);
- pipelined requests are answered in order, one response finished before the next request
  is read; past PIPELINE_LIMIT unanswered bytes, reading pauses;
- idle connections close after KEEPALIVE_S, as aiohttp's do; on shutdown idle connections
  close at once and busy ones when their response is out (or at the shutdown timeout).

`Runner` is aiohttp's AppRunner with this protocol in front; `serve`, the tests' servers and the
browser tests' live server all use it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
from typing import Any, Awaitable

import httptools
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE

from server import keys
from server.http import clientip
from server.http import middlewares
from server.origin import handlers as stream
from server.http.conditional import http_date

log = logging.getLogger("streamflix.fastpath")

KEEPALIVE_S = 75.0  # aiohttp's default keepalive_timeout
SWEEP_S = 5.0
HEAD_LIMIT = 8192  # longer heads (and URIs over 8 KiB: 414) are aiohttp's
URL_CACHE_SIZE = 4096  # parsed stream URLs
PIPELINE_LIMIT = 65536  # unanswered bytes kept before reading pauses
CT_SEGMENT = stream.CT_SEGMENT

_STARTS = (b"GET /stream/", b"HEAD /stream/")
_REASONS = {200: b"OK", 206: b"Partial Content", 304: b"Not Modified"}
_METHODS = {b"GET": "GET", b"HEAD": "HEAD"}
# Header fields this path reads (as stream.decide names them); any other is ignored, as the
# aiohttp handlers ignore it.
_CONDITIONAL = {
    b"range": "Range",
    b"if-match": "If-Match",
    b"if-none-match": "If-None-Match",
    b"if-modified-since": "If-Modified-Since",
    b"if-unmodified-since": "If-Unmodified-Since",
    b"if-range": "If-Range",
}
# A request with any of these is aiohttp's (a body, an upgrade, an expectation).
_NOT_OURS = {b"content-length", b"transfer-encoding", b"upgrade", b"expect"}
# Playback tokens are `kid.exp.hints.signature` in base64url: nothing that needs decoding.
_TOKEN = re.compile(rb"[A-Za-z0-9_.-]+")
_304_KEEP = ("ETag", "Last-Modified", "Cache-Control")


class _Fields(dict):  # type: ignore[type-arg]
    """The conditional header fields of one request, in the shape stream.decide reads."""

    def getall(self, name: str, default: Any = None) -> Any:
        value = self.get(name)
        return default if value is None else [value]


class _Date:
    """The Date header value, formatted once per second."""

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
        self.conns: set[FastProtocol] = set()
        self.closing = False
        self.answered = 0  # requests answered here
        self.handed_over = 0  # connections given to aiohttp
        self.date = _Date()
        settings = app.get(keys.SETTINGS)
        self.trusted = clientip.networks(settings.trusted_proxies) if settings is not None else ()
        self.route_rx = stream.route_regex()
        self.urls: dict[bytes, _Target] = {}
        self.route_vars = {
            name: tuple((g.split("__", 1)[1], g) for g in self.route_rx.groupindex if g.startswith(name + "__"))
            for name in stream.ROUTES
        }
        # Route label for metrics and access log: the aiohttp route's canonical path.
        self.labels = {name: app.router[f"stream_{name}"].canonical for name in stream.ROUTES}
        self._origin: stream.Origin | None = None
        self._recorder: middlewares.Recorder | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    @property
    def origin(self) -> stream.Origin:
        if self._origin is None:
            self._origin = self.app[stream.ORIGIN]
        return self._origin

    @property
    def recorder(self) -> middlewares.Recorder:
        # After startup (the access-log sink is set before the runner starts).
        if self._recorder is None:
            self._recorder = middlewares.Recorder(self.app)
        return self._recorder

    def __call__(self) -> asyncio.Protocol:
        if self.closing:
            return self.inner()
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(SWEEP_S, self._sweep)
        return FastProtocol(self)

    def __getattr__(self, name: str) -> Any:  # connections, requests_count, request_handler, ...
        return getattr(self.inner, name)

    def _sweep(self) -> None:
        """Close connections idle for KEEPALIVE_S (one timer for all, not one per request)."""
        self._sweeper = None
        deadline = self._loop.time() - KEEPALIVE_S
        for conn in list(self.conns):
            if not conn.busy and conn.last_active < deadline:
                conn.close()
        if self.conns and not self.closing:
            self._sweeper = self._loop.call_later(SWEEP_S, self._sweep)

    def pre_shutdown(self) -> None:
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self.conns):
            conn.close_when_idle()
        self.inner.pre_shutdown()

    async def shutdown(self, timeout: float | None = None) -> None:
        deadline = self._loop.time() + (timeout if timeout is not None else 60.0)
        while any(c.busy for c in self.conns) and self._loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.conns):
            conn.abort()
        await self.inner.shutdown(timeout)


class Runner(web.AppRunner):
    """aiohttp's AppRunner with the stream fast path in front of its protocol."""

    async def _make_server(self) -> Any:
        inner = await super()._make_server()
        return EdgeServer(inner, self.app)


class _Target:
    """A stream URL taken apart: route name, path, route variables, playback token."""

    __slots__ = ("route", "path", "variables", "token", "log_fields")

    def __init__(self, route: str, path: str, variables: dict[str, str], token: str) -> None:
        self.route = route
        self.path = path
        self.variables = variables
        self.token = token
        self.log_fields: dict[str, str] = {}  # method -> middlewares.access_fields


class _Later:
    """Work a request needs before (a cache load) or to finish (the rest of a segment)."""

    __slots__ = ("load", "awaitable", "route", "status")

    def __init__(self, load: bool, awaitable: Awaitable[Any], route: str = "", status: int = 0) -> None:
        self.load = load
        self.awaitable = awaitable
        self.route = route
        self.status = status


class _Request:
    __slots__ = ("method", "url", "target", "fields", "complete", "ours", "keep_alive", "forwarded_for")

    def __init__(self) -> None:
        self.method = b""
        self.url = b""
        self.target: _Target | None = None
        self.fields = _Fields()
        self.complete = False
        self.ours = True
        self.keep_alive = True
        self.forwarded_for: list[str] = []  # X-Forwarded-For values, read from trusted proxies only


class FastProtocol(asyncio.Protocol):
    __slots__ = (
        "edge", "transport", "buf", "parser", "req", "busy", "last_active", "eof",
        "write_paused", "read_paused", "drain", "closing", "remote", "proxied", "sock", "writer_fd",
    )

    def __init__(self, edge: EdgeServer) -> None:
        self.edge = edge
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.parser = httptools.HttpRequestParser(self)
        self.req = _Request()
        self.busy = False  # a response is being finished asynchronously
        self.last_active = edge._loop.time()
        self.eof = False
        self.write_paused = False
        self.read_paused = False
        self.drain: asyncio.Future[None] | None = None
        self.closing = False  # close once idle (shutdown, `Connection: close`)
        self.remote = ""
        self.proxied = False
        self.sock: socket.socket | None = None
        self.writer_fd: int | None = None  # self.sock's descriptor while _send_rest waits on it

    # ---- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6) and (
            transport.get_extra_info("sslcontext") is None
        ):
            # Our own handle on the connection for send(MSG_MORE); closed with the connection.
            try:
                self.sock = socket.socket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
                self.sock.setblocking(False)
            except OSError:  # out of descriptors: heads go through the transport instead
                self.sock = None
        peer = transport.get_extra_info("peername")
        self.remote = peer[0] if isinstance(peer, (tuple, list)) and peer else ""
        # A trusted proxy's connection: the client of each request is in X-Forwarded-For.
        self.proxied = clientip.is_trusted(self.remote, self.edge.trusted)
        self.edge.conns.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_active = self.edge._loop.time()
        self.buf = self.buf + data if self.buf else data
        if not self.busy:
            self._process()
        elif len(self.buf) > PIPELINE_LIMIT and not self.read_paused and self.transport is not None:
            # A client pipelining faster than we answer: stop reading until we catch up.
            self.read_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        # Keep the write side open while an answer is still going out.
        return self.busy

    def connection_lost(self, exc: BaseException | None) -> None:
        self.transport = None
        self._release()
        self.edge.conns.discard(self)
        if self.drain is not None and not self.drain.done():
            self.drain.set_exception(ConnectionResetError("connection lost"))

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drain is not None and not self.drain.done():
            self.drain.set_result(None)

    # ---- httptools callbacks ----------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self.req.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        field = _CONDITIONAL.get(lname)
        req = self.req
        if field is not None:
            if field in req.fields:
                req.ours = False  # repeated: aiohttp's list handling decides
            else:
                req.fields[field] = value.decode("latin-1")
        elif lname in _NOT_OURS:
            req.ours = False
        elif lname == b"connection" and b"close" in value.lower().replace(b" ", b"").split(b","):
            req.keep_alive = False  # HTTP/1.1 (RFC 9112 9.3): persistent unless `close`
        elif lname == b"x-forwarded-for" and self.proxied:
            req.forwarded_for.append(value.decode("latin-1"))

    def on_message_complete(self) -> None:
        self.req.complete = True

    # ---- requests -----------------------------------------------------------------------------

    def _process(self) -> None:
        while self.buf and not self.busy and not self.closing and self.transport is not None:
            buf = self.buf
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > HEAD_LIMIT or not (
                    buf.startswith(_STARTS) or _STARTS[0].startswith(buf) or _STARTS[1].startswith(buf)
                ):
                    self._handoff()
                return
            end += 4
            head = buf[:end]
            if end > HEAD_LIMIT or not head.startswith(_STARTS):
                self._handoff()
                return
            req = self._parse(head)
            if req is None:
                self._handoff()
                return
            start = time.perf_counter()
            try:
                later = self._answer(req, start)
            except Exception:  # noqa: BLE001 - aiohttp answers it, with its error shape
                log.debug("fast path declined a request", exc_info=True)
                later = False
            if later is False:
                self._handoff()
                return
            self.buf = buf[end:]
            if later is not None:
                self.busy = True
                asyncio.ensure_future(self._finish(later, req, head, start))
                return
            if not req.keep_alive:
                self.closing = True
        if self.transport is not None and not self.busy and (self.closing or self.eof):
            self.transport.close()

    def _parse(self, head: bytes) -> _Request | None:
        self.req = req = _Request()
        try:
            self.parser.feed_data(head)
        except httptools.HttpParserError:
            return None
        if not req.complete or not req.ours or self.parser.get_http_version() != "1.1":
            return None
        req.method = self.parser.get_method()
        return req

    def _match(self, req: _Request) -> _Target | None:
        url = req.url
        hit = self.edge.urls.get(url)
        if hit is not None:
            return hit
        q = url.find(b"?token=")
        if q < 0 or _TOKEN.fullmatch(url, q + 7) is None:
            return None
        path = url[:q].decode("latin-1")
        m = self.edge.route_rx.fullmatch(path)
        if m is None:
            return None
        route = m.lastgroup or ""
        group = m.group
        mi = {var: group(name) for var, name in self.edge.route_vars[route]}
        hit = _Target(route, path, mi, url[q + 7 :].decode("ascii"))
        # URLs repeat (a token is shared by every viewer of a window): parse each once.
        urls = self.edge.urls
        if len(urls) >= URL_CACHE_SIZE:
            urls.clear()
        urls[url] = hit
        return hit

    def _answer(self, req: _Request, start: float) -> bool | _Later | None:
        """None: answered. False: not ours (hand over). _Later: await it, then (for a cache
        load) answer again; see _finish."""
        matched = self._match(req)
        if matched is None:
            return False
        route, mi, token = matched.route, matched.variables, matched.token
        req.target = matched
        o = self.edge.origin
        title_id, version = mi["title_id"], mi["version"]
        o.verify_token(token, title_id, version)  # a PlaybackTokenError: aiohttp's 403
        model = o.models.get((title_id, version))
        if model is None:
            return _Later(True, o.presentation(title_id, version))
        p, lm = model
        t = stream.target(o, p, lm, token, route, mi.get("rendition"), mi.get("number"))
        method = _METHODS[req.method]
        if isinstance(t, stream.Document):
            d = stream.decide(method, req.fields, t.validators, t.full) if req.fields else t.full
            if d.status not in (200, 206, 304):
                return False
            head = self._head(req, d, t)
            if method == "HEAD" or d.status == 304:
                body = b""
            elif d is t.full:
                body = t.body
            else:
                body = t.body[d.start : d.start + d.length]
            self.transport.write(head + body)  # type: ignore[union-attr]
            self._record(req, route, d.status, len(body), start)
            return None
        obj = o.objects.get(t)
        if obj is None:
            return _Later(True, o.stored_object(t, CT_SEGMENT))
        d = stream.decide(method, req.fields, obj.validators, obj.full) if req.fields else obj.full
        if d.status not in (200, 206, 304):
            return False
        if d.status == 304 or method == "HEAD" or not d.length:
            self.transport.write(self._head(req, d, obj))  # type: ignore[union-attr]
            self._record(req, route, d.status, 0, start)
            return None
        if obj.path is None:
            return False  # S3: aiohttp's streaming handler
        try:
            # A bare descriptor: no file object, no fstat or isatty per request.
            fd = os.open(obj.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False  # gone: the handler answers 404 and forgets the version
        try:
            sent = self._send_head_and_body(self._head(req, d, obj), fd, d.start, d.length)
        except ConnectionError:  # the viewer went away mid-response
            os.close(fd)
            self.abort()
            self._record(req, route, d.status, 0, start)
            return None
        except BaseException:
            os.close(fd)
            raise
        if sent == d.length:
            os.close(fd)
            self._record(req, route, d.status, sent, start)
            return None
        rest = self._send_rest(fd, d.start + sent, d.length - sent, sent)
        return _Later(False, rest, route, d.status)

    def _send_head_and_body(self, head: bytes, fd: int, offset: int, count: int) -> int:
        """The head, then as much of the body as the socket takes now (sendfile(2)); returns
        the body bytes sent. ConnectionError when the viewer is gone."""
        transport = self.transport
        assert transport is not None
        sock = self.sock
        if sock is None or transport.get_write_buffer_size():
            transport.write(head)
            with open(fd, "rb", closefd=False) as fobj:
                return stream._sendfile_now(transport, fobj, offset, count)
        try:
            # MSG_MORE: the head waits in the socket and leaves in the body's first packet
            # (nginx's tcp_nopush) instead of as a packet of its own.
            n = sock.send(head, socket.MSG_MORE)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:  # EPIPE, ECONNRESET
            raise ConnectionResetError(str(exc)) from exc
        if n < len(head):
            transport.write(head[n:])
            return 0  # the body follows the queued head (_send_rest)
        try:
            return os.sendfile(sock.fileno(), fd, offset, count)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:  # EPIPE, ECONNRESET
            raise ConnectionResetError(str(exc)) from exc

    def _head(self, req: _Request, d: Any, of: stream.Document | stream.StoredObject) -> bytes:
        status = d.status
        if d is of.full:
            parts = [of.head_200]
        elif status == 304:
            # RFC 9110 15.4.5: the validators and Cache-Control a 200 would have (and CORS).
            headers = of.headers
            parts = [b"HTTP/1.1 304 Not Modified\r\n"]
            parts += [f"{k}: {headers[k]}\r\n".encode() for k in _304_KEEP if k in headers]
            parts.append(stream.CORS_BLOCK)
        else:
            parts = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]), of.header_block]
            if status == 206:
                parts.append(b"Content-Range: %s\r\n" % (d.content_range or "").encode())
            parts.append(b"Content-Length: %d\r\n" % d.length)
        parts.append(self.edge.date.now())
        parts.append(_SERVER if req.keep_alive else _SERVER_CLOSE)
        return b"".join(parts)

    def _record(self, req: _Request, route: str, status: int, nbytes: int, start: float) -> None:
        edge = self.edge
        edge.answered += 1
        method = _METHODS[req.method]
        target = req.target
        assert target is not None
        label = edge.labels[route]
        fields = target.log_fields.get(method)
        if fields is None:
            fields = target.log_fields[method] = middlewares.access_fields(method, target.path, label)
        remote = clientip.resolve(self.remote, req.forwarded_for, edge.trusted) if self.proxied else self.remote
        edge.recorder(method, label, fields, status, nbytes, time.perf_counter() - start, remote)

    async def _send_rest(self, fd: int, offset: int, count: int, sent: int) -> int:
        """The part of a segment the socket did not take at once; returns the bytes sent in
        all. A failure aborts the connection: the headers are out, a short body must end it.

        With our own descriptor of the socket: wait until it is writable (epoll on that
        descriptor, so the transport's registration is untouched) and sendfile(2) again, on
        either loop. Without one: loop.sendfile, or chunks under flow control (uvloop)."""
        loop = asyncio.get_running_loop()
        try:
            while count and self.sock is not None and self._transport_idle():
                sock_fd = self.sock.fileno()
                self.drain = ready = loop.create_future()
                self.writer_fd = sock_fd
                loop.add_writer(sock_fd, _wake, ready)
                try:
                    await ready
                finally:
                    self._stop_waiting()
                if self.transport is None:
                    raise ConnectionResetError("connection lost")
                try:
                    n = os.sendfile(sock_fd, fd, offset, count)
                except (BlockingIOError, InterruptedError):
                    continue
                if not n:
                    raise ConnectionResetError("file shrank while sending")
                offset, count, sent = offset + n, count - n, sent + n
            if not count:
                return sent
            if self.transport is None:
                raise ConnectionResetError("connection lost")
            try:
                with open(fd, "rb", closefd=False) as fobj:
                    await loop.sendfile(self.transport, fobj, offset, count, fallback=False)
                return sent + count
            except (NotImplementedError, RuntimeError):
                pass
            while count:
                chunk = await loop.run_in_executor(None, os.pread, fd, min(count, 256 * 1024), offset)
                if not chunk:
                    raise ConnectionResetError("file shrank while sending")
                if self.transport is None:
                    raise ConnectionResetError("connection lost")
                self.transport.write(chunk)
                offset, count, sent = offset + len(chunk), count - len(chunk), sent + len(chunk)
                if self.write_paused:
                    self.drain = loop.create_future()
                    await self.drain
            return sent
        except (ConnectionError, OSError):
            self.abort()
            raise
        finally:
            os.close(fd)

    async def _finish(self, later: _Later, req: _Request, head: bytes, start: float) -> None:
        """Await what _answer could not do at once, then go on with the connection."""
        handoff = False
        try:
            for _ in range(4):  # a load fills a cache, so the next _answer gets further
                if not later.load:
                    try:
                        sent = await later.awaitable
                    except (ConnectionError, OSError):
                        sent = -1
                    self._record(req, later.route, later.status, max(sent, 0), start)
                    break
                try:
                    await later.awaitable
                    again = self._answer(req, start)
                except Exception:  # noqa: BLE001 - aiohttp answers it (404, 403, 503, ...)
                    log.debug("fast path declined a request", exc_info=True)
                    again = False
                if again is None:
                    break
                if again is False:
                    handoff = True
                    break
                later = again
            else:
                handoff = True
        finally:
            self.busy = False
            if self.read_paused and self.transport is not None:
                self.read_paused = False
                self.transport.resume_reading()
        if self.transport is None:
            return
        if handoff:
            self.buf = head + self.buf
            self._handoff()
            return
        if not req.keep_alive:
            self.closing = True
        self._process()

    # ---- connection -----------------------------------------------------------------------------

    def _handoff(self) -> None:
        """aiohttp's protocol takes the connection over, with every byte not yet answered."""
        transport = self.transport
        if transport is None:
            return
        self.transport = None
        self._release()
        self.edge.conns.discard(self)
        self.edge.handed_over += 1
        handler = self.edge.inner()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self.write_paused:
            handler.pause_writing()
        data, self.buf = self.buf, b""
        if data:
            handler.data_received(data)
        if self.eof and not handler.eof_received():
            transport.close()

    def _transport_idle(self) -> bool:
        """Connected, and nothing queued in the transport (so the socket is ours to write)."""
        return self.transport is not None and not self.transport.get_write_buffer_size()

    def _stop_waiting(self) -> None:
        if self.writer_fd is not None:
            self.edge._loop.remove_writer(self.writer_fd)
            self.writer_fd = None

    def _release(self) -> None:
        self._stop_waiting()  # before the descriptor closes
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def close_when_idle(self) -> None:
        self.closing = True
        if not self.busy:
            self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


_SERVER = b"Server: " + SERVER_SOFTWARE.encode() + b"\r\n\r\n"
_SERVER_CLOSE = b"Server: " + SERVER_SOFTWARE.encode() + b"\r\nConnection: close\r\n\r\n"

