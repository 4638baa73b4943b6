"""`/api/v1/admin/api-keys`: credentials for machines. Made and revoked by an admin signed in
as a person (never by a key); the key itself is in the creation answer only."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, Field

from auth import api_keys
from server import keys
from server.api.routing import ApiRoutes
from server.http.authn import require_person_admin
from server.http.errors import ApiError
from server.http.validation import Body, SafeStr, parse_body

routes = ApiRoutes()
TAG = "admin"


class NewApiKey(Body):
    name: SafeStr = Field(min_length=1, max_length=api_keys.NAME_MAX)
    scopes: list[str] = Field(min_length=1, max_length=len(api_keys.SCOPES), description=", ".join(api_keys.SCOPES))


class ApiKeyInfo(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created_by: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class CreatedApiKey(ApiKeyInfo):
    key: str = Field(description="the key: shown this once, stored only as a hash")


class ApiKeyList(BaseModel):
    items: list[ApiKeyInfo]


@routes.post(
    "/api/v1/admin/api-keys",
    summary="Create an API key (shown once)",
    tag=TAG,
    status=201,
    response=CreatedApiKey,
    body=NewApiKey,
    auth="admin",
    errors=(400, 403),
)
async def create_key(request: web.Request) -> web.Response:
    principal = await require_person_admin(request)
    body = await parse_body(request, NewApiKey)
    async with request.app[keys.PG].acquire() as conn:
        key, secret = await api_keys.create(conn, body.name, body.scopes, principal.user_id)
    return web.json_response({**key.to_json(), "key": secret}, status=201, headers={"Cache-Control": "no-store"})


@routes.get(
    "/api/v1/admin/api-keys",
    summary="API keys, newest first, with their last use",
    tag=TAG,
    response=ApiKeyList,
    auth="admin",
    errors=(403,),
)
async def list_keys(request: web.Request) -> web.Response:
    await require_person_admin(request)
    async with request.app[keys.PG].acquire() as conn:
        items = await api_keys.list_keys(conn)
    return web.json_response({"items": [k.to_json() for k in items]})


@routes.delete(
    "/api/v1/admin/api-keys/{key_id}",
    summary="Revoke an API key (at once)",
    tag=TAG,
    status=204,
    auth="admin",
    errors=(403, 404),
)
async def revoke_key(request: web.Request) -> web.Response:
    await require_person_admin(request)
    async with request.app[keys.PG].acquire() as conn:
        revoked = await api_keys.revoke(conn, request.match_info["key_id"])
    if revoked is None:
        raise ApiError(404, "api_key_not_found", "no such API key")
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app.add_routes(routes)
