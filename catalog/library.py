"""A viewer's things: favorites, watch history, continue watching; and erasing them all.

Keyed by the accounts service's user id (a uuid) with no foreign key to `auth`: database
per service. `erase_viewer` is how a deleted account's rows go.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from catalog.errors import InvalidHistory, TitleNotFound, TitleNotReady
from catalog.titles import PosterLink, Title, columns, get_title, get_titles, parse_id, title_from_row

FINISHED_FRACTION = 0.95
# Continue-watching lists a title once the viewer is past the start: STARTED_AFTER_S, or
# STARTED_FRACTION of the title for one shorter than STARTED_AFTER_S / STARTED_FRACTION (a
# fixed 5 s would hide a 4 s clip watched halfway).
STARTED_AFTER_S = 5.0
STARTED_FRACTION = 0.05
# A history write a little past the end is a player rounding up; clamp it.
LIST_LIMIT = 50


def _user(user_id: str) -> uuid.UUID:
    return uuid.UUID(str(user_id))


async def _ready_title(conn: asyncpg.Connection, title_id: str) -> Title:
    title = await get_title(conn, title_id)  # TitleNotFound -> 404
    if not title.visible:
        raise TitleNotReady(f"title {title_id} is not ready yet")  # 409
    return title


# ---- favorites ---------------------------------------------------------------------------


async def add_favorite(conn: asyncpg.Connection, user_id: str, title_id: str) -> None:
    """Idempotent. Unknown title: TitleNotFound; not ready (a viewer cannot see it): TitleNotReady."""
    title = await _ready_title(conn, title_id)
    await conn.execute(
        "INSERT INTO catalog.favorites (user_id, title_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        _user(user_id),
        parse_id(title.id),
    )


async def remove_favorite(conn: asyncpg.Connection, user_id: str, title_id: str) -> None:
    """Idempotent; works on a title that stopped being ready, 404 only for an unknown one."""
    tid = parse_id(title_id)
    result = await conn.execute(
        "DELETE FROM catalog.favorites WHERE user_id = $1 AND title_id = $2", _user(user_id), tid
    )
    if result.endswith(" 0") and not await conn.fetchval("SELECT 1 FROM catalog.titles WHERE id = $1", tid):
        raise TitleNotFound(f"no title {title_id}")


async def list_favorites(conn: asyncpg.Connection, user_id: str, *, limit: int = LIST_LIMIT) -> list[Title]:
    rows = await conn.fetch(
        f"""SELECT {columns("t")} FROM catalog.favorites f JOIN catalog.titles t ON t.id = f.title_id
             WHERE f.user_id = $1 AND t.visible
             ORDER BY f.created_at DESC, t.id LIMIT $2""",
        _user(user_id),
        limit,
    )
    return [title_from_row(r) for r in rows]


# ---- history -----------------------------------------------------------------------------


def is_started(position_s: float, duration_s: float | None) -> bool:
    """Past the start, for continue-watching: position >= min(STARTED_AFTER_S, 5 % of the
    duration); with no known duration, STARTED_AFTER_S. A position of 0 is never started."""
    threshold = STARTED_AFTER_S
    if duration_s:
        threshold = min(threshold, STARTED_FRACTION * float(duration_s))
    return position_s > 0 and position_s >= threshold


@dataclass(frozen=True)
class Progress:
    position_s: float
    duration_s: float | None
    finished: bool


def compute_progress(position_s: float, client_duration_s: float | None, title_duration_s: float | None) -> Progress:
    """Validate and normalise one report. The title's measured duration beats the player's.
    Negative or non-finite positions are errors; a position past the end is clamped to the
    end (players report the last timestamp rounded up, and the end is what they mean)."""
    if isinstance(position_s, bool) or not isinstance(position_s, (int, float)) or not math.isfinite(position_s):
        raise InvalidHistory("position_s must be a finite number of seconds")
    if position_s < 0:
        raise InvalidHistory("position_s must not be negative")
    if client_duration_s is not None:
        if (
            isinstance(client_duration_s, bool)
            or not isinstance(client_duration_s, (int, float))
            or not math.isfinite(client_duration_s)
            or client_duration_s <= 0
        ):
            raise InvalidHistory("duration_s must be a positive number of seconds")
    duration = title_duration_s if title_duration_s else client_duration_s
    position = float(position_s)
    if duration:
        position = min(position, float(duration))
    if not duration:
        return Progress(position, None, False)
    finished = position >= FINISHED_FRACTION * float(duration)
    return Progress(position, float(duration), finished)


async def record_progress(
    conn: asyncpg.Connection,
    user_id: str,
    title_id: str,
    *,
    position_s: float,
    duration_s: float | None = None,
    client_ts: datetime | None = None,
) -> bool:
    """Upsert the viewer's position. Last write wins by the client's timestamp, so a stale tab
    reporting late cannot rewind progress; returns False when this report was older than the
    stored one. A viewer's first report on a title counts towards its popularity (and, if it
    is the first of the show, towards the series')."""
    title = await _ready_title(conn, title_id)
    if title.kind == "series":
        raise InvalidHistory("a series has no media of its own: report progress on an episode")
    progress = compute_progress(position_s, duration_s, title.duration_s)
    now = datetime.now(UTC)
    # A clock ahead of ours would otherwise pin this row against every later report.
    ts = min(client_ts, now) if client_ts is not None else now
    item_id = parse_id(title.series_id) if title.series_id else parse_id(title.id)
    row = await conn.fetchrow(
        """WITH first_of_show AS (
                SELECT NOT EXISTS (
                    SELECT 1 FROM catalog.history WHERE user_id = $1 AND item_id = $3) AS yes
           ), up AS (
                INSERT INTO catalog.history AS h
                       (user_id, title_id, item_id, position_s, duration_s, finished, client_ts)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (user_id, title_id) DO UPDATE
                   SET position_s = excluded.position_s, duration_s = excluded.duration_s,
                       finished = excluded.finished, client_ts = excluded.client_ts,
                       updated_at = now()
                 WHERE excluded.client_ts > h.client_ts
                RETURNING (xmax = 0) AS inserted
           ), bump AS (
                UPDATE catalog.titles SET popularity = popularity + 1
                 WHERE (SELECT inserted FROM up)
                   AND (id = $2 OR (id = $3 AND $3 <> $2 AND (SELECT yes FROM first_of_show)))
           )
           SELECT inserted FROM up""",
        _user(user_id),
        parse_id(title.id),
        item_id,
        progress.position_s,
        progress.duration_s,
        progress.finished,
        ts,
    )
    return row is not None


@dataclass(frozen=True)
class HistoryEntry:
    title: Title
    position_s: float
    finished: bool
    updated_at: datetime

    def to_json(self, poster_link: PosterLink) -> dict[str, Any]:
        return {
            "title": self.title.to_json(poster_link),
            "position_s": self.position_s,
            "finished": self.finished,
            "updated_at": self.updated_at.isoformat(),
        }


async def list_history(conn: asyncpg.Connection, user_id: str, *, limit: int = LIST_LIMIT) -> list[HistoryEntry]:
    rows = await conn.fetch(
        f"""SELECT {columns("t")}, h.position_s AS h_position, h.finished AS h_finished,
                   h.updated_at AS h_updated
              FROM catalog.history h JOIN catalog.titles t ON t.id = h.title_id
             WHERE h.user_id = $1
             ORDER BY h.updated_at DESC, t.id LIMIT $2""",
        _user(user_id),
        limit,
    )
    return [HistoryEntry(title_from_row(r), r["h_position"], r["h_finished"], r["h_updated"]) for r in rows]


async def continue_watching(conn: asyncpg.Connection, user_id: str, *, limit: int = 20) -> list[HistoryEntry]:
    """Per show, the latest thing watched: a title in progress where it stopped; a finished
    episode's next ready episode from its start (or from where that one stopped)."""
    rows = await conn.fetch(
        """WITH latest AS (
                SELECT DISTINCT ON (h.item_id) h.title_id, h.position_s, h.duration_s, h.finished, h.updated_at
                  FROM catalog.history h WHERE h.user_id = $1
                 ORDER BY h.item_id, h.updated_at DESC
           )
           SELECT l.title_id, l.position_s, l.finished, l.updated_at, t.kind, t.visible, nx.id AS next_id,
                  coalesce(t.duration_s, l.duration_s) AS duration_s,
                  nh.position_s AS next_position, nh.finished AS next_finished
             FROM latest l
             JOIN catalog.titles t ON t.id = l.title_id
             LEFT JOIN LATERAL (
                  SELECT e.id FROM catalog.titles e
                   WHERE l.finished AND t.kind = 'episode' AND e.series_id = t.series_id
                     AND e.kind = 'episode' AND e.visible
                     AND (e.season_number, e.episode_number) > (t.season_number, t.episode_number)
                   ORDER BY e.season_number, e.episode_number LIMIT 1
             ) nx ON true
             LEFT JOIN catalog.history nh ON nh.user_id = $1 AND nh.title_id = nx.id
            ORDER BY l.updated_at DESC
            LIMIT $2""",
        _user(user_id),
        limit * 2,
    )
    picks: list[tuple[str, float, datetime]] = []
    for r in rows:
        if not r["finished"]:
            if r["visible"] and r["kind"] != "series" and is_started(r["position_s"], r["duration_s"]):
                picks.append((str(r["title_id"]), r["position_s"], r["updated_at"]))
        elif r["next_id"] is not None and not r["next_finished"]:
            picks.append((str(r["next_id"]), r["next_position"] or 0.0, r["updated_at"]))
    titles = await get_titles(conn, [p[0] for p in picks])
    out = [HistoryEntry(titles[tid], pos, False, at) for tid, pos, at in picks if tid in titles]
    return out[:limit]


async def viewer_items(conn: asyncpg.Connection, user_id: str) -> tuple[dict[str, bool], list[str]]:
    """({show id: finished?} from history, favorite show ids): recommendation seeds."""
    rows = await conn.fetch(
        """SELECT item_id, bool_and(finished) AND bool_or(t.kind = 'movie') AS finished, max(h.updated_at) AS at
             FROM catalog.history h JOIN catalog.titles t ON t.id = h.title_id
            WHERE h.user_id = $1 GROUP BY item_id ORDER BY at DESC LIMIT 200""",
        _user(user_id),
    )
    watched = {str(r["item_id"]): bool(r["finished"]) for r in rows}
    favs = await conn.fetch(
        """SELECT coalesce(t.series_id, t.id) AS item FROM catalog.favorites f
             JOIN catalog.titles t ON t.id = f.title_id WHERE f.user_id = $1
            ORDER BY f.created_at DESC LIMIT 200""",
        _user(user_id),
    )
    return watched, [str(r["item"]) for r in favs]


async def erase_viewer(conn: asyncpg.Connection, user_id: str) -> None:
    """Forget a deleted account: its favorites and history go, and the popularity its
    history contributed is given back. Safe to run twice."""
    uid = _user(user_id)
    async with conn.transaction():
        await conn.execute("DELETE FROM catalog.favorites WHERE user_id = $1", uid)
        await conn.execute(
            """WITH gone AS (
                    DELETE FROM catalog.history WHERE user_id = $1 RETURNING title_id, item_id
               ), counts AS (
                    SELECT title_id AS id, count(*) AS n FROM gone GROUP BY title_id
                    UNION ALL
                    SELECT DISTINCT item_id, 1 FROM gone WHERE item_id <> title_id
               ), summed AS (SELECT id, sum(n) AS n FROM counts GROUP BY id)
               UPDATE catalog.titles t SET popularity = greatest(t.popularity - s.n, 0)
                 FROM summed s WHERE t.id = s.id""",
            uid,
        )
