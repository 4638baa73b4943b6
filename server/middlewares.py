"""Cross-cutting HTTP behaviour: JSON access logs and metrics, CORS (every status, every route,
preflights answered here).

Order in the app (outermost first): `observe_middleware` (sees the final status, errors
included), `cors_middleware` (answers OPTIONS), then server.errors.error_middleware.
CORS headers are added in `on_response_prepare`, which runs for every response, streamed ones
and errors included, just before its headers go out.
"""
from __future__ import annotations

import json
import logging
import re
import time

from aiohttp import web

from server.metrics import Metrics

access_log = logging.getLogger("streamflix.access")

METRICS = web.AppKey("metrics", Metrics)
BYTES_SENT = web.RequestKey("sf_bytes_sent", int)  # body bytes sent outside aiohttp (sendfile)

EXPOSE = "Content-Length, Content-Range, ETag, Accept-Ranges, Last-Modified, Retry-After"
# Range for players seeking in segments, If-* for revalidation, Authorization/Content-Type for
# the JSON API.
ALLOW_HEADERS = "Authorization, Content-Type, Range, If-None-Match, If-Modified-Since, If-Range, If-Match"
PREFLIGHT_MAX_AGE = "86400"

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


@web.middleware
async def observe_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    status = 500
    resp = None
    try:
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
            nbytes = resp.body_length if resp is not None and resp.prepared else (
                len(resp.body) if isinstance(resp, web.Response) and resp.body is not None
                and request.method != "HEAD" else 0
            )
        route = route_template(request)
        metrics = request.app.get(METRICS)
        if metrics is not None:
            metrics.observe(request.method, route, status, elapsed, nbytes)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                json.dumps(
                    {
                        "ts": round(time.time(), 3),
                        "method": request.method,
                        # The path only: the query (the playback token) is never logged.
                        "path": redact(request.path),
                        "route": route,
                        "status": status,
                        "bytes": nbytes,
                        "duration_ms": round(elapsed * 1000, 3),
                        "remote": request.remote,
                    },
                    separators=(",", ":"),
                )
            )


@web.middleware
async def cors_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    if request.method != "OPTIONS":
        return await handler(request)
    exc = request.match_info.http_exception
    if exc is not None and not isinstance(exc, web.HTTPMethodNotAllowed):
        return await handler(request)  # unknown path: the router's 404
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
    # Bearer tokens and URL tokens, never cookies: any origin may read our responses.
    h["Access-Control-Allow-Origin"] = "*"
    h["Access-Control-Expose-Headers"] = EXPOSE
    if response.status >= 400 and "Cache-Control" not in h:
        # An error must not be kept by a CDN or a browser as if it were the object.
        h["Cache-Control"] = "no-store"


def setup(app: web.Application) -> None:
    app[METRICS] = Metrics()
    app.on_response_prepare.append(on_response_prepare)
