"""`/api/v1/auth/*`: register, login, refresh, logout, email verification, password reset.

Also wires the accounts machinery into the app (`setup`): the revocation list, the mailer and
the per-IP API rate limit, which `server.api.account` and `server.api.admin` rely on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable

from aiohttp import web

from auth import email_tokens, mail, sessions, users
from auth.emails import email_key
from auth.errors import (
    InvalidEmailToken,
    InvalidToken,
    RefreshTokenReused,
    SessionNotFound,
)
from auth.mailer import Mailer, open_mailer
from auth.revocation import RevocationList
from auth.tokens import issue_access_token
from server import keys
from server.api.auth_models import (
    Accepted,
    EmailVerified,
    LoginBody,
    RefreshBody,
    RegisterBody,
    ResetBody,
    ResetRequestBody,
    TokenPair,
    VerifyEmailBody,
)
from server.api.responses import User
from server.api.routing import ApiRoutes
from server.http import ratelimit
from server.http.authn import REVOCATIONS, access_keyring, install_keyring, require_user, revoke_sessions
from server.http.dbhealth import describe
from server.http.errors import is_database_outage
from server.http.validation import parse_body

log = logging.getLogger("streamflix.accounts")

MAILER = web.AppKey("mailer", Mailer)
BACKGROUND = web.AppKey("accounts_background", set)
MAIL_DRAIN_S = 10.0
# RFC 6749 5.1: responses carrying tokens must not be stored by any cache.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

routes = ApiRoutes()
A = "accounts"


# ---- wiring -----------------------------------------------------------------------------


async def _accounts_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    revocations = RevocationList(
        app[keys.REDIS], app[keys.PG], prefix=settings.redis_prefix, access_ttl_s=settings.access_token_ttl_s
    )
    app[REVOCATIONS] = revocations
    install_keyring(app)
    ratelimit.install(app)
    app[MAILER] = open_mailer(settings.smtp_url)
    app[BACKGROUND] = set()
    if not settings.public_url:
        log.warning(
            "STREAMFLIX_PUBLIC_URL is not set: email links use the request's host when it is "
            "this server's own, else http://%s:%s",
            settings.host,
            settings.port,
        )
    yield
    pending = app[BACKGROUND]
    if pending:
        await asyncio.wait(pending, timeout=MAIL_DRAIN_S)
    await revocations.close()


def background(app: web.Application, coro: Awaitable[None]) -> None:
    """Run after the response (mail): tracked so shutdown lets it finish, errors logged."""

    async def run() -> None:
        try:
            await coro
        except Exception as exc:
            if is_database_outage(exc):
                # no traceback: the outage itself is logged once by DatabaseHealth; this line
                # says which mail was not sent
                log.warning("background accounts task not done, database unavailable: %s", describe(exc))
            else:
                log.exception("background accounts task failed")

    task = asyncio.get_running_loop().create_task(run())
    app[BACKGROUND].add(task)
    task.add_done_callback(app[BACKGROUND].discard)


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_accounts_ctx)
    app.middlewares.append(ratelimit.api_rate_limit)
    app.add_routes(routes)


# ---- helpers ----------------------------------------------------------------------------


def public_base(request: web.Request) -> str:
    """Base URL for links in mail. The Host header is the client's to choose, so it is used
    only when it names this server (else a forged Host would mail a victim a reset link to
    the attacker's site: "password reset poisoning")."""
    s = request.app[keys.SETTINGS]
    if s.public_url:
        return s.public_url.rstrip("/")
    if request.url.host in {s.host, "localhost", "127.0.0.1", "::1"}:
        return str(request.url.origin())
    return f"http://{s.host}:{s.port}"


def token_pair(request: web.Request, *, user_id: str, role: str, session_id: str, refresh_token: str) -> dict:
    settings = request.app[keys.SETTINGS]
    token, _exp = issue_access_token(
        access_keyring(request.app),
        user_id=user_id,
        session_id=session_id,
        role=role,
        ttl_s=settings.access_token_ttl_s,
    )
    return {
        "access_token": token,
        "refresh_token": refresh_token,
        "token_type": "bearer",
        "expires_in": settings.access_token_ttl_s,
    }


async def send_verification(app: web.Application, base_url: str, user: users.User) -> None:
    settings = app[keys.SETTINGS]
    async with app[keys.PG].acquire() as conn:
        token = await email_tokens.issue(conn, user_id=user.id, purpose=email_tokens.VERIFY_EMAIL, email=user.email)
    hours = email_tokens.TTL_S[email_tokens.VERIFY_EMAIL] // 3600
    await app[MAILER].send(
        mail.verification_mail(sender=settings.mail_from, to=user.email, base_url=base_url, token=token, hours=hours)
    )


async def send_reset(app: web.Application, base_url: str, typed_email: str) -> None:
    settings = app[keys.SETTINGS]
    async with app[keys.PG].acquire() as conn:
        user = await users.find_by_email(conn, typed_email)
        if user is None:
            return
        token = await email_tokens.issue(conn, user_id=user.id, purpose=email_tokens.PASSWORD_RESET, email=user.email)
    minutes = email_tokens.TTL_S[email_tokens.PASSWORD_RESET] // 60
    # To the stored address, never the typed one (see auth/emails.py).
    await app[MAILER].send(
        mail.reset_mail(sender=settings.mail_from, to=user.email, base_url=base_url, token=token, minutes=minutes)
    )


# ---- routes -----------------------------------------------------------------------------


@routes.post(
    "/api/v1/auth/register",
    summary="Create an account (a verification mail follows)",
    tag=A,
    status=201,
    response=User,
    body=RegisterBody,
    errors=(409,),
)
async def register(request: web.Request) -> web.Response:
    await ratelimit.hit(request, "register_ip", ratelimit.client_ip(request))
    body = await parse_body(request, RegisterBody)
    await ratelimit.hit(request, "register_account", ratelimit.account_ident(email_key(body.email)))
    async with request.app[keys.PG].acquire() as conn:
        user = await users.create_user(
            conn,
            email=body.email,
            password=body.password,
            display_name=body.display_name,
            executor=request.app[keys.PASSWORD_EXECUTOR],
        )
    background(request.app, send_verification(request.app, public_base(request), user))
    return web.json_response(user.to_json(), status=201)


@routes.post(
    "/api/v1/auth/login", summary="Sign in: a new session", tag=A, response=TokenPair, body=LoginBody, errors=(401,)
)
async def login(request: web.Request) -> web.Response:
    await ratelimit.hit(request, "login_ip", ratelimit.client_ip(request))
    body = await parse_body(request, LoginBody)
    # Counted before the password is checked: a guesser pays for every try, right or wrong.
    await ratelimit.hit(request, "login_account", ratelimit.account_ident(email_key(body.email)))
    settings = request.app[keys.SETTINGS]
    async with request.app[keys.PG].acquire() as conn:
        user = await users.authenticate(
            conn, email=body.email, password=body.password, executor=request.app[keys.PASSWORD_EXECUTOR]
        )
        new = await sessions.create_session(
            conn,
            user_id=user.id,
            refresh_ttl_s=settings.refresh_token_ttl_s,
            user_agent=request.headers.get("User-Agent", ""),
            ip=ratelimit.client_ip(request),
        )
    return web.json_response(
        token_pair(
            request, user_id=user.id, role=user.role, session_id=new.session_id, refresh_token=new.refresh_token
        ),
        headers=NO_STORE,
    )


@routes.post(
    "/api/v1/auth/refresh",
    summary="Rotate the refresh token; reusing an old one revokes the session",
    tag=A,
    response=TokenPair,
    body=RefreshBody,
    errors=(401,),
)
async def refresh(request: web.Request) -> web.Response:
    body = await parse_body(request, RefreshBody)
    settings = request.app[keys.SETTINGS]
    async with request.app[keys.PG].acquire() as conn:
        try:
            rotated = await sessions.rotate(conn, body.refresh_token, refresh_ttl_s=settings.refresh_token_ttl_s)
        except RefreshTokenReused as exc:
            log.warning("refresh token reuse on session %s: session revoked", exc.session_id)
            await revoke_sessions(request.app, [exc.session_id])
            raise
        role = await users.get_role(conn, rotated.user_id)
    if role is None:
        raise InvalidToken("the account no longer exists")
    # The role is read afresh: a role change reaches the access token at the next refresh.
    return web.json_response(
        token_pair(
            request,
            user_id=rotated.user_id,
            role=role,
            session_id=rotated.session_id,
            refresh_token=rotated.refresh_token,
        ),
        headers=NO_STORE,
    )


@routes.post("/api/v1/auth/logout", summary="Revoke this session", tag=A, status=204, auth="user")
async def logout(request: web.Request) -> web.Response:
    principal = await require_user(request)
    async with request.app[keys.PG].acquire() as conn:
        try:
            await sessions.revoke(conn, principal.session_id, user_id=principal.user_id)
        except SessionNotFound:
            pass  # revoked in a race with another request: the outcome is the same
    await revoke_sessions(request.app, [principal.session_id])
    return web.Response(status=204)


@routes.post(
    "/api/v1/auth/verify-email/request",
    summary="Send a new verification link",
    tag=A,
    status=202,
    response=Accepted,
    auth="user",
    errors=(404,),
)
async def verify_email_request(request: web.Request) -> web.Response:
    principal = await require_user(request)
    await ratelimit.hit(request, "verify_account", principal.user_id)
    async with request.app[keys.PG].acquire() as conn:
        user = await users.get_user(conn, principal.user_id)
    if not user.email_verified:
        background(request.app, send_verification(request.app, public_base(request), user))
    return web.json_response({"status": "accepted"}, status=202)


@routes.post(
    "/api/v1/auth/verify-email",
    summary="Confirm the address with a link's token",
    tag=A,
    response=EmailVerified,
    body=VerifyEmailBody,
)
async def verify_email(request: web.Request) -> web.Response:
    body = await parse_body(request, VerifyEmailBody)
    async with request.app[keys.PG].acquire() as conn:
        async with conn.transaction():
            used = await email_tokens.consume(conn, body.token, purpose=email_tokens.VERIFY_EMAIL)
            if not await users.mark_verified(conn, used.user_id, used.email):
                raise InvalidEmailToken("this link is for an address the account no longer has")
    return web.json_response({"email_verified": True})


@routes.post(
    "/api/v1/auth/password-reset/request",
    summary="Mail a reset link if the address has an account (always 202)",
    tag=A,
    status=202,
    response=Accepted,
    body=ResetRequestBody,
)
async def password_reset_request(request: web.Request) -> web.Response:
    """Always 202, whether the address has an account or not, and in the same time: the
    lookup and the mail happen after the response (no account enumeration)."""
    await ratelimit.hit(request, "reset_ip", ratelimit.client_ip(request))
    body = await parse_body(request, ResetRequestBody)
    # Keyed on the typed address whether or not it exists, so a 429 reveals nothing either.
    await ratelimit.hit(request, "reset_account", ratelimit.account_ident(email_key(body.email)))
    background(request.app, send_reset(request.app, public_base(request), body.email))
    return web.json_response({"status": "accepted"}, status=202)


@routes.post(
    "/api/v1/auth/password-reset",
    summary="Set a new password with a link's token; revokes every session",
    tag=A,
    status=204,
    body=ResetBody,
    errors=(404,),
)
async def password_reset(request: web.Request) -> web.Response:
    await ratelimit.hit(request, "reset_ip", ratelimit.client_ip(request))
    body = await parse_body(request, ResetBody)
    async with request.app[keys.PG].acquire() as conn:
        async with conn.transaction():
            used = await email_tokens.consume(conn, body.token, purpose=email_tokens.PASSWORD_RESET)
            await users.set_password(conn, used.user_id, body.password, executor=request.app[keys.PASSWORD_EXECUTOR])
            # The link proved control of the mailbox.
            await users.mark_verified(conn, used.user_id, used.email)
            revoked = await sessions.revoke_all(conn, used.user_id)
    await revoke_sessions(request.app, revoked)
    return web.Response(status=204)
