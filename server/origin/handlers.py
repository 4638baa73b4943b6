"""`/stream/{title_id}/{version}/...` under aiohttp: the handlers of the routes in routes.py,
and `setup(app)`, which makes the app's Origin (cache.py) and registers them.

Every request carries `?token=` (auth/playback.py), checked first. Playlists and the MPD are
rendered per token (private), init and media segments are bytes from storage (public,
immutable): from a local file by sendfile (sendfile.py), from S3 by one ranged GetObject.

A missing init or media segment of a version still being encoded (a progressive model) is
asked for (the app's SEGMENT_BUMPER) and waited for (progressive.py), then served as any
other, or answered 503 segment_not_ready; of any other version it is a 404.

Most requests never reach these handlers: the fast protocol (fastpath.py) answers cached ones
with the same Origin, the same decisions (representation.py) and the same bytes, and hands
every other request (errors included) to aiohttp, hence here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from auth.errors import PlaybackTokenMissing
from media.storage import ObjectNotFound
from packager.model import Presentation
from server import keys
from server.http.conditional import Decision
from server.http.errors import ApiError
from server.http.middlewares import BYTES_SENT
from server.origin import routes, sendfile
from server.origin.cache import Document, Origin, StoredObject
from server.origin.downloads import DownloadGate, catalog_lookup, content_disposition
from server.origin.progressive import Waits, not_ready
from server.origin.representation import ANSWERED, Representation, decide, fields, refusal

log = logging.getLogger("streamflix.stream")

ORIGIN = web.AppKey("stream_origin", Origin)
WAITS = web.AppKey("stream_waits", Waits)
DOWNLOADS = web.AppKey("stream_downloads", DownloadGate)


def setup(app: web.Application) -> None:
    # After the storage context (app.py): the origin needs the storage client.
    app.cleanup_ctx.append(_origin_ctx)
    for name, path in routes.route_paths().items():
        # add_get also answers HEAD (allow_head); OPTIONS is the CORS middleware's.
        app.router.add_get(path, handler(name), name=routes.route_name(name))


async def _origin_ctx(app: web.Application) -> AsyncIterator[None]:
    storage = app[keys.STORAGE]
    o = app[ORIGIN] = Origin(storage, app[keys.PLAYBACK_KEYRING])
    app[DOWNLOADS] = DownloadGate(catalog_lookup(lambda: app[keys.PG]), enabled=app[keys.SETTINGS].downloads)
    waits = app[WAITS] = Waits(
        o.stored_object, lambda key: storage.local_path(key) is not None, wait_s=app[keys.SETTINGS].segment_wait_s
    )
    yield
    await waits.close()


def handler(route: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler of one stream route (see routes.ROUTES)."""
    if route == "download":
        return handle_download

    async def handle(request: web.Request) -> web.StreamResponse:
        o = request.app[ORIGIN]
        mi = request.match_info
        title_id, version = mi["title_id"], mi["version"]
        token = _token(request)
        o.verify_token(token, title_id, version)  # first: 403 before anything is looked up
        p, lm = await o.presentation(title_id, version)
        t = o.target(p, lm, token, route, mi.get("rendition"), mi.get("number"))
        if isinstance(t, Document):
            return _send_document(request, t)
        try:
            obj = await o.stored_object(t)
        except ObjectNotFound:
            if not p.progressive:
                raise _gone(o, p) from None
            obj = await _wait_for(request, o, p, t, mi["rendition"], mi.get("number"))
        return await _send_object(request, o, p, obj)

    handle.__name__ = handle.__qualname__ = f"stream_{route}"
    return handle


async def handle_download(request: web.Request) -> web.StreamResponse:
    """A download rendition's MP4: a segment's answer plus the download rules (downloads.py).
    Never answered by the fast path, which hands this route over."""
    o = request.app[ORIGIN]
    mi = request.match_info
    title_id, version = mi["title_id"], mi["version"]
    token = _token(request)
    o.verify_token(token, title_id, version)
    await request.app[DOWNLOADS].check(title_id)
    p, lm = await o.presentation(title_id, version)
    key = o.target(p, lm, token, "download", mi["rendition"], None)
    assert isinstance(key, str)
    r = p.rendition(mi["rendition"])
    try:
        obj = await o.stored_object(
            key, extra_headers={"Content-Disposition": content_disposition(r.name if r else None)}
        )
    except ObjectNotFound:
        raise _gone(o, p) from None
    return await _send_object(request, o, p, obj)


handle_download.__name__ = handle_download.__qualname__ = "stream_download"


def _token(request: web.Request) -> str:
    qs = request.query_string
    # Our own URLs carry exactly `token=...`: skip building a MultiDict for them.
    token = qs[6:] if qs.startswith("token=") and "&" not in qs else request.query.get("token")
    if not token:
        raise PlaybackTokenMissing("this URL needs a playback token: ask POST /api/v1/titles/{id}/playback")
    return token


def _answer(request: web.Request, r: Representation) -> tuple[Decision, dict[str, str]]:
    """Range and preconditions evaluated: the decision (200, 206 or 304) and its header
    fields; 412 and 416 are raised."""
    d = decide(request.method, request.headers, r)
    if d.status not in ANSWERED:
        raise refusal(d)
    return d, fields(d, r.headers)


def _send_document(request: web.Request, doc: Document) -> web.Response:
    d, headers = _answer(request, doc)
    if d.status == 304:
        return web.Response(status=304, headers=headers)
    body = doc.body if d.status == 200 else doc.body[d.start : d.start + d.length]
    request[BYTES_SENT] = 0 if request.method == "HEAD" else len(body)
    return web.Response(status=d.status, body=body, headers=headers)


def _gone(o: Origin, p: Presentation) -> ApiError:
    o.forget_version(p.title_id, p.version)
    return ApiError(404, "segment_not_found", "this segment is not in storage")


def fallbacks(p: Presentation, rendition_id: str, number: int | None) -> tuple[tuple[str, int], ...]:
    """The segments (rendition, number) a player waiting for segment `number` of the video
    rendition `rendition_id` is likely to ask for next, made beside it when it is far from
    what is encoded (`transcoder.tasks.bump`):

    - the default audio at that number: a player asks for it once it has the video;
    - for a higher rung, the lowest rung of the same codec at that number: hls.js, kept
      waiting about half a segment for a high rung after a seek, gives it up and drops to
      the lowest rung for the same segment (segments are presented from their decode time,
      so every rendition's segment `n` starts at the same instant).

    Nothing for an init segment, audio, text or image renditions."""
    wanted = next((r for r in p.renditions if r.id == rendition_id), None)
    if wanted is None or wanted.kind != "video" or number is None:
        return ()
    family = wanted.codecs.split(".")[0]
    rungs = [r for r in p.renditions if r.kind == "video" and r.codecs.split(".")[0] == family]
    lowest = min(rungs, key=lambda r: (r.height or 0, r.bandwidth_peak))
    audio = [r for r in p.renditions if r.kind == "audio"]
    default = next((r for r in audio if r.default), audio[0] if audio else None)
    out = [(default.id, number)] if default is not None else []
    if lowest.id != rendition_id:
        out.append((lowest.id, number))
    return tuple(out)


async def _wait_for(
    request: web.Request, o: Origin, p: Presentation, key: str, rendition: str, number: str | None
) -> StoredObject:
    """A progressive version's object that is not in storage yet: ask for it to be made
    first, wait for it (bounded), or 503 segment_not_ready."""
    bumper = request.app.get(keys.SEGMENT_BUMPER)
    n = None if number is None else int(number)

    async def bump() -> None:
        if bumper is not None:
            await bumper(p.title_id, p.version, rendition, n, fallbacks(p, rendition, n))

    if await request.app[WAITS].wait(key, bump):
        try:
            return await o.stored_object(key)
        except ObjectNotFound:
            pass  # there a moment ago: the version is being replaced or deleted
    what = "init segment" if n is None else f"segment {n}"
    raise not_ready(f"{what} of rendition {rendition} is still being encoded; try again shortly")


async def _send_object(request: web.Request, o: Origin, p: Presentation, obj: StoredObject) -> web.StreamResponse:
    d, headers = _answer(request, obj)
    if d.status == 304:
        return web.Response(status=304, headers=headers)
    if obj.path is not None:
        return await _send_file(request, o, p, obj, d, headers)
    return await _send_stream(request, o, p, obj, d, headers)


async def _send_file(
    request: web.Request, o: Origin, p: Presentation, obj: StoredObject, d: Decision, headers: dict[str, str]
) -> web.StreamResponse:
    assert obj.path is not None
    try:
        # A local open of a page-cached file is a few microseconds: not worth a thread hop.
        fd = os.open(obj.path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise _gone(o, p) from None
    try:
        resp = web.StreamResponse(status=d.status, headers=headers)
        # Never chunked: players and CDNs want the length up front.
        resp.content_length = d.length
        await resp.prepare(request)
        if request.method != "HEAD" and d.length:
            transport = request.transport
            if transport is None:
                raise ConnectionResetError("connection lost")
            await sendfile.send_file(transport, fd, d.start, d.length, resp.write)
            request[BYTES_SENT] = d.length
        await resp.write_eof()
        return resp
    finally:
        os.close(fd)


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
    chunks: Any = o.storage.stream(obj.key, d.start, d.start + d.length - 1).__aiter__()
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        first = b""
    except ObjectNotFound:
        raise _gone(o, p) from None
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
