"""Bearer authentication for API handlers: `principal = await require_user(request)`."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from auth import users
from auth.errors import Forbidden, InvalidToken, SessionRevoked
from auth.keyring import KeyRing
from auth.revocation import RevocationList
from auth.tokens import AccessClaims, verify_access_token
from server import keys

ACCESS_KEYRING = web.AppKey("access_keyring", KeyRing)
# Set up by server.api.auth (a cleanup context): revoked sessions, Redis with Postgres behind.
REVOCATIONS = web.AppKey("revocations", RevocationList)


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
    if ring is None:  # an app without server.api.auth's setup (a unit test's bare app)
        s = app[keys.SETTINGS]
        ring = KeyRing.from_secrets(s.secret_key, s.previous_secret_keys, purpose="access")
    return ring


def install_keyring(app: web.Application) -> None:
    s = app[keys.SETTINGS]
    app[ACCESS_KEYRING] = KeyRing.from_secrets(s.secret_key, s.previous_secret_keys, purpose="access")


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def verify_claims(request: web.Request, claims: AccessClaims) -> None:
    """A valid signature is not enough: the session must not have been signed out
    (logout, password change or reset, account deletion, sign-out-device, refresh reuse)."""
    revocations = request.app.get(REVOCATIONS)
    if revocations is not None and await revocations.is_revoked(claims.session_id):
        raise SessionRevoked("this session has been signed out")


async def revoke_sessions(app: web.Application, session_ids: list[str]) -> None:
    """After Postgres has the revocation: make access tokens of these sessions stop now."""
    await app[REVOCATIONS].mark(session_ids)


PRINCIPAL = web.RequestKey("principal", Principal)


async def require_user(request: web.Request) -> Principal:
    cached = request.get(PRINCIPAL)
    if cached is not None:
        return cached
    token = bearer_token(request)
    if token is None:
        raise InvalidToken("missing bearer token")
    claims = verify_access_token(access_keyring(request.app), token)
    await verify_claims(request, claims)
    principal = Principal(claims.user_id, claims.session_id, claims.role)
    request[PRINCIPAL] = principal
    return principal


async def optional_user(request: web.Request) -> Principal | None:
    if bearer_token(request) is None:
        return None
    return await require_user(request)


async def require_admin(request: web.Request) -> Principal:
    """An admin by token *and* by the database: a demotion takes effect at once, not when
    the access token carrying the old role expires."""
    principal = await require_user(request)
    if not principal.is_admin:
        raise Forbidden("admin role required")
    async with request.app[keys.PG].acquire() as conn:
        role = await users.get_role(conn, principal.user_id)
    if role != "admin":
        raise Forbidden("admin role required")
    return principal
