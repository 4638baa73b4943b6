"""Cross-cutting HTTP behaviour: JSON access logs and metrics, CORS (every status, every route,
preflights answered here).

Order in the app (outermost first): `edge_middleware` (answers CORS preflights; sees the
final status, errors included, for metrics and the access log), then
server.http.errors.error_middleware. One middleware, not two: each layer costs on every segment.
CORS headers are added in `on_response_prepare`, which runs for every response, streamed ones
and errors included, just before its headers go out.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from json.encoder import encode_basestring_ascii as _q
from typing import IO

from aiohttp import web
from aiohttp.typedefs import Handler

from server.http.clientip import client_ip
from server.http.metrics import Metrics

access_log = logging.getLogger("streamflix.access")

METRICS = web.AppKey("metrics", Metrics)
BYTES_SENT = web.RequestKey("sf_bytes_sent", int)  # body bytes sent outside aiohttp (sendfile)

EXPOSE = (
    "Content-Length, Content-Range, ETag, Accept-Ranges, Last-Modified, Retry-After,"
    # the tus protocol (server/api/uploads.py): a browser client reads these
    " Location, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm,"
    " Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires"
)
# Range for players seeking in segments, If-* for revalidation, Authorization/Content-Type for
# the JSON API.
ALLOW_HEADERS = (
    "Authorization, Content-Type, Range, If-None-Match, If-Modified-Since, If-Range, If-Match,"
    " Tus-Resumable, Upload-Offset, Upload-Length, Upload-Metadata, Upload-Checksum, X-HTTP-Method-Override"
)
PREFLIGHT_MAX_AGE = "86400"
# Bearer tokens and URL tokens, never cookies: any origin may read our responses.
CORS_HEADERS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSE}

# Tokens never reach a log line: the query string is dropped except for non-secret keys, and
# any `token=`-like value that slips into a path is masked too.
_SECRET = re.compile(r"(?i)((?:token|password|secret|access_token|refresh_token)=)[^&\s]*")


def redact(text: str) -> str:
    return _SECRET.sub(r"\1REDACTED", text)


def route_template(request: web.Request) -> str:
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None or info.http_exception is not None:
        # Unmatched paths are unbounded: never a label per URL.
        return "unmatched"
    return resource.canonical


class AccessLogSink:
    """Buffered access lines for `streamflix serve`: one write(2) per batch instead of a
    logging record, a lock and a flush per request (the segment hot path). Flushed at least
    every FLUSH_S and when the app stops."""

    FLUSH_S = 0.25
    MAX_LINES = 512

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def write(self, line: str) -> None:
        self.lines.append(line)
        if len(self.lines) >= self.MAX_LINES:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.FLUSH_S, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.lines:
            data = ("\n".join(self.lines) + "\n").encode()
            self.lines.clear()
            try:
                self.stream.write(data)
                self.stream.flush()
            except (OSError, ValueError):
                pass  # a closed stdout must not break serving


ACCESS_SINK = web.AppKey("access_sink", AccessLogSink)


def access_fields(method: str, path: str, route: str) -> str:
    """The request's part of an access line (JSON members, escaped). The path only: the query
    string (the playback token) is never logged, and `token=`-like path text is masked."""
    if "=" in path:
        path = redact(path)
    return f'"method":{_q(method)},"path":{_q(path)},"route":{_q(route)}'


def access_line(fields: str, status: int, nbytes: int, elapsed: float, remote: str) -> str:
    return (
        f'{{"ts":{time.time():.3f},{fields},'
        f'"status":{status},"bytes":{nbytes},"duration_ms":{elapsed * 1000:.3f},"remote":{_q(remote)}}}'
    )


class Recorder:
    """Records finished requests into an app's metrics and access log (`fields`: access_fields
    of the request). server/origin/fastpath.py keeps one per server (the app's registry and sink are
    looked up once, and its `fields` per URL: they repeat); edge_middleware uses `record`."""

    __slots__ = ("metrics", "sink")

    def __init__(self, app: web.Application) -> None:
        self.metrics = app.get(METRICS)
        self.sink = app.get(ACCESS_SINK)

    def __call__(
        self, method: str, route: str, fields: str, status: int, nbytes: int, elapsed: float, remote: str
    ) -> None:
        if self.metrics is not None:
            self.metrics.observe(method, route, status, elapsed, nbytes)
        if self.sink is not None:
            self.sink.write(access_line(fields, status, nbytes, elapsed, remote))
        elif access_log.isEnabledFor(logging.INFO):
            access_log.info(access_line(fields, status, nbytes, elapsed, remote))


def record(
    app: web.Application, method: str, route: str, fields: str, status: int, nbytes: int, elapsed: float, remote: str
) -> None:
    """One finished request into the metrics and the access log."""
    Recorder(app)(method, route, fields, status, nbytes, elapsed, remote)


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: answers CORS preflights, then times the request and records it (metrics and
    one JSON access line) with its final status, error responses included."""
    start = time.perf_counter()
    status = 500
    resp: web.StreamResponse | None = None
    try:
        if request.method == "OPTIONS":
            resp = preflight(request)
            if resp is None:
                resp = await handler(request)
        else:
            resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - start
        nbytes = request.get(BYTES_SENT)
        if nbytes is None:
            if resp is None or request.method == "HEAD":
                nbytes = 0
            elif isinstance(resp, web.Response) and isinstance(resp.body, bytes | bytearray) and not resp.prepared:
                nbytes = len(resp.body)
            else:
                nbytes = resp.body_length
        route = route_template(request)
        record(
            request.app,
            request.method,
            route,
            access_fields(request.method, request.path, route),
            status,
            nbytes,
            elapsed,
            client_ip(request),
        )


def preflight(request: web.Request) -> web.Response | None:
    """The answer to OPTIONS on a known path; None for an unknown one (the router's 404)."""
    exc = request.match_info.http_exception
    if exc is not None and not isinstance(exc, web.HTTPMethodNotAllowed):
        return None
    allowed = set(getattr(exc, "allowed_methods", ()) or ())
    if exc is None:
        allowed.add(request.method)
    allowed.add("OPTIONS")
    if "GET" in allowed:
        allowed.add("HEAD")
    methods = ", ".join(sorted(allowed))
    # Fetch standard, CORS protocol: a preflight is answered with 2xx and the allow lists.
    return web.Response(
        status=204,
        headers={
            "Allow": methods,
            "Access-Control-Allow-Methods": methods,
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
        },
    )


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    h = response.headers
    if "Access-Control-Allow-Origin" not in h:  # hot routes set CORS_HEADERS themselves
        h.update(CORS_HEADERS)
    if response.status >= 400 and "Cache-Control" not in h:
        # An error must not be kept by a CDN or a browser as if it were the object.
        h["Cache-Control"] = "no-store"


def setup(app: web.Application) -> None:
    app[METRICS] = Metrics()
    app.on_response_prepare.append(on_response_prepare)
