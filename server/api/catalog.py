"""Catalog routes: browse, title pages, posters, search, suggest and admin title CRUD.
Domain logic lives in `catalog/`; this module parses, authorises, caches."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from auth.errors import Forbidden
from catalog import analytics, browse, posters, search, titles
from catalog.cursor import derive_key
from catalog.errors import PosterNotFound, PosterTooLarge, TitleNotFound
from media import keys as media_keys
from media.storage import ObjectNotFound
from server import keys
from server.api import cache
from server.api.links import poster_url
from server.api.responses import Title, TitleList, TitlePage
from server.api.routing import ApiRoutes, Query, limit_query
from server.http.authn import optional_user, require_admin
from server.http.conditional import if_none_match
from server.http.errors import ApiError
from server.http.validation import Body, SafeStr, parse_body, parse_limit
from transcoder.remove import remove_title

log = logging.getLogger("streamflix.catalog")

routes = ApiRoutes()
C = "catalog"
BINARY = {"type": "string", "format": "binary"}
# At most 200 characters *after* NFKC and dropping control characters: not a maxLength.
Q = Query("q", {"type": "string"})
CURSOR_KEY = web.AppKey("catalog_cursor_key", bytes)
POSTER_CACHE_CONTROL = "public, max-age=86400"


def cursor_key(app: web.Application) -> bytes:
    return app[CURSOR_KEY]


async def _is_admin(request: web.Request) -> bool:
    principal = await optional_user(request)
    return principal is not None and principal.is_admin


# ---- browse and title pages ---------------------------------------------------------------


@routes.get(
    "/api/v1/titles",
    summary="Browse titles",
    tag=C,
    response=TitlePage,
    errors=(400, 401),
    query=(
        Query("kind", {"type": "string"}),
        Query("genre", {"type": "string"}),
        Query("cursor", {"type": "string"}, "opaque; the `next` of the previous page"),
        limit_query(browse.MAX_LIMIT),
    ),
)
async def list_titles(request: web.Request) -> web.Response:
    admin = await _is_admin(request)
    if "status" in request.query and not admin:
        raise Forbidden("only admins can browse by status")
    limit = parse_limit(request.query.get("limit"), default=browse.DEFAULT_LIMIT, maximum=browse.MAX_LIMIT)
    query = browse.parse_browse(request.query, admin=admin, limit=limit)
    pg = request.app[keys.PG]
    key = cursor_key(request.app)

    async def compute() -> dict[str, Any]:
        async with pg.acquire() as conn:
            items, next_cursor = await browse.browse(conn, query, cursor_key=key)
        return {"items": [t.to_json(poster_url) for t in items], "next": next_cursor}

    if query.cursor is not None:
        # validate before a cache hit could answer for a forged cursor
        browse.check_cursor(query, key)
    name = cache.page_name("browse", query.scope, query.limit, query.cursor)
    return await cache.cached_json(request, name, compute, shared=not admin)


async def title_page(conn: Any, title_id: str, *, admin: bool) -> dict[str, Any]:
    title = await titles.get_title(conn, title_id)
    if not (title.visible or admin):
        raise TitleNotFound(f"no title {title_id}")
    out = title.to_json(poster_url)
    if title.kind == "series":
        episodes = await titles.list_episodes(conn, title.id, visible_only=not admin)
        out["seasons"] = titles.seasons_json(episodes, poster_url)
    elif title.kind == "episode" and title.series_id:
        series = await titles.get_title(conn, title.series_id)
        out["series_title"] = series.title
    return out


@routes.get(
    "/api/v1/titles/{title_id}",
    summary="One title (a series lists its seasons and episodes)",
    tag=C,
    response=Title,
    errors=(401, 404),
)
async def get_title(request: web.Request) -> web.Response:
    title_id = request.match_info["title_id"]
    titles.parse_id(title_id)  # 404 for a malformed id before touching the cache
    admin = await _is_admin(request)
    pg = request.app[keys.PG]

    async def compute() -> dict[str, Any]:
        async with pg.acquire() as conn:
            return await title_page(conn, title_id, admin=admin)

    return await cache.cached_json(request, f"title:{title_id.lower()}", compute, shared=not admin)


# ---- admin CRUD ---------------------------------------------------------------------------


class Credit(Body):
    name: Annotated[SafeStr, Field(min_length=1, max_length=200)]
    role: Annotated[SafeStr, Field(max_length=200)] | None = None
    character: Annotated[SafeStr, Field(max_length=200)] | None = None


Genre = Annotated[SafeStr, Field(min_length=1, max_length=100)]


class TitleCreate(Body):
    kind: Literal["movie", "series", "episode"]
    title: Annotated[SafeStr, Field(min_length=1, max_length=500)]
    year: Annotated[int, Field(ge=1870, le=2200)] | None = None
    genres: Annotated[list[Genre], Field(max_length=20)] = []
    description: Annotated[SafeStr, Field(max_length=10_000)] = ""
    credits: Annotated[list[Credit], Field(max_length=titles.MAX_CREDITS)] = []
    series_id: SafeStr | None = None
    season_number: Annotated[int, Field(ge=0, le=10_000)] | None = None
    episode_number: Annotated[int, Field(ge=0, le=100_000)] | None = None


class TitlePatch(Body):
    title: Annotated[SafeStr, Field(min_length=1, max_length=500)] = None  # type: ignore[assignment]  # absent = unchanged; the type refuses null
    year: Annotated[int, Field(ge=1870, le=2200)] | None = None
    genres: Annotated[list[Genre], Field(max_length=20)] = None  # type: ignore[assignment]  # absent = unchanged; the type refuses null
    description: Annotated[SafeStr, Field(max_length=10_000)] = None  # type: ignore[assignment]  # absent = unchanged; the type refuses null
    credits: Annotated[list[Credit], Field(max_length=titles.MAX_CREDITS)] = None  # type: ignore[assignment]  # absent = unchanged; the type refuses null
    season_number: Annotated[int, Field(ge=0, le=10_000)] | None = None
    episode_number: Annotated[int, Field(ge=0, le=100_000)] | None = None
    # Off: the playback answer has no download_url and the origin refuses the download (403).
    downloads_enabled: Annotated[bool, Field(strict=True)] = None  # type: ignore[assignment]  # absent = unchanged; the type refuses null


class Suggestions(BaseModel):
    suggestions: list[str]


async def _changed(request: web.Request) -> None:
    await request.app[cache.CACHE].bump()


@routes.post(
    "/api/v1/titles",
    summary="Create a title (admin)",
    tag=C,
    status=201,
    response=Title,
    auth="admin",
    body=TitleCreate,
    errors=(404, 409),
)
async def create_title(request: web.Request) -> web.Response:
    await require_admin(request)
    body = await parse_body(request, TitleCreate)
    async with request.app[keys.PG].acquire() as conn:
        title = await titles.create_title(
            conn,
            kind=body.kind,
            title=body.title,
            year=body.year,
            genres=body.genres,
            description=body.description,
            credits=[c.model_dump(exclude_none=True) for c in body.credits],
            series_id=body.series_id,
            season_number=body.season_number,
            episode_number=body.episode_number,
        )
    await _changed(request)
    return web.json_response(title.to_json(poster_url), status=201, headers={"Location": f"/api/v1/titles/{title.id}"})


@routes.patch(
    "/api/v1/titles/{title_id}",
    summary="Edit a title (admin)",
    tag=C,
    response=Title,
    auth="admin",
    body=TitlePatch,
    errors=(404, 409),
)
async def patch_title(request: web.Request) -> web.Response:
    await require_admin(request)
    body = await parse_body(request, TitlePatch)
    changes: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if value is None and name in ("title", "genres", "description", "credits", "downloads_enabled"):
            raise ApiError(400, "invalid_body", f"{name} cannot be null")
        if name == "credits":
            value = [c.model_dump(exclude_none=True) for c in value]
        changes[name] = value
    async with request.app[keys.PG].acquire() as conn:
        title = await titles.update_title(conn, request.match_info["title_id"], changes)
    await _changed(request)
    return web.json_response(title.to_json(poster_url))


@routes.delete(
    "/api/v1/titles/{title_id}", summary="Delete a title (admin)", tag=C, status=204, auth="admin", errors=(404, 409)
)
async def delete_title(request: web.Request) -> web.Response:
    """Cancels its jobs, deletes the rows (a series with its episodes), then the stored
    objects: versions and the source (the same path as `streamflix titles delete`)."""
    await require_admin(request)
    await remove_title(request.app[keys.PG], request.app[keys.STORAGE], request.match_info["title_id"])
    await _changed(request)
    return web.Response(status=204)


# ---- posters ------------------------------------------------------------------------------


async def _read_capped(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise PosterTooLarge(f"a poster is at most {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise PosterTooLarge(f"a poster is at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@routes.post(
    "/api/v1/titles/{title_id}/poster",
    summary="Upload a poster (admin): the body is the JPEG or PNG",
    tag=C,
    status=201,
    response=Title,
    auth="admin",
    errors=(400, 404, 413, 415),
)
async def upload_poster(request: web.Request) -> web.Response:
    await require_admin(request)
    title_id = request.match_info["title_id"]
    async with request.app[keys.PG].acquire() as conn:
        title = await titles.get_title(conn, title_id)
    declared = request.content_type
    if declared not in posters.SIGNATURES:
        raise ApiError(415, "unsupported_media_type", "a poster is image/jpeg or image/png")
    data = await _read_capped(request, posters.MAX_POSTER_BYTES)
    content_type = posters.check_poster(declared, data)
    info = await request.app[keys.STORAGE].put_bytes(
        media_keys.uploaded_poster_key(title.id), data, content_type=content_type
    )
    async with request.app[keys.PG].acquire() as conn:
        title = await titles.set_uploaded_poster(conn, title.id, etag=info.etag, content_type=content_type)
    await _changed(request)
    return web.json_response(title.to_json(poster_url), status=201)


async def _poster_source(conn: Any, title: titles.Title) -> tuple[str, str]:
    """(storage key, content type): the uploaded poster, else the current version's frame
    (a series without one: its first ready episode's)."""
    if title.poster_etag:
        return media_keys.uploaded_poster_key(title.id), title.poster_content_type or "image/jpeg"
    if title.current_version:
        return media_keys.poster_key(title.id, title.current_version), "image/jpeg"
    if title.kind == "series":
        episode = await titles.first_playable_episode(conn, title.id)
        if episode is not None and episode.current_version:
            if episode.poster_etag:
                return media_keys.uploaded_poster_key(episode.id), episode.poster_content_type or "image/jpeg"
            return media_keys.poster_key(episode.id, episode.current_version), "image/jpeg"
    raise PosterNotFound(f"title {title.id} has no poster yet")


@routes.get(
    "/api/v1/titles/{title_id}/poster",
    summary="The title's poster image",
    tag=C,
    errors=(401, 404),
    content={"image/jpeg": BINARY, "image/png": BINARY},
)
async def get_poster(request: web.Request) -> web.Response:
    admin = await _is_admin(request)
    async with request.app[keys.PG].acquire() as conn:
        title = await titles.get_title(conn, request.match_info["title_id"])
        if not (title.visible or admin):
            raise TitleNotFound(f"no title {title.id}")
        key, content_type = await _poster_source(conn, title)
    storage = request.app[keys.STORAGE]
    try:
        info = await storage.head(key)
    except ObjectNotFound:
        raise PosterNotFound(f"title {title.id} has no poster yet") from None
    etag = f'"{info.etag}"'
    headers = {"ETag": etag, "Cache-Control": POSTER_CACHE_CONTROL}
    if if_none_match(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    data = await storage.get_bytes(key)
    return web.Response(body=data, content_type=content_type, headers=headers)


# ---- search -------------------------------------------------------------------------------


@routes.get(
    "/api/v1/search",
    summary="Search titles",
    tag=C,
    response=TitleList,
    errors=(400, 401),
    query=(Q, limit_query(search.MAX_SEARCH_LIMIT)),
)
async def search_titles(request: web.Request) -> web.Response:
    query = search.normalize_query(request.query.get("q"))
    limit = parse_limit(
        request.query.get("limit"), default=search.DEFAULT_SEARCH_LIMIT, maximum=search.MAX_SEARCH_LIMIT
    )
    admin = await _is_admin(request)
    pg = request.app[keys.PG]
    redis_cache = request.app[cache.CACHE]
    prefix = request.app[keys.SETTINGS].redis_prefix

    async def compute() -> dict[str, Any]:
        if not query:
            return {"items": []}
        async with pg.acquire() as conn:
            return {"items": [f.to_json(poster_url) for f in await search.search(conn, query, limit=limit)]}

    async def observe(body: bytes) -> None:
        if query:
            hits = 0 if body.startswith(b'{"items":[]') else 1
            await redis_cache.call(lambda r: analytics.record(r, prefix, search.analytics_key(query), hits), None)

    name = cache.page_name("search", search.analytics_key(query), limit)
    return await cache.cached_json(request, name, compute, shared=not admin, observe=observe)


@routes.get(
    "/api/v1/search/suggest", summary="Search suggestions", tag=C, response=Suggestions, errors=(400, 401), query=(Q,)
)
async def suggest(request: web.Request) -> web.Response:
    query = search.normalize_query(request.query.get("q"))
    pg = request.app[keys.PG]

    async def compute() -> dict[str, Any]:
        if not query:
            return {"suggestions": []}
        async with pg.acquire() as conn:
            return {"suggestions": await search.suggest(conn, query)}

    # the same for everyone (visible titles only), so cached for admins too
    return await cache.cached_json(request, cache.page_name("suggest", query.casefold()), compute, shared=True)


def setup(app: web.Application) -> None:
    app[CURSOR_KEY] = derive_key(app[keys.SETTINGS].secret_key)
    cache.install(app)
    app.add_routes(routes)
