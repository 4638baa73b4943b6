"""The transcoder's record of each title's source (`jobs.title_sources`): the source as it
was given to ingest, and its probe, stored by the first attempt so later ones skip ffprobe.
Pure SQL, no policy; the catalog never sees these."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

import asyncpg


async def record_source(conn: asyncpg.Connection, title_id: str, source: str) -> None:
    """Remember where the title came from (ingest, in its transaction)."""
    await conn.execute(
        """INSERT INTO jobs.title_sources (title_id, source) VALUES ($1, $2)
           ON CONFLICT (title_id) DO UPDATE SET source = excluded.source, updated_at = now()""",
        uuid.UUID(str(title_id)),
        source,
    )


async def set_probe(conn: asyncpg.Connection, title_id: str, probe: dict[str, Any]) -> None:
    await conn.execute(
        """INSERT INTO jobs.title_sources (title_id, probe) VALUES ($1, $2::jsonb)
           ON CONFLICT (title_id) DO UPDATE SET probe = excluded.probe, updated_at = now()""",
        uuid.UUID(str(title_id)),
        json.dumps(probe),
    )


async def get_probe(conn: asyncpg.Connection, title_id: str) -> dict[str, Any] | None:
    raw = await conn.fetchval("SELECT probe FROM jobs.title_sources WHERE title_id = $1", uuid.UUID(str(title_id)))
    return json.loads(raw) if raw else None


async def forget(conn: asyncpg.Connection, title_ids: Iterable[str]) -> None:
    """Drop the records of deleted titles."""
    await conn.execute(
        "DELETE FROM jobs.title_sources WHERE title_id = ANY($1::uuid[])",
        [uuid.UUID(str(t)) for t in title_ids],
    )
