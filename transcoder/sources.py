"""The transcoder's record of each title's source (`jobs.title_sources`): the source as it
was given to ingest, and its probe, stored by the first attempt so later ones skip ffprobe.
Pure SQL, no policy; the catalog never sees these."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

import asyncpg

# `options` keys: what ingest was told about the source.
AUDIO_LANGUAGES = "audio_languages"  # {"0": "en", "1": "fr"}: BCP 47 by audio stream order
AV1_RUNGS = "av1_rungs"  # [1080, 720]: rung heights that get an AV1 copy ([]: none)

# How a worker reads a source object on remote storage before it has its own copy
# (`STREAMFLIX_SOURCE_READS`): over a presigned URL with ranges, or after a download.
RANGED = "ranged"
DOWNLOAD = "download"
SOURCE_READ_MODES = (RANGED, DOWNLOAD)


def parse_source_reads(text: str) -> str:
    """`STREAMFLIX_SOURCE_READS`'s value; ValueError for anything else."""
    mode = text.strip().lower()
    if mode not in SOURCE_READ_MODES:
        raise ValueError(f"must be {' or '.join(SOURCE_READ_MODES)}, not {text!r}")
    return mode


async def record_source(
    conn: asyncpg.Connection, title_id: str, source: str, options: dict[str, Any] | None = None
) -> None:
    """Remember where the title came from, and what ingest was told about it (in its
    transaction)."""
    await conn.execute(
        """INSERT INTO jobs.title_sources (title_id, source, options) VALUES ($1, $2, $3::jsonb)
           ON CONFLICT (title_id) DO UPDATE SET source = excluded.source, options = excluded.options,
                                                updated_at = now()""",
        uuid.UUID(str(title_id)),
        source,
        json.dumps(options or {}),
    )


async def get_options(conn: asyncpg.Connection, title_id: str) -> dict[str, Any]:
    raw = await conn.fetchval("SELECT options FROM jobs.title_sources WHERE title_id = $1", uuid.UUID(str(title_id)))
    return json.loads(raw) if raw else {}


def audio_languages(options: dict[str, Any]) -> dict[int, str]:
    """The `--audio-lang` overrides of stored options, by audio stream order."""
    return {int(k): str(v) for k, v in (options.get(AUDIO_LANGUAGES) or {}).items()}


def av1_heights(options: dict[str, Any], default: tuple[int, ...]) -> tuple[int, ...]:
    """The `--av1` rung heights of stored options, else `default` (the worker's setting)."""
    if AV1_RUNGS not in options:
        return default
    return tuple(int(h) for h in options[AV1_RUNGS] or ())


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
