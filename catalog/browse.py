"""Browse: visible titles filtered by kind, genre and year, newest or most popular first,
with keyset pagination (an index range per page, however deep; no OFFSET)."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from catalog import cursor as cursors
from catalog.errors import InvalidCursor, InvalidQuery
from catalog.titles import COLUMNS, KINDS, STATUSES, Title, title_from_row

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
SORTS = ("newest", "popular")
# sort name -> the column the keyset walks (descending, ties broken by id descending)
SORT_COLUMN = {"newest": "added_at", "popular": "popularity"}
MAX_GENRE_CHARS = 100
MIN_YEAR, MAX_YEAR = 1870, 2200


@dataclass(frozen=True)
class BrowseQuery:
    kind: str | None = None
    genre: str | None = None
    year: int | None = None
    sort: str = "newest"
    limit: int = DEFAULT_LIMIT
    # admins only: every status unless `status` narrows it
    include_hidden: bool = False
    status: str | None = None
    cursor: str | None = None

    @property
    def scope(self) -> str:
        """What a cursor is bound to: the same filter, sort and audience."""
        return "|".join(str(v) for v in (self.kind, self.genre, self.year, self.sort, self.include_hidden, self.status))


def parse_browse(params: Mapping[str, str], *, admin: bool, limit: int = DEFAULT_LIMIT) -> BrowseQuery:
    """The filter and sort of a browse request. `limit` comes parsed: page sizes are request
    input, read by the server's one `limit` parser."""
    kind = params.get("kind") or None
    if kind is not None and kind not in KINDS:
        raise InvalidQuery(f"kind must be one of {', '.join(KINDS)}")
    genre = (params.get("genre") or "").strip().lower() or None
    if genre is not None and len(genre) > MAX_GENRE_CHARS:
        raise InvalidQuery(f"genre must be at most {MAX_GENRE_CHARS} characters")
    if genre is not None and any(unicodedata.category(ch)[0] == "C" for ch in genre):
        # no stored genre has one (titles take SafeStr), and Postgres refuses NUL in text
        raise InvalidQuery("genre must not contain control characters")
    year = None
    if params.get("year"):
        try:
            year = int(params["year"])
        except ValueError:
            raise InvalidQuery("year must be a number") from None
        if not MIN_YEAR <= year <= MAX_YEAR:
            raise InvalidQuery(f"year must be between {MIN_YEAR} and {MAX_YEAR}")
    sort = params.get("sort") or "newest"
    if sort not in SORTS:
        raise InvalidQuery(f"sort must be one of {', '.join(SORTS)}")
    status = params.get("status") or None
    if status is not None and status not in STATUSES:
        raise InvalidQuery(f"status must be one of {', '.join(STATUSES)}")
    return BrowseQuery(
        kind=kind,
        genre=genre,
        year=year,
        sort=sort,
        limit=limit,
        include_hidden=admin,
        status=status,
        cursor=params.get("cursor") or None,
    )


def _position(query: BrowseQuery, title: Title) -> list[Any]:
    if query.sort == "newest":
        assert title.added_at is not None
        return [title.added_at.isoformat(), title.id]
    return [title.popularity, title.id]


def _decode_position(query: BrowseQuery, key: bytes) -> tuple[Any, str]:
    assert query.cursor is not None
    position = cursors.decode(key, query.scope, query.cursor)
    if len(position) != 2 or not isinstance(position[1], str):
        raise InvalidCursor("the cursor is malformed")
    value, last_id = position
    try:
        if query.sort == "newest":
            if not isinstance(value, str):
                raise ValueError
            value = datetime.fromisoformat(value)
        elif not isinstance(value, int) or isinstance(value, bool):
            raise ValueError
        uuid.UUID(last_id)
    except ValueError:
        raise InvalidCursor("the cursor is malformed") from None
    return value, last_id


async def browse(conn: asyncpg.Connection, query: BrowseQuery, *, cursor_key: bytes) -> tuple[list[Title], str | None]:
    """One page and the cursor of the next (None on the last page)."""
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if not query.include_hidden:
        where.append("visible")  # literal, so the partial browse indexes apply
    if query.status is not None:
        where.append(f"status = {arg(query.status)}")
    if query.kind is not None:
        where.append(f"kind = {arg(query.kind)}")
    else:
        where.append("kind <> 'episode'")  # episodes are listed under their series
    if query.genre is not None:
        where.append(f"genres @> ARRAY[{arg(query.genre)}::text]")
    if query.year is not None:
        where.append(f"year = {arg(query.year)}")
    column = SORT_COLUMN[query.sort]
    if query.cursor is not None:
        value, last_id = _decode_position(query, cursor_key)
        where.append(f"({column}, id) < ({arg(value)}, {arg(last_id)}::uuid)")
    sql = (
        f"SELECT {COLUMNS} FROM catalog.titles WHERE {' AND '.join(where)}"
        f" ORDER BY {column} DESC, id DESC LIMIT {arg(query.limit + 1)}"
    )
    rows = await conn.fetch(sql, *args)
    items = [title_from_row(r) for r in rows[: query.limit]]
    next_cursor = None
    if len(rows) > query.limit:
        next_cursor = cursors.encode(cursor_key, query.scope, _position(query, items[-1]))
    return items, next_cursor


def check_cursor(query: BrowseQuery, key: bytes) -> None:
    """Raises InvalidCursor unless the query's cursor verifies (before any cache lookup)."""
    if query.cursor is not None:
        _decode_position(query, key)
