"""A title's status, and the only ways it moves.

    pending --mark_processing--> processing --publish_ready--> ready (with a version)
       ^                             |  |
       +----release_to_pending-------+  +--mark_playable--> playable --publish_ready--> ready
                                            (the first version, still being encoded)
    pending/processing --mark_failed--> failed   (unless an older version still plays)
    playable --fail_progressive--> failed        (its only version never completed: dropped)
    failed --retry_failed--> pending             (an operator asked for another go)

`playable` is a title's FIRST version while it is still being encoded: its timeline is
complete (a progressive model) and a player can start, segments appear as workers make them.
It is listed and plays like `ready` (the `visible` trigger counts both). Only a title without a
current version becomes playable: a title that already has a version (ready, or playable)
keeps it until the new one is ready, and keeps it when that encode fails. `mark_processing`
and `release_to_pending` never move a playable or ready title. The transcoder calls these;
it holds no status rule of its own.
"""

from __future__ import annotations

import asyncpg

from catalog.errors import TitleNotFailed, TitleNotFound
from catalog.titles import parse_id


async def mark_processing(conn: asyncpg.Connection, title_id: str) -> bool:
    """A worker started on the title. A ready (or playable) title keeps serving its version
    while it is redone, so it keeps its status. True when the status changed."""
    result = await conn.execute(
        """UPDATE catalog.titles SET status = 'processing', failure_reason = NULL, updated_at = now()
            WHERE id = $1 AND status NOT IN ('ready', 'playable')""",
        parse_id(title_id),
    )
    return result == "UPDATE 1"


async def mark_playable(conn: asyncpg.Connection, title_id: str, version: str, *, duration_s: float) -> bool:
    """The first version of a title can start playing while it is still encoded: point the
    title at `version` with status `playable` (duration and published_at set). Only a title
    with no current version that is pending or processing moves; a title that already plays a
    version keeps it until the new one is ready. True when the title changed."""
    result = await conn.execute(
        """UPDATE catalog.titles
              SET current_version = $2, status = 'playable', failure_reason = NULL,
                  duration_s = $3, published_at = now(), updated_at = now()
            WHERE id = $1 AND current_version IS NULL AND status IN ('pending', 'processing')""",
        parse_id(title_id),
        version,
        duration_s,
    )
    return result == "UPDATE 1"


async def publish_ready(conn: asyncpg.Connection, title_id: str, version: str, *, duration_s: float) -> str | None:
    """Point the title at `version` and mark it ready, in one statement; returns the version
    it replaced (for cleanup). From `playable` too: the same version (it completed, nothing to
    clean up, None is returned) or a new one (the playable one is returned)."""
    return await conn.fetchval(
        """UPDATE catalog.titles t
              SET current_version = $2, status = 'ready', failure_reason = NULL,
                  duration_s = $3, updated_at = now(),
                  -- a playable version that completed was published when it became playable
                  published_at = CASE WHEN o.old IS NOT DISTINCT FROM $2
                                      THEN coalesce(t.published_at, now()) ELSE now() END
             FROM (SELECT id, current_version AS old FROM catalog.titles WHERE id = $1 FOR UPDATE) o
            WHERE t.id = o.id
        RETURNING CASE WHEN o.old IS DISTINCT FROM $2 THEN o.old END""",
        parse_id(title_id),
        version,
        duration_s,
    )


async def mark_failed(conn: asyncpg.Connection, title_id: str, reason: str) -> bool:
    """The title's transcode failed for good. A title with a published version still plays
    it, so it stays as it is (a `playable` one too: see `fail_progressive` for the version that
    failed being the playable one); otherwise it becomes `failed` with `reason`. True when the
    title was marked failed (False also when it is gone)."""
    result = await conn.execute(
        """UPDATE catalog.titles SET status = 'failed', failure_reason = $2, updated_at = now()
            WHERE id = $1 AND current_version IS NULL""",
        parse_id(title_id),
        reason,
    )
    return result == "UPDATE 1"


async def fail_progressive(conn: asyncpg.Connection, title_id: str, version: str, reason: str) -> bool:
    """The encode of `version` failed for good while the title was `playable` on it: that
    version will never be complete, so the title becomes `failed` with `reason` and points at
    no version any more. Acts only when the title is `playable` on exactly `version`; True
    then, and the caller deletes the version's files (viewers lose it). Otherwise (another
    version plays, the title is ready, gone...) nothing changes and the caller falls back to
    `mark_failed`."""
    result = await conn.execute(
        """UPDATE catalog.titles
              SET status = 'failed', failure_reason = $3, current_version = NULL, updated_at = now()
            WHERE id = $1 AND status = 'playable' AND current_version = $2""",
        parse_id(title_id),
        version,
        reason,
    )
    return result == "UPDATE 1"


async def release_to_pending(conn: asyncpg.Connection, title_id: str) -> bool:
    """Its worker gave the job back (shutting down): a `processing` title waits again as
    `pending` (a `playable` one keeps playing what it has). True when the status changed."""
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


async def switch_version(conn: asyncpg.Connection, title_id: str, old: str, new: str) -> bool:
    """A ready title's version replaced by one derived from it (new renditions, nothing
    re-encoded): only while it is still ready on `old`, so a publish or delete that got there
    first wins. True when the title moved to `new`."""
    result = await conn.execute(
        """UPDATE catalog.titles SET current_version = $3, updated_at = now()
            WHERE id = $1 AND status = 'ready' AND current_version = $2""",
        parse_id(title_id),
        old,
        new,
    )
    return result == "UPDATE 1"
