"""`/api/v1/admin/*` outside the catalog and jobs: users (listing, role changes) and search
analytics. Every route requires an admin (by token and by the database); users are managed
by a person only, never by an API key."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from auth import users
from auth.errors import UserNotFound
from catalog import analytics
from server import keys
from server.api import cache
from server.api.auth_models import RoleBody, UserPage
from server.api.responses import User
from server.api.routing import ApiRoutes, Query, limit_query
from server.http.authn import require_admin, require_person_admin
from server.http.errors import ApiError
from server.http.validation import parse_body, parse_limit, parse_uuid

routes = ApiRoutes()

USERS_PAGE_DEFAULT = 50
USERS_PAGE_MAX = 100
STATS_DEFAULT = 20
STATS_MAX = 100


class QueryCount(BaseModel):
    query: str
    count: int


class SearchStats(BaseModel):
    top: list[QueryCount]
    zero_results: list[QueryCount]


@routes.get(
    "/api/v1/admin/users",
    summary="Users, oldest first",
    tag="admin",
    response=UserPage,
    auth="admin",
    errors=(400,),
    query=(limit_query(USERS_PAGE_MAX), Query("cursor", {"type": "string"}, "opaque; the `next` of the previous page")),
)
async def list_users(request: web.Request) -> web.Response:
    await require_person_admin(request)
    limit = parse_limit(request.query.get("limit"), default=USERS_PAGE_DEFAULT, maximum=USERS_PAGE_MAX)
    cursor = request.query.get("cursor") or None
    async with request.app[keys.PG].acquire() as conn:
        items, nxt = await users.list_users(conn, limit=limit, cursor=cursor)
    return web.json_response({"items": [u.to_json() for u in items], "next": nxt})


@routes.patch(
    "/api/v1/admin/users/{user_id}",
    summary="Change a user's role",
    tag="admin",
    response=User,
    auth="admin",
    body=RoleBody,
    errors=(404, 409),
)
async def update_user(request: web.Request) -> web.Response:
    await require_person_admin(request)
    uid = parse_uuid(request.match_info["user_id"], UserNotFound("no such user"))
    body = await parse_body(request, RoleBody)
    async with request.app[keys.PG].acquire() as conn:
        user = await users.set_role(conn, uid, body.role)
    return web.json_response(user.to_json())


@routes.get(
    "/api/v1/admin/search-stats",
    summary="Search analytics",
    tag="admin",
    response=SearchStats,
    auth="admin",
    errors=(400,),
    query=(limit_query(STATS_MAX),),
)
async def search_stats(request: web.Request) -> web.Response:
    await require_admin(request)
    limit = parse_limit(request.query.get("limit"), default=STATS_DEFAULT, maximum=STATS_MAX)
    prefix = request.app[keys.SETTINGS].redis_prefix
    redis_cache = request.app[cache.CACHE]
    stats = await redis_cache.call(lambda r: analytics.stats(r, prefix, limit=limit), None)
    if stats is None:
        raise ApiError(
            503,
            "analytics_unavailable",
            "search analytics live in Redis, which is unavailable",
            headers={"Retry-After": "30"},
        )
    return cache.json_etag_response(request, stats)


def setup(app: web.Application) -> None:
    cache.install(app)
    app.add_routes(routes)
