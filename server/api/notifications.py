"""A person's notifications under /api/v1/me (catalog/notifications.py): the list, newest
first with the unread count, and marking them read. Live delivery is the socket's
(server/realtime/); this is the record."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, Field, model_validator

from catalog import notifications
from server import keys
from server.api.routing import ApiRoutes, Query, limit_query
from server.http.authn import require_user
from server.http.errors import ApiError
from server.http.validation import Body, parse_body, parse_limit
from server.realtime.hub import HUB

routes = ApiRoutes()
T = "notifications"
LIST_MAX = 100


class NotificationData(BaseModel):
    title: str | None = None
    title_kind: str | None = None
    version: str | None = None
    series_id: str | None = None
    series_title: str | None = None
    failure_reason: str | None = None


class Notification(BaseModel):
    id: int
    kind: str = Field(description=", ".join(notifications.KINDS))
    title_id: str | None
    text: str
    data: NotificationData
    created_at: str
    read: bool


class NotificationList(BaseModel):
    items: list[Notification]
    unread: int
    next_before: int | None = Field(description="pass as ?before= for the next, older page; null on the last")


class MarkRead(Body):
    ids: Annotated[list[Annotated[int, Field(ge=1)]], Field(max_length=notifications.MARK_MAX)] | None = None
    all: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> MarkRead:
        if (self.ids is None) == (not self.all):
            raise ValueError("give either ids or all: true")
        return self


class Unread(BaseModel):
    unread: int


def _before(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise ApiError(400, "invalid_cursor", "before must be a notification id (a positive whole number)")
    return int(raw)


@routes.get(
    "/api/v1/me/notifications",
    summary="My notifications, newest first, with the unread count",
    tag=T,
    response=NotificationList,
    auth="user",
    errors=(400,),
    query=(limit_query(LIST_MAX), Query("before", {"type": "integer", "minimum": 1}, "a page's next_before")),
)
async def list_notifications(request: web.Request) -> web.Response:
    principal = await require_user(request)
    limit = parse_limit(request.query.get("limit"), default=notifications.LIST_LIMIT, maximum=LIST_MAX)
    before = _before(request.query.get("before"))
    async with request.app[keys.PG].acquire() as conn:
        page = await notifications.list_notifications(conn, principal.user_id, limit=limit, before=before)
    body: dict[str, Any] = {
        "items": [n.to_json() for n in page.items],
        "unread": page.unread,
        "next_before": page.next_before,
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


@routes.post(
    "/api/v1/me/notifications/read",
    summary="Mark notifications read (some ids, or all)",
    tag=T,
    response=Unread,
    body=MarkRead,
    auth="user",
    errors=(400,),
)
async def mark_read(request: web.Request) -> web.Response:
    principal = await require_user(request)
    body = await parse_body(request, MarkRead)
    async with request.app[keys.PG].acquire() as conn:
        unread = await notifications.mark_read(conn, principal.user_id, None if body.all else body.ids)
    # The person's other tabs and devices update their badge.
    hub = request.app.get(HUB)
    if hub is not None:
        await hub.publish(principal.user_id, {"type": "unread", "count": unread})
    return web.json_response({"unread": unread})


def setup(app: web.Application) -> None:
    app.add_routes(routes)
