"""The hot path of the origin: `/stream` requests answered from the origin's caches by a plain
asyncio protocol, every other request (and every stream request it does not fully handle) by
aiohttp, on the same port and the same connections (edge.py puts it in front).

Why: a playlist or segment cache hit costs a few microseconds of our own work, but aiohttp's
request machinery (request and response objects, router, middlewares, signals, payload
writer) costs several times that, and segments and playlists are nearly all of an origin's
requests. Measured in bench/serve.py against nginx.

How, per connection (`FastProtocol`):

- bytes are framed by the blank line that ends a request head; a head that does not start
  with `GET /stream/` or `HEAD /stream/`, is over HEAD_LIMIT, is not HTTP/1.1, announces a body
  (Content-Length, Transfer-Encoding), asks for an upgrade or Expect, fails to parse
  (httptools, the llhttp parser uvicorn uses), has a path or query outside the plain form our
  own URLs use (routes.py, `?token=` and nothing else), repeats a conditional header, or
  whose answer would be anything but 200, 206 or 304 (a bad token, an unknown rendition,
  412, 416, a missing file, a segment of a progressive version not made yet, which the
  handler waits for) is not answered here: the connection is handed to aiohttp's own
  protocol with every byte not yet answered, so aiohttp answers that request (and the rest of
  the connection) exactly as it always has, errors included;
- what is answered here is answered by the same code the aiohttp handlers use (Origin.target,
  representation.decide, the cached Document / StoredObject fields), recorded in the same
  metrics and access log (middlewares.Recorder), and loads on a cache miss (the rendition
  model, an object's size and ETag) await the same Origin loaders;
- a segment's head is sent with MSG_MORE on our own descriptor of the connection's socket
  (so it leaves in the body's first packet, like nginx's tcp_nopush), then its body goes to
  sendfile(2) from a bare descriptor of the file; the rest of a segment the socket does not
  take at once is sendfile.send_rest's;
- what repeats is worked out once: a request head seen before is not parsed again (the
  parsed head is kept per exact head bytes, except from trusted proxies), and a playlist or
  MPD answer is kept on its URL's Target (the URL includes the token) with the token's expiry
  and the Origin.generation it was made under, so a repeat costs no token, model or document
  lookup; an expired token, or any version loaded or forgotten since, sends the request
  through the full checks again (bench/fastpath_profile.py measures the cost per request);
- pipelined requests are answered in order, one response finished before the next request
  is read; past PIPELINE_LIMIT unanswered bytes, reading pauses;
- idle connections close after edge.KEEPALIVE_S, as aiohttp's do; on shutdown idle
  connections close at once and busy ones when their response is out (or at the shutdown
  timeout).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Literal

import httptools

from server.http import clientip, middlewares
from server.origin import sendfile
from server.origin.aiohttp_glue import SERVER
from server.origin.cache import Document, StoredObject
from server.origin.representation import ANSWERED, decide

if TYPE_CHECKING:
    from server.origin.edge import EdgeServer

log = logging.getLogger("streamflix.fastpath")

HEAD_LIMIT = 8192  # longer heads (and URIs over 8 KiB: 414) are aiohttp's
URL_CACHE_SIZE = 4096  # parsed stream URLs
HEAD_CACHE_SIZE = 1024  # parsed request heads
PIPELINE_LIMIT = 65536  # unanswered bytes kept before reading pauses
# Routes aiohttp always answers: a download needs the title's downloads flag (downloads.py),
# which may need Postgres; downloads are rare and large, so the fast path gains nothing there.
HANDED_OVER = frozenset({"download"})

_STARTS = (b"GET /stream/", b"HEAD /stream/")
_METHODS = {b"GET": "GET", b"HEAD": "HEAD"}
# Header fields this path reads (as representation.decide names them); any other is ignored,
# as the aiohttp handlers ignore it.
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
_SERVER = b"Server: " + SERVER.encode() + b"\r\n\r\n"
_SERVER_CLOSE = b"Server: " + SERVER.encode() + b"\r\nConnection: close\r\n\r\n"


class _Fields(dict[str, str]):
    """The conditional header fields of one request, in the shape representation.decide reads."""

    def getall(self, name: str, default: Any = None) -> Any:
        value = self.get(name)
        return default if value is None else [value]


class Target:
    """A stream URL taken apart: route name, path, route variables, playback token; and, for a
    playlist or MPD, the Document it answered with, remembered with the token's expiry and the
    Origin.generation it was made under (see _answer)."""

    __slots__ = ("route", "path", "variables", "token", "log_fields", "document", "generation", "expires")

    def __init__(self, route: str, path: str, variables: dict[str, str], token: str) -> None:
        self.route = route
        self.path = path
        self.variables = variables
        self.token = token
        self.log_fields: dict[str, str] = {}  # method -> middlewares.access_fields
        self.document: Document | None = None
        self.generation = -1
        self.expires = 0


class _Later:
    """Work a request needs before (a cache load) or to finish (the rest of a segment)."""

    __slots__ = ("load", "awaitable", "route", "status", "length")

    def __init__(
        self, load: bool, awaitable: Awaitable[Any], route: str = "", status: int = 0, length: int = 0
    ) -> None:
        self.load = load
        self.awaitable = awaitable
        self.route = route
        self.status = status
        self.length = length  # body bytes once the awaitable is done


class ParsedRequest:
    """One request head taken apart. Kept per exact head bytes and shared by every request
    that repeats them (EdgeServer.heads), so nothing but `target` changes after parsing."""

    __slots__ = ("method", "url", "target", "fields", "complete", "ours", "keep_alive", "forwarded_for")

    def __init__(self) -> None:
        self.method = b""
        self.url = b""
        self.target: Target | None = None
        self.fields = _Fields()
        self.complete = False
        self.ours = True
        self.keep_alive = True
        self.forwarded_for: list[str] = []  # X-Forwarded-For values, read from trusted proxies only


class FastProtocol(asyncio.Protocol):
    __slots__ = (
        "edge",
        "transport",
        "buf",
        "parser",
        "req",
        "busy",
        "last_active",
        "eof",
        "write_paused",
        "read_paused",
        "drain",
        "closing",
        "remote",
        "proxied",
        "sock",
        "writer_fd",
        "finishing",
    )

    def __init__(self, edge: EdgeServer) -> None:
        self.edge = edge
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.parser = httptools.HttpRequestParser(self)
        self.req = ParsedRequest()
        self.busy = False  # a response is being finished asynchronously
        self.last_active = edge.loop.time()
        self.eof = False
        self.write_paused = False
        self.read_paused = False
        self.drain: asyncio.Future[None] | None = None
        self.closing = False  # close once idle (shutdown, `Connection: close`)
        self.remote = ""
        self.proxied = False
        self.sock: socket.socket | None = None  # our own descriptor of the socket (sendfile.socket_twin)
        self.writer_fd: int | None = None  # self.sock's descriptor while _writable waits on it
        self.finishing: asyncio.Future[None] | None = None  # the task of _finish, while busy

    # ---- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # a stream protocol gets a Transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sendfile.socket_twin(transport)  # closed with the connection (_release)
        peer = transport.get_extra_info("peername")
        self.remote = peer[0] if isinstance(peer, (tuple, list)) and peer else ""
        # A trusted proxy's connection: the client of each request is in X-Forwarded-For.
        self.proxied = clientip.is_trusted(self.remote, self.edge.trusted)
        self.edge.conns.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_active = self.edge.loop.time()
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
            except Exception:
                log.debug("fast path declined a request", exc_info=True)
                later = False
            if later is False:
                self._handoff()
                return
            self.buf = buf[end:]
            if later is not None:
                self.busy = True
                self.finishing = asyncio.ensure_future(self._finish(later, req, head, start))
                return
            if not req.keep_alive:
                self.closing = True
        if self.transport is not None and not self.busy and (self.closing or self.eof):
            self.transport.close()

    def _parse(self, head: bytes) -> ParsedRequest | None:
        # Players and CDNs send the same head again and again (same URL, same fields): a head
        # parsed once is reused as it is. Not from a trusted proxy, whose X-Forwarded-For is
        # read per connection; never for a head that is not ours (those are parsed by aiohttp).
        heads = self.edge.heads
        if not self.proxied:
            hit = heads.get(head)
            if hit is not None:
                return hit
        self.req = req = ParsedRequest()
        try:
            self.parser.feed_data(head)
        except httptools.HttpParserError:
            return None
        if not req.complete or not req.ours or self.parser.get_http_version() != "1.1":
            return None
        req.method = self.parser.get_method()
        if not self.proxied:
            if len(heads) >= HEAD_CACHE_SIZE:
                heads.clear()
            heads[head] = req
        return req

    def _match(self, req: ParsedRequest) -> Target | None:
        url = req.url
        hit = self.edge.urls.get(url)
        if hit is not None:
            return hit
        q = url.find(b"?token=")
        if q < 0 or _TOKEN.fullmatch(url, q + 7) is None:
            return None
        path = url[:q].decode("latin-1")
        matched = self.edge.matcher.match(path)
        if matched is None:
            return None
        hit = Target(matched[0], path, matched[1], url[q + 7 :].decode("ascii"))
        # URLs repeat (a token is shared by every viewer of a window): parse each once.
        urls = self.edge.urls
        if len(urls) >= URL_CACHE_SIZE:
            urls.clear()
        urls[url] = hit
        return hit

    def _answer(self, req: ParsedRequest, start: float) -> Literal[False] | _Later | None:
        """None: answered. False: not ours (hand over). _Later: await it, then (for a cache
        load) answer again; see _finish."""
        matched = self._match(req)
        if matched is None:
            return False
        route = matched.route
        if route in HANDED_OVER:
            return False
        req.target = matched
        o = self.edge.origin
        t: Document | str | None = matched.document
        # A playlist this very URL (token included) was answered with, while its token is
        # still valid and no version came or went since: the same answer again, without the
        # token, model and document lookups. Any other URL or token has its own Target.
        if t is None or matched.generation != o.generation or matched.expires <= time.time():
            mi, token = matched.variables, matched.token
            title_id, version = mi["title_id"], mi["version"]
            expires = o.verify_token(token, title_id, version)  # a PlaybackTokenError: aiohttp's 403
            model = o.model(title_id, version)  # None too when a progressive model is due
            if model is None:
                return _Later(True, o.presentation(title_id, version))
            p, lm = model
            t = o.target(p, lm, token, route, mi.get("rendition"), mi.get("number"))
            # Not a progressive version's: its model is read again every few seconds, and a
            # remembered answer would skip that.
            if isinstance(t, Document) and not p.progressive:
                matched.document, matched.generation, matched.expires = t, o.generation, expires
        method = _METHODS[req.method]
        if isinstance(t, Document):
            d = decide(method, req.fields, t) if req.fields else t.full
            if d.status not in ANSWERED:
                return False
            head = self._head(req, d, t)
            if method == "HEAD" or d.status == 304:
                body = b""
            elif d is t.full:
                body = t.body
            else:
                body = t.body[d.start : d.start + d.length]
            self.transport.write(head + body)  # type: ignore[union-attr] # connected: see _process
            self._record(req, route, d.status, len(body), start)
            return None
        obj = o.objects.get(t)
        if obj is None:
            return _Later(True, o.stored_object(t))
        d = decide(method, req.fields, obj) if req.fields else obj.full
        if d.status not in ANSWERED:
            return False
        if d.status == 304 or method == "HEAD" or not d.length:
            self.transport.write(self._head(req, d, obj))  # type: ignore[union-attr] # connected: see _process
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
            head = self._head(req, d, obj)
            sent = sendfile.send_head_and_body(self.transport, self.sock, head, fd, d.start, d.length)  # type: ignore[arg-type] # connected
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
        return _Later(False, self._send_rest(fd, d.start + sent, d.length - sent), route, d.status, d.length)

    def _head(self, req: ParsedRequest, d: Any, of: Document | StoredObject) -> bytes:
        head = of.head_200 if d is of.full else of.head(d)
        return b"".join((head, self.edge.date.now(), _SERVER if req.keep_alive else _SERVER_CLOSE))

    def _record(self, req: ParsedRequest, route: str, status: int, nbytes: int, start: float) -> None:
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

    async def _send_rest(self, fd: int, offset: int, count: int) -> None:
        """The part of a segment the socket did not take at once. A failure aborts the
        connection: the head is out, a short body must end it."""
        try:
            if self.transport is None:
                raise ConnectionResetError("connection lost")
            await sendfile.send_rest(
                self.transport, fd, offset, count, self._write, twin=self.sock, writable=self._writable
            )
        except (ConnectionError, OSError):
            self.abort()
            raise
        finally:
            os.close(fd)

    async def _writable(self, fd: int) -> None:
        """Until our own descriptor of the socket is writable (epoll on that descriptor, so the
        transport's registration is untouched); ConnectionError if the connection goes."""
        loop = self.edge.loop
        self.drain = ready = loop.create_future()
        self.writer_fd = fd
        loop.add_writer(fd, _wake, ready)
        try:
            await ready
        finally:
            self._stop_waiting()

    async def _write(self, chunk: bytes) -> None:
        """A chunk onto the transport, under its flow control."""
        if self.transport is None:
            raise ConnectionResetError("connection lost")
        self.transport.write(chunk)
        if self.write_paused:
            self.drain = self.edge.loop.create_future()
            await self.drain

    async def _finish(self, later: _Later, req: ParsedRequest, head: bytes, start: float) -> None:
        """Await what _answer could not do at once, then go on with the connection."""
        handoff = False
        try:
            for _ in range(4):  # a load fills a cache, so the next _answer gets further
                if not later.load:
                    try:
                        await later.awaitable
                        sent = later.length
                    except (ConnectionError, OSError):
                        sent = 0
                    self._record(req, later.route, later.status, sent, start)
                    break
                try:
                    await later.awaitable
                    again = self._answer(req, start)
                except Exception:
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
        data, self.buf = self.buf, b""
        self.edge.hand_over(self, transport, data)

    def _stop_waiting(self) -> None:
        if self.writer_fd is not None:
            self.edge.loop.remove_writer(self.writer_fd)
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
