"""A viewer's things under /api/v1/me: favorites, watch history, continue watching,
recommendations. Per-viewer answers: never in the shared cache, but with ETags (304)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, Field

from catalog import library, recommend
from catalog.errors import InvalidHistory
from server import keys
from server.api import cache
from server.api.links import poster_url
from server.api.responses import Title, TitleList
from server.api.routing import ApiRoutes, limit_query
from server.http.authn import require_user
from server.http.validation import Body, FiniteNumber, parse_body, parse_limit

routes = ApiRoutes()
C = "catalog"
LIST_MAX = 100
RECOMMEND_MAX = 50

# 2000-01-01 .. 2200-01-01 in epoch milliseconds: anything outside is a client bug.
MIN_CLIENT_TS_MS = 946_684_800_000
MAX_CLIENT_TS_MS = 7_258_118_400_000


class HistoryReport(Body):
    position_s: FiniteNumber
    duration_s: FiniteNumber | None = None
    # epoch milliseconds (JavaScript's Date.now()) or an ISO 8601 timestamp
    client_ts: int | Annotated[str, Field(max_length=64)] | None = None


class HistoryEntry(BaseModel):
    title: Title
    position_s: float
    finished: bool = False
    updated_at: datetime


class HistoryList(BaseModel):
    items: list[HistoryEntry]


CLIENT_TS_ERROR = "client_ts must be epoch milliseconds (Date.now()) or an ISO 8601 time"
# An ISO client_ts before this is a client bug (and year 1 at +14:00 cannot even be
# converted to UTC): a 400, not a 500. A later one is taken as "now" by record_progress.
MIN_CLIENT_TS = datetime(2000, 1, 1, tzinfo=UTC)


def parse_client_ts(value: int | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int):
        if not MIN_CLIENT_TS_MS <= value <= MAX_CLIENT_TS_MS:
            raise InvalidHistory(CLIENT_TS_ERROR)
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    try:
        ts = datetime.fromisoformat(value)
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        ts = ts.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidHistory(CLIENT_TS_ERROR) from None
    if ts < MIN_CLIENT_TS:
        raise InvalidHistory(CLIENT_TS_ERROR + " after 2000")
    return ts


@routes.put(
    "/api/v1/me/favorites/{title_id}", summary="Add a favorite", tag=C, status=204, auth="user", errors=(404, 409)
)
async def put_favorite(request: web.Request) -> web.Response:
    principal = await require_user(request)
    async with request.app[keys.PG].acquire() as conn:
        await library.add_favorite(conn, principal.user_id, request.match_info["title_id"])
    return web.Response(status=204)


@routes.delete(
    "/api/v1/me/favorites/{title_id}", summary="Remove a favorite", tag=C, status=204, auth="user", errors=(404,)
)
async def delete_favorite(request: web.Request) -> web.Response:
    principal = await require_user(request)
    async with request.app[keys.PG].acquire() as conn:
        await library.remove_favorite(conn, principal.user_id, request.match_info["title_id"])
    return web.Response(status=204)


def _limit(request: web.Request) -> int:
    return parse_limit(request.query.get("limit"), default=library.LIST_LIMIT, maximum=LIST_MAX)


@routes.get(
    "/api/v1/me/favorites",
    summary="Favorites",
    tag=C,
    response=TitleList,
    auth="user",
    errors=(400,),
    query=(limit_query(LIST_MAX),),
)
async def get_favorites(request: web.Request) -> web.Response:
    principal = await require_user(request)
    limit = _limit(request)
    async with request.app[keys.PG].acquire() as conn:
        items = await library.list_favorites(conn, principal.user_id, limit=limit)
    return cache.json_etag_response(request, {"items": [t.to_json(poster_url) for t in items]})


@routes.put(
    "/api/v1/me/history/{title_id}",
    summary="Report the playback position",
    tag=C,
    status=204,
    auth="user",
    body=HistoryReport,
    errors=(404, 409),
)
async def put_history(request: web.Request) -> web.Response:
    principal = await require_user(request)
    body = await parse_body(request, HistoryReport)
    async with request.app[keys.PG].acquire() as conn:
        await library.record_progress(
            conn,
            principal.user_id,
            request.match_info["title_id"],
            position_s=body.position_s,
            duration_s=body.duration_s,
            client_ts=parse_client_ts(body.client_ts),
        )
    # 204 also when the report was older than the stored one: the client did nothing wrong.
    return web.Response(status=204)


def _entries(entries: list[library.HistoryEntry]) -> dict[str, Any]:
    return {"items": [e.to_json(poster_url) for e in entries]}


@routes.get(
    "/api/v1/me/history",
    summary="Watch history",
    tag=C,
    response=HistoryList,
    auth="user",
    errors=(400,),
    query=(limit_query(LIST_MAX),),
)
async def get_history(request: web.Request) -> web.Response:
    principal = await require_user(request)
    limit = _limit(request)
    async with request.app[keys.PG].acquire() as conn:
        entries = await library.list_history(conn, principal.user_id, limit=limit)
    return cache.json_etag_response(request, _entries(entries))


@routes.get(
    "/api/v1/me/continue-watching",
    summary="Started, unfinished titles",
    tag=C,
    response=HistoryList,
    auth="user",
    errors=(400,),
)
async def get_continue_watching(request: web.Request) -> web.Response:
    principal = await require_user(request)
    async with request.app[keys.PG].acquire() as conn:
        entries = await library.continue_watching(conn, principal.user_id)
    return cache.json_etag_response(request, _entries(entries))


@routes.get(
    "/api/v1/me/recommendations",
    summary="Recommendations",
    tag=C,
    response=TitleList,
    auth="user",
    errors=(400,),
    query=(limit_query(RECOMMEND_MAX),),
)
async def get_recommendations(request: web.Request) -> web.Response:
    principal = await require_user(request)
    limit = parse_limit(request.query.get("limit"), default=recommend.DEFAULT_LIMIT, maximum=RECOMMEND_MAX)
    async with request.app[keys.PG].acquire() as conn:
        picks = await recommend.recommend(conn, principal.user_id, limit=limit)
    return cache.json_etag_response(request, {"items": [p.to_json(poster_url) for p in picks]})


def setup(app: web.Application) -> None:
    cache.install(app)
    app.add_routes(routes)
