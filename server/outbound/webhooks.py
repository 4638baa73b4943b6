"""The webhook sender: every `serve` process runs one. It claims due deliveries from the outbox
(catalog/webhooks.py; `FOR UPDATE SKIP LOCKED`, so processes share the work and never send
one delivery twice at once), posts each, signed, and records the outcome; failures are retried
with backoff for a day. A database outage pauses it (logged once), it never stops the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
from aiohttp import web

from catalog import webhooks
from media.errors import OutboundRefused
from server import keys
from server.settings import Settings
from transcoder.outbound import guarded_session

log = logging.getLogger("streamflix.webhooks")

BATCH = 20
USER_AGENT = "StreamFlix-Webhooks/1"
# A delivery being sent is hidden from other senders this much longer than a try may take.
LEASE_MARGIN_S = 30.0
OUTAGE_PAUSE_S = 5.0
STOP_TIMEOUT_S = 5.0
ANSWER_EXCERPT = 200


class WebhookSender:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings
        self.wake = asyncio.Event()
        self.stopping = False

    async def run(self) -> None:
        async with guarded_session(
            allow_private=self.settings.outbound_allow_private,
            timeout_s=self.settings.webhook_timeout_s,
            headers={"User-Agent": USER_AGENT},
        ) as session:
            # The flag as well as the cancellation: on Python 3.11 a cancellation that lands as
            # an inner wait_for completes can be lost, and the loop would go on.
            while not self.stopping:
                try:
                    sent = await self.send_due(session)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                    # The app's pool reports an outage to its DatabaseHealth, which logs it
                    # once when it starts and once when it ends; deliveries wait meanwhile.
                    log.debug("webhooks: paused (%s)", type(exc).__name__)
                    await asyncio.sleep(OUTAGE_PAUSE_S)
                    continue
                if sent:
                    continue  # more may be due
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.settings.webhook_poll_s)

    async def send_due(self, session: aiohttp.ClientSession) -> int:
        """One batch: claim, send concurrently, record. Returns how many were sent."""
        lease = self.settings.webhook_timeout_s + LEASE_MARGIN_S
        async with self.pool.acquire(timeout=self.settings.db_timeout_s) as conn:
            due = await webhooks.claim_due(conn, limit=BATCH, lease_s=lease)
        if due:
            await asyncio.gather(*(self._deliver(session, d) for d in due))
        return len(due)

    async def _deliver(self, session: aiohttp.ClientSession, due: webhooks.Due) -> None:
        d = due.delivery
        body = d.body()
        headers = {
            "Content-Type": "application/json",
            webhooks.ID_HEADER: d.event_id,
            webhooks.EVENT_HEADER: d.event,
            webhooks.SIGNATURE_HEADER: webhooks.signature(due.secret, int(time.time()), body),
        }
        status: int | None = None
        error: str | None = None
        try:
            async with session.post(due.url, data=body, headers=headers, allow_redirects=False) as r:
                status = r.status
                if not 200 <= r.status < 300:
                    excerpt = (await r.content.read(ANSWER_EXCERPT)).decode("utf-8", "replace")
                    error = f"answered {r.status}: {excerpt}".strip()
        except OutboundRefused as exc:
            error = str(exc)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        ok = status is not None and 200 <= status < 300
        async with self.pool.acquire(timeout=self.settings.db_timeout_s) as conn:
            outcome = await webhooks.record_attempt(
                conn, d, ok=ok, status=status, error=error, base_s=self.settings.webhook_retry_base_s
            )
        if not ok:
            log.info("webhook delivery %s (%s) to %s: %s; now %s", d.id, d.event, due.url, error, outcome)


SENDER = web.AppKey("webhook_sender", WebhookSender)


async def sender_ctx(app: web.Application) -> AsyncIterator[None]:
    """Runs the sender beside the app (after the database pool opened); off when
    `webhook_poll_s` is 0."""
    settings = app[keys.SETTINGS]
    if settings.webhook_poll_s <= 0:
        yield
        return
    sender = app[SENDER] = WebhookSender(app[keys.PG], settings)
    task = asyncio.create_task(sender.run(), name="webhook-sender")
    yield
    sender.stopping = True
    sender.wake.set()
    task.cancel()
    await asyncio.wait([task], timeout=STOP_TIMEOUT_S)
    if not task.done():
        log.warning("webhooks: the sender did not stop within %.0f s; left behind", STOP_TIMEOUT_S)
