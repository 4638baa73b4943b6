"""Browse: filters, sorts, keyset pagination, cursors bound to their query."""

from __future__ import annotations

import pytest

from catalog import browse
from catalog.cursor import derive_key
from catalog.errors import InvalidCursor
from tests.catalog.fixtures import make_series, make_title

KEY = derive_key("browse-test")


async def _all_pages(pg, params, *, admin=False, limit=browse.DEFAULT_LIMIT):
    seen, cursor, pages = [], None, 0
    while True:
        q = browse.parse_browse({**params, **({"cursor": cursor} if cursor else {})}, admin=admin, limit=limit)
        items, cursor = await browse.browse(pg, q, cursor_key=KEY)
        seen += items
        pages += 1
        if cursor is None:
            return seen, pages


async def test_newest_pages_cover_everything_once(pg, genre):
    made = [await make_title(pg, genres=[genre], year=2000 + i) for i in range(7)]
    seen, pages = await _all_pages(pg, {"genre": genre}, limit=3)
    assert pages == 3
    assert [t.id for t in seen] == [t.id for t in reversed(made)]  # newest first


async def test_popular_sort_and_ties(pg, genre):
    made = [await make_title(pg, genres=[genre]) for _ in range(5)]
    for pop, t in zip([5, 1, 5, 0, 3], made, strict=True):
        await pg.execute("UPDATE catalog.titles SET popularity = $2 WHERE id = $1::uuid", t.id, pop)
    seen, _ = await _all_pages(pg, {"genre": genre, "sort": "popular"}, limit=2)
    pops = [t.popularity for t in seen]
    assert pops == sorted(pops, reverse=True) and len({t.id for t in seen}) == 5


async def test_filters(pg, genre):
    movie = await make_title(pg, genres=[genre, "other"], year=1999)
    await make_title(pg, genres=[genre], year=2005)
    series, eps = await make_series(pg, "Filter Show", [(1, 1)], genres=[genre])
    hidden = await make_title(pg, genres=[genre], ready=False)

    ids = lambda items: {t.id for t in items}  # noqa: E731
    assert movie.id in ids((await _all_pages(pg, {"genre": genre.upper(), "year": "1999"}))[0])
    everything = ids((await _all_pages(pg, {"genre": genre}))[0])
    assert series.id in everything and eps[0].id not in everything and hidden.id not in everything
    assert ids((await _all_pages(pg, {"genre": genre, "kind": "episode"}))[0]) == {eps[0].id}
    assert ids((await _all_pages(pg, {"genre": genre, "kind": "series"}))[0]) == {series.id}
    # admins see every status, and can narrow by one
    admin_all = ids((await _all_pages(pg, {"genre": genre}, admin=True))[0])
    assert hidden.id in admin_all
    # (make_series leaves the series itself pending: only its episode makes it visible)
    pending = ids((await _all_pages(pg, {"genre": genre, "status": "pending"}, admin=True))[0])
    assert pending == {hidden.id, series.id}


async def test_unknown_genre_is_empty(pg):
    items, cursor = await browse.browse(
        pg, browse.parse_browse({"genre": "no-such-genre-ever"}, admin=False), cursor_key=KEY
    )
    assert items == [] and cursor is None


async def test_cursor_from_another_query_is_refused(pg, genre):
    for _ in range(3):
        await make_title(pg, genres=[genre])
    _, cursor = await browse.browse(pg, browse.parse_browse({"genre": genre}, admin=False, limit=1), cursor_key=KEY)
    assert cursor
    for params in ({"genre": genre, "sort": "popular"}, {"genre": "x"}, {}):
        with pytest.raises(InvalidCursor):
            await browse.browse(
                pg, browse.parse_browse({**params, "cursor": cursor}, admin=False, limit=1), cursor_key=KEY
            )
    with pytest.raises(InvalidCursor):
        await browse.browse(
            pg,
            browse.parse_browse({"genre": genre, "cursor": cursor}, admin=False, limit=1),
            cursor_key=derive_key("x"),
        )


async def test_pagination_uses_the_partial_index(pg):
    await pg.execute("SET enable_seqscan = off")  # the session DB is tiny; ask what the planner can do
    try:
        plan = "\n".join(
            r[0]
            for r in await pg.fetch(
                "EXPLAIN SELECT id FROM catalog.titles WHERE visible AND kind <> 'episode'"
                " ORDER BY added_at DESC, id DESC LIMIT 21"
            )
        )
    finally:
        await pg.execute("RESET enable_seqscan")
    assert "titles_browse_new_idx" in plan
