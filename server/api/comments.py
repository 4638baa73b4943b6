"""Timed comments on a title (catalog/comments.py): listed by playback time, posted at a
position (rate-limited per person), deleted by their author, the host of the party they were
made in, or an admin, and reported. A comment made in a watch party is also delivered live to
its members over the socket as `party.comment` (docs/realtime.md)."""

from __future__ import annotations

import math
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, Field, field_validator
from redis.exceptions import RedisError

from catalog import comments, titles
from catalog.errors import CommentNotFound, TitleNotFound, TitleNotReady
from server import keys
from server.api.parties import find_party
from server.api.routing import ApiRoutes, Query, limit_query
from server.http import ratelimit
from server.http.authn import Principal, require_user
from server.http.errors import ApiError
from server.http.validation import Body, FiniteNumber, SafeStr, parse_body, parse_limit
from server.realtime import parties
from server.realtime.hub import HUB
from server.realtime.parties import PARTIES

routes = ApiRoutes()
T = "comments"
MAX_POSITION_S = 7 * 24 * 3600.0


class NewComment(Body):
    body: Annotated[SafeStr, Field(min_length=1, max_length=comments.MAX_CHARS)]
    position: Annotated[FiniteNumber, Field(ge=0, le=MAX_POSITION_S)]
    party: Annotated[str, Field(min_length=1, max_length=64)] | None = None

    @field_validator("body")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class Report(Body):
    reason: Annotated[SafeStr, Field(max_length=500)] = ""


class CommentOut(BaseModel):
    id: int
    title_id: str
    user_id: str
    party_id: str | None
    position: float = Field(description="seconds of playback the comment was made at")
    body: str = Field(description="plain text: show it as text")
    created_at: str


class CommentList(BaseModel):
    items: list[CommentOut]


class Reported(BaseModel):
    reports: int


async def _title(request: web.Request, principal: Principal, *, playable: bool = False) -> str:
    title_id = request.match_info["title_id"]
    async with request.app[keys.PG].acquire() as conn:
        title = await titles.get_title(conn, title_id)  # 404, malformed id too
    if not (title.visible or principal.is_admin):
        raise TitleNotFound(f"no title {title_id}")
    if playable and (not title.playable or title.current_version is None):
        raise TitleNotReady(f"title {title.id} cannot be played, so not commented on")
    return title.id


def _seconds(name: str, raw: str | None) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= MAX_POSITION_S):
        raise ApiError(400, "invalid_query", f"{name} must be a number of seconds of playback, 0 or more")
    return value


def _comment_id(request: web.Request) -> int:
    raw = request.match_info["comment_id"]
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise CommentNotFound(f"no comment {raw}")
    return int(raw)


async def _tell_party(request: web.Request, party_id: str | None, msg: dict[str, Any]) -> None:
    hub = request.app.get(HUB)
    if party_id is not None and hub is not None:
        await hub.publish_party(party_id, {**msg, "party": party_id})


@routes.get(
    "/api/v1/titles/{title_id}/comments",
    summary="A title's timed comments, by playback time",
    tag=T,
    response=CommentList,
    auth="user",
    errors=(400, 404),
    query=(
        Query("from", {"type": "number", "minimum": 0}, "from this many seconds of playback (default 0)"),
        Query("to", {"type": "number", "minimum": 0}, "up to this many seconds (default: the end)"),
        limit_query(comments.LIST_MAX),
    ),
)
async def list_comments(request: web.Request) -> web.Response:
    principal = await require_user(request)
    start = _seconds("from", request.query.get("from")) or 0.0
    end = _seconds("to", request.query.get("to"))
    if end is not None and end < start:
        raise ApiError(400, "invalid_query", "to must not be before from")
    limit = parse_limit(request.query.get("limit"), default=comments.LIST_LIMIT, maximum=comments.LIST_MAX)
    title_id = await _title(request, principal)
    async with request.app[keys.PG].acquire() as conn:
        items = await comments.list_by_position(conn, title_id, start, end, limit)
    return web.json_response({"items": [c.to_json() for c in items]}, headers={"Cache-Control": "no-store"})


@routes.post(
    "/api/v1/titles/{title_id}/comments",
    summary="Comment at a playback position (in a party: also delivered live to its members)",
    tag=T,
    response=CommentOut,
    body=NewComment,
    auth="user",
    status=201,
    errors=(400, 403, 404, 409, 429, 503),
)
async def post_comment(request: web.Request) -> web.Response:
    principal = await require_user(request)
    body = await parse_body(request, NewComment)
    title_id = await _title(request, principal, playable=True)
    if body.party is not None:
        party, members = await find_party(request, body.party)
        if principal.user_id not in members:
            raise ApiError(403, "not_a_party_member", "join the party to comment in it")
        if party.title_id != title_id:
            raise ApiError(400, "wrong_title", "that party is watching another title")
    await ratelimit.hit(request, "comment_user", principal.user_id)
    async with request.app[keys.PG].acquire() as conn:
        comment = await comments.add(conn, title_id, principal.user_id, float(body.position), body.body, body.party)
    out = comment.to_json()
    await _tell_party(request, body.party, {"type": "party.comment", "comment": out})
    return web.json_response(out, status=201)


@routes.delete(
    "/api/v1/titles/{title_id}/comments/{comment_id}",
    summary="Delete a comment (its author, the host of its party, or an admin)",
    tag=T,
    auth="user",
    status=204,
    errors=(403, 404),
)
async def delete_comment(request: web.Request) -> web.Response:
    principal = await require_user(request)
    title_id = await _title(request, principal)
    comment_id = _comment_id(request)
    async with request.app[keys.PG].acquire() as conn:
        comment = await comments.get(conn, title_id, comment_id)
        allowed = principal.is_admin or comment.user_id == principal.user_id
        if not allowed and comment.party_id is not None:
            try:
                party, _ = await request.app[PARTIES].get(comment.party_id)
                allowed = party.host == principal.user_id
            except (parties.PartyError, RedisError, OSError):
                allowed = False  # the party is over (or cannot be asked): no host to ask
        if not allowed:
            raise ApiError(403, "not_allowed", "only the author, the party's host or an admin may delete it")
        await comments.delete(conn, comment_id)
    await _tell_party(request, comment.party_id, {"type": "party.comment_deleted", "id": comment_id})
    return web.Response(status=204)


@routes.post(
    "/api/v1/titles/{title_id}/comments/{comment_id}/report",
    summary="Report a comment to the admins (once per person)",
    tag=T,
    response=Reported,
    body=Report,
    auth="user",
    errors=(400, 404),
)
async def report_comment(request: web.Request) -> web.Response:
    principal = await require_user(request)
    body = await parse_body(request, Report)
    title_id = await _title(request, principal)
    comment_id = _comment_id(request)
    async with request.app[keys.PG].acquire() as conn:
        await comments.get(conn, title_id, comment_id)
        count = await comments.report(conn, comment_id, principal.user_id, body.reason)
    return web.json_response({"reports": count})


def setup(app: web.Application) -> None:
    app.add_routes(routes)
