"""Titles: create, read, edit, delete (status moves in `catalog.status`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from catalog.errors import DuplicateEpisode, InvalidTitle, TitleNotFound

KINDS = ("movie", "series", "episode")
STATUSES = ("pending", "processing", "playable", "ready", "failed")
MAX_CREDITS = 200
CREDIT_FIELDS = ("name", "role", "character")


# (title id, poster version tag) -> the poster's URL. The server owns its routes, so it
# passes this in wherever a title becomes JSON.
PosterLink = Callable[[str, str], str]


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
    credits: list[dict[str, str]] = field(default_factory=list)
    poster_etag: str | None = None
    poster_content_type: str | None = None
    visible: bool = False
    popularity: int = 0
    added_at: datetime | None = None
    published_at: datetime | None = None
    # Viewers may download it as one MP4 (when the version has one and the server allows it).
    downloads_enabled: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def playable(self) -> bool:
        """A viewer can start it: a movie or episode whose version is ready, or still being
        encoded (`playable`: segments appear as workers make them)."""
        return self.kind != "series" and self.status in ("ready", "playable") and self.current_version is not None

    @property
    def poster_tag(self) -> str | None:
        """Which poster the title shows, None for none: a new poster is a new tag, so a URL
        carrying it may be cached for long."""
        if self.poster_etag:
            return "u" + self.poster_etag[:16]
        if self.status == "playable":
            # the version is still being encoded: its poster.jpg may not exist before it is
            # complete; the tag (and so the URL) appears when it is ready
            return None
        if self.current_version:
            return self.current_version
        if self.kind == "series" and self.visible:
            return "s"  # the first ready episode's poster, resolved when it is served
        return None

    def to_json(self, poster_link: PosterLink) -> dict[str, Any]:
        tag = self.poster_tag
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
            "credits": [dict(c) for c in self.credits],
            "poster_url": poster_link(self.id, tag) if tag else None,
            "popularity": self.popularity,
            "created_at": self.created_at.isoformat(),
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "downloads_enabled": self.downloads_enabled,
        }
        if self.kind == "episode":
            out.update(series_id=self.series_id, season_number=self.season_number, episode_number=self.episode_number)
        out.update(self.extra)
        return out


COLUMNS = (
    "id, kind, title, year, genres, description, status, failure_reason, duration_s, series_id,"
    " season_number, episode_number, current_version, created_at, updated_at, credits, poster_etag,"
    " poster_content_type, visible, popularity, added_at, published_at, downloads_enabled"
)
_COLUMN_NAMES = tuple(COLUMNS.replace(" ", "").split(","))


def columns(alias: str) -> str:
    """COLUMNS qualified by a table alias, for joins within the schema."""
    return ", ".join(f"{alias}.{c}" for c in _COLUMN_NAMES)


def title_from_row(row: asyncpg.Record) -> Title:
    data = {k: row[k] for k in _COLUMN_NAMES}
    data["id"] = str(data["id"])
    data["series_id"] = str(data["series_id"]) if data["series_id"] else None
    data["genres"] = list(data["genres"] or [])
    raw = data["credits"]
    data["credits"] = json.loads(raw) if isinstance(raw, str) else list(raw or [])
    return Title(**data)


def normalize_genres(genres: list[str] | tuple[str, ...]) -> list[str]:
    return sorted({g.strip().lower() for g in genres if g and g.strip()})


def normalize_credits(credits: Any) -> list[dict[str, str]]:
    """[{"name", "role"?, "character"?}] with non-empty string names; anything else is invalid."""
    if credits is None:
        return []
    if not isinstance(credits, (list, tuple)) or len(credits) > MAX_CREDITS:
        raise InvalidTitle(f"credits must be a list of at most {MAX_CREDITS} people")
    out = []
    for entry in credits:
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or set(entry) - set(CREDIT_FIELDS):
            raise InvalidTitle(f"each credit is an object with {', '.join(CREDIT_FIELDS)}")
        clean = {}
        for key in CREDIT_FIELDS:
            value = entry.get(key)
            if value is None:
                continue
            if not isinstance(value, str) or len(value) > 200:
                raise InvalidTitle(f"credit {key} must be a string of at most 200 characters")
            if value.strip():
                clean[key] = value.strip()
        if "name" not in clean:
            raise InvalidTitle("each credit needs a name")
        out.append(clean)
    return out


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
    status: str | None = None,
    title_id: str | None = None,
    credits: Any = None,
) -> Title:
    """A new title. A series has no media of its own, so it starts `ready` unless told; a
    movie or episode starts `pending` until a version is published."""
    if status is None:
        status = "ready" if kind == "series" else "pending"
    if status not in STATUSES:
        raise InvalidTitle(f"status must be one of {', '.join(STATUSES)}")
    if kind not in KINDS:
        raise InvalidTitle(f"kind must be one of {', '.join(KINDS)}")
    if not title.strip():
        raise InvalidTitle("title must not be empty")
    if kind == "episode" and (series_id is None or season_number is None or episode_number is None):
        raise InvalidTitle("an episode needs a series, a season and an episode number")
    if kind != "episode" and series_id is not None:
        raise InvalidTitle("only an episode belongs to a series")
    genres = normalize_genres(genres)
    credits_json = json.dumps(normalize_credits(credits))
    if series_id is not None:
        parent = await conn.fetchval("SELECT kind FROM catalog.titles WHERE id = $1", parse_id(series_id))
        if parent != "series":
            raise InvalidTitle("series_id must name a series")
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO catalog.titles
                  (id, kind, title, year, genres, description, series_id, season_number,
                   episode_number, status, credits)
                VALUES (coalesce($10::uuid, gen_random_uuid()), $1, $2, $3, $4, $5, $6::uuid, $7, $8,
                        $9, $11::jsonb)
                RETURNING {COLUMNS}""",
            kind,
            title.strip(),
            year,
            genres,
            description,
            series_id,
            season_number,
            episode_number,
            status,
            # a caller may choose the id, e.g. to upload the source under it first (ingest)
            parse_id(title_id) if title_id else None,
            credits_json,
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


async def list_titles(conn: asyncpg.Connection) -> list[Title]:
    """Every title, hidden ones too, oldest first (the admin's view from the shell)."""
    rows = await conn.fetch(f"SELECT {COLUMNS} FROM catalog.titles ORDER BY created_at, id")
    return [title_from_row(r) for r in rows]


async def find_by_name(conn: asyncpg.Connection, name: str) -> list[Title]:
    """Titles named exactly `name`, newest first."""
    rows = await conn.fetch(f"SELECT {COLUMNS} FROM catalog.titles WHERE title = $1 ORDER BY created_at DESC, id", name)
    return [title_from_row(r) for r in rows]


async def find_series(conn: asyncpg.Connection, name: str) -> Title | None:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM catalog.titles WHERE kind = 'series' AND lower(title) = lower($1)"
        " ORDER BY created_at LIMIT 1",
        name.strip(),
    )
    return title_from_row(row) if row else None


# Fields an admin may change with PATCH; status moves only through `catalog.status`.
EDITABLE = (
    "title",
    "year",
    "genres",
    "description",
    "credits",
    "season_number",
    "episode_number",
    "downloads_enabled",
)


async def update_title(conn: asyncpg.Connection, title_id: str, changes: dict[str, Any]) -> Title:
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidTitle(f"cannot change {', '.join(sorted(unknown))}")
    values: dict[str, Any] = dict(changes)
    if "title" in values:
        if not isinstance(values["title"], str) or not values["title"].strip():
            raise InvalidTitle("title must not be empty")
        values["title"] = values["title"].strip()
    if "downloads_enabled" in values and not isinstance(values["downloads_enabled"], bool):
        raise InvalidTitle("downloads_enabled must be true or false")
    if "genres" in values:
        values["genres"] = normalize_genres(values["genres"] or [])
    if "credits" in values:
        values["credits"] = json.dumps(normalize_credits(values["credits"]))
    if not values:
        return await get_title(conn, title_id)
    sets = []
    args: list[Any] = [parse_id(title_id)]
    for name, value in values.items():
        args.append(value)
        cast = "::jsonb" if name == "credits" else ""
        sets.append(f"{name} = ${len(args)}{cast}")
    try:
        row = await conn.fetchrow(
            f"UPDATE catalog.titles SET {', '.join(sets)}, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}",
            *args,
        )
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateEpisode("that season and episode already exist in this series") from exc
    except asyncpg.CheckViolationError as exc:
        raise InvalidTitle(f"invalid title fields ({exc.constraint_name})") from exc
    if row is None:
        raise TitleNotFound(f"no title {title_id}")
    return title_from_row(row)


async def list_episodes(conn: asyncpg.Connection, series_id: str, *, visible_only: bool) -> list[Title]:
    """A series' episodes in (season, episode) order."""
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM catalog.titles
             WHERE series_id = $1 AND kind = 'episode' AND (visible OR NOT $2)
             ORDER BY season_number, episode_number, id""",
        parse_id(series_id),
        visible_only,
    )
    return [title_from_row(r) for r in rows]


def seasons_json(episodes: list[Title], poster_link: PosterLink) -> list[dict[str, Any]]:
    """[{"season_number", "episodes": [title, ...]}], both levels ordered."""
    seasons: dict[int, list[dict[str, Any]]] = {}
    for ep in sorted(episodes, key=lambda e: (e.season_number or 0, e.episode_number or 0, e.id)):
        seasons.setdefault(ep.season_number or 0, []).append(ep.to_json(poster_link))
    return [{"season_number": n, "episodes": eps} for n, eps in sorted(seasons.items())]


async def get_titles(conn: asyncpg.Connection, ids: list[str]) -> dict[str, Title]:
    if not ids:
        return {}
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM catalog.titles WHERE id = ANY($1::uuid[])", [parse_id(i) for i in ids]
    )
    return {str(r["id"]): title_from_row(r) for r in rows}


async def delete_title_tree(conn: asyncpg.Connection, title_id: str) -> list[str]:
    """Delete a title (a series with its episodes); returns every deleted id, so the caller
    can remove their stored objects."""
    rows = await conn.fetch(
        "DELETE FROM catalog.titles WHERE id = $1 OR series_id = $1 RETURNING id", parse_id(title_id)
    )
    if not rows:
        raise TitleNotFound(f"no title {title_id}")
    return [str(r["id"]) for r in rows]


async def set_uploaded_poster(
    conn: asyncpg.Connection, title_id: str, *, etag: str | None, content_type: str | None
) -> Title:
    row = await conn.fetchrow(
        f"""UPDATE catalog.titles SET poster_etag = $2, poster_content_type = $3, updated_at = now()
             WHERE id = $1 RETURNING {COLUMNS}""",
        parse_id(title_id),
        etag,
        content_type,
    )
    if row is None:
        raise TitleNotFound(f"no title {title_id}")
    return title_from_row(row)


async def first_playable_episode(conn: asyncpg.Connection, series_id: str) -> Title | None:
    row = await conn.fetchrow(
        f"""SELECT {COLUMNS} FROM catalog.titles
             WHERE series_id = $1 AND kind = 'episode' AND visible AND current_version IS NOT NULL
             ORDER BY season_number, episode_number LIMIT 1""",
        parse_id(series_id),
    )
    return title_from_row(row) if row else None
