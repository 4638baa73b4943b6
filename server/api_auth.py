"""`/api/v1/auth/*` and `/api/v1/me`."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from auth import sessions, users
from auth.errors import (
    AuthError,
    EmailTaken,
    Forbidden,
    InvalidCredentials,
    InvalidToken,
    UserNotFound,
    WeakPassword,
)
from auth.tokens import issue_access_token
from server import keys
from server.authn import access_keyring, require_user
from server.errors import STATUS_BY_ERROR, ApiError

STATUS_BY_ERROR.update(
    {
        AuthError: 400,
        InvalidCredentials: 401,
        InvalidToken: 401,
        EmailTaken: 409,
        WeakPassword: 400,
        Forbidden: 403,
        UserNotFound: 404,
    }
)

routes = web.RouteTableDef()


async def json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send a JSON body (Content-Type: application/json)")
    try:
        data = await request.json()
    except ValueError as exc:
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


def _str_field(data: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ApiError(400, "invalid_field", f"{name} is required and must be a string")
    return value


@routes.post("/api/v1/auth/register")
async def register(request: web.Request) -> web.Response:
    data = await json_body(request)
    email = _str_field(data, "email")
    if "@" not in email or len(email) > 254:
        raise ApiError(400, "invalid_field", "email is not a valid address")
    async with request.app[keys.PG].acquire() as conn:
        user = await users.create_user(
            conn,
            email=email,
            password=_str_field(data, "password"),
            display_name=_str_field(data, "display_name", required=False)[:100],
        )
    return web.json_response(user.to_json(), status=201)


@routes.post("/api/v1/auth/login")
async def login(request: web.Request) -> web.Response:
    data = await json_body(request)
    settings = request.app[keys.SETTINGS]
    async with request.app[keys.PG].acquire() as conn:
        user = await users.authenticate(conn, email=_str_field(data, "email"), password=_str_field(data, "password"))
        new = await sessions.create_session(
            conn,
            user_id=user.id,
            refresh_ttl_s=settings.refresh_token_ttl_s,
            user_agent=request.headers.get("User-Agent", ""),
            ip=request.remote or "",
        )
    token, _exp = issue_access_token(
        access_keyring(request.app),
        user_id=user.id,
        session_id=new.session_id,
        role=user.role,
        ttl_s=settings.access_token_ttl_s,
    )
    return web.json_response(
        {
            "access_token": token,
            "refresh_token": new.refresh_token,
            "token_type": "bearer",
            "expires_in": settings.access_token_ttl_s,
        }
    )


@routes.get("/api/v1/me")
async def me(request: web.Request) -> web.Response:
    principal = await require_user(request)
    async with request.app[keys.PG].acquire() as conn:
        user = await users.get_user(conn, principal.user_id)
    return web.json_response(user.to_json())


def setup(app: web.Application) -> None:
    app.add_routes(routes)
