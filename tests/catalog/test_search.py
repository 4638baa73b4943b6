"""Search and suggest against Postgres: weighting, typos, grouping, hostile input."""

from __future__ import annotations

import secrets

import pytest

from catalog import search
from tests.catalog.fixtures import make_series, make_title


def _ids(found):
    return [f.title.id for f in found]


async def test_typo_finds_the_matrix(pg):
    m = await make_title(pg, title="The Matrix")
    for q in ("matirx", "the matrx", "Matrix", "MATRIX"):
        assert m.id in _ids(await search.search(pg, q)), q


async def test_title_outranks_credits_outranks_description(pg):
    word = "zq" + secrets.token_hex(3)
    by_desc = await make_title(pg, title="Plain One", description=f"a story about {word}")
    by_credit = await make_title(pg, title="Plain Two", credits=[{"name": f"{word} Smith", "role": "cast"}])
    by_title = await make_title(pg, title=f"{word} Returns")
    found = _ids(await search.search(pg, word))
    assert found.index(by_title.id) < found.index(by_credit.id) < found.index(by_desc.id)


async def test_actor_name_and_stemming(pg):
    name = "Qwerty" + secrets.token_hex(2)
    m = await make_title(pg, title="Running Films", credits=[{"name": f"{name} Reeves"}])
    assert m.id in _ids(await search.search(pg, name.lower()))
    assert m.id in _ids(await search.search(pg, "run film"))  # english stemming


async def test_accents_fold(pg):
    m = await make_title(pg, title="Amélie Zyx" + secrets.token_hex(2))
    assert m.id in _ids(await search.search(pg, "amelie"))
    assert m.id in _ids(await search.search(pg, "AMÉLIE"))


async def test_episodes_grouped_under_series(pg):
    tag = "Grp" + secrets.token_hex(3)
    series, eps = await make_series(pg, f"{tag} Chronicles", [(1, 1), (1, 2), (2, 1), (2, 2)])
    found = await search.search(pg, tag)
    series_items = [f for f in found if f.title.id == series.id]
    assert len(series_items) == 1, "the series appears once"
    assert not any(f.title.kind == "episode" for f in found if f.title.series_id == series.id)
    matched = series_items[0].matched_episodes
    assert [(e.season_number, e.episode_number) for e in matched] == [(1, 1), (1, 2), (2, 1)]


async def test_hidden_titles_not_found(pg):
    tag = "Hid" + secrets.token_hex(3)
    m = await make_title(pg, title=f"{tag} Secret", ready=False)
    assert m.id not in _ids(await search.search(pg, tag))


@pytest.mark.parametrize(
    "q",
    [
        pytest.param("'", id="quote"),
        pytest.param("o'brien", id="quote-in-word"),
        pytest.param("a & b", id="and"),
        pytest.param("a | b", id="or"),
        pytest.param("!matrix", id="not"),
        pytest.param("mat:*", id="prefix-op"),
        pytest.param("\\", id="backslash"),
        pytest.param("'; DROP TABLE catalog.titles; --", id="sql"),
        pytest.param("(((", id="parens"),
        pytest.param(".*[a-z]+$", id="regex"),
        pytest.param("%_%", id="like-wildcards"),
        pytest.param("<->", id="phrase-op"),
        pytest.param("🎬🍿", id="emoji"),
        pytest.param("שלום", id="hebrew-rtl"),
        pytest.param("مرحبا بالعالم", id="arabic-rtl"),
        pytest.param("a" * 200, id="max-length"),
    ],
)
async def test_hostile_queries_are_inert(pg, q):
    query = search.normalize_query(q)
    assert isinstance(await search.search(pg, query), list)
    assert isinstance(await search.suggest(pg, query), list)
    assert await pg.fetchval("SELECT count(*) FROM catalog.titles") >= 0  # still there


async def test_metacharacters_still_match_words(pg):
    m = await make_title(pg, title="The Matrix")
    assert m.id in _ids(await search.search(pg, "!matrix"))
    assert m.id in _ids(await search.search(pg, "matrix:*"))


async def test_rtl_and_emoji_titles(pg):
    hebrew = await make_title(pg, title="שלום עולם " + secrets.token_hex(2))
    emoji = await make_title(pg, title="🎬 Popcorn Night")
    assert hebrew.id in _ids(await search.search(pg, "שלום"))
    assert emoji.id in _ids(await search.search(pg, "popcorn"))
    assert hebrew.title in await search.suggest(pg, "של")


async def test_empty_query_is_empty(pg):
    assert await search.search(pg, "") == []
    assert await search.suggest(pg, "") == []


async def test_suggest_prefix_then_word_prefix(pg):
    tag = "sug" + secrets.token_hex(3)
    starts = await make_title(pg, title=f"{tag}gest Starts")
    contains = await make_title(pg, title=f"A {tag}gested Middle")
    hidden = await make_title(pg, title=f"{tag} Hidden", ready=False)
    got = await search.suggest(pg, tag)
    assert got[:2] == [starts.title, contains.title]
    assert hidden.title not in got
    assert await search.suggest(pg, f"a {tag}") == [contains.title]
    assert len(await search.suggest(pg, "a")) <= search.SUGGEST_LIMIT


async def test_trigram_threshold_is_the_database_default(pg):
    assert float(await pg.fetchval("SHOW pg_trgm.word_similarity_threshold")) == search.WORD_SIMILARITY_THRESHOLD
