"""Recommendations: co-watch + genre similarity, never what the viewer finished; popular for
a new viewer; a reason for every pick."""

from __future__ import annotations

import uuid

from catalog import library, recommend
from tests.catalog.fixtures import make_title


def new_user() -> str:
    return str(uuid.uuid4())


async def test_new_viewer_gets_popular(pg, genre):
    hit = await make_title(pg, genres=[genre])
    await pg.execute("UPDATE catalog.titles SET popularity = 10 ^ 9 WHERE id = $1::uuid", hit.id)
    picks = await recommend.recommend(pg, new_user(), limit=5)
    assert picks[0].title.id == hit.id and picks[0].reason == recommend.REASON_POPULAR
    await pg.execute("UPDATE catalog.titles SET popularity = 0 WHERE id = $1::uuid", hit.id)


async def test_co_watch_and_genre_blend(pg, genre):
    seed = await make_title(pg, title="Seed Film", genres=[genre], duration_s=100)
    co = await make_title(pg, title="Co Film", genres=["unrelated" + genre])
    same_genre = await make_title(pg, title="Genre Film", genres=[genre])
    finished = await make_title(pg, title="Finished Film", genres=[genre], duration_s=100)
    viewer = new_user()
    await library.record_progress(pg, viewer, seed.id, position_s=50)
    await library.record_progress(pg, viewer, finished.id, position_s=99)
    for i in range(3):  # other viewers watched the seed and the co film
        other = new_user()
        await library.record_progress(pg, other, seed.id, position_s=10)
        await library.record_progress(pg, other, co.id, position_s=10)
        if i == 0:
            await library.record_progress(pg, other, finished.id, position_s=10)
    picks = await recommend.recommend(pg, viewer, limit=10)
    by_id = {p.title.id: p for p in picks}
    assert finished.id not in by_id and seed.id not in by_id
    assert by_id[co.id].reason == "Viewers who watched Seed Film also watched this"
    assert by_id[same_genre.id].reason.startswith("Because you like")
    assert picks[0].title.id == co.id
    assert all(p.reason for p in picks)


async def test_favorites_seed_genres(pg, genre):
    fav = await make_title(pg, genres=[genre])
    match = await make_title(pg, genres=[genre])
    viewer = new_user()
    await library.add_favorite(pg, viewer, fav.id)
    picks = await recommend.recommend(pg, viewer, limit=10)
    ids = [p.title.id for p in picks]
    assert match.id in ids and fav.id not in ids
