"""Favorites, history (last write wins by client clock), continue watching, erase_viewer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from catalog import library, titles
from catalog.errors import InvalidHistory, TitleNotFound, TitleNotReady
from tests.catalog.fixtures import make_series, make_title

UNKNOWN = "00000000-0000-0000-0000-000000000000"


def new_user() -> str:
    return str(uuid.uuid4())


async def test_favorites_idempotent(pg):
    user, t = new_user(), await make_title(pg)
    await library.add_favorite(pg, user, t.id)
    await library.add_favorite(pg, user, t.id)
    assert [f.id for f in await library.list_favorites(pg, user)] == [t.id]
    await library.remove_favorite(pg, user, t.id)
    await library.remove_favorite(pg, user, t.id)
    assert await library.list_favorites(pg, user) == []


async def test_favorites_unknown_and_not_ready(pg):
    user, pending = new_user(), await make_title(pg, ready=False)
    with pytest.raises(TitleNotFound):
        await library.add_favorite(pg, user, UNKNOWN)
    with pytest.raises(TitleNotFound):
        await library.add_favorite(pg, user, "nonsense")
    with pytest.raises(TitleNotReady):
        await library.add_favorite(pg, user, pending.id)
    with pytest.raises(TitleNotFound):
        await library.remove_favorite(pg, user, UNKNOWN)
    await library.remove_favorite(pg, user, pending.id)  # nothing to remove: still fine


async def test_history_last_write_wins_by_client_clock(pg):
    user, t = new_user(), await make_title(pg, duration_s=1000)
    now = datetime.now(UTC)
    assert await library.record_progress(pg, user, t.id, position_s=500, client_ts=now - timedelta(seconds=10))
    # a stale tab reports an older position with an older timestamp: ignored
    assert not await library.record_progress(pg, user, t.id, position_s=20, client_ts=now - timedelta(seconds=60))
    [entry] = await library.list_history(pg, user)
    assert entry.position_s == 500
    assert await library.record_progress(pg, user, t.id, position_s=600, client_ts=now)
    assert (await library.list_history(pg, user))[0].position_s == 600


async def test_history_future_clock_cannot_pin_progress(pg):
    user, t = new_user(), await make_title(pg, duration_s=1000)
    await library.record_progress(pg, user, t.id, position_s=100, client_ts=datetime.now(UTC) + timedelta(days=365))
    assert await library.record_progress(pg, user, t.id, position_s=200)
    assert (await library.list_history(pg, user))[0].position_s == 200


async def test_history_finished_and_clamped(pg):
    user, t = new_user(), await make_title(pg, duration_s=100)
    await library.record_progress(pg, user, t.id, position_s=96)
    assert (await library.list_history(pg, user))[0].finished
    user2 = new_user()
    await library.record_progress(pg, user2, t.id, position_s=5000)
    [entry] = await library.list_history(pg, user2)
    assert entry.position_s == 100 and entry.finished


async def test_history_bad_input(pg):
    user, t = new_user(), await make_title(pg)
    with pytest.raises(InvalidHistory):
        await library.record_progress(pg, user, t.id, position_s=-1)
    with pytest.raises(TitleNotFound):
        await library.record_progress(pg, user, UNKNOWN, position_s=1)
    with pytest.raises(TitleNotReady):
        await library.record_progress(pg, user, (await make_title(pg, ready=False)).id, position_s=1)
    series, _ = await make_series(pg, "Not playable", [(1, 1)])
    with pytest.raises(InvalidHistory):
        await library.record_progress(pg, user, series.id, position_s=1)


async def test_popularity_counts_viewers_per_title_and_show(pg):
    series, eps = await make_series(pg, "Pop Show", [(1, 1), (1, 2)])
    a, b = new_user(), new_user()
    await library.record_progress(pg, a, eps[0].id, position_s=10)
    await library.record_progress(pg, a, eps[0].id, position_s=20)  # same viewer: no change
    await library.record_progress(pg, a, eps[1].id, position_s=10)  # same show: series unchanged
    await library.record_progress(pg, b, eps[1].id, position_s=10)
    got = await titles.get_titles(pg, [series.id, eps[0].id, eps[1].id])
    assert (got[series.id].popularity, got[eps[0].id].popularity, got[eps[1].id].popularity) == (2, 1, 2)
    await library.erase_viewer(pg, a)
    got = await titles.get_titles(pg, [series.id, eps[0].id, eps[1].id])
    assert (got[series.id].popularity, got[eps[0].id].popularity, got[eps[1].id].popularity) == (1, 0, 1)


async def test_continue_watching(pg):
    user = new_user()
    movie = await make_title(pg, duration_s=1000)
    done_movie = await make_title(pg, duration_s=1000)
    barely = await make_title(pg, duration_s=1000)
    series, eps = await make_series(pg, "Next Up", [(1, 1), (1, 2), (2, 1)])
    last_series, last_eps = await make_series(pg, "All Done", [(1, 1)])
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    await library.record_progress(pg, user, movie.id, position_s=300, client_ts=t0)
    await library.record_progress(pg, user, done_movie.id, position_s=990, client_ts=t0)
    await library.record_progress(pg, user, barely.id, position_s=1, client_ts=t0)
    await library.record_progress(pg, user, eps[0].id, position_s=599, client_ts=t0)
    await library.record_progress(pg, user, eps[1].id, position_s=599, client_ts=t0 + timedelta(seconds=5))
    await library.record_progress(pg, user, last_eps[0].id, position_s=599, client_ts=t0)
    items = await library.continue_watching(pg, user)
    got = {e.title.id: e.position_s for e in items}
    # in progress movie; a finished episode's next one (S1E2 finished -> S2E1); nothing else
    assert got == {movie.id: 300, eps[2].id: 0.0}
    assert items[0].title.id == eps[2].id  # most recent activity first


async def test_continue_watching_short_titles(pg):
    """ "Started" scales with the title: halfway through a 4 s clip is in progress, 0.1 s into
    it (under 5 % of it) is not, and a long title keeps the 5 s threshold."""
    user = new_user()
    clip = await make_title(pg, duration_s=4)
    barely_clip = await make_title(pg, duration_s=4)
    long_movie = await make_title(pg, duration_s=7200)
    await library.record_progress(pg, user, clip.id, position_s=2)
    await library.record_progress(pg, user, barely_clip.id, position_s=0.1)
    await library.record_progress(pg, user, long_movie.id, position_s=4.9)
    got = {e.title.id: e.position_s for e in await library.continue_watching(pg, user)}
    assert got == {clip.id: 2}


@pytest.mark.parametrize(
    ("position", "duration", "started"),
    [
        pytest.param(2, 4, True, id="half-of-4s"),
        pytest.param(0.2, 4, True, id="exactly-5-percent"),
        pytest.param(0.19, 4, False, id="under-5-percent"),
        pytest.param(5, 7200, True, id="long-5s"),
        pytest.param(4.9, 7200, False, id="long-under-5s"),
        pytest.param(5, None, True, id="unknown-duration-5s"),
        pytest.param(4, None, False, id="unknown-duration-under-5s"),
        pytest.param(0, 4, False, id="zero"),
    ],
)
def test_is_started(position, duration, started):
    assert library.is_started(position, duration) is started


async def test_erase_viewer(pg):
    user, other, t = new_user(), new_user(), await make_title(pg)
    await library.add_favorite(pg, user, t.id)
    await library.record_progress(pg, user, t.id, position_s=5)
    await library.add_favorite(pg, other, t.id)
    await library.erase_viewer(pg, user)
    await library.erase_viewer(pg, user)  # twice is fine
    assert await library.list_favorites(pg, user) == [] and await library.list_history(pg, user) == []
    assert [f.id for f in await library.list_favorites(pg, other)] == [t.id]
