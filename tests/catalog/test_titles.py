"""Titles in Postgres: fields, visibility kept by triggers, series ordering, updates, deletes."""

from __future__ import annotations

import secrets

import pytest

from catalog import status, titles
from catalog.errors import DuplicateEpisode, InvalidTitle, TitleNotFound
from tests.catalog.fixtures import make_series, make_title


async def test_create_with_credits_and_genres(pg):
    t = await titles.create_title(
        pg,
        kind="movie",
        title="  Credits Test ",
        genres=["Drama", " drama ", "Sci-Fi"],
        credits=[{"name": "Ann Actor", "role": "cast", "character": "Hero"}, "Dee Rector"],
    )
    assert t.title == "Credits Test" and t.genres == ["drama", "sci-fi"]
    assert t.credits == [{"name": "Ann Actor", "role": "cast", "character": "Hero"}, {"name": "Dee Rector"}]
    assert t.status == "pending" and not t.visible and t.poster_tag is None
    j = t.to_json(lambda tid, tag: f"/poster/{tid}?v={tag}")
    assert {
        "id",
        "kind",
        "title",
        "year",
        "genres",
        "description",
        "status",
        "duration_s",
        "credits",
        "poster_url",
    } <= set(j)


@pytest.mark.parametrize(
    "credits",
    [
        pytest.param("Ann", id="not-a-list"),
        pytest.param([{"role": "cast"}], id="no-name"),
        pytest.param([{"name": "A", "age": 3}], id="unknown-field"),
        pytest.param([{"name": 5}], id="name-not-string"),
    ],
)
async def test_bad_credits(pg, credits):
    with pytest.raises(InvalidTitle):
        await titles.create_title(pg, kind="movie", title="Bad credits", credits=credits)


async def test_publish_makes_visible_and_poster_tag(pg):
    t = await make_title(pg, ready=False)
    assert not t.visible
    await status.publish_ready(pg, t.id, "v9", duration_s=12.5)
    t = await titles.get_title(pg, t.id)
    assert t.visible and t.status == "ready" and t.duration_s == 12.5
    assert t.poster_tag == "v9"
    assert t.to_json(lambda tid, tag: f"/poster/{tid}?v={tag}")["poster_url"] == f"/poster/{t.id}?v=v9"
    await pg.execute("UPDATE catalog.titles SET status = 'failed', failure_reason = 'boom' WHERE id = $1::uuid", t.id)
    t = await titles.get_title(pg, t.id)
    assert not t.visible and t.failure_reason == "boom"


async def test_series_visible_once_an_episode_is_ready(pg):
    series, eps = await make_series(pg, "Visible Later", [(1, 1)], ready=False)
    assert not series.visible
    await status.publish_ready(pg, eps[0].id, "v1", duration_s=10)
    series = await titles.get_title(pg, series.id)
    assert series.visible and series.published_at is not None
    await pg.execute("UPDATE catalog.titles SET status = 'failed' WHERE id = $1::uuid", eps[0].id)
    assert not (await titles.get_title(pg, series.id)).visible
    await titles.delete_title_tree(pg, eps[0].id)
    assert not (await titles.get_title(pg, series.id)).visible


async def test_series_made_ready_is_visible_without_episodes(pg):
    s = await titles.create_title(pg, kind="series", title="Announced show")
    assert s.status == "ready" and s.visible


async def test_new_episode_makes_series_newest(pg):
    series, _ = await make_series(pg, "Bumped Show", [(1, 1)])
    before = series.added_at
    await make_title(pg, kind="episode", title="Bumped S1E2", series_id=series.id, season_number=1, episode_number=2)
    after = (await titles.get_title(pg, series.id)).added_at
    assert after > before


async def test_episodes_listed_in_order(pg):
    series, _ = await make_series(pg, "Ordered Show", [(2, 1), (1, 2), (1, 1), (10, 1)])
    episodes = await titles.list_episodes(pg, series.id, visible_only=True)
    assert [(e.season_number, e.episode_number) for e in episodes] == [(1, 1), (1, 2), (2, 1), (10, 1)]
    seasons = titles.seasons_json(episodes, lambda tid, tag: f"/poster/{tid}?v={tag}")
    assert [s["season_number"] for s in seasons] == [1, 2, 10]
    assert [e["episode_number"] for e in seasons[0]["episodes"]] == [1, 2]


async def test_duplicate_episode_and_bad_parent(pg):
    series, _ = await make_series(pg, "Dup Show", [(1, 1)])
    with pytest.raises(DuplicateEpisode):
        await titles.create_title(
            pg, kind="episode", title="again", series_id=series.id, season_number=1, episode_number=1
        )
    movie = await make_title(pg)
    with pytest.raises(InvalidTitle):
        await titles.create_title(
            pg, kind="episode", title="orphan", series_id=movie.id, season_number=1, episode_number=1
        )


async def test_update_title(pg):
    t = await make_title(pg, title="Before")
    t2 = await titles.update_title(
        pg, t.id, {"title": "After", "genres": ["Noir"], "credits": [{"name": "Z"}], "year": 1999}
    )
    assert (t2.title, t2.genres, t2.credits, t2.year) == ("After", ["noir"], [{"name": "Z"}], 1999)
    with pytest.raises(InvalidTitle):
        await titles.update_title(pg, t.id, {"status": "ready"})
    with pytest.raises(InvalidTitle):
        await titles.update_title(pg, t.id, {"year": 1})
    with pytest.raises(TitleNotFound):
        await titles.update_title(pg, "00000000-0000-0000-0000-000000000000", {"title": "x"})


async def test_delete_tree(pg):
    series, eps = await make_series(pg, "Doomed", [(1, 1), (1, 2)])
    deleted = await titles.delete_title_tree(pg, series.id)
    assert set(deleted) == {series.id, *(e.id for e in eps)}
    with pytest.raises(TitleNotFound):
        await titles.delete_title_tree(pg, series.id)
    with pytest.raises(TitleNotFound):
        await titles.get_title(pg, "not-a-uuid")


async def test_list_titles_and_find_by_name(pg):
    name = "Named " + secrets.token_hex(3)
    older = await make_title(pg, title=name, ready=False)
    newer = await make_title(pg, title=name)
    assert [t.id for t in await titles.find_by_name(pg, name)] == [newer.id, older.id]
    listed = [t.id for t in await titles.list_titles(pg)]
    assert listed.index(older.id) < listed.index(newer.id)  # hidden ones too, oldest first
