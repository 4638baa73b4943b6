"""Timed comments on a title (`catalog.comments`, migration 0010): said at a playback position,
listed by it. Pure SQL, no HTTP: server/api/comments.py serves them and delivers a party's
comments live over the socket. Text only: the body is stored and answered as the person typed
it, and every client shows it as text.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from catalog.errors import CommentNotFound

MAX_CHARS = 500
LIST_LIMIT = 200
LIST_MAX = 500

_COLUMNS = "id, title_id::text, user_id::text, party_id, position_s, body, created_at"


@dataclass(frozen=True)
class Comment:
    id: int
    title_id: str
    user_id: str
    party_id: str | None
    position: float
    body: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title_id": self.title_id,
            "user_id": self.user_id,
            "party_id": self.party_id,
            "position": self.position,
            "body": self.body,
            "created_at": self.created_at.isoformat(),
        }


def _row(r: asyncpg.Record) -> Comment:
    return Comment(r[0], r[1], r[2], r[3], r[4], r[5], r[6])


async def add(
    conn: asyncpg.Connection, title_id: str, user_id: str, position: float, body: str, party_id: str | None
) -> Comment:
    row = await conn.fetchrow(
        f"""INSERT INTO catalog.comments (title_id, user_id, party_id, position_s, body)
            VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}""",
        uuid.UUID(title_id),
        uuid.UUID(user_id),
        party_id,
        position,
        body,
    )
    return _row(row)


async def list_by_position(
    conn: asyncpg.Connection, title_id: str, start: float, end: float | None, limit: int
) -> list[Comment]:
    """The title's comments from `start` to `end` seconds of playback (inclusive), in order."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM catalog.comments
             WHERE title_id = $1 AND position_s >= $2 AND ($3::double precision IS NULL OR position_s <= $3)
             ORDER BY position_s, id LIMIT $4""",
        uuid.UUID(title_id),
        start,
        end,
        limit,
    )
    return [_row(r) for r in rows]


async def get(conn: asyncpg.Connection, title_id: str, comment_id: int) -> Comment:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM catalog.comments WHERE id = $1 AND title_id = $2", comment_id, uuid.UUID(title_id)
    )
    if row is None:
        raise CommentNotFound(f"no comment {comment_id} on this title")
    return _row(row)


async def delete(conn: asyncpg.Connection, comment_id: int) -> None:
    await conn.execute("DELETE FROM catalog.comments WHERE id = $1", comment_id)


async def report(conn: asyncpg.Connection, comment_id: int, user_id: str, reason: str) -> int:
    """Record a person's report (once: a second one from them changes nothing); answers how
    many people reported the comment."""
    await conn.execute(
        """INSERT INTO catalog.comment_reports (comment_id, user_id, reason) VALUES ($1, $2, $3)
           ON CONFLICT (comment_id, user_id) DO NOTHING""",
        comment_id,
        uuid.UUID(user_id),
        reason,
    )
    count: int = await conn.fetchval("SELECT count(*) FROM catalog.comment_reports WHERE comment_id = $1", comment_id)
    return count


async def erase_user(conn: asyncpg.Connection, user_id: str) -> None:
    """Forget a deleted account's comments and reports."""
    await conn.execute("DELETE FROM catalog.comments WHERE user_id = $1", uuid.UUID(user_id))
    await conn.execute("DELETE FROM catalog.comment_reports WHERE user_id = $1", uuid.UUID(user_id))
