"""`/api/v1/me` (profile, password, deletion) and `/api/v1/me/sessions` (signed-in devices)."""

from __future__ import annotations

from aiohttp import web

from auth import sessions, users
from auth.errors import SessionNotFound
from catalog import comments, library, notifications  # catalog's interface to a viewer's things, not its tables
from server import keys
from server.api.auth_models import DeleteAccountBody, ProfilePatch, SessionList
from server.api.responses import User
from server.api.routing import ApiRoutes
from server.http import ratelimit
from server.http.authn import REVOCATIONS, require_user, revoke_sessions
from server.http.validation import parse_body, parse_uuid

routes = ApiRoutes()
A = "accounts"


async def _confirm_password(request: web.Request, user_id: str, password: str) -> None:
    # Guessing the password through a stolen access token is limited like login.
    await ratelimit.hit(request, "login_account", "user:" + user_id)
    async with request.app[keys.PG].acquire() as conn:
        await users.check_password(conn, user_id, password, executor=request.app[keys.PASSWORD_EXECUTOR])


@routes.get("/api/v1/me", summary="The signed-in user", tag=A, response=User, auth="user", errors=(404,))
async def me(request: web.Request) -> web.Response:
    principal = await require_user(request)
    async with request.app[keys.PG].acquire() as conn:
        user = await users.get_user(conn, principal.user_id)
    return web.json_response(user.to_json())


@routes.patch(
    "/api/v1/me",
    summary="Change display name and/or password (with the current one; signs out other sessions)",
    tag=A,
    response=User,
    auth="user",
    body=ProfilePatch,
    errors=(403, 404),
)
async def update_me(request: web.Request) -> web.Response:
    """Display name and/or password. A new password signs out every other session."""
    principal = await require_user(request)
    body = await parse_body(request, ProfilePatch)
    revoked: list[str] = []
    if body.password is not None:
        await _confirm_password(request, principal.user_id, body.current_password or "")
    async with request.app[keys.PG].acquire() as conn, conn.transaction():
        if body.password is not None:
            await users.set_password(
                conn, principal.user_id, body.password, executor=request.app[keys.PASSWORD_EXECUTOR]
            )
            revoked = await sessions.revoke_all(conn, principal.user_id, except_session=principal.session_id)
        if body.display_name is not None:
            await users.update_profile(conn, principal.user_id, display_name=body.display_name)
        user = await users.get_user(conn, principal.user_id)
    await revoke_sessions(request.app, revoked)
    return web.json_response(user.to_json())


@routes.delete(
    "/api/v1/me",
    summary="Delete the account, its sessions, favorites and history (password required)",
    tag=A,
    status=204,
    auth="user",
    body=DeleteAccountBody,
    errors=(403, 404),
)
async def delete_me(request: web.Request) -> web.Response:
    """Delete the account, its sessions, and (through catalog's interface) its favorites and
    watch history, in one transaction; requires the password."""
    principal = await require_user(request)
    body = await parse_body(request, DeleteAccountBody)
    await _confirm_password(request, principal.user_id, body.password)
    async with request.app[keys.PG].acquire() as conn, conn.transaction():
        revoked = await sessions.revoke_all(conn, principal.user_id)
        await library.erase_viewer(conn, principal.user_id)
        await notifications.erase_user(conn, principal.user_id)
        await comments.erase_user(conn, principal.user_id)
        await users.delete_user(conn, principal.user_id, keep_sessions_s=request.app[REVOCATIONS].ttl_s)
    await revoke_sessions(request.app, revoked)
    return web.Response(status=204)


@routes.get("/api/v1/me/sessions", summary="Signed-in devices", tag=A, response=SessionList, auth="user")
async def my_sessions(request: web.Request) -> web.Response:
    principal = await require_user(request)
    settings = request.app[keys.SETTINGS]
    async with request.app[keys.PG].acquire() as conn:
        items = await sessions.list_active(conn, principal.user_id, refresh_ttl_s=settings.refresh_token_ttl_s)
    return web.json_response({"items": [s.to_json(current_session_id=principal.session_id) for s in items]})


@routes.delete(
    "/api/v1/me/sessions/{session_id}", summary="Sign a device out", tag=A, status=204, auth="user", errors=(404,)
)
async def sign_out_device(request: web.Request) -> web.Response:
    principal = await require_user(request)
    sid = parse_uuid(request.match_info["session_id"], SessionNotFound("no such session"))
    async with request.app[keys.PG].acquire() as conn:
        await sessions.revoke(conn, sid, user_id=principal.user_id)
    await revoke_sessions(request.app, [sid])
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app.add_routes(routes)
