"""Search and search-as-you-type.

`search`: full-text over a weighted tsvector (title A, credits B, description C; see
migration 0002) OR trigram word similarity on the folded title, so "matirx" still finds
"The Matrix". User text only ever reaches Postgres as a bound parameter of
`plainto_tsquery` (which treats `&`, `|`, `!`, `:*`, quotes and backslashes as plain
text) and of `<%` (trigrams have no syntax at all).

`suggest`: titles with a word starting with each typed word (a prefix tsquery built here
from `\\w+` tokens only, so nothing the user types is tsquery syntax).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import asyncpg

from catalog.errors import InvalidQuery
from catalog.titles import PosterLink, Title, get_titles

MAX_QUERY_CHARS = 200
DEFAULT_SEARCH_LIMIT = 20
MAX_SEARCH_LIMIT = 50
SUGGEST_LIMIT = 10
SUGGEST_OVERFETCH = 5
# Trigram word similarity above which a title counts as a fuzzy match: the database default
# of pg_trgm.word_similarity_threshold, set by migration 0003 (pg_trgm's own 0.6 misses one
# transposition in a six-letter word: "matirx" vs "matrix" is 0.43).
WORD_SIMILARITY_THRESHOLD = 0.3
# Rows scored before grouping episodes under their series.
CANDIDATES = 100
# Typo tolerance and prefix matching kick in when full text finds fewer titles than this.
FUZZY_BELOW = 10
FILL_BELOW = 20
DESCRIPTION_SCORE = 0.1
MIN_FUZZY_CHARS = 4
EPISODES_PER_SERIES = 3
_WORD = re.compile(r"\w+")


def normalize_query(raw: str | None) -> str:
    """NFKC, whitespace collapsed, control characters dropped; empty means "no query".
    Longer than MAX_QUERY_CHARS is a 400: nobody types that, and trigram extraction over
    a 10,000-character string is work for nothing."""
    if raw is None:
        return ""
    text = unicodedata.normalize("NFKC", raw)
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C" or ch in "\t\n ")
    text = " ".join(text.split())
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidQuery(f"q must be at most {MAX_QUERY_CHARS} characters")
    return text


def analytics_key(query: str) -> str:
    """How a query is counted: case-folded and whitespace-collapsed."""
    return query.casefold()


def prefix_tsquery(query: str) -> str | None:
    """'the ma' -> "'the':* & 'ma':*" (None when there is no word). Tokens are `\\w+`, which
    contain no quote, backslash or operator, so quoting them is enough."""
    words = _WORD.findall(query.casefold())[:8]
    if not words:
        return None
    return " & ".join(f"'{w}':*" for w in words)


@dataclass(frozen=True)
class Hit:
    id: str
    kind: str
    series_id: str | None
    score: float


def fuzzy_word(query: str) -> str | None:
    """The word typo tolerance works on: the longest, if long enough for trigrams to mean
    anything (a 3-letter word is "similar" to a third of the catalogue)."""
    words = _WORD.findall(query.casefold())
    longest = max(words, key=len, default="")
    return longest if len(longest) >= MIN_FUZZY_CHARS else None


async def _candidates(conn: asyncpg.Connection, query: str) -> list[Hit]:
    """Ids and scores only (full rows are read for the few shown). Four stages in one
    statement; (b) and (c) run only when full text finds fewer than FUZZY_BELOW titles
    (an InitPlan one-time filter, so otherwise they cost nothing):

    a. full text on title and credits, every word (plainto_tsquery: AND, no operators),
       weighted ts_rank plus the title's trigram similarity to the whole query;
    d. when (a) found fewer than FILL_BELOW: description-only matches, most watched first
       (ranking every description that mentions a common word is what made search slow);
    b. typo tolerance: titles with a word similar to the query's longest word (the GIN
       trigram index), scored by similarity to the whole query — "silvr moon kingdom"
       fetches the few "kingdom" titles, not every title with a "moon";
    c. a query too short for trigrams: titles with a word starting with it.
    """
    rows = await conn.fetch(
        f"""WITH a AS (
                SELECT id, kind, series_id,
                       ts_rank(search_doc, tsq) * 2 + word_similarity(f, search_title)
                       + ln(1 + popularity) * 0.01 AS score
                  FROM catalog.titles, plainto_tsquery('catalog.search', $1) AS tsq, catalog.fold($1) AS f
                 WHERE visible AND head_doc @@ tsq
                 ORDER BY score DESC, id LIMIT {CANDIDATES}
            ), d AS (
                SELECT id, kind, series_id, {DESCRIPTION_SCORE} + ln(1 + popularity) * 0.01 AS score
                  FROM catalog.titles, plainto_tsquery('catalog.search', $1) AS tsq
                 WHERE (SELECT count(*) FROM a) < {FILL_BELOW}
                   AND visible AND search_doc @@ tsq AND NOT head_doc @@ tsq
                 ORDER BY popularity DESC, id LIMIT {CANDIDATES}
            ), b AS (
                SELECT id, kind, series_id, word_similarity(f, search_title) + ln(1 + popularity) * 0.01 AS score
                  FROM catalog.titles, catalog.fold($1) AS f
                 -- `<%` uses pg_trgm.word_similarity_threshold, a database default (migration 0003)
                 WHERE $2::text IS NOT NULL
                   AND (SELECT count(*) FROM a) + (SELECT count(*) FROM d) < {FUZZY_BELOW}
                   AND visible AND catalog.fold($2) <% search_title
                 ORDER BY score DESC, id LIMIT {CANDIDATES}
            ), c AS (
                SELECT id, kind, series_id, {WORD_SIMILARITY_THRESHOLD} + ln(1 + popularity) * 0.01 AS score
                  FROM catalog.titles
                 WHERE $2::text IS NULL AND $3::text IS NOT NULL
                   AND (SELECT count(*) FROM a) + (SELECT count(*) FROM d) < {FUZZY_BELOW}
                   AND visible AND prefix_doc @@ to_tsquery('catalog.prefix', $3)
                 ORDER BY popularity DESC, id LIMIT {CANDIDATES}
            )
            SELECT id, kind, series_id, max(score) AS score
              FROM (SELECT * FROM a UNION ALL SELECT * FROM d UNION ALL SELECT * FROM b
                    UNION ALL SELECT * FROM c) hits
             GROUP BY id, kind, series_id
             ORDER BY score DESC, id LIMIT {CANDIDATES}""",
        query,
        fuzzy_word(query),
        prefix_tsquery(query),
    )
    return [
        Hit(str(r["id"]), r["kind"], str(r["series_id"]) if r["series_id"] else None, float(r["score"])) for r in rows
    ]


@dataclass(frozen=True)
class Found:
    """One search result: a movie or series; a series found through its episodes carries
    the episodes that matched."""

    title: Title
    matched_episodes: list[Title] | None = None

    def to_json(self, poster_link: PosterLink) -> dict[str, Any]:
        item = self.title.to_json(poster_link)
        if self.matched_episodes is not None:
            item["matched_episodes"] = [e.to_json(poster_link) for e in self.matched_episodes]
        return item


async def search(conn: asyncpg.Connection, query: str, *, limit: int = DEFAULT_SEARCH_LIMIT) -> list[Found]:
    """Ranked results. An episode that matches is shown under its series (the series once,
    at its best episode's rank, with `matched_episodes`)."""
    if not query:
        return []
    hits = await _candidates(conn, query)
    order: list[str] = []  # movie or series ids, best first
    episodes: dict[str, list[str]] = {}
    for hit in hits:
        key = hit.series_id if hit.kind == "episode" and hit.series_id else hit.id
        if key not in order:
            if len(order) >= limit:
                continue
            order.append(key)
        if hit.kind == "episode":
            episodes.setdefault(key, []).append(hit.id)
    wanted = list(order) + [e for key in order for e in episodes.get(key, [])]
    known = await get_titles(conn, wanted)
    out = []
    for key in order:
        title = known.get(key)
        if title is None:  # deleted between the two queries
            continue
        if key not in episodes:
            out.append(Found(title))
            continue
        eps = sorted(
            (known[e] for e in episodes[key] if e in known),
            key=lambda e: (e.season_number or 0, e.episode_number or 0),
        )
        out.append(Found(title, eps[:EPISODES_PER_SERIES]))
    return out


async def suggest(conn: asyncpg.Connection, query: str, *, limit: int = SUGGEST_LIMIT) -> list[str]:
    """Titles (movies and series) with a word starting with each typed word, the more watched
    first; among those, titles that start with the query come first. Ordering by popularity
    alone lets Postgres walk the popularity index and stop early for a one-letter prefix
    (0.9 ms instead of 9 ms on 10,000 titles)."""
    tsq = prefix_tsquery(query)
    if tsq is None:
        return []
    rows = await conn.fetch(
        """SELECT title, search_title FROM catalog.titles
            WHERE visible AND kind <> 'episode'
              AND prefix_doc @@ to_tsquery('catalog.prefix', $1)
            ORDER BY popularity DESC, id DESC
            LIMIT $2""",
        tsq,
        limit * SUGGEST_OVERFETCH,
    )
    folded = query.casefold()
    # stable: popularity order within each group
    ranked = sorted(rows, key=lambda r: not r["search_title"].startswith(folded))
    seen: set[str] = set()
    out = []
    for r in ranked:
        if r["title"].casefold() not in seen:
            seen.add(r["title"].casefold())
            out.append(r["title"])
    return out[:limit]
