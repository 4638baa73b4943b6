"""Titles: create, read, status transitions, publishing a version."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from catalog.errors import DuplicateEpisode, InvalidTitle, TitleNotFound

KINDS = ("movie", "series", "episode")
STATUSES = ("pending", "processing", "ready", "failed")


@dataclass(frozen=True)
class Title:
    id: str
    kind: str
    title: str
    year: int | None
    genres: list[str]
    description: str
    status: str
    failure_reason: str | None
    duration_s: float | None
    series_id: str | None
    season_number: int | None
    episode_number: int | None
    current_version: str | None
    created_at: datetime
    updated_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "year": self.year,
            "genres": list(self.genres),
            "description": self.description,
            "status": self.status,
            "failure_reason": self.failure_reason,
            "duration_s": self.duration_s,
            "created_at": self.created_at.isoformat(),
        }
        if self.kind == "episode":
            out.update(
                series_id=self.series_id, season_number=self.season_number, episode_number=self.episode_number
            )
        out.update(self.extra)
        return out


COLUMNS = (
    "id, kind, title, year, genres, description, status, failure_reason, duration_s, series_id,"
    " season_number, episode_number, current_version, created_at, updated_at"
)


def title_from_row(row: asyncpg.Record) -> Title:
    data = {k: row[k] for k in COLUMNS.replace(" ", "").split(",")}
    data["id"] = str(data["id"])
    data["series_id"] = str(data["series_id"]) if data["series_id"] else None
    data["genres"] = list(data["genres"] or [])
    return Title(**data)


def parse_id(title_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(title_id))
    except ValueError as exc:
        raise TitleNotFound(f"no title {title_id!r}") from exc


async def create_title(
    conn: asyncpg.Connection,
    *,
    kind: str,
    title: str,
    year: int | None = None,
    genres: list[str] | tuple[str, ...] = (),
    description: str = "",
    series_id: str | None = None,
    season_number: int | None = None,
    episode_number: int | None = None,
    source: str | None = None,
    status: str = "pending",
    title_id: str | None = None,
) -> Title:
    if kind not in KINDS:
        raise InvalidTitle(f"kind must be one of {', '.join(KINDS)}")
    if not title.strip():
        raise InvalidTitle("title must not be empty")
    if kind == "episode" and (series_id is None or season_number is None or episode_number is None):
        raise InvalidTitle("an episode needs a series, a season and an episode number")
    genres = sorted({g.strip().lower() for g in genres if g.strip()})
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO catalog.titles
                  (id, kind, title, year, genres, description, series_id, season_number,
                   episode_number, source, status)
                VALUES (coalesce($11::uuid, gen_random_uuid()), $1, $2, $3, $4, $5, $6::uuid, $7, $8,
                        $9, $10)
                RETURNING {COLUMNS}""",
            kind,
            title.strip(),
            year,
            genres,
            description,
            series_id,
            season_number,
            episode_number,
            source,
            status,
            # a caller may choose the id, e.g. to upload the source under it first (ingest)
            parse_id(title_id) if title_id else None,
        )
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateEpisode(
            f"season {season_number} episode {episode_number} already exists in this series"
        ) from exc
    except asyncpg.CheckViolationError as exc:
        raise InvalidTitle(f"invalid title fields ({exc.constraint_name})") from exc
    return title_from_row(row)


async def get_title(conn: asyncpg.Connection, title_id: str) -> Title:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM catalog.titles WHERE id = $1", parse_id(title_id))
    if row is None:
        raise TitleNotFound(f"no title {title_id}")
    return title_from_row(row)


async def find_series(conn: asyncpg.Connection, name: str) -> Title | None:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM catalog.titles WHERE kind = 'series' AND lower(title) = lower($1)"
        " ORDER BY created_at LIMIT 1",
        name.strip(),
    )
    return title_from_row(row) if row else None


async def set_status(
    conn: asyncpg.Connection, title_id: str, status: str, *, failure_reason: str | None = None
) -> None:
    if status not in STATUSES:
        raise InvalidTitle(f"unknown status {status!r}")
    await conn.execute(
        """UPDATE catalog.titles SET status = $2, failure_reason = $3, updated_at = now()
           WHERE id = $1""",
        parse_id(title_id),
        status,
        failure_reason,
    )


async def set_probe(conn: asyncpg.Connection, title_id: str, probe: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE catalog.titles SET probe = $2::jsonb, updated_at = now() WHERE id = $1",
        parse_id(title_id),
        json.dumps(probe),
    )


async def get_probe(conn: asyncpg.Connection, title_id: str) -> dict[str, Any] | None:
    raw = await conn.fetchval("SELECT probe FROM catalog.titles WHERE id = $1", parse_id(title_id))
    return json.loads(raw) if raw else None


async def publish_version(
    conn: asyncpg.Connection, title_id: str, version: str, *, duration_s: float
) -> str | None:
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


async def delete_title(conn: asyncpg.Connection, title_id: str) -> None:
    result = await conn.execute("DELETE FROM catalog.titles WHERE id = $1", parse_id(title_id))
    if result.endswith(" 0"):
        raise TitleNotFound(f"no title {title_id}")
