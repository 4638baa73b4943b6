"""Domain errors -> HTTP, in one middleware, with one JSON error shape:

{"error": {"code": "snake_case_code", "message": "human text"}}
"""

from __future__ import annotations

import errno
import json
import logging
import socket
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict

from auth.errors import (
    AuthError,
    EmailTaken,
    Forbidden,
    InvalidCredentials,
    InvalidEmailToken,
    InvalidField,
    InvalidToken,
    LastAdmin,
    PlaybackTokenError,
    SessionNotFound,
    UserNotFound,
    WeakPassword,
    WrongPassword,
)
from catalog.errors import (
    CatalogError,
    CommentNotFound,
    DeliveryNotFound,
    DuplicateEpisode,
    InvalidHistory,
    InvalidPoster,
    InvalidQuery,
    InvalidTitle,
    PosterNotFound,
    PosterTooLarge,
    TitleNotFailed,
    TitleNotFound,
    TitleNotReady,
    WebhookNotFound,
)
from media.errors import InvalidKey, MediaError, ObjectNotFound, OutboundRefused, ProbeError, StorageError
from media.subtitles import SubtitleError
from packager.errors import InvalidPresentation, InvalidUri, PresentationIncomplete, RenditionNotFound
from server.http.dbhealth import DB_HEALTH
from server.settings import ConfigError
from transcoder.ingest import SourceRefused, SourceTooLarge, SourceUnavailable
from transcoder.uploads import (
    ChecksumMismatch,
    InvalidUpload,
    UploadComplete,
    UploadError,
    UploadGone,
    UploadLocked,
    UploadNotFound,
    UploadOffsetMismatch,
)

log = logging.getLogger("streamflix.server")


class ApiError(Exception):
    """An HTTP-level error raised by a handler (bad query, missing header, ...)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.details = details


# Exception type -> HTTP status, the one table: looked up along the MRO, so a subclass inherits
# its base's status unless listed itself. A package's new error gets its status here, not by
# patching this dict from a route module.
STATUS_BY_ERROR: dict[type[BaseException], int] = {
    InvalidKey: 404,
    ObjectNotFound: 404,
    StorageError: 503,
    ProbeError: 400,
    MediaError: 500,
    ConfigError: 500,
    RenditionNotFound: 404,
    PresentationIncomplete: 409,
    InvalidPresentation: 500,
    InvalidUri: 500,
    # A stream URL whose token is missing, malformed, forged, expired or for another title: 403
    # (docs/origin.md); each subclass has its own code.
    PlaybackTokenError: 403,
    # catalog: not ready is a 409, like a conflict
    CatalogError: 400,
    TitleNotFound: 404,
    TitleNotReady: 409,
    TitleNotFailed: 409,
    CommentNotFound: 404,
    DuplicateEpisode: 409,
    InvalidTitle: 400,
    InvalidQuery: 400,
    InvalidHistory: 400,
    InvalidPoster: 400,
    PosterTooLarge: 413,
    PosterNotFound: 404,
    WebhookNotFound: 404,
    DeliveryNotFound: 404,
    # a URL the server was asked to call that it may not (SSRF guard)
    OutboundRefused: 400,
    # a subtitle file or option we cannot use (each check has its own code)
    SubtitleError: 400,
    # accounts
    AuthError: 400,
    InvalidCredentials: 401,
    InvalidToken: 401,
    EmailTaken: 409,
    WeakPassword: 400,
    Forbidden: 403,
    UserNotFound: 404,
    InvalidField: 400,
    LastAdmin: 409,
    SessionNotFound: 404,
    InvalidEmailToken: 400,
    WrongPassword: 403,
    # transcoder sources (ingest by URL or upload)
    SourceUnavailable: 400,
    SourceTooLarge: 413,
    SourceRefused: 400,
    # resumable uploads (tus statuses)
    UploadError: 400,
    InvalidUpload: 400,
    UploadNotFound: 404,
    UploadGone: 410,
    UploadOffsetMismatch: 409,
    UploadComplete: 409,
    UploadLocked: 423,
    ChecksumMismatch: 460,
}


# While Postgres is unreachable every database-backed route answers 503 with this Retry-After.
DATABASE_RETRY_AFTER_S = 5

# asyncpg's InterfaceError messages that mean "the connection or the pool went away", not a
# bug in how we call it ("cannot perform operation: another operation is in progress" is one).
_NETWORK_ERRNOS = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT})
# "released back to the pool": asyncpg hands a pooled connection back as soon as its socket
# drops, so the request's next call on it (a login between its lookup and its session insert,
# say) meets this rather than "connection is closed".
_LOST_CONNECTION = (
    "pool is closing",
    "pool is closed",
    "connection is closed",
    "connection was closed",
    "released back to the pool",
)


def is_database_outage(exc: BaseException) -> bool:
    """True when `exc` means Postgres cannot be reached or stopped answering, so the request
    is worth retrying later: refused or reset connections, a server shutting down or full, a
    connection lost mid-query, and timeouts connecting, waiting for a pooled connection or
    running a statement (`db_timeout_s`). Not a query the database answered with an error."""
    if isinstance(
        exc,
        asyncpg.PostgresConnectionError  # 08xxx: refused, lost, does not exist
        | asyncpg.CannotConnectNowError  # 57P03: starting up or in recovery
        | asyncpg.AdminShutdownError  # 57P01: shutting down
        | asyncpg.CrashShutdownError
        | asyncpg.TooManyConnectionsError,  # 53300
    ):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        return any(text in str(exc) for text in _LOST_CONNECTION)
    if isinstance(exc, aiohttp.ClientConnectionResetError):
        return False  # the viewer's socket closed under a response (a player aborting a request)
    # TimeoutError from connect, pool acquire or a statement's command_timeout;
    # ConnectionRefusedError/ConnectionResetError from connect or a dropped socket; a name that
    # does not resolve; an unreachable network; asyncio's "Multiple exceptions" when every
    # address of a host refused. Not any OSError: a missing file is no database outage.
    if isinstance(exc, TimeoutError | ConnectionError | socket.gaierror):
        return True
    return isinstance(exc, OSError) and (exc.errno in _NETWORK_ERRNOS or str(exc).startswith("Multiple exceptions"))


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: Any = None


class Error(BaseModel):
    """The one error body, as `error_response` writes it (and the OpenAPI document shows it)."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorInfo


def status_for(exc: BaseException) -> int | None:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return None


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    details: Any = None,
) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return web.Response(
        status=status,
        text=json.dumps({"error": body}),
        content_type="application/json",
        headers=headers,
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    429: "rate_limited",
    503: "unavailable",
}


# aiohttp refuses request lines over its `max_line_size` with a plain-text 400 before any
# middleware runs; the app raises that limit (server/app.py) and answers long URIs here, in
# the one JSON error shape, with the status RFC 9110 section 15.5.15 names for them.
MAX_URI_BYTES = 8192
MAX_REQUEST_LINE_BYTES = 65536


def database_unavailable(app: web.Application, exc: BaseException) -> web.Response:
    """The answer while Postgres is down: 503 with Retry-After, and no traceback: the outage
    is logged once, when it starts, by the app's DatabaseHealth."""
    health = app.get(DB_HEALTH)
    if health is not None:
        health.failed(exc)
    return error_response(
        503,
        "database_unavailable",
        "the database is unavailable; try again shortly",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


# nginx's "client closed request": logged, never sent (the connection is gone).
CLIENT_CLOSED_REQUEST = 499


def viewer_went_away(request: web.Request, exc: BaseException) -> bool:
    """True when `exc` is the client's connection closing under a response being written."""
    if isinstance(exc, aiohttp.ClientConnectionResetError):
        return True
    transport = request.transport
    return isinstance(exc, ConnectionResetError) and (transport is None or transport.is_closing())


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if len(request.raw_path) > MAX_URI_BYTES:
        return error_response(414, "uri_too_long", f"the request URI is longer than {MAX_URI_BYTES} bytes")
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers, details=exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason if exc.text is None or exc.text.startswith(f"{exc.status}:") else exc.text
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after", "content-range")}
        return error_response(exc.status, code, message, headers=headers)
    except Exception as exc:
        if viewer_went_away(request, exc):
            # A player aborting a request (hls.js does at every seek and level switch): the
            # answer has nowhere to go. Not an error; the access log records the 499.
            log.debug("%s %s: the client went away", request.method, request.path)
            return web.Response(status=CLIENT_CLOSED_REQUEST)
        status = status_for(exc)
        if status is None and is_database_outage(exc):
            return database_unavailable(request.app, exc)
        if status is None:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return error_response(500, "internal_error", "internal server error")
        headers = {}
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
        elif status == 503:
            headers["Retry-After"] = "5"
        code = getattr(exc, "code", None) or _HTTP_CODES.get(status, "error")
        return error_response(status, code, str(exc) or code.replace("_", " "), headers=headers)
