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

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from email.utils import format_datetime
from typing import Literal

import aiohttp
from aiohttp import web
from pydantic import BaseModel, Field

from server import keys
from server.api.routing import ApiRoutes
from server.http.authn import Principal, require_admin
from server.http.errors import ApiError
from server.http.validation import Body, SafeStr, parse_body
from transcoder import ingest, uploads

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


async def _caller(request: web.Request) -> tuple[str, uploads.DirectUpload | None]:
    """(owner, the direct upload when the URL is one's): an admin or an upload-scoped key, or
    the holder of a direct upload URL (`?direct=`, no account needed)."""
    # who first (a missing credential is a 401 whatever else is missing), then the protocol
    token = request.query.get("direct")
    direct = None
    if token is not None:
        async with request.app[keys.PG].acquire() as conn:
            direct = await uploads.direct_by_token(conn, token)
        owner = direct.owner
    else:
        owner = _owner(await require_admin(request, scope="upload"))
    if request.method != "OPTIONS" and request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise ApiError(
            412,
            "tus_version_unsupported",
            f"send Tus-Resumable: {TUS_VERSION}",
            headers={"Tus-Version": TUS_VERSION},
        )
    return owner, direct


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


async def _finished(request: web.Request, upload: uploads.Upload) -> uploads.Upload:
    """Every byte in but not complete (its completion met an outage): complete it now."""
    return await uploads.finish_if_due(
        request.app[keys.PG],
        request.app[keys.STORAGE],
        upload,
        max_attempts=request.app[keys.SETTINGS].job_max_attempts,
    )


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
    owner, direct = await _caller(request)
    if "Upload-Defer-Length" in request.headers:
        raise ApiError(400, "invalid_upload", "Upload-Defer-Length is not supported: send Upload-Length")
    length = _length(request.headers.get("Upload-Length"), "Upload-Length")
    settings = request.app[keys.SETTINGS]
    metadata = uploads.parse_metadata(request.headers.get("Upload-Metadata"))
    storage = request.app[keys.STORAGE]
    if direct is not None:
        upload = await uploads.start_direct(
            request.app[keys.PG],
            storage,
            direct,
            length=length,
            filename=metadata.get("filename"),
            max_bytes=settings.max_source_bytes,
        )
    else:
        async with request.app[keys.PG].acquire() as conn:
            upload = await uploads.create(
                conn, storage, owner=owner, length=length, metadata=metadata, max_bytes=settings.max_source_bytes
            )
    if request.content_length or request.content_type == OFFSET_TYPE:
        upload = await _receive(request, owner, upload, 0)
    location = f"{BASE}/{upload.id}" + (f"?direct={request.query['direct']}" if direct else "")
    headers = {**_upload_headers(upload), "Location": location, "Tus-Resumable": TUS_VERSION}
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
    owner, _direct = await _caller(request)
    async with request.app[keys.PG].acquire() as conn:
        upload = await uploads.get(conn, request.match_info["upload_id"], owner)
    upload = await _finished(request, upload)
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
    owner, _direct = await _caller(request)
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
    owner, _direct = await _caller(request)
    await uploads.terminate(request.app[keys.PG], request.app[keys.STORAGE], request.match_info["upload_id"], owner)
    return web.Response(status=204, headers={"Tus-Resumable": TUS_VERSION})


@routes.get(
    "/api/v1/uploads/{upload_id}/status",
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
    return web.json_response((await _finished(request, upload)).to_json())


class TitleFields(Body):
    """The title an upload or a URL becomes."""

    title: SafeStr = Field(min_length=1, max_length=500)
    kind: Literal["movie", "episode"] | None = None
    year: int | None = Field(default=None, ge=1870, le=2200)
    description: SafeStr = Field(default="", max_length=10_000)
    genres: list[SafeStr] = Field(default=[], max_length=20)
    series: SafeStr | None = Field(default=None, max_length=500)
    season: int | None = Field(default=None, ge=0, le=10_000)
    episode: int | None = Field(default=None, ge=0, le=100_000)


class DirectUploadBody(TitleFields):
    expires_in_s: int = Field(default=int(uploads.DIRECT_EXPIRY_S), ge=60, le=7 * 24 * 3600)


class DirectUploadInfo(BaseModel):
    id: str
    metadata: dict[str, str]
    expires_at: datetime
    upload_id: str | None
    created_at: datetime


class CreatedDirectUpload(DirectUploadInfo):
    upload_url: str = Field(description="the tus endpoint for this one upload: no account needed; shown once")


class DirectUploadStatus(DirectUploadInfo):
    upload: UploadInfo | None


@routes.post(
    "/api/v1/uploads",
    summary="A one-time, expiring upload URL for a browser without an account",
    tag=TAG,
    status=201,
    response=CreatedDirectUpload,
    body=DirectUploadBody,
    auth="admin",
    errors=(400, 403),
)
async def create_direct_upload(request: web.Request) -> web.Response:
    owner = _owner(await require_admin(request, scope="upload"))
    body = await parse_body(request, DirectUploadBody)
    fields = body.model_dump(exclude={"expires_in_s"}, exclude_none=True)
    metadata = {k: (",".join(v) if isinstance(v, list) else str(v)) for k, v in fields.items() if v not in ("", [])}
    async with request.app[keys.PG].acquire() as conn:
        direct, token = await uploads.create_direct(
            conn, created_by=owner, metadata=metadata, expiry_s=body.expires_in_s
        )
    public = request.app[keys.SETTINGS].public_url
    url = (public.rstrip("/") if public else "") + f"{BASE}?direct={token}"
    return web.json_response({**direct.to_json(), "upload_url": url}, status=201, headers={"Cache-Control": "no-store"})


@routes.get(
    "/api/v1/uploads/direct/{direct_id}",
    summary="A direct upload's progress, and the title it became",
    tag=TAG,
    response=DirectUploadStatus,
    auth="admin",
    errors=(403, 404),
)
async def get_direct_upload(request: web.Request) -> web.Response:
    owner = _owner(await require_admin(request, scope="upload"))
    async with request.app[keys.PG].acquire() as conn:
        direct = await uploads.get_direct(conn, request.match_info["direct_id"], owner)
        upload = None
        if direct.upload_id:
            with contextlib.suppress(uploads.UploadGone):
                upload = (await uploads.get(conn, direct.upload_id, direct.owner)).to_json()
    return web.json_response({**direct.to_json(), "upload": upload})


class UrlIngestBody(TitleFields):
    url: SafeStr = Field(min_length=1, max_length=2000, description="http(s):// or s3:// source to fetch")


class IngestAccepted(BaseModel):
    title_id: str
    status: str
    source: str


@routes.post(
    "/api/v1/ingest",
    summary="Ingest a title from a URL (a worker fetches it)",
    tag=TAG,
    status=202,
    response=IngestAccepted,
    body=UrlIngestBody,
    auth="admin",
    errors=(400, 403, 409),
    description="The title and its transcode job are created at once; the worker that runs the job downloads "
    "the URL (max_source_bytes, the ingest timeouts; only public addresses unless "
    "STREAMFLIX_OUTBOUND_ALLOW_PRIVATE), so progress and failures show on the job.",
)
async def ingest_url(request: web.Request) -> web.Response:
    await require_admin(request, scope="upload")
    body = await parse_body(request, UrlIngestBody)
    settings = request.app[keys.SETTINGS]
    title = await ingest.register_url(
        request.app[keys.PG],
        url=body.url,
        allow_private=settings.outbound_allow_private,
        max_attempts=settings.job_max_attempts,
        title=body.title,
        kind=body.kind,
        series=body.series,
        season=body.season,
        episode=body.episode,
        year=body.year,
        genres=body.genres,
        description=body.description,
    )
    return web.json_response({"title_id": title.id, "status": title.status, "source": body.url}, status=202)


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
