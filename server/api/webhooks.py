"""`/api/v1/admin/webhooks`: endpoints told about titles and uploads (catalog/webhooks.py),
their delivery log and "resend". The signing secret is in the creation answer only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from catalog import webhooks
from catalog.errors import DeliveryNotFound
from media.outbound import check_target
from server import keys
from server.api.routing import ApiRoutes, limit_query
from server.http.authn import require_person_admin
from server.http.validation import Body, SafeStr, parse_body, parse_limit
from server.outbound.webhooks import SENDER

routes = ApiRoutes()
TAG = "admin"
LOG_DEFAULT = 50
LOG_MAX = 200


class NewWebhook(Body):
    url: SafeStr = Field(min_length=1, max_length=2000)
    events: list[str] = Field(min_length=1, max_length=len(webhooks.EVENTS), description=", ".join(webhooks.EVENTS))


class WebhookInfo(BaseModel):
    id: str
    url: str
    events: list[str]
    created_at: datetime


class CreatedWebhook(WebhookInfo):
    secret: str = Field(description="the signing secret: shown this once")


class WebhookList(BaseModel):
    items: list[WebhookInfo]


class DeliveryInfo(BaseModel):
    id: int
    event_id: str = Field(description="the idempotency id, the same on every attempt and resend")
    event: str
    status: str = Field(description="pending, delivered or failed")
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    payload: dict[str, Any]


class DeliveryList(BaseModel):
    items: list[DeliveryInfo]


@routes.post(
    "/api/v1/admin/webhooks",
    summary="Register a webhook endpoint (its secret shown once)",
    tag=TAG,
    status=201,
    response=CreatedWebhook,
    body=NewWebhook,
    auth="admin",
    errors=(400, 403),
)
async def create_webhook(request: web.Request) -> web.Response:
    await require_person_admin(request)
    body = await parse_body(request, NewWebhook)
    webhooks.check_events(body.events)
    await check_target(body.url, allow_private=request.app[keys.SETTINGS].outbound_allow_private)
    async with request.app[keys.PG].acquire() as conn:
        hook, secret = await webhooks.create_webhook(conn, body.url, body.events)
    return web.json_response({**hook.to_json(), "secret": secret}, status=201, headers={"Cache-Control": "no-store"})


@routes.get(
    "/api/v1/admin/webhooks", summary="Webhook endpoints", tag=TAG, response=WebhookList, auth="admin", errors=(403,)
)
async def list_webhooks(request: web.Request) -> web.Response:
    await require_person_admin(request)
    async with request.app[keys.PG].acquire() as conn:
        items = await webhooks.list_webhooks(conn)
    return web.json_response({"items": [w.to_json() for w in items]})


@routes.delete(
    "/api/v1/admin/webhooks/{webhook_id}",
    summary="Remove a webhook endpoint (its pending deliveries end)",
    tag=TAG,
    status=204,
    auth="admin",
    errors=(403, 404),
)
async def delete_webhook(request: web.Request) -> web.Response:
    await require_person_admin(request)
    async with request.app[keys.PG].acquire() as conn:
        await webhooks.delete_webhook(conn, request.match_info["webhook_id"])
    return web.Response(status=204)


@routes.get(
    "/api/v1/admin/webhooks/{webhook_id}/deliveries",
    summary="A webhook's delivery log, newest first",
    tag=TAG,
    response=DeliveryList,
    auth="admin",
    errors=(400, 403, 404),
    query=(limit_query(LOG_MAX),),
)
async def list_deliveries(request: web.Request) -> web.Response:
    await require_person_admin(request)
    limit = parse_limit(request.query.get("limit"), default=LOG_DEFAULT, maximum=LOG_MAX)
    async with request.app[keys.PG].acquire() as conn:
        items = await webhooks.deliveries(conn, request.match_info["webhook_id"], limit=limit)
    return web.json_response({"items": [d.to_json() for d in items]})


@routes.post(
    "/api/v1/admin/webhooks/{webhook_id}/deliveries/{delivery_id}/resend",
    summary="Send a delivery again now (same event id)",
    tag=TAG,
    status=202,
    response=DeliveryInfo,
    auth="admin",
    errors=(403, 404),
)
async def resend(request: web.Request) -> web.Response:
    await require_person_admin(request)
    raw = request.match_info["delivery_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise DeliveryNotFound("no such delivery for this webhook")
    async with request.app[keys.PG].acquire() as conn:
        delivery = await webhooks.resend(conn, request.match_info["webhook_id"], int(raw))
    sender = request.app.get(SENDER)
    if sender is not None:
        sender.wake.set()
    return web.json_response(delivery.to_json(), status=202)


def setup(app: web.Application) -> None:
    app.add_routes(routes)
