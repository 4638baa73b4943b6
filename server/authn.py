"""Bearer authentication for API handlers: `principal = await require_user(request)`."""
from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from auth.errors import Forbidden, InvalidToken
from auth.keyring import KeyRing
from auth.tokens import AccessClaims, verify_access_token
from server import keys

ACCESS_KEYRING = web.AppKey("access_keyring", KeyRing)


@dataclass(frozen=True)
class Principal:
    user_id: str
    session_id: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def access_keyring(app: web.Application) -> KeyRing:
    ring = app.get(ACCESS_KEYRING)
    if ring is None:
        s = app[keys.SETTINGS]
        ring = KeyRing.from_secrets(s.secret_key, s.previous_secret_keys, purpose="access")
        app[ACCESS_KEYRING] = ring
    return ring


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def verify_claims(request: web.Request, claims: AccessClaims) -> None:
    """Hook for session checks (revocation); replaced as the accounts work lands."""
    checker = request.app.get(SESSION_CHECK)
    if checker is not None:
        await checker(request, claims)


SESSION_CHECK = web.AppKey("session_check", object)


async def require_user(request: web.Request) -> Principal:
    cached = request.get("principal")
    if cached is not None:
        return cached
    token = bearer_token(request)
    if token is None:
        raise InvalidToken("missing bearer token")
    claims = verify_access_token(access_keyring(request.app), token)
    await verify_claims(request, claims)
    principal = Principal(claims.user_id, claims.session_id, claims.role)
    request["principal"] = principal
    return principal


async def optional_user(request: web.Request) -> Principal | None:
    if bearer_token(request) is None:
        return None
    return await require_user(request)


async def require_admin(request: web.Request) -> Principal:
    principal = await require_user(request)
    if not principal.is_admin:
        raise Forbidden("admin role required")
    return principal
