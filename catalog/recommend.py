"""Recommendations: item-to-item co-watch blended with genre similarity, popular titles for
a viewer with no history.

Work is per show (a series stands for its episodes). Seeds are what the viewer watched and
favorited; candidates are never something they have watched (finished or in progress: the
latter is in continue-watching) or already favorited. Every pick carries a `reason`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from catalog.library import viewer_items
from catalog.titles import COLUMNS, PosterLink, Title, get_titles, title_from_row

DEFAULT_LIMIT = 20
MAX_SEEDS = 20
# Co-viewers sampled per seed (the most recent): bounds the work on a very popular title.
CO_VIEWERS_PER_SEED = 200
CO_WATCH_WEIGHT = 0.65
GENRE_WEIGHT = 0.35
FAVORITE_WEIGHT = 1.5
REASON_POPULAR = "Popular on StreamFlix"


@dataclass(frozen=True)
class Pick:
    title: Title
    score: float
    reason: str

    def to_json(self, poster_link: PosterLink) -> dict[str, Any]:
        return {**self.title.to_json(poster_link), "reason": self.reason}


async def _co_watched(
    conn: asyncpg.Connection, user_id: uuid.UUID, seeds: list[uuid.UUID], exclude: list[uuid.UUID]
) -> list[tuple[str, int, str]]:
    """(show id, co-viewers, the seed that contributed most) — "viewers who watched X also
    watched Y"."""
    rows = await conn.fetch(
        """WITH seeds AS (SELECT unnest($2::uuid[]) AS item),
                co AS (
                    SELECT s.item AS seed, v.user_id FROM seeds s
                    CROSS JOIN LATERAL (
                        SELECT DISTINCT user_id FROM (
                            SELECT user_id FROM catalog.history
                             WHERE item_id = s.item AND user_id <> $1
                             ORDER BY updated_at DESC LIMIT $4) recent
                    ) v
                ),
                pairs AS (
                    SELECT DISTINCT co.seed, co.user_id, h.item_id
                      FROM co JOIN catalog.history h ON h.user_id = co.user_id
                     WHERE h.item_id <> ALL($3::uuid[])
                ),
                per_seed AS (
                    SELECT item_id, seed, count(*) AS n FROM pairs GROUP BY item_id, seed
                )
           SELECT item_id, sum(n)::bigint AS n, (array_agg(seed ORDER BY n DESC, seed))[1] AS top_seed
             FROM per_seed GROUP BY item_id ORDER BY n DESC, item_id LIMIT 100""",
        user_id,
        seeds,
        exclude,
        CO_VIEWERS_PER_SEED,
    )
    return [(str(r["item_id"]), int(r["n"]), str(r["top_seed"])) for r in rows]


async def _genre_matches(
    conn: asyncpg.Connection, profile: dict[str, float], exclude: list[uuid.UUID]
) -> list[tuple[Title, float]]:
    genres = list(profile)
    weights = [float(profile[g]) for g in genres]
    rows = await conn.fetch(
        f"""SELECT {COLUMNS},
                   (SELECT coalesce(sum(p.w), 0) FROM unnest($1::text[], $2::float8[]) AS p(g, w)
                     WHERE p.g = ANY(genres)) AS gscore
              FROM catalog.titles
             WHERE visible AND kind <> 'episode' AND genres && $1::text[] AND id <> ALL($3::uuid[])
             ORDER BY gscore DESC, popularity DESC, id LIMIT 100""",
        genres,
        weights,
        exclude,
    )
    return [(title_from_row(r), float(r["gscore"])) for r in rows]


async def popular(conn: asyncpg.Connection, *, limit: int, exclude: Sequence[uuid.UUID] = ()) -> list[Title]:
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM catalog.titles
             WHERE visible AND kind <> 'episode' AND id <> ALL($1::uuid[])
             ORDER BY popularity DESC, id DESC LIMIT $2""",
        list(exclude),
        limit,
    )
    return [title_from_row(r) for r in rows]


def _genre_reason(title: Title, profile: dict[str, float]) -> str:
    shared = sorted((g for g in title.genres if g in profile), key=lambda g: (-profile[g], g))[:2]
    return "Because you like " + " and ".join(g.title() for g in shared) if shared else REASON_POPULAR


async def recommend(conn: asyncpg.Connection, user_id: str, *, limit: int = DEFAULT_LIMIT) -> list[Pick]:
    uid = uuid.UUID(str(user_id))
    watched, favorites = await viewer_items(conn, user_id)
    seed_weight: dict[str, float] = {}
    for item in list(watched)[:MAX_SEEDS]:
        seed_weight[item] = 1.0
    for item in favorites[:MAX_SEEDS]:
        seed_weight[item] = max(seed_weight.get(item, 0.0), FAVORITE_WEIGHT)
    exclude_ids = set(watched) | set(favorites)
    exclude = [uuid.UUID(i) for i in exclude_ids]
    if not seed_weight:
        return [Pick(t, 0.0, REASON_POPULAR) for t in await popular(conn, limit=limit)]

    seed_titles = await get_titles(conn, list(seed_weight))
    profile: dict[str, float] = {}  # genre -> summed seed weight
    for item, weight in seed_weight.items():
        for genre in seed_titles[item].genres if item in seed_titles else ():
            profile[genre] = profile.get(genre, 0.0) + weight

    co = await _co_watched(conn, uid, [uuid.UUID(s) for s in seed_weight], exclude)
    genre_hits = await _genre_matches(conn, profile, exclude) if profile else []

    co_max = max((n for _, n, _ in co), default=0) or 1
    g_max = max((s for _, s in genre_hits), default=0.0) or 1.0
    scores: dict[str, tuple[float, float, str | None]] = {}  # id -> (co part, genre part, seed)
    for item, n, seed in co:
        scores[item] = (CO_WATCH_WEIGHT * n / co_max, 0.0, seed)
    titles: dict[str, Title] = {}
    for hit, gscore in genre_hits:
        titles[hit.id] = hit
        co_part, _, top_seed = scores.get(hit.id, (0.0, 0.0, None))
        scores[hit.id] = (co_part, GENRE_WEIGHT * gscore / g_max, top_seed)
    titles.update(await get_titles(conn, [i for i in scores if i not in titles]))

    picks = []
    for item, (c, g, best_seed) in scores.items():
        found = titles.get(item)
        if found is None or not found.visible or found.kind == "episode":
            continue
        if c >= g and best_seed is not None and best_seed in seed_titles:
            reason = f"Viewers who watched {seed_titles[best_seed].title} also watched this"
        else:
            reason = _genre_reason(found, profile)
        picks.append(Pick(found, c + g, reason))
    picks.sort(key=lambda p: (-p.score, -p.title.popularity, p.title.id))
    picks = picks[:limit]
    if len(picks) < limit:
        taken = exclude + [uuid.UUID(p.title.id) for p in picks]
        picks += [Pick(t, 0.0, REASON_POPULAR) for t in await popular(conn, limit=limit - len(picks), exclude=taken)]
    return picks
