"""Webhooks: endpoints and their outbox of deliveries (`catalog.webhooks`,
`catalog.webhook_deliveries`, migration 0007). Pure SQL, no HTTP: the server's sender
(server/outbound/webhooks.py) claims due deliveries, posts them and records the outcome.

Deliveries are written by a trigger in the same transaction as the change they report (see
the migration for the events), one per endpoint subscribed to the event. Each is retried with
backoff until it is answered 2xx or a day has passed, at least once: a receiver dedupes on the
delivery's `event_id`, sent with every attempt and every resend.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from catalog.errors import CatalogError, DeliveryNotFound, InvalidWebhook, WebhookNotFound

EVENTS = ("title.created", "title.playable", "title.ready", "title.failed", "title.deleted", "upload.completed")
WAKE_CHANNEL = "streamflix_webhooks"
SECRET_PREFIX = "whsec_"
ERROR_MAX_CHARS = 500
RETRY_BASE_S = 30.0
RETRY_CAP_S = 3600.0


@dataclass(frozen=True)
class Webhook:
    id: str
    url: str
    events: tuple[str, ...]
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "events": list(self.events), "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class Delivery:
    id: int
    webhook_id: str
    event_id: str
    event: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    give_up_at: datetime
    last_status: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime

    def body(self) -> bytes:
        """What is posted: the event with its idempotency id, the same bytes on every try."""
        return json.dumps({"id": self.event_id, **self.payload}, separators=(",", ":"), sort_keys=True).encode()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_id": self.event_id,
            "event": self.event,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.status == "pending" else None,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "last_attempt_at": self.last_attempt_at.isoformat() if self.last_attempt_at else None,
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
            "created_at": self.created_at.isoformat(),
            "payload": {"id": self.event_id, **self.payload},
        }


@dataclass(frozen=True)
class Due:
    """A claimed delivery and where it goes."""

    delivery: Delivery
    url: str
    secret: str


_W = "id, url, events, created_at"
_D = (
    "id, webhook_id, event_id, event, payload, status, attempts, next_attempt_at, give_up_at, last_status,"
    " last_error, last_attempt_at, delivered_at, created_at"
)


def _webhook(row: asyncpg.Record) -> Webhook:
    return Webhook(str(row["id"]), row["url"], tuple(row["events"]), row["created_at"])


def _delivery(row: asyncpg.Record) -> Delivery:
    data = {k: row[k] for k in _D.replace(" ", "").split(",")}
    data["webhook_id"] = str(data["webhook_id"])
    data["event_id"] = str(data["event_id"])
    payload = data["payload"]
    data["payload"] = json.loads(payload) if isinstance(payload, str) else payload
    return Delivery(**data)


def check_events(events: Iterable[str]) -> tuple[str, ...]:
    given = set(events)
    unknown = sorted(given - set(EVENTS))
    if unknown:
        raise InvalidWebhook(f"unknown event {unknown[0]!r}: one of {', '.join(EVENTS)}")
    if not given:
        raise InvalidWebhook("subscribe to at least one event")
    return tuple(e for e in EVENTS if e in given)


def _parse_id(value: str, error: CatalogError) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise error from None


async def create_webhook(conn: asyncpg.Connection, url: str, events: Iterable[str]) -> tuple[Webhook, str]:
    """A new endpoint: (it, its signing secret). The URL must have been checked by the caller
    (media.outbound), which knows whether private addresses are allowed."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        f"INSERT INTO catalog.webhooks (url, events, secret) VALUES ($1, $2, $3) RETURNING {_W}",
        url,
        list(check_events(events)),
        secret,
    )
    return _webhook(row), secret


async def list_webhooks(conn: asyncpg.Connection) -> list[Webhook]:
    rows = await conn.fetch(f"SELECT {_W} FROM catalog.webhooks WHERE deleted_at IS NULL ORDER BY created_at, id")
    return [_webhook(r) for r in rows]


async def delete_webhook(conn: asyncpg.Connection, webhook_id: str) -> None:
    """Stop an endpoint: no new deliveries; pending ones end as failed. Its log stays."""
    wid = _parse_id(webhook_id, WebhookNotFound("no such webhook"))
    async with conn.transaction():
        found = await conn.fetchval(
            "UPDATE catalog.webhooks SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING id", wid
        )
        if found is None:
            raise WebhookNotFound("no such webhook")
        await conn.execute(
            """UPDATE catalog.webhook_deliveries SET status = 'failed', last_error = 'the webhook was deleted'
                WHERE webhook_id = $1 AND status = 'pending'""",
            wid,
        )


async def emit(conn: asyncpg.Connection, event: str, data: dict[str, Any]) -> None:
    """Record `event` for its subscribers, in the caller's transaction (for events that are
    not a title's row changing: the trigger covers those)."""
    check_events([event])
    await conn.execute("SELECT catalog.webhook_emit($1, $2::jsonb)", event, json.dumps(data))


async def claim_due(conn: asyncpg.Connection, *, limit: int, lease_s: float) -> list[Due]:
    """Take up to `limit` due deliveries of live endpoints: each is pushed `lease_s` into the
    future while it is being sent, so another sender skips it, and a sender that dies leaves
    it due again afterwards."""
    rows = await conn.fetch(
        f"""WITH due AS (SELECT d.id FROM catalog.webhook_deliveries d
                          WHERE d.status = 'pending' AND d.next_attempt_at <= now()
                          ORDER BY d.next_attempt_at, d.id
                          LIMIT $1
                            FOR UPDATE SKIP LOCKED),
                 taken AS (UPDATE catalog.webhook_deliveries d
                              SET next_attempt_at = now() + make_interval(secs => $2)
                             FROM due WHERE d.id = due.id
                         RETURNING d.*)
            SELECT {", ".join("t." + c.strip() for c in _D.split(","))}, w.url, w.secret
              FROM taken t JOIN catalog.webhooks w ON w.id = t.webhook_id
             WHERE w.deleted_at IS NULL""",
        limit,
        float(lease_s),
    )
    return [Due(_delivery(r), r["url"], r["secret"]) for r in rows]


def retry_delay_s(attempts: int, base_s: float = RETRY_BASE_S, cap_s: float = RETRY_CAP_S) -> float:
    """After `attempts` failed tries: base, 2x base, 4x base ..., capped."""
    return min(cap_s, base_s * 2 ** min(max(0, attempts - 1), 32))


async def record_attempt(
    conn: asyncpg.Connection,
    delivery: Delivery,
    *,
    ok: bool,
    status: int | None,
    error: str | None,
    base_s: float = RETRY_BASE_S,
    cap_s: float = RETRY_CAP_S,
) -> str:
    """The outcome of one try: "delivered", "pending" (again after the backoff) or "failed"
    (the next try would fall after `give_up_at`). Returns the new status."""
    attempts = delivery.attempts + 1
    error_line = " ".join(error.split())[:ERROR_MAX_CHARS] if error else None
    return (
        await conn.fetchval(
            """UPDATE catalog.webhook_deliveries
              SET attempts = attempts + 1, last_status = $2, last_error = $3, last_attempt_at = now(),
                  status = CASE WHEN $4 THEN 'delivered'
                                WHEN now() + make_interval(secs => $5) > give_up_at THEN 'failed'
                                ELSE 'pending' END,
                  delivered_at = CASE WHEN $4 THEN now() END,
                  next_attempt_at = now() + make_interval(secs => $5)
            WHERE id = $1 AND status = 'pending'
        RETURNING status""",
            delivery.id,
            status,
            None if ok else error_line,
            ok,
            retry_delay_s(attempts, base_s, cap_s),
        )
        or delivery.status
    )


async def deliveries(conn: asyncpg.Connection, webhook_id: str, *, limit: int = 50) -> list[Delivery]:
    """An endpoint's delivery log, newest first."""
    wid = _parse_id(webhook_id, WebhookNotFound("no such webhook"))
    if await conn.fetchval("SELECT 1 FROM catalog.webhooks WHERE id = $1", wid) is None:
        raise WebhookNotFound("no such webhook")
    rows = await conn.fetch(
        f"SELECT {_D} FROM catalog.webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2", wid, limit
    )
    return [_delivery(r) for r in rows]


async def resend(conn: asyncpg.Connection, webhook_id: str, delivery_id: int) -> Delivery:
    """Send a delivery again now (delivered or failed ones too), with the same event id and
    another day of retries."""
    wid = _parse_id(webhook_id, WebhookNotFound("no such webhook"))
    row = await conn.fetchrow(
        f"""WITH d AS (UPDATE catalog.webhook_deliveries d
                          SET status = 'pending', next_attempt_at = now(), give_up_at = now() + interval '1 day'
                         FROM catalog.webhooks w
                        WHERE d.id = $2 AND d.webhook_id = $1 AND w.id = d.webhook_id AND w.deleted_at IS NULL
                    RETURNING d.*)
            SELECT {_D} FROM d, LATERAL (SELECT pg_notify($3, 'resend')) n""",
        wid,
        delivery_id,
        WAKE_CHANNEL,
    )
    if row is None:
        raise DeliveryNotFound("no such delivery for this webhook")
    return _delivery(row)


SIGNATURE_HEADER = "StreamFlix-Signature"
ID_HEADER = "StreamFlix-Webhook-Id"
EVENT_HEADER = "StreamFlix-Event"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: `t={unix seconds},v1={hex HMAC-SHA256 of "t.body"}`, in
    the style of Stripe's: the timestamp is signed with the body, so a receiver that refuses
    old timestamps refuses replays."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"
