"""Bearer authentication for API handlers: `principal = await require_user(request)`.

Two kinds of bearer: a person's access token (a JWT from /auth/login) and an API key
(`sfk_...`, auth/api_keys.py) for machines. A key acts within its scopes on the admin routes
(`require_admin`: `read` for GET and HEAD, `catalog:write` for the rest unless the route names
its scope, e.g. `upload`), is anonymous on public routes (`optional_user`), and is refused
where a viewer is meant (`require_user`: favorites, history, playback) and where a person
must act (`require_person_admin`: managing keys).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from auth import api_keys, users
from auth.errors import Forbidden, InvalidToken, SessionRevoked
from auth.keyring import KeyRing
from auth.revocation import RevocationList
from auth.tokens import AccessClaims, verify_access_token
from server import keys
from server.http import ratelimit

ACCESS_KEYRING = web.AppKey("access_keyring", KeyRing)
# Set up by server.api.auth (a cleanup context): revoked sessions, Redis with Postgres behind.
REVOCATIONS = web.AppKey("revocations", RevocationList)


API_KEY_ROLE = "api_key"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    user_id: str  # an API key's: the admin who created it ("" once that account is gone)
    session_id: str  # an API key's: "key:{id}"
    role: str
    scopes: tuple[str, ...] = ()  # an API key's scopes; a person's role decides instead

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_api_key(self) -> bool:
        return self.role == API_KEY_ROLE


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


async def _principal(request: web.Request) -> Principal:
    """Whoever the bearer is (cached on the request); InvalidToken without a valid one."""
    cached = request.get(PRINCIPAL)
    if cached is not None:
        return cached
    token = bearer_token(request)
    if token is None:
        raise InvalidToken("missing bearer token")
    if api_keys.looks_like_key(token):
        async with request.app[keys.PG].acquire() as conn:
            key = await api_keys.verify(conn, token)
        if ratelimit.RATE_LIMITER in request.app:
            # the API's limit per key too, beside the one per address: a key is one client
            # wherever it calls from
            await ratelimit.hit(request, "api", f"key:{key.id}")
        principal = Principal(key.created_by or "", f"key:{key.id}", API_KEY_ROLE, key.scopes)
    else:
        claims = verify_access_token(access_keyring(request.app), token)
        await verify_claims(request, claims)
        principal = Principal(claims.user_id, claims.session_id, claims.role)
    request[PRINCIPAL] = principal
    return principal


async def require_user(request: web.Request) -> Principal:
    """A signed-in person (viewer or admin). An API key is refused: it is no viewer."""
    principal = await _principal(request)
    if principal.is_api_key:
        raise Forbidden("API keys work on the admin and catalog routes, not on a viewer's")
    return principal


async def optional_user(request: web.Request) -> Principal | None:
    """The signed-in person, or None for an anonymous request. A valid API key is
    anonymous here (public routes); an invalid one is still refused."""
    if bearer_token(request) is None:
        return None
    principal = await _principal(request)
    return None if principal.is_api_key else principal


async def require_admin(request: web.Request, scope: str | None = None) -> Principal:
    """An admin by token *and* by the database: a demotion takes effect at once, not when
    the access token carrying the old role expires. Or an API key holding `scope` (default:
    `read` for GET and HEAD, `catalog:write` otherwise)."""
    principal = await _principal(request)
    if principal.is_api_key:
        needed = scope or ("read" if request.method in SAFE_METHODS else "catalog:write")
        if needed not in principal.scopes:
            raise Forbidden(f"this API key does not have the {needed!r} scope")
        return principal
    if not principal.is_admin:
        raise Forbidden("admin role required")
    async with request.app[keys.PG].acquire() as conn:
        role = await users.get_role(conn, principal.user_id)
    if role != "admin":
        raise Forbidden("admin role required")
    return principal


async def require_person_admin(request: web.Request) -> Principal:
    """An admin signed in as a person: what a key must never do (make or revoke keys)."""
    principal = await _principal(request)
    if principal.is_api_key:
        raise Forbidden("API keys cannot manage API keys: sign in as an admin")
    return await require_admin(request)
