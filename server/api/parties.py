"""Watch parties: made and read here, joined and driven over the socket (server/realtime/
parties.py, docs/realtime.md)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from catalog import titles
from catalog.errors import TitleNotFound, TitleNotReady
from server import keys
from server.api.routing import ApiRoutes
from server.http.authn import Principal, require_user
from server.http.errors import ApiError
from server.http.validation import Body, parse_body
from server.realtime import parties
from server.realtime.parties import PARTIES, Party

routes = ApiRoutes()
T = "parties"


class NewParty(Body):
    title_id: str = Field(min_length=1, max_length=64)
    control: Literal["host", "all"] = "host"
    wait_for_stalled: bool = False


class PartyState(BaseModel):
    type: str
    party: str
    at: int = Field(description="server time (ms since the epoch) the position was stamped at")
    position: float
    rate: float
    playing: bool
    seq: int


class PartyOut(BaseModel):
    id: str
    title_id: str
    host: str
    control: str
    wait_for_stalled: bool
    join_url: str
    members: list[str]
    state: PartyState


async def _check_playable(request: web.Request, principal: Principal, title_id: str) -> None:
    async with request.app[keys.PG].acquire() as conn:
        title = await titles.get_title(conn, title_id)  # 404, malformed id too
    if not (title.visible or principal.is_admin):
        raise TitleNotFound(f"no title {title_id}")
    if not title.playable or title.current_version is None:
        raise TitleNotReady(f"title {title.id} is {title.status}, not ready to play yet")


def unavailable() -> ApiError:
    return ApiError(
        503, "parties_unavailable", "watch parties are unavailable; try again", headers={"Retry-After": "5"}
    )


async def find_party(request: web.Request, party_id: str) -> tuple[Party, list[str]]:
    """The party and its members, as an API error when there is none or Redis is away."""
    try:
        return await request.app[PARTIES].get(party_id)
    except parties.PartyError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    except (RedisError, OSError):
        raise unavailable() from None


def _json(request: web.Request, party: Party, members: list[str], status: int = 200) -> web.Response:
    body = party.to_json(members, request.app[keys.SETTINGS].public_url)
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


@routes.post(
    "/api/v1/parties",
    summary="Start a watch party for a title the viewer may play",
    tag=T,
    response=PartyOut,
    body=NewParty,
    auth="user",
    status=201,
    errors=(400, 404, 409, 503),
)
async def create_party(request: web.Request) -> web.Response:
    principal = await require_user(request)
    body = await parse_body(request, NewParty)
    await _check_playable(request, principal, body.title_id)
    try:
        party = await request.app[PARTIES].create(body.title_id, principal.user_id, body.control, body.wait_for_stalled)
    except (RedisError, OSError):
        raise unavailable() from None
    return _json(request, party, [principal.user_id], status=201)


@routes.get(
    "/api/v1/parties/{party_id}",
    summary="A watch party: its title, host, members and current state (members only)",
    tag=T,
    response=PartyOut,
    auth="user",
    errors=(403, 404, 503),
)
async def get_party(request: web.Request) -> web.Response:
    principal = await require_user(request)
    party, members = await find_party(request, request.match_info["party_id"])
    if principal.user_id not in members and not principal.is_admin:
        raise ApiError(403, "not_a_party_member", "join the party (over the socket) to see it")
    return _json(request, party, members)


def setup(app: web.Application) -> None:
    app.add_routes(routes)
