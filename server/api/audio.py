"""`POST /api/v1/admin/titles/{title_id}/audio`: add an audio track to a ready title.

The body is the audio file itself (anything ffmpeg reads: .m4a, .wav, .mp3, .mka, a video
with an audio stream); the query says its language and name. The title gets a new version
with the track added beside the current version's copied objects, no video re-encoded
(`transcoder.add_audio`); players pick it up on their next playback request.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import aiofiles
from aiohttp import web
from pydantic import BaseModel

from media import languages
from server import keys
from server.api.routing import ApiRoutes, Query
from server.http.authn import require_admin
from server.http.errors import ApiError
from transcoder.add_audio import InvalidAudio, add_audio_track

routes = ApiRoutes()
TAG = "admin"
NAME_MAX = 80


class AudioTrack(BaseModel):
    id: str
    language: str
    name: str
    channels: int
    default: bool


class AudioAdded(BaseModel):
    title_id: str
    version: str
    audio: AudioTrack


def _language(request: web.Request) -> str:
    if "lang" not in request.query:
        raise ApiError(400, "invalid_query", "lang is required (e.g. ?lang=fr)")
    text = request.query["lang"].strip()
    primary, _, rest = text.partition("-")
    known = languages.known(primary)
    if known is None:
        raise ApiError(400, "invalid_query", f"unknown language {text!r} (use e.g. en, fr, pt-BR)")
    tag = languages.to_bcp47(f"{known}-{rest}" if rest else known)
    if rest and "-" not in tag:
        raise ApiError(400, "invalid_query", f"malformed language tag {text!r}")
    return tag


async def _save_capped(request: web.Request, dest: Path, cap: int) -> int:
    """Stream the body to `dest`, refusing it (413) before or as soon as it passes `cap`."""
    too_large = ApiError(413, "too_large", f"an audio file is at most {cap} bytes")
    if request.content_length is not None and request.content_length > cap:
        raise too_large
    size = 0
    async with aiofiles.open(dest, "wb") as fh:
        async for chunk in request.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > cap:
                raise too_large
            await fh.write(chunk)
    if size == 0:
        raise ApiError(400, "invalid_audio", "the body is empty: send the audio file")
    return size


@routes.post(
    "/api/v1/admin/titles/{title_id}/audio",
    summary="Add an audio track to a ready title (admin): the body is the audio file",
    tag=TAG,
    status=201,
    response=AudioAdded,
    auth="admin",
    errors=(400, 403, 404, 409, 413),
    query=(
        Query("lang", {"type": "string"}, "the track's language: en, fr, eng, fre, pt-BR"),
        Query("name", {"type": "string", "maxLength": NAME_MAX}, "menu label (default: the language's own name)"),
    ),
)
async def add_audio(request: web.Request) -> web.Response:
    await require_admin(request)
    title_id = request.match_info["title_id"]
    language = _language(request)
    name = " ".join(request.query.get("name", "").split())
    if len(name) > NAME_MAX:
        raise ApiError(400, "invalid_query", f"name is at most {NAME_MAX} characters")
    settings = request.app[keys.SETTINGS]
    work = Path(settings.work_dir)
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    upload = work / f"audio-upload-{secrets.token_hex(8)}"
    try:
        await _save_capped(request, upload, settings.max_source_bytes)
        try:
            model, added = await add_audio_track(
                request.app[keys.PG],
                request.app[keys.STORAGE],
                title_id,
                upload,
                language=language,
                name=name or languages.display_name(language),
                work_dir=work,
            )
        except InvalidAudio as exc:
            raise ApiError(400, "invalid_audio", exc.reason) from None
    finally:
        await asyncio.to_thread(upload.unlink, missing_ok=True)
    body = AudioAdded(
        title_id=title_id,
        version=model.version,
        audio=AudioTrack(
            id=added.id,
            language=added.language or language,
            name=added.name or "",
            channels=added.channels or 2,
            default=added.default,
        ),
    )
    return web.json_response(body.model_dump(), status=201)


def setup(app: web.Application) -> None:
    app.add_routes(routes)
