"""Notifications (`catalog.notifications`, migration 0009): what a viewer's favorites did,
and for admins what the transcoder did. Pure SQL, no HTTP: the server's producer
(server/realtime/producer.py) calls `produce`, its API lists and marks them read.

They are made from the title events the webhooks report: the same trigger writes each
`title.playable`, `title.ready` and `title.failed` into `catalog.notification_events` in the
transaction of the change. `produce` claims a batch of them (`FOR UPDATE SKIP LOCKED`, so
several processes share the work), writes the notifications and deletes the events, in one
transaction. A person gets at most one notification per event, and never two with the same
`key` (a unique index), so an event replayed cannot notify twice.

| kind | when | who |
| --- | --- | --- |
| `title_ready` | a movie or episode became ready (or got a new version) | viewers who favorited it |
| `episode_available` | an episode became playable or ready, the first time | viewers who favorited its series |
| `transcode_ready` | a movie or episode became ready | every admin |
| `transcode_failed` | a movie or episode failed | every admin |
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from catalog.errors import InvalidNotification

KINDS = ("title_ready", "episode_available", "transcode_ready", "transcode_failed")
BATCH = 50
LIST_LIMIT = 20
MARK_MAX = 500


@dataclass(frozen=True)
class Notification:
    id: int
    user_id: str
    kind: str
    title_id: str | None
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "title_id": self.title_id,
            "text": self.data.get("text", ""),
            "data": {k: v for k, v in self.data.items() if k != "text"},
            "created_at": self.created_at.isoformat(),
            "read": self.read_at is not None,
        }


@dataclass(frozen=True)
class Page:
    items: list[Notification]
    unread: int
    next_before: int | None  # pass as `before` for the next (older) page


_N = "id, user_id, kind, title_id, data, created_at, read_at"


def _notification(row: asyncpg.Record) -> Notification:
    data = row["data"]
    return Notification(
        id=row["id"],
        user_id=str(row["user_id"]),
        kind=row["kind"],
        title_id=str(row["title_id"]) if row["title_id"] else None,
        data=json.loads(data) if isinstance(data, str) else data,
        created_at=row["created_at"],
        read_at=row["read_at"],
    )


def _user(user_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(user_id)
    except ValueError:
        raise InvalidNotification("not a user id") from None


def _quoted(name: str | None) -> str:
    return f"“{name or 'untitled'}”"


async def _favoriters(conn: asyncpg.Connection, title_id: str) -> list[str]:
    rows = await conn.fetch("SELECT user_id FROM catalog.favorites WHERE title_id = $1::uuid", title_id)
    return [str(r["user_id"]) for r in rows]


async def _plan(
    conn: asyncpg.Connection, event_id: int, event: str, data: dict[str, Any], admin_ids: Sequence[str]
) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Who is told what about one event: user id -> (kind, key, data). First come wins, so a
    person is told once per event (an admin's own kind before a viewer's)."""
    title_id = data.get("title_id")
    if not title_id:
        return {}
    kind = data.get("kind")
    version = data.get("version")
    name = data.get("title")
    base = {"title": name, "title_kind": kind, "version": version}
    plan: dict[str, tuple[str, str, dict[str, Any]]] = {}

    def tell(users: Sequence[str], what: str, key: str, extra: dict[str, Any]) -> None:
        for user in users:
            plan.setdefault(user, (what, key, {**base, **extra}))

    if kind in ("movie", "episode"):
        if event == "title.ready":
            tell(
                admin_ids,
                "transcode_ready",
                f"transcode_ready:{title_id}:{version}",
                {"text": f"Transcode finished: {_quoted(name)}"},
            )
        elif event == "title.failed":
            reason = data.get("failure_reason")
            text = f"Transcode failed: {_quoted(name)}" + (f" ({reason})" if reason else "")
            tell(
                admin_ids,
                "transcode_failed",
                f"transcode_failed:{title_id}:{event_id}",
                {"text": text, "failure_reason": reason},
            )
    if event == "title.ready" and kind in ("movie", "episode"):  # a series is told per episode
        tell(
            await _favoriters(conn, title_id),
            "title_ready",
            f"title_ready:{title_id}:{version}",
            {"text": f"{_quoted(name)} is ready to watch"},
        )
    if kind == "episode" and event in ("title.playable", "title.ready"):
        series = await conn.fetchrow(
            """SELECT s.id, s.title FROM catalog.titles e JOIN catalog.titles s ON s.id = e.series_id
                WHERE e.id = $1::uuid""",
            title_id,
        )
        if series is not None:
            text = f"New episode of {_quoted(series['title'])}: {_quoted(name)}"
            extra = {"text": text, "series_id": str(series["id"]), "series_title": series["title"]}
            tell(
                await _favoriters(conn, str(series["id"])), "episode_available", f"episode_available:{title_id}", extra
            )
    return plan


async def produce(conn: asyncpg.Connection, *, admin_ids: Sequence[str], limit: int = BATCH) -> list[Notification]:
    """Turn up to `limit` pending events into notifications, in one transaction: the events are
    claimed (`FOR UPDATE SKIP LOCKED`) and deleted, the notifications inserted (a key already
    there is skipped). Returns the notifications made, for live delivery."""
    made: list[Notification] = []
    async with conn.transaction():
        events = await conn.fetch(
            "SELECT id, event, data FROM catalog.notification_events ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            limit,
        )
        for ev in events:
            data = ev["data"]
            plan = await _plan(
                conn, ev["id"], ev["event"], json.loads(data) if isinstance(data, str) else data, admin_ids
            )
            if not plan:
                continue
            users = list(plan)
            rows = await conn.fetch(
                f"""INSERT INTO catalog.notifications (user_id, kind, key, title_id, data)
                    SELECT u, k, key, $4::uuid, d::jsonb
                      FROM unnest($1::uuid[], $2::text[], $3::text[], $5::text[]) AS x(u, k, key, d)
                    ON CONFLICT (user_id, key) DO NOTHING
                    RETURNING {_N}""",
                users,
                [plan[u][0] for u in users],
                [plan[u][1] for u in users],
                (json.loads(ev["data"]) if isinstance(ev["data"], str) else ev["data"])["title_id"],
                [json.dumps(plan[u][2]) for u in users],
            )
            made.extend(_notification(r) for r in rows)
        if events:
            await conn.execute(
                "DELETE FROM catalog.notification_events WHERE id = ANY($1::bigint[])", [e["id"] for e in events]
            )
    return made


async def unread_count(conn: asyncpg.Connection, user_id: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM catalog.notifications WHERE user_id = $1 AND read_at IS NULL", _user(user_id)
        )
    )


async def list_notifications(
    conn: asyncpg.Connection, user_id: str, *, limit: int = LIST_LIMIT, before: int | None = None
) -> Page:
    """A person's notifications, newest first, `limit` at a time (`before`: the previous page's
    `next_before`), with how many are unread in all."""
    uid = _user(user_id)
    rows = await conn.fetch(
        f"""SELECT {_N} FROM catalog.notifications
             WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3""",
        uid,
        before,
        limit + 1,
    )
    items = [_notification(r) for r in rows[:limit]]
    more = len(rows) > limit
    return Page(items, await unread_count(conn, user_id), items[-1].id if more and items else None)


async def mark_read(conn: asyncpg.Connection, user_id: str, ids: Sequence[int] | None) -> int:
    """Mark these of a person's notifications read (None: all of them); ids of other people's
    or unknown ones are ignored. Returns the unread count after."""
    uid = _user(user_id)
    if ids is None:
        await conn.execute(
            "UPDATE catalog.notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL", uid
        )
    else:
        if len(ids) > MARK_MAX:
            raise InvalidNotification(f"at most {MARK_MAX} ids at once")
        await conn.execute(
            """UPDATE catalog.notifications SET read_at = now()
                WHERE user_id = $1 AND id = ANY($2::bigint[]) AND read_at IS NULL""",
            uid,
            list(ids),
        )
    return await unread_count(conn, user_id)


async def erase_user(conn: asyncpg.Connection, user_id: str) -> None:
    """Forget a deleted account's notifications."""
    await conn.execute("DELETE FROM catalog.notifications WHERE user_id = $1", _user(user_id))
