"""`POST /api/v1/titles/{id}/playback`: a logged-in viewer trades a bearer token for stream URLs.

The URLs carry a playback token for the title's current version that expires at a window
boundary (auth/playback.py), so everyone who presses play in the same window gets the same
URLs and a CDN keeps one copy of each segment for all of them.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel, Field

from auth import playback
from catalog import titles
from catalog.errors import TitleNotReady
from media.errors import StorageError
from packager.model import Presentation
from packager.uris import UriBuilder
from server import keys
from server.api.routing import ApiRoutes
from server.http.authn import require_user
from server.http.errors import ApiError
from server.origin.handlers import ORIGIN
from server.origin.routes import PREFIX

routes = ApiRoutes()
log = logging.getLogger("streamflix.api")


class Playback(BaseModel):
    hls_url: str
    dash_url: str
    expires_at: str
    download_url: str | None = Field(
        None,
        description="one progressive MP4 behind the same token; absent when the version has none or "
        "downloads are off for the title or the server",
    )
    thumbnails_url: str | None = Field(
        None,
        description="the WebVTT index of the seek thumbnails (sprite sheet URLs with #xywh= tiles) behind the "
        "same token; absent when the version has none",
    )


def version_base(public_url: str | None, title_id: str, version: str) -> str:
    """Absolute under STREAMFLIX_PUBLIC_URL (a CDN in front), else root-relative."""
    path = f"{PREFIX}/{title_id}/{version}/"
    return public_url.rstrip("/") + path if public_url else path


@routes.post(
    "/api/v1/titles/{title_id}/playback",
    summary="Signed HLS and DASH URLs for a ready (or playable) title",
    tag="playback",
    response=Playback,
    auth="user",
    errors=(404, 409),
)
async def start_playback(request: web.Request) -> web.Response:
    await require_user(request)
    settings = request.app[keys.SETTINGS]
    async with request.app[keys.PG].acquire() as conn:
        title = await titles.get_title(conn, request.match_info["title_id"])  # 404, malformed id too
    # `playable`: the first version is still being encoded; the origin waits for a segment
    # that is not made yet (and answers 503 + Retry-After when it takes too long).
    if not title.playable or title.current_version is None:
        if title.kind == "series":
            raise TitleNotReady("a series has no media of its own: play one of its episodes")
        raise TitleNotReady(f"title {title.id} is {title.status}, not ready to play yet")
    token, expires_at = playback.sign(
        request.app[keys.PLAYBACK_KEYRING], title.id, title.current_version, time.time(), settings.playback_window_s
    )
    uri = UriBuilder(version_base(settings.public_url, title.id, title.current_version), f"token={token}")
    answer = {
        "hls_url": uri.master(),
        "dash_url": uri.mpd(),
        "expires_at": datetime.fromtimestamp(expires_at, tz=UTC).isoformat().replace("+00:00", "Z"),
    }
    p = await _model(request, title.id, title.current_version)
    if p is not None and settings.downloads and title.downloads_enabled and p.downloads:
        answer["download_url"] = uri.download(p.downloads[0])
    if p is not None and p.images:
        answer["thumbnails_url"] = uri.thumbnails(p.images[0].id)
    return web.json_response(answer, headers={"Cache-Control": "no-store"})


async def _model(request: web.Request, title_id: str, version: str) -> Presentation | None:
    """The version's model, from the origin's cached one (a storage read once per version), for
    its download and thumbnails; None when it cannot be read now: the stream URLs are answered
    all the same."""
    try:
        p, _ = await request.app[ORIGIN].presentation(title_id, version)
    except (ApiError, StorageError) as exc:
        log.warning("title %s version %s: no download_url or thumbnails_url: %s", title_id, version, exc)
        return None
    return p


def setup(app: web.Application) -> None:
    app.add_routes(routes)
