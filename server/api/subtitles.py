"""`POST /api/v1/admin/titles/{title_id}/subtitles`: add a subtitle track to a ready title.

The body is the subtitle file itself (SubRip, WebVTT or ASS/SSA, any common encoding); the
query says how to present it. The title gets a new version with the track added and nothing
re-encoded (`transcoder.derive`); players pick it up on their next playback request.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from media.subtitles import MAX_BYTES, normalize_language, parse
from server import keys
from server.api.routing import ApiRoutes, Query
from server.http.authn import require_admin
from server.http.errors import ApiError
from transcoder.derive import add_subtitle_track
from transcoder.subtitles import Track, display_name

routes = ApiRoutes()
TAG = "admin"
NAME_MAX = 80
BOOL = {"type": "boolean", "default": False}


class SubtitleTrack(BaseModel):
    id: str
    language: str
    name: str
    forced: bool
    sdh: bool
    default: bool


class SubtitleAdded(BaseModel):
    title_id: str
    version: str
    subtitles: SubtitleTrack


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise ApiError(400, "invalid_query", f"{name} must be true or false, not {value!r}")
    return value in ("true", "1")


async def _read_capped(request: web.Request) -> bytes:
    """A body over the cap is refused before it is read (Content-Length) or as soon as it
    passes the cap (chunked): a 50 MB upload is never buffered, let alone parsed."""
    too_large = ApiError(413, "too_large", f"a subtitle file is at most {MAX_BYTES} bytes")
    if request.content_length is not None and request.content_length > MAX_BYTES:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


@routes.post(
    "/api/v1/admin/titles/{title_id}/subtitles",
    summary="Add a subtitle track to a ready title (admin): the body is the .srt/.vtt/.ass file",
    tag=TAG,
    status=201,
    response=SubtitleAdded,
    auth="admin",
    errors=(400, 403, 404, 409, 413),
    query=(
        Query("lang", {"type": "string"}, "BCP 47 language tag with an ISO 639 language: en, fr, pt-BR"),
        Query("forced", BOOL, "only the lines translating foreign speech and signs (shown unasked)"),
        Query("sdh", BOOL, "captions that also describe sounds, for deaf and hard-of-hearing viewers"),
        Query("name", {"type": "string", "maxLength": NAME_MAX}, "menu label (default: the language's name)"),
    ),
)
async def add_subtitles(request: web.Request) -> web.Response:
    await require_admin(request)
    title_id = request.match_info["title_id"]
    if "lang" not in request.query:
        raise ApiError(400, "invalid_query", "lang is required (e.g. ?lang=fr)")
    language = normalize_language(request.query["lang"])
    forced, sdh = _flag(request, "forced"), _flag(request, "sdh")
    name = " ".join(request.query.get("name", "").split())
    if len(name) > NAME_MAX:
        raise ApiError(400, "invalid_query", f"name is at most {NAME_MAX} characters")
    cues = parse(await _read_capped(request))
    track = Track(
        tuple(cues),
        language,
        display_name(language, forced=forced, sdh=sdh, title=name or None),
        forced,
        sdh,
        "upload",
    )
    model, added = await add_subtitle_track(request.app[keys.PG], request.app[keys.STORAGE], title_id, track)
    body = SubtitleAdded(
        title_id=title_id,
        version=model.version,
        subtitles=SubtitleTrack(
            id=added.id,
            language=added.language or language,
            name=added.name or "",
            forced=added.forced,
            sdh=added.sdh,
            default=added.default,
        ),
    )
    return web.json_response(body.model_dump(), status=201)


def setup(app: web.Application) -> None:
    app.add_routes(routes)
