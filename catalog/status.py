"""A title's status, and the only ways it moves.

    pending --mark_processing--> processing --publish_ready--> ready (with a version)
       ^                             |
       +----release_to_pending-------+
    pending/processing --mark_failed--> failed   (unless an older version still plays)
    failed --retry_failed--> pending             (an operator asked for another go)

A title that is already `ready` stays `ready` while a new version is encoded (viewers keep
the old one) and when that encode fails. The transcoder calls these; it holds no status
rule of its own.
"""

from __future__ import annotations

import asyncpg

from catalog.errors import TitleNotFailed, TitleNotFound
from catalog.titles import parse_id


async def mark_processing(conn: asyncpg.Connection, title_id: str) -> bool:
    """A worker started on the title. A ready title keeps serving its version while it is
    redone, so it stays `ready`. True when the status changed."""
    result = await conn.execute(
        """UPDATE catalog.titles SET status = 'processing', failure_reason = NULL, updated_at = now()
            WHERE id = $1 AND status <> 'ready'""",
        parse_id(title_id),
    )
    return result == "UPDATE 1"


async def publish_ready(conn: asyncpg.Connection, title_id: str, version: str, *, duration_s: float) -> str | None:
    """Point the title at `version` and mark it ready, in one statement; returns the version
    it replaced (for cleanup)."""
    return await conn.fetchval(
        """UPDATE catalog.titles t
              SET current_version = $2, status = 'ready', failure_reason = NULL,
                  duration_s = $3, published_at = now(), updated_at = now()
             FROM (SELECT id, current_version AS old FROM catalog.titles WHERE id = $1 FOR UPDATE) o
            WHERE t.id = o.id
        RETURNING o.old""",
        parse_id(title_id),
        version,
        duration_s,
    )


async def mark_failed(conn: asyncpg.Connection, title_id: str, reason: str) -> bool:
    """The title's transcode failed for good. A title with a published version still plays
    it, so it stays as it is; otherwise it becomes `failed` with `reason`. True when the
    title was marked failed (False also when it is gone)."""
    result = await conn.execute(
        """UPDATE catalog.titles SET status = 'failed', failure_reason = $2, updated_at = now()
            WHERE id = $1 AND current_version IS NULL""",
        parse_id(title_id),
        reason,
    )
    return result == "UPDATE 1"


async def release_to_pending(conn: asyncpg.Connection, title_id: str) -> bool:
    """Its worker gave the job back (shutting down): a `processing` title waits again as
    `pending`. True when the status changed."""
    result = await conn.execute(
        """UPDATE catalog.titles SET status = 'pending', failure_reason = NULL, updated_at = now()
            WHERE id = $1 AND status = 'processing'""",
        parse_id(title_id),
    )
    return result == "UPDATE 1"


async def retry_failed(conn: asyncpg.Connection, title_id: str) -> None:
    """A failed title goes back to `pending` (its transcode is queued again by the caller, in
    the same transaction). Raises TitleNotFound, or TitleNotFailed when it has not failed."""
    tid = parse_id(title_id)
    result = await conn.execute(
        """UPDATE catalog.titles SET status = 'pending', failure_reason = NULL, updated_at = now()
            WHERE id = $1 AND status = 'failed'""",
        tid,
    )
    if result == "UPDATE 1":
        return
    current = await conn.fetchval("SELECT status FROM catalog.titles WHERE id = $1", tid)
    if current is None:
        raise TitleNotFound(f"no title {title_id!r}")
    raise TitleNotFailed(f"title {title_id} is {current}, not failed: only a failed title can be retried")
