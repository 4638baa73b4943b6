"""`/stream/{title_id}/{version}/...`: HLS and DASH for players and CDNs.

    master.m3u8              multivariant playlist   (rendered per token, private)
    manifest.mpd             DASH MPD                (rendered per token, private)
    {rendition}/index.m3u8   media playlist          (rendered per token, private)
    {rendition}/init.mp4     init segment            (bytes from storage, public, immutable)
    {rendition}/{n}.m4s      media segment           (bytes from storage, public, immutable)

Every request carries `?token=` (auth/playback.py), checked first. After the first request
of a version nothing here touches Postgres or Redis: a version is immutable, so its rendition
model, each object's size/ETag and each rendered playlist are cached in process (LRUs). A
version that is gone from storage answers 404 (its cached entries are dropped).

Most of these requests never reach the handlers below: server/origin/fastpath.py answers cached ones
outside aiohttp's request machinery with the same target(), decide() and headers, and hands
every other request (errors included) to these handlers.

Paths never reach storage as given: route patterns admit only [a-z0-9_-] names and decimal
numbers, rendition ids and segment numbers must exist in the model, and storage keys are built
from the model (media.keys), so `..`, `%2e%2e` and encoded slashes cannot name a file.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Awaitable, Callable, Generic, Hashable, TypeVar

from aiohttp import web

from auth import playback
from auth.errors import PlaybackTokenMissing
from auth.keyring import KeyRing
from media import keys as media_keys
from media.storage import ObjectNotFound, Storage
from packager.dash import render_mpd
from packager.hls import render_media, render_multivariant
from packager.model import Presentation
from packager.uris import MASTER_NAME, MEDIA_PLAYLIST_NAME, MPD_NAME, UriBuilder
from server import keys
from server.http.errors import ApiError
from server.http.conditional import Decision, Validators, evaluate, http_date
from server.http.middlewares import BYTES_SENT, CORS_HEADERS

log = logging.getLogger("streamflix.stream")

PREFIX = "/stream"
# Route variables: only these characters can reach a handler (everything else is the router's
# 404). One table for both readers: aiohttp's router and server/origin/fastpath.py's matcher.
VARIABLES = {
    "title_id": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "version": r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}",
    "rendition": r"[a-z0-9_-]{1,64}",
    # No sign, no leading zero: one segment has exactly one URL (one CDN cache entry).
    "number": r"0|[1-9][0-9]{0,8}",
}
# Route name -> path under PREFIX, `{variable}` for the table above.
ROUTES = {
    "master": f"{{title_id}}/{{version}}/{MASTER_NAME}",
    "manifest": f"{{title_id}}/{{version}}/{MPD_NAME}",
    "media_playlist": f"{{title_id}}/{{version}}/{{rendition}}/{MEDIA_PLAYLIST_NAME}",
    "init": "{title_id}/{version}/{rendition}/init.mp4",
    "segment": "{title_id}/{version}/{rendition}/{number}.m4s",
}

CT_HLS = "application/vnd.apple.mpegurl"  # RFC 8216 section 4
CT_DASH = "application/dash+xml"  # ISO/IEC 23009-1 annex C
# hls.js, dash.js, Safari and Chrome's MSE all accept video/mp4 for init and media segments;
# the registered `video/iso.segment` is refused by some CDNs' and proxies' type allow-lists.
CT_SEGMENT = "video/mp4"

SEGMENT_CACHE_CONTROL = "public, max-age=31536000, immutable"
# Playlists carry a viewer's window token: browsers may keep them briefly, shared caches not.
PLAYLIST_CACHE_CONTROL = "private, max-age=60"

MODEL_CACHE_SIZE = 256  # versions
OBJECT_CACHE_SIZE = 65536  # objects (~200 bytes each)
PLAYLIST_CACHE_SIZE = 4096  # rendered documents (a few KB each)
TOKEN_CACHE_SIZE = 8192

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lru(Generic[K, V]):
    """A bounded mapping that forgets the least recently used entry."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        try:
            self._data.move_to_end(key)
            return self._data[key]
        except KeyError:
            return None

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def drop(self, pred: Callable[[K], bool]) -> None:
        for k in [k for k in self._data if pred(k)]:
            del self._data[k]

    def __len__(self) -> int:
        return len(self._data)


def _header_block(headers: dict[str, str]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode("latin-1")


CORS_BLOCK = _header_block(CORS_HEADERS)


class _Wire:
    """A cached representation's fields as HTTP/1.1 bytes (server/origin/fastpath.py writes them)."""

    headers: dict[str, str]
    full: Decision

    @cached_property
    def header_block(self) -> bytes:
        return _header_block(self.headers)

    @cached_property
    def head_200(self) -> bytes:
        """Status line and fields of the plain 200, but Date and Server."""
        return b"HTTP/1.1 200 OK\r\n" + self.header_block + b"Content-Length: %d\r\n" % self.full.length


@dataclass(frozen=True)
class StoredObject(_Wire):
    """An immutable object of a version, with everything its responses need precomputed."""

    key: str
    path: str | None  # local file for sendfile, None on S3
    validators: Validators
    headers: dict[str, str]  # ETag, Last-Modified, Cache-Control, Content-Type, Accept-Ranges, CORS
    full: Decision  # the plain 200


@dataclass(frozen=True)
class Document(_Wire):
    body: bytes
    validators: Validators
    headers: dict[str, str]
    full: Decision


class Origin:
    """Per-process state of the stream routes (kept in the app, never module-global)."""

    def __init__(self, storage: Storage, ring: KeyRing) -> None:
        self.storage = storage
        self.ring = ring
        self.models: Lru[tuple[str, str], tuple[Presentation, int]] = Lru(MODEL_CACHE_SIZE)
        self.objects: Lru[str, StoredObject] = Lru(OBJECT_CACHE_SIZE)
        self.documents: Lru[tuple[str, str, str, str], Document] = Lru(PLAYLIST_CACHE_SIZE)
        self.tokens: Lru[str, tuple[str, str, int]] = Lru(TOKEN_CACHE_SIZE)
        self._loading: dict[Any, asyncio.Future[Any]] = {}

    # ---- tokens ----------------------------------------------------------------------------

    def check_token(self, request: web.Request, title_id: str, version: str) -> str:
        qs = request.query_string
        # Our own URLs carry exactly `token=...`: skip building a MultiDict for them.
        token = qs[6:] if qs.startswith("token=") and "&" not in qs else request.query.get("token")
        if not token:
            raise PlaybackTokenMissing("this URL needs a playback token: ask POST /api/v1/titles/{id}/playback")
        self.verify_token(token, title_id, version)
        return token

    def verify_token(self, token: str, title_id: str, version: str) -> None:
        """Raises the precise PlaybackTokenError unless `token` opens this title version now."""
        now = time.time()
        hit = self.tokens.get(token)
        # A token verified once is remembered with its scope; the expiry is still checked on
        # every request (and a scope mismatch re-verifies, to raise the precise error).
        if hit is not None and hit[0] == title_id and hit[1] == version and hit[2] > now:
            return
        exp = playback.verify(self.ring, token, title_id, version, now)
        self.tokens.put(token, (title_id, version, exp))

    # ---- cached loads ----------------------------------------------------------------------

    async def _once(self, key: Any, load: Callable[[], Awaitable[V]]) -> V:
        """Concurrent misses for the same key share one load."""
        fut = self._loading.get(key)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._loading[key] = fut
        try:
            value = await load()
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: nobody else may be waiting
            raise
        else:
            fut.set_result(value)
            return value
        finally:
            del self._loading[key]

    async def presentation(self, title_id: str, version: str) -> tuple[Presentation, int]:
        """The version's rendition model and when it was published (the model's mtime)."""
        cached = self.models.get((title_id, version))
        if cached is not None:
            return cached

        async def load() -> tuple[Presentation, int]:
            key = media_keys.model_key(title_id, version)
            try:
                info = await self.storage.head(key)
                raw = await self.storage.get_bytes(key)
            except ObjectNotFound:
                raise ApiError(404, "version_not_found", f"title {title_id} has no version {version}") from None
            entry = (Presentation.from_json(raw), int(info.mtime.timestamp()))
            self.models.put((title_id, version), entry)
            return entry

        return await self._once(("model", title_id, version), load)

    async def stored_object(self, key: str, content_type: str) -> StoredObject:
        cached = self.objects.get(key)
        if cached is not None:
            return cached

        async def load() -> StoredObject:
            info = await self.storage.head(key)
            local = self.storage.local_path(key)
            lm = int(info.mtime.timestamp())
            etag = f'"{info.etag}"'
            obj = StoredObject(
                key=key,
                path=str(local) if local is not None else None,
                validators=Validators(info.size, etag, lm),
                headers={
                    "Content-Type": content_type,
                    "ETag": etag,
                    "Last-Modified": http_date(lm),
                    "Cache-Control": SEGMENT_CACHE_CONTROL,
                    "Accept-Ranges": "bytes",
                    **CORS_HEADERS,
                },
                full=Decision(200, 0, info.size),
            )
            self.objects.put(key, obj)
            return obj

        return await self._once(("object", key), load)

    def forget_version(self, title_id: str, version: str) -> None:
        """The version vanished from storage (deleted or garbage-collected): drop its entries."""
        self.models.drop(lambda k: k == (title_id, version))
        prefix = media_keys.version_prefix(title_id, version)
        self.objects.drop(lambda k: k.startswith(prefix))
        self.documents.drop(lambda k: k[0] == title_id and k[1] == version)

    def document(
        self, p: Presentation, lm: int, name: str, token: str, render: Callable[[UriBuilder], str], content_type: str
    ) -> Document:
        key = (p.title_id, p.version, name, token)
        cached = self.documents.get(key)
        if cached is not None:
            return cached
        body = render(UriBuilder(query=f"token={token}")).encode()
        # Strong validator: a hash of the exact bytes (RFC 9110 8.8.3).
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        # The model is written last and never changes: its mtime is the documents' age.
        headers = {
            "Content-Type": content_type,
            "ETag": etag,
            "Last-Modified": http_date(lm),
            "Cache-Control": PLAYLIST_CACHE_CONTROL,
            "Accept-Ranges": "bytes",
            **CORS_HEADERS,
        }
        doc = Document(body, Validators(len(body), etag, lm), headers, Decision(200, 0, len(body)))
        self.documents.put(key, doc)
        return doc


ORIGIN = web.AppKey("stream_origin", Origin)


def origin(app: web.Application) -> Origin:
    return app[ORIGIN]


# ---- conditional/range evaluation -------------------------------------------------------------

_CONDITIONAL = ("Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since")


def decide(method: str, h: Any, v: Validators, full: Decision) -> Decision:
    """`h`: the request's header fields (a CIMultiDict, or anything with `in`, get, getall)."""
    # Fast path: a plain GET/HEAD (most segment requests) skips the header parsing.
    if not any(name in h for name in _CONDITIONAL):
        return full
    return evaluate(
        method,
        v,
        range_header=h.get("Range"),
        if_match=_joined(h, "If-Match"),
        if_none_match=_joined(h, "If-None-Match"),
        if_modified_since=h.get("If-Modified-Since"),
        if_unmodified_since=h.get("If-Unmodified-Since"),
        if_range=h.get("If-Range"),
    )


def _joined(h: Any, name: str) -> str | None:
    # RFC 9110 5.3: several field lines of a list-based field are one comma-separated list.
    values = h.getall(name, None)
    return None if not values else ", ".join(values)


def _not_modified(headers: dict[str, str]) -> web.Response:
    # RFC 9110 15.4.5: a 304 carries the validators and Cache-Control a 200 would have.
    keep = {k: v for k, v in headers.items() if k in ("ETag", "Last-Modified", "Cache-Control")}
    return web.Response(status=304, headers=keep)


def _failed(d: Decision) -> ApiError:
    if d.status == 416:
        return ApiError(
            416,
            "range_not_satisfiable",
            "the requested range is not satisfiable",
            headers={"Content-Range": d.content_range or ""},
        )
    return ApiError(412, "precondition_failed", "a precondition in the request is not met")


# ---- handlers -----------------------------------------------------------------------------------


def target(
    o: Origin, p: Presentation, lm: int, token: str, route: str, rendition: str | None, number: str | None
) -> Document | str:
    """What a stream route answers with once its token is checked and its model loaded: the
    rendered playlist or MPD (cached per token), or the storage key of an init or media
    segment. ApiError 404 for a rendition or segment the model does not have. Shared by the
    aiohttp handlers below and server/origin/fastpath.py."""
    if route == "master":
        return o.document(p, lm, MASTER_NAME, token, lambda uri: render_multivariant(p, uri), CT_HLS)
    if route == "manifest":
        return o.document(p, lm, MPD_NAME, token, lambda uri: render_mpd(p, uri), CT_DASH)
    r = p.rendition(rendition or "")
    if r is None:
        raise ApiError(404, "rendition_not_found", "no such rendition in this version")
    if route == "media_playlist":
        rid = r.id
        return o.document(p, lm, f"{rid}/{MEDIA_PLAYLIST_NAME}", token, lambda uri: render_media(p, rid, uri), CT_HLS)
    if route == "init":
        return media_keys.object_key(p.title_id, p.version, r.init_name)
    n = int(number or "")
    if not r.start_number <= n < r.start_number + len(r.segments):
        raise ApiError(404, "segment_not_found", "no such segment in this rendition")
    return media_keys.object_key(p.title_id, p.version, r.segment_name(n))


def _answer(
    request: web.Request, validators: Validators, full: Decision, headers: dict[str, str]
) -> tuple[Decision, dict[str, str]]:
    """Range and preconditions evaluated: the decision (200, 206 or 304) and the headers to
    send with it (Content-Range added to a 206); 412 and 416 are raised."""
    d = decide(request.method, request.headers, validators, full)
    if d.status not in (200, 206, 304):
        raise _failed(d)
    if d.status == 206:
        headers = {**headers, "Content-Range": d.content_range or ""}
    return d, headers


def _send_document(request: web.Request, doc: Document) -> web.Response:
    d, headers = _answer(request, doc.validators, doc.full, doc.headers)
    if d.status == 304:
        return _not_modified(headers)
    body = doc.body if d.status == 200 else doc.body[d.start : d.start + d.length]
    request[BYTES_SENT] = 0 if request.method == "HEAD" else len(body)
    return web.Response(status=d.status, body=body, headers=headers)


def handler(route: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler of one stream route (see ROUTES)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        o = request.app[ORIGIN]
        mi = request.match_info
        title_id, version = mi["title_id"], mi["version"]
        token = o.check_token(request, title_id, version)  # first: 403 before anything is looked up
        p, lm = await o.presentation(title_id, version)
        t = target(o, p, lm, token, route, mi.get("rendition"), mi.get("number"))
        if isinstance(t, Document):
            return _send_document(request, t)
        return await _send_object(request, o, p, t, CT_SEGMENT)

    handle.__name__ = handle.__qualname__ = f"stream_{route}"
    return handle


async def _send_object(
    request: web.Request, o: Origin, p: Presentation, key: str, content_type: str
) -> web.StreamResponse:
    try:
        obj = await o.stored_object(key, content_type)
    except ObjectNotFound:
        o.forget_version(p.title_id, p.version)
        raise ApiError(404, "segment_not_found", "this segment is not in storage") from None
    d, headers = _answer(request, obj.validators, obj.full, obj.headers)
    if d.status == 304:
        return _not_modified(headers)
    if obj.path is not None:
        return await _send_file(request, o, p, obj, d, headers)
    return await _send_stream(request, o, p, obj, d, headers)


async def _send_file(
    request: web.Request, o: Origin, p: Presentation, obj: StoredObject, d: Decision, headers: dict[str, str]
) -> web.StreamResponse:
    assert obj.path is not None
    try:
        # A local open of a page-cached file is a few microseconds: not worth a thread hop.
        fobj = open(obj.path, "rb")  # noqa: SIM115 - closed below
    except (FileNotFoundError, NotADirectoryError):
        o.forget_version(p.title_id, p.version)
        raise ApiError(404, "segment_not_found", "this segment is not in storage") from None
    try:
        resp = web.StreamResponse(status=d.status, headers=headers)
        # Never chunked (ISSUE 3): players and CDNs want the length up front.
        resp.content_length = d.length
        await resp.prepare(request)
        if request.method != "HEAD" and d.length:
            await _sendfile(request, fobj, d.start, d.length)
            request[BYTES_SENT] = d.length
        await resp.write_eof()
        return resp
    finally:
        fobj.close()


def _sendfile_now(transport: Any, fobj: Any, offset: int, count: int) -> int:
    """One sendfile(2) straight to the socket, when nothing is queued on the transport (the
    headers went out as the response was prepared) and the connection is plain TCP; returns
    the bytes the socket took. `loop.sendfile` pauses reading, waits for an empty buffer and
    re-arms epoll around every call, which on loopback cost more than copying a whole 1 MiB
    segment; it still sends whatever the socket does not take here."""
    sock = transport.get_extra_info("socket")
    if sock is None or transport.get_extra_info("sslcontext") is not None or transport.get_write_buffer_size():
        return 0
    try:
        return os.sendfile(sock.fileno(), fobj.fileno(), offset, count)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError as exc:  # EPIPE, ECONNRESET: the viewer went away
        raise ConnectionResetError(str(exc)) from exc


async def _sendfile(request: web.Request, fobj: Any, offset: int, count: int) -> None:
    """Kernel sendfile(2) when the event loop can (asyncio's selector loop), else chunks."""
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("connection lost")
    loop = asyncio.get_running_loop()
    sent = _sendfile_now(transport, fobj, offset, count)
    offset, count = offset + sent, count - sent
    if not count:
        return
    try:
        await loop.sendfile(transport, fobj, offset, count, fallback=False)
        return
    except (NotImplementedError, RuntimeError):
        pass  # e.g. uvloop's transports, TLS: copy through the transport instead
    writer = request._payload_writer  # noqa: SLF001 - the response's writer, already prepared
    remaining = count
    pos = offset
    while remaining:
        chunk = await loop.run_in_executor(None, os.pread, fobj.fileno(), min(remaining, 256 * 1024), pos)
        if not chunk:
            raise ConnectionResetError("file shrank while sending")
        await writer.write(chunk)
        pos += len(chunk)
        remaining -= len(chunk)


async def _send_stream(
    request: web.Request, o: Origin, p: Presentation, obj: StoredObject, d: Decision, headers: dict[str, str]
) -> web.StreamResponse:
    resp = web.StreamResponse(status=d.status, headers=headers)
    resp.content_length = d.length
    if request.method == "HEAD" or not d.length:
        await resp.prepare(request)
        await resp.write_eof()
        return resp
    # One ranged GetObject (RFC 9110 14.1.2 byte positions passed through), never a redirect.
    chunks = o.storage.stream(obj.key, d.start, d.start + d.length - 1).__aiter__()
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        first = b""
    except ObjectNotFound:
        o.forget_version(p.title_id, p.version)
        raise ApiError(404, "segment_not_found", "this segment is not in storage") from None
    await resp.prepare(request)
    sent = 0
    try:
        chunk = first
        while True:
            if chunk:
                await resp.write(chunk)
                sent += len(chunk)
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
    finally:
        await chunks.aclose()
        request[BYTES_SENT] = sent
    if sent != d.length:
        # Headers are gone: all we can do is cut the connection so the client sees a short body.
        log.error("object %s: sent %d of %d bytes", obj.key, sent, d.length)
        if request.transport is not None:
            request.transport.close()
        return resp
    await resp.write_eof()
    return resp


# ---- wiring -------------------------------------------------------------------------------------


async def _origin_ctx(app: web.Application) -> Any:
    s = app[keys.SETTINGS]
    app[ORIGIN] = Origin(app[keys.STORAGE], playback.keyring(s.secret_key, s.previous_secret_keys))
    yield


def route_paths() -> dict[str, str]:
    """aiohttp route patterns, `{name:regex}` for each variable."""
    return {
        name: f"{PREFIX}/" + path.format(**{k: f"{{{k}:{rx}}}" for k, rx in VARIABLES.items()})
        for name, path in ROUTES.items()
    }


def route_regex() -> re.Pattern[str]:
    """All the routes as one regex over a raw (undecoded) path: the route's name is the
    match's `lastgroup`, its variables are the groups named `{route}__{variable}`."""
    alternatives = []
    for name, path in ROUTES.items():
        literal = [re.escape(part) for part in re.split(r"\{\w+\}", f"{PREFIX}/{path}")]
        names = re.findall(r"\{(\w+)\}", path)
        inner = literal[0] + "".join(f"(?P<{name}__{n}>{VARIABLES[n]}){lit}" for n, lit in zip(names, literal[1:]))
        alternatives.append(f"(?P<{name}>{inner})")
    return re.compile("|".join(alternatives))


def setup(app: web.Application) -> None:
    # After the storage context (app.py): the origin needs the storage client.
    app.cleanup_ctx.append(_origin_ctx)
    for name, path in route_paths().items():
        # add_get also answers HEAD (allow_head); OPTIONS is the CORS middleware's.
        app.router.add_get(path, handler(name), name=f"stream_{name}")
