"""A `playable` title (its first version still being encoded) is seen by viewers like a ready
one: browse, search, its series, favorites, history and recommendations; and it stops being
seen when that version fails for good."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from catalog import browse, library, recommend, search, status, titles
from catalog.cursor import derive_key
from tests.catalog.fixtures import make_series, make_title

KEY = derive_key("playable-test")


async def make_playable(pg: Any, **fields: Any) -> titles.Title:
    t = await make_title(pg, ready=False, **fields)
    await status.mark_processing(pg, t.id)
    assert await status.mark_playable(pg, t.id, "v1", duration_s=100.0)
    return await titles.get_title(pg, t.id)


async def _browse_ids(pg: Any, params: dict[str, str], *, admin: bool = False) -> set[str]:
    items, _ = await browse.browse(pg, browse.parse_browse(params, admin=admin, limit=50), cursor_key=KEY)
    return {t.id for t in items}


async def test_a_playable_title_is_browsed_and_filtered_by_status(pg, genre):
    playable = await make_playable(pg, genres=[genre])
    processing = await make_title(pg, ready=False, genres=[genre])
    await status.mark_processing(pg, processing.id)
    ready = await make_title(pg, genres=[genre])
    assert await _browse_ids(pg, {"genre": genre}) == {playable.id, ready.id}
    assert await _browse_ids(pg, {"genre": genre, "status": "playable"}, admin=True) == {playable.id}
    # newest: it was published when it became playable
    items, _ = await browse.browse(pg, browse.parse_browse({"genre": genre}, admin=False), cursor_key=KEY)
    assert items[0].id == ready.id and items[1].id == playable.id


async def test_a_playable_title_shows_no_poster_of_its_unfinished_version(pg):
    t = await make_playable(pg)
    assert t.poster_tag is None  # an uploaded one still shows
    t = await titles.set_uploaded_poster(pg, t.id, etag="0123456789abcdef0123", content_type="image/png")
    assert t.poster_tag == "u0123456789abcdef"
    await status.publish_ready(pg, t.id, "v1", duration_s=100.0)
    t = await titles.get_title(pg, t.id)
    await pg.execute("UPDATE catalog.titles SET poster_etag = NULL WHERE id = $1::uuid", t.id)
    assert (await titles.get_title(pg, t.id)).poster_tag == "v1"


async def test_a_playable_title_is_found_by_search(pg):
    word = "Playablezz" + secrets.token_hex(3)
    t = await make_playable(pg, title=f"{word} Movie")
    assert t.id in {f.title.id for f in await search.search(pg, word)}


async def test_a_playable_episode_makes_its_series_visible(pg, genre):
    series, eps = await make_series(pg, "Playable Show " + genre, [(1, 1)], ready=False, genres=[genre])
    assert not series.visible
    await status.mark_playable(pg, eps[0].id, "v1", duration_s=30.0)
    series = await titles.get_title(pg, series.id)
    assert series.visible and series.published_at is not None
    assert series.id in await _browse_ids(pg, {"genre": genre})
    first = await titles.first_playable_episode(pg, series.id)
    assert first is not None and first.id == eps[0].id
    # the episode's version fails for good: the series is hidden again
    assert await status.fail_progressive(pg, eps[0].id, "v1", "encoder crashed")
    assert not (await titles.get_title(pg, series.id)).visible


async def test_viewers_favorite_watch_and_get_a_playable_title_recommended(pg, genre):
    t = await make_playable(pg, genres=[genre])
    viewer = str(uuid.uuid4())
    await library.add_favorite(pg, viewer, t.id)
    assert t.id in {f.id for f in await library.list_favorites(pg, viewer)}
    assert await library.record_progress(pg, viewer, t.id, position_s=20.0)
    assert t.id in {e.title.id for e in await library.continue_watching(pg, viewer)}
    await pg.execute("UPDATE catalog.titles SET popularity = 10 ^ 9 WHERE id = $1::uuid", t.id)
    try:
        picks = await recommend.recommend(pg, str(uuid.uuid4()), limit=5)
        assert picks[0].title.id == t.id
    finally:
        await pg.execute("UPDATE catalog.titles SET popularity = 0 WHERE id = $1::uuid", t.id)
