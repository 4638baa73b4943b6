"""`/api/v1/uploads/tus`: resumable uploads over the tus 1.0 protocol (core, creation,
creation-with-upload, expiration, termination, checksum), so any tus client (tus-js-client,
Uppy, tuspy) can send a title's source and resume after a dropped connection, from any server
process. The state machine is transcoder/uploads.py; this module is the HTTP.

Who may upload: an admin, or an API key with the `upload` scope. Each upload is its creator's
(another caller gets 404). Errors are the API's JSON error shape with tus' statuses: 409 for
a wrong Upload-Offset, 412 for a missing or unsupported Tus-Resumable, 413 over the size cap,
415 without `application/offset+octet-stream`, 460 for a checksum mismatch, 410 for a
terminated or expired upload, 423 while another request writes to the same upload.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from email.utils import format_datetime

import aiohttp
from aiohttp import web
from pydantic import BaseModel

from server import keys
from server.api.routing import ApiRoutes
from server.http.authn import Principal, require_admin
from server.http.errors import ApiError
from transcoder import uploads

routes = ApiRoutes()
TAG = "uploads"
BASE = "/api/v1/uploads/tus"
TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,expiration,termination,checksum"
OFFSET_TYPE = "application/offset+octet-stream"
EMPTY: dict[str, dict[str, object]] = {"text/plain": {"type": "string", "maxLength": 0}}


class UploadInfo(BaseModel):
    id: str
    length: int
    received: int
    status: str
    title_id: str | None
    metadata: dict[str, str]
    expires_at: datetime
    created_at: datetime
    completed_at: datetime | None


def _owner(principal: Principal) -> str:
    return principal.session_id if principal.is_api_key else principal.user_id


async def _caller(request: web.Request) -> str:
    if request.method != "OPTIONS" and request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise ApiError(
            412,
            "tus_version_unsupported",
            f"send Tus-Resumable: {TUS_VERSION}",
            headers={"Tus-Version": TUS_VERSION},
        )
    return _owner(await require_admin(request, scope="upload"))


def _length(value: str | None, name: str) -> int:
    if value is None or not value.isdigit() or len(value) > 19:
        raise ApiError(400, "invalid_upload", f"{name} must be a whole number of bytes")
    return int(value)


def _upload_headers(u: uploads.Upload) -> dict[str, str]:
    return {
        "Upload-Offset": str(u.received),
        "Upload-Length": str(u.length),
        "Upload-Expires": format_datetime(u.expires_at, usegmt=True),
        "Cache-Control": "no-store",
    }


async def _receive(request: web.Request, owner: str, upload: uploads.Upload, offset: int) -> uploads.Upload:
    if request.content_type != OFFSET_TYPE:
        raise ApiError(415, "unsupported_media_type", f"send the bytes as Content-Type: {OFFSET_TYPE}")
    settings = request.app[keys.SETTINGS]
    received, _title = await uploads.receive(
        request.app[keys.PG],
        request.app[keys.STORAGE],
        upload.id,
        owner,
        offset,
        _body(request),
        spool_dir=settings.work_dir / "uploads",
        checksum=uploads.parse_checksum(request.headers.get("Upload-Checksum")),
        max_attempts=settings.job_max_attempts,
    )
    return received


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    """The request's bytes; a body cut off (the client went away) ends as a ConnectionError,
    which the upload takes as "keep what arrived" (as it does when the server stops the
    request for a lost connection: transcoder.uploads.receive)."""
    try:
        async for chunk in request.content.iter_chunked(uploads.SPOOL_CHUNK):
            yield chunk
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
        raise ConnectionResetError(f"the request body was cut off: {exc}") from exc


@routes.post(
    BASE,
    summary="Create a resumable upload (tus creation, creation-with-upload)",
    tag=TAG,
    status=201,
    content=EMPTY,
    auth="admin",
    errors=(400, 403, 412, 413, 415, 460),
    description="Headers: Tus-Resumable: 1.0.0, Upload-Length, Upload-Metadata (base64 `title`, `filename`, "
    "`kind`, `year`, `description`, `genres`, `series`, `season`, `episode`). A body with Content-Type "
    "application/offset+octet-stream is the first bytes. Answers Location and Upload-Offset.",
)
async def create_upload(request: web.Request) -> web.Response:
    owner = await _caller(request)
    if "Upload-Defer-Length" in request.headers:
        raise ApiError(400, "invalid_upload", "Upload-Defer-Length is not supported: send Upload-Length")
    length = _length(request.headers.get("Upload-Length"), "Upload-Length")
    settings = request.app[keys.SETTINGS]
    metadata = uploads.parse_metadata(request.headers.get("Upload-Metadata"))
    async with request.app[keys.PG].acquire() as conn:
        upload = await uploads.create(
            conn,
            request.app[keys.STORAGE],
            owner=owner,
            length=length,
            metadata=metadata,
            max_bytes=settings.max_source_bytes,
        )
    if request.content_length or request.content_type == OFFSET_TYPE:
        upload = await _receive(request, owner, upload, 0)
    headers = {**_upload_headers(upload), "Location": f"{BASE}/{upload.id}", "Tus-Resumable": TUS_VERSION}
    return web.Response(status=201, headers=headers)


@routes.route(
    "HEAD",
    BASE + "/{upload_id}",
    summary="An upload's offset (tus core)",
    tag=TAG,
    content=EMPTY,
    auth="admin",
    errors=(403, 404, 410, 412),
)
async def head_upload(request: web.Request) -> web.Response:
    owner = await _caller(request)
    async with request.app[keys.PG].acquire() as conn:
        upload = await uploads.get(conn, request.match_info["upload_id"], owner)
    return web.Response(status=200, headers={**_upload_headers(upload), "Tus-Resumable": TUS_VERSION})


@routes.patch(
    BASE + "/{upload_id}",
    summary="Append bytes at Upload-Offset (tus core, checksum)",
    tag=TAG,
    status=204,
    auth="admin",
    errors=(400, 403, 404, 409, 410, 412, 413, 415, 423, 460),
)
async def patch_upload(request: web.Request) -> web.Response:
    owner = await _caller(request)
    offset = _length(request.headers.get("Upload-Offset"), "Upload-Offset")
    async with request.app[keys.PG].acquire() as conn:
        upload = await uploads.get(conn, request.match_info["upload_id"], owner)
    upload = await _receive(request, owner, upload, offset)
    return web.Response(status=204, headers={**_upload_headers(upload), "Tus-Resumable": TUS_VERSION})


@routes.delete(
    BASE + "/{upload_id}",
    summary="Terminate an upload, its bytes deleted (tus termination)",
    tag=TAG,
    status=204,
    auth="admin",
    errors=(403, 404, 409, 410, 412, 423),
)
async def delete_upload(request: web.Request) -> web.Response:
    owner = await _caller(request)
    await uploads.terminate(request.app[keys.PG], request.app[keys.STORAGE], request.match_info["upload_id"], owner)
    return web.Response(status=204, headers={"Tus-Resumable": TUS_VERSION})


@routes.get(
    "/api/v1/uploads/{upload_id}",
    summary="An upload's progress, and the title it became",
    tag=TAG,
    response=UploadInfo,
    auth="admin",
    errors=(403, 404, 410),
)
async def get_upload(request: web.Request) -> web.Response:
    owner = _owner(await require_admin(request, scope="upload"))
    async with request.app[keys.PG].acquire() as conn:
        upload = await uploads.get(conn, request.match_info["upload_id"], owner)
    return web.json_response(upload.to_json())


async def _tus_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer under the tus endpoint says the protocol; OPTIONS says what we support."""
    if not request.path.startswith(BASE):
        return
    response.headers.setdefault("Tus-Resumable", TUS_VERSION)
    if request.method == "OPTIONS":
        response.headers.update(
            {
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": EXTENSIONS,
                "Tus-Max-Size": str(request.app[keys.SETTINGS].max_source_bytes),
                "Tus-Checksum-Algorithm": ",".join(uploads.CHECKSUMS),
            }
        )


def setup(app: web.Application) -> None:
    app.add_routes(routes)
    app.on_response_prepare.append(_tus_headers)
