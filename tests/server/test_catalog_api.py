"""Catalog HTTP API: browse, title pages, search, suggest, admin CRUD, posters, ETags."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets

import pytest

from media import keys as media_keys
from media.backend import open_storage
from server.api import cache
from tests.catalog.fixtures import admin_headers, genre, make_series, make_title, viewer_headers  # noqa: F401

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 100
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100


async def settle(client):
    """Titles made straight in Postgres reach the cache through NOTIFY, asynchronously; bump
    the version now so the next GET cannot race it."""
    await client.app[cache.CACHE].bump()


async def error_of(r):
    body = await r.json()
    return body["error"]["code"]


# ---- browse ------------------------------------------------------------------------------


async def test_browse_pages_with_cursor(app_client, pg, genre):
    made = [await make_title(pg, genres=[genre]) for _ in range(5)]
    await settle(app_client)
    seen, url = [], f"/api/v1/titles?genre={genre}&limit=2"
    while url:
        r = await app_client.get(url)
        assert r.status == 200
        body = await r.json()
        seen += [i["id"] for i in body["items"]]
        url = f"/api/v1/titles?genre={genre}&limit=2&cursor={body['next']}" if body["next"] else None
    assert seen == [t.id for t in reversed(made)]


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param(
            base64.urlsafe_b64encode(json.dumps(["2020-01-01T00:00:00+00:00", "x"]).encode()).decode().rstrip("=")
            + ".AAAA",
            id="forged-mac",
        ),
        pytest.param("e30.e30", id="json-looking"),
        pytest.param("%00", id="nul"),
        pytest.param("x" * 4000, id="long"),
    ],
)
async def test_browse_forged_cursor_is_400(app_client, cursor):
    r = await app_client.get("/api/v1/titles", params={"cursor": cursor})
    assert r.status == 400
    assert await error_of(r) == "invalid_cursor"


async def test_browse_cursor_for_another_query_is_400(app_client, pg, genre):
    for _ in range(3):
        await make_title(pg, genres=[genre])
    await settle(app_client)
    body = await (await app_client.get(f"/api/v1/titles?genre={genre}&limit=1")).json()
    r = await app_client.get(f"/api/v1/titles?genre={genre}&limit=1&sort=popular&cursor={body['next']}")
    assert r.status == 400 and await error_of(r) == "invalid_cursor"


@pytest.mark.parametrize("limit", ["0", "-1", "1000000000", "abc"])
async def test_browse_bad_limit_is_400(app_client, limit):
    r = await app_client.get("/api/v1/titles", params={"limit": limit})
    assert r.status == 400
    body = await r.json()
    assert body["error"]["code"] == "invalid_query" and "limit" in body["error"]["message"]


async def test_browse_unknown_genre_is_empty(app_client):
    r = await app_client.get("/api/v1/titles?genre=nonexistent-genre-xyz")
    assert r.status == 200 and await r.json() == {"items": [], "next": None}


@pytest.mark.parametrize(
    "params",
    [{"kind": "cartoon"}, {"sort": "random"}, {"year": "abc"}, {"genre": "drama\x00"}, {"genre": "\x07"}],
)
async def test_browse_bad_params(app_client, params):
    r = await app_client.get("/api/v1/titles", params=params)
    assert r.status == 400


async def test_browse_status_is_for_admins(app_client, pg, genre, admin_headers, viewer_headers):
    pending = await make_title(pg, genres=[genre], ready=False)
    await settle(app_client)
    r = await app_client.get(f"/api/v1/titles?genre={genre}&status=pending", headers=viewer_headers)
    assert r.status == 403
    r = await app_client.get(f"/api/v1/titles?genre={genre}&status=pending")
    assert r.status == 403
    r = await app_client.get(f"/api/v1/titles?genre={genre}&status=pending", headers=admin_headers)
    assert [i["id"] for i in (await r.json())["items"]] == [pending.id]
    r = await app_client.get(f"/api/v1/titles?genre={genre}")
    assert (await r.json())["items"] == []


# ---- title pages -------------------------------------------------------------------------


async def test_series_page_lists_seasons(app_client, pg):
    series, eps = await make_series(pg, "Page Show " + secrets.token_hex(2), [(2, 1), (1, 2), (1, 1)])
    await settle(app_client)
    r = await app_client.get(f"/api/v1/titles/{series.id}")
    assert r.status == 200
    body = await r.json()
    assert [s["season_number"] for s in body["seasons"]] == [1, 2]
    assert [e["episode_number"] for e in body["seasons"][0]["episodes"]] == [1, 2]
    r = await app_client.get(f"/api/v1/titles/{eps[0].id}")
    assert (await r.json())["series_title"] == series.title


async def test_hidden_title_is_404_for_viewers(app_client, pg, admin_headers):
    t = await make_title(pg, ready=False)
    await settle(app_client)
    assert (await app_client.get(f"/api/v1/titles/{t.id}")).status == 404
    r = await app_client.get(f"/api/v1/titles/{t.id}", headers=admin_headers)
    assert r.status == 200 and (await r.json())["status"] == "pending"
    assert (await app_client.get("/api/v1/titles/not-a-uuid")).status == 404


async def test_etag_and_304(app_client, pg):
    t = await make_title(pg)
    await settle(app_client)
    r = await app_client.get(f"/api/v1/titles/{t.id}")
    etag = r.headers["ETag"]
    assert r.headers["Cache-Control"].startswith("public")
    r = await app_client.get(f"/api/v1/titles/{t.id}", headers={"If-None-Match": etag})
    assert r.status == 304 and r.headers["ETag"] == etag and await r.read() == b""
    r = await app_client.get(f"/api/v1/titles/{t.id}", headers={"If-None-Match": f'"other", W/{etag}'})
    assert r.status == 304
    r = await app_client.get(f"/api/v1/titles/{t.id}", headers={"If-None-Match": '"other"'})
    assert r.status == 200


# ---- admin CRUD --------------------------------------------------------------------------


async def test_admin_create_patch_delete(app_client, admin_headers, settings):
    r = await app_client.post(
        "/api/v1/titles",
        json={
            "kind": "series",
            "title": "Admin Show",
            "genres": ["Drama"],
            "credits": [{"name": "A. Writer", "role": "creator"}],
        },
        headers=admin_headers,
    )
    assert r.status == 201, await r.text()
    series = await r.json()
    assert series["status"] == "ready" and series["credits"] == [{"name": "A. Writer", "role": "creator"}]
    r = await app_client.post(
        "/api/v1/titles",
        json={"kind": "episode", "title": "Pilot", "series_id": series["id"], "season_number": 1, "episode_number": 1},
        headers=admin_headers,
    )
    assert r.status == 201
    episode = await r.json()
    assert episode["status"] == "pending"
    r = await app_client.post(
        "/api/v1/titles",
        json={
            "kind": "episode",
            "title": "Pilot again",
            "series_id": series["id"],
            "season_number": 1,
            "episode_number": 1,
        },
        headers=admin_headers,
    )
    assert r.status == 409

    r = await app_client.patch(
        f"/api/v1/titles/{series['id']}", json={"title": "Renamed Show", "year": 2001}, headers=admin_headers
    )
    assert r.status == 200 and (await r.json())["title"] == "Renamed Show"
    # the cached page follows the write
    assert (await (await app_client.get(f"/api/v1/titles/{series['id']}")).json())["title"] == "Renamed Show"

    storage = open_storage(settings.storage_url)
    await storage.put_bytes(media_keys.object_key(episode["id"], "v1", "x.m4s"), b"data")
    r = await app_client.delete(f"/api/v1/titles/{series['id']}", headers=admin_headers)
    assert r.status == 204
    assert await storage.list(media_keys.title_prefix(episode["id"])) == []
    assert (await app_client.get(f"/api/v1/titles/{series['id']}", headers=admin_headers)).status == 404
    assert (await app_client.delete(f"/api/v1/titles/{series['id']}", headers=admin_headers)).status == 404
    await storage.close()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"kind": "movie"}, id="no-title"),
        pytest.param({"kind": "cartoon", "title": "x"}, id="bad-kind"),
        pytest.param({"kind": "movie", "title": "x", "year": "1999"}, id="year-string"),
        pytest.param({"kind": "movie", "title": "x", "credits": [{"role": "cast"}]}, id="credit-no-name"),
        pytest.param({"kind": "movie", "title": "x", "status": "ready"}, id="unknown-field"),
        pytest.param({"kind": "episode", "title": "x"}, id="episode-without-series"),
        pytest.param({"kind": "movie", "title": "x\u0000"}, id="nul"),
    ],
)
async def test_admin_create_bad_bodies(app_client, admin_headers, body):
    r = await app_client.post("/api/v1/titles", json=body, headers=admin_headers)
    assert r.status == 400, await r.text()


async def test_admin_routes_need_admin(app_client, pg, viewer_headers):
    t = await make_title(pg)
    assert (await app_client.post("/api/v1/titles", json={"kind": "movie", "title": "x"})).status == 401
    assert (
        await app_client.post("/api/v1/titles", json={"kind": "movie", "title": "x"}, headers=viewer_headers)
    ).status == 403
    assert (await app_client.patch(f"/api/v1/titles/{t.id}", json={"title": "x"}, headers=viewer_headers)).status == 403
    assert (await app_client.delete(f"/api/v1/titles/{t.id}", headers=viewer_headers)).status == 403
    r = await app_client.post(
        f"/api/v1/titles/{t.id}/poster", data=JPEG, headers={**viewer_headers, "Content-Type": "image/jpeg"}
    )
    assert r.status == 403
    assert (await app_client.get("/api/v1/admin/search-stats", headers=viewer_headers)).status == 403


# ---- posters -----------------------------------------------------------------------------


async def test_poster_upload_and_serve(app_client, pg, admin_headers):
    t = await make_title(pg)
    url = f"/api/v1/titles/{t.id}/poster"
    r = await app_client.post(url, data=PNG, headers={**admin_headers, "Content-Type": "image/png"})
    assert r.status == 201, await r.text()
    poster_url = (await r.json())["poster_url"]
    assert poster_url.startswith(url + "?v=u")
    r = await app_client.get(poster_url)
    assert r.status == 200 and await r.read() == PNG and r.content_type == "image/png"
    assert "max-age" in r.headers["Cache-Control"]
    etag = r.headers["ETag"]
    r = await app_client.get(url, headers={"If-None-Match": etag})
    assert r.status == 304
    # the title page shows the new poster URL at once
    assert (await (await app_client.get(f"/api/v1/titles/{t.id}")).json())["poster_url"] == poster_url


@pytest.mark.parametrize(
    "ctype,data,status",
    [
        pytest.param("image/jpeg", PNG, 400, id="png-bytes-as-jpeg"),
        pytest.param("image/png", b"GIF89a" + b"\x00" * 10, 400, id="gif-as-png"),
        pytest.param("image/gif", b"GIF89a", 415, id="gif"),
        pytest.param("text/html", b"<html>", 415, id="html"),
        pytest.param("image/jpeg", b"", 400, id="empty"),
        pytest.param("image/jpeg", JPEG + b"\x00" * (5 * 1024 * 1024), 413, id="too-large"),
    ],
)
async def test_poster_bad_uploads(app_client, pg, admin_headers, ctype, data, status):
    t = await make_title(pg)
    r = await app_client.post(
        f"/api/v1/titles/{t.id}/poster", data=data, headers={**admin_headers, "Content-Type": ctype}
    )
    assert r.status == status, await r.text()


async def test_poster_missing_is_404(app_client, pg, admin_headers):
    t = await make_title(pg)  # published "v1" but nothing stored
    assert (await app_client.get(f"/api/v1/titles/{t.id}/poster")).status == 404
    r = await app_client.post(
        "/api/v1/titles/00000000-0000-0000-0000-000000000000/poster",
        data=JPEG,
        headers={**admin_headers, "Content-Type": "image/jpeg"},
    )
    assert r.status == 404


@pytest.mark.slow
async def test_poster_from_transcoded_version(app_client, ready_title):
    r = await app_client.get(f"/api/v1/titles/{ready_title['id']}")
    poster_url = (await r.json())["poster_url"]
    assert poster_url.endswith("?v=" + ready_title["version"])
    r = await app_client.get(poster_url)
    assert r.status == 200 and r.content_type == "image/jpeg"
    assert (await r.read()).startswith(b"\xff\xd8\xff")


# ---- search ------------------------------------------------------------------------------


async def test_search_typo(app_client, pg):
    m = await make_title(pg, title="The Matrix")
    await settle(app_client)
    r = await app_client.get("/api/v1/search", params={"q": "matirx"})
    assert r.status == 200 and m.id in [i["id"] for i in (await r.json())["items"]]


@pytest.mark.parametrize(
    "q",
    [
        pytest.param("'", id="quote"),
        pytest.param("&", id="and"),
        pytest.param("|", id="or"),
        pytest.param("!", id="not"),
        pytest.param(":*", id="prefix"),
        pytest.param("\\", id="backslash"),
        pytest.param("' OR 1=1 --", id="sql"),
        pytest.param("[a-z]*(", id="regex"),
        pytest.param("🍿🎬", id="emoji"),
        pytest.param("שלום", id="rtl-hebrew"),
        pytest.param("\u202eevil", id="rtl-override"),
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/search", "/api/v1/search/suggest"])
async def test_search_metacharacters(app_client, path, q):
    r = await app_client.get(path, params={"q": q})
    assert r.status == 200, await r.text()
    body = await r.json()
    assert isinstance(body.get("items", body.get("suggestions")), list)


@pytest.mark.parametrize("path", ["/api/v1/search", "/api/v1/search/suggest"])
async def test_search_too_long_is_400(app_client, path):
    # 10,000 characters: past the URI limit, answered in the API's error shape
    r = await app_client.get(path, params={"q": "x" * 10_000})
    assert r.status == 414
    assert (await r.json())["error"]["code"] == "uri_too_long"
    # under that limit, our own check answers, in the API's error shape
    r = await app_client.get(path, params={"q": "x" * 5_000})
    assert r.status == 400
    body = await r.json()
    assert body["error"]["code"] == "invalid_query" and "200" in body["error"]["message"]
    r = await app_client.get(path, params={"q": "x" * 200})
    assert r.status == 200


@pytest.mark.parametrize("q", ["", "   ", "\t\n"])
async def test_search_empty_is_empty(app_client, q):
    r = await app_client.get("/api/v1/search", params={"q": q})
    assert r.status == 200 and await r.json() == {"items": []}
    r = await app_client.get("/api/v1/search/suggest", params={"q": q})
    assert r.status == 200 and await r.json() == {"suggestions": []}
    r = await app_client.get("/api/v1/search")
    assert r.status == 200 and await r.json() == {"items": []}


async def test_suggest(app_client, pg):
    tag = "Sgx" + secrets.token_hex(3)
    t = await make_title(pg, title=f"{tag} Adventure")
    await settle(app_client)
    r = await app_client.get("/api/v1/search/suggest", params={"q": tag[:5].lower()})
    assert t.title in (await r.json())["suggestions"]
    r = await app_client.get("/api/v1/search/suggest", params={"q": "adventu"})
    assert t.title in (await r.json())["suggestions"]


async def test_search_stats(app_client, admin_headers):
    word = "stat" + secrets.token_hex(3)
    for _ in range(3):
        await app_client.get("/api/v1/search", params={"q": word.upper()})
    await app_client.get("/api/v1/search", params={"q": word + " nothing"})
    r = await app_client.get("/api/v1/admin/search-stats", headers=admin_headers)
    assert r.status == 200
    stats = await r.json()
    top = {s["query"]: s["count"] for s in stats["top"]}
    zero = {s["query"]: s["count"] for s in stats["zero_results"]}
    assert top[word] == 3 and zero[word] == 3 and zero[word + " nothing"] == 1


async def test_search_cached_then_invalidated_by_admin_write(app_client, pg, admin_headers):
    tag = "Inv" + secrets.token_hex(3)
    first = await make_title(pg, title=f"{tag} One")
    await settle(app_client)
    r1 = await app_client.get("/api/v1/search", params={"q": tag})
    assert [i["id"] for i in (await r1.json())["items"]] == [first.id]
    r = await app_client.post("/api/v1/titles", json={"kind": "series", "title": f"{tag} Two"}, headers=admin_headers)
    assert r.status == 201
    r2 = await app_client.get("/api/v1/search", params={"q": tag})
    assert len((await r2.json())["items"]) == 2
    assert r2.headers["ETag"] != r1.headers["ETag"]


async def test_admin_delete_removes_media_source_and_jobs(app_client, admin_headers, ready_title, pg):
    """The API delete and `streamflix titles delete` share one path: rows, jobs, every stored
    object of the title (versions and the uploaded source)."""
    settings = ready_title["settings"]
    storage = open_storage(settings.storage_url)
    try:
        assert await storage.list(media_keys.source_prefix(ready_title["id"]))
        r = await app_client.delete(f"/api/v1/titles/{ready_title['id']}", headers=admin_headers)
        assert r.status == 204
        assert await storage.list(media_keys.title_prefix(ready_title["id"])) == []
        assert await storage.list(media_keys.source_prefix(ready_title["id"])) == []
    finally:
        await storage.close()
    live = await pg.fetchval(
        "SELECT count(*) FROM jobs.transcode_jobs WHERE title_id = $1 AND status IN ('queued', 'running')",
        ready_title["id"],
    )
    assert live == 0
    r = await app_client.get(f"/api/v1/titles/{ready_title['id']}")
    assert r.status == 404


# ---- audit: contract fields everywhere, limits everywhere, writes refresh pages --


async def quiesce(client):
    """Wait until the NOTIFYs of titles made straight in Postgres have bumped the cache (no
    bump for 0.2 s), so a test that asserts cache hits is not raced by a late one."""
    c = client.app[cache.CACHE]
    for _ in range(50):
        generation = c.generation
        await asyncio.sleep(0.2)
        if c.generation == generation:
            return


CONTRACT_FIELDS = {"id", "kind", "title", "year", "genres", "description", "status", "duration_s"}


def _titles_in(body):
    """Every title object in a catalog answer, nested ones included."""
    if isinstance(body, dict):
        if "kind" in body and "id" in body:
            yield body
        for value in body.values():
            yield from _titles_in(value)
    elif isinstance(body, list):
        for value in body:
            yield from _titles_in(value)


async def test_every_title_json_has_the_contract_fields(app_client, pg, genre, viewer_headers):
    tag = "Ctr" + secrets.token_hex(3)
    movie = await make_title(pg, title=f"{tag} Film", genres=[genre], duration_s=100)
    series, eps = await make_series(pg, f"{tag} Show", [(1, 1), (1, 2)], genres=[genre])
    await make_title(pg, title=f"{tag} Unwatched", genres=[genre])  # something to recommend
    await settle(app_client)
    h = viewer_headers
    await app_client.put(f"/api/v1/me/favorites/{movie.id}", headers=h)
    await app_client.put(f"/api/v1/me/history/{eps[0].id}", json={"position_s": 599}, headers=h)
    await app_client.put(f"/api/v1/me/history/{movie.id}", json={"position_s": 30}, headers=h)
    seen = set()
    for path in (
        f"/api/v1/titles?genre={genre}",
        f"/api/v1/titles?genre={genre}&kind=episode",
        f"/api/v1/titles/{series.id}",
        f"/api/v1/titles/{eps[0].id}",
        f"/api/v1/search?q={tag}",
        "/api/v1/me/favorites",
        "/api/v1/me/history",
        "/api/v1/me/continue-watching",
        "/api/v1/me/recommendations",
    ):
        r = await app_client.get(path, headers=h)
        assert r.status == 200, path
        found = list(_titles_in(await r.json()))
        assert found, path
        for t in found:
            assert CONTRACT_FIELDS <= set(t), (path, CONTRACT_FIELDS - set(t))
            assert t["kind"] in ("movie", "series", "episode")
            assert t["status"] in ("pending", "processing", "playable", "ready", "failed")
            seen.add(t["id"])
    assert {movie.id, series.id, eps[0].id, eps[1].id} <= seen


@pytest.mark.parametrize("limit", ["0", "-1", "1000000000"])
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/search?q=matrix",
        "/api/v1/me/favorites",
        "/api/v1/me/history",
        "/api/v1/me/recommendations",
        "/api/v1/admin/search-stats",
    ],
)
async def test_bad_limit_is_400_everywhere(app_client, admin_headers, path, limit):
    r = await app_client.get(path, params={"limit": limit}, headers=admin_headers)
    assert r.status == 400, await r.text()
    body = await r.json()
    assert body["error"]["code"] == "invalid_query" and "limit" in body["error"]["message"]


async def test_suggest_is_cached_in_redis(app_client, pg, settings):
    tag = "Sgc" + secrets.token_hex(3)
    await make_title(pg, title=f"{tag} Cached")
    await quiesce(app_client)
    q = tag.lower()
    r1 = await app_client.get("/api/v1/search/suggest", params={"q": q})
    assert r1.headers["X-Cache"] == "miss"
    await app_client.app[cache.CACHE].drain()  # the copy in Redis is written after the answer
    redis = app_client.app[cache.CACHE].redis
    version = (await redis.get(settings.redis_prefix + cache.VERSION_KEY) or b"0").decode()
    key = f"{settings.redis_prefix}{cache.ENTRY_PREFIX}{version}:{cache.page_name('suggest', q)}"
    assert await redis.get(key) is not None
    app_client.app[cache.CACHE].local.clear()  # past the near cache: from Redis
    r2 = await app_client.get("/api/v1/search/suggest", params={"q": q})
    assert r2.headers["X-Cache"] == "hit" and await r2.json() == await r1.json()


async def test_admin_writes_make_every_cached_page_fresh(app_client, pg, genre, admin_headers):
    """Anonymous browse, title, search and suggest pages are cached; a PATCH and then a DELETE
    through the API must show on the very next read of each (version bump, no waiting)."""
    tag = "Frs" + secrets.token_hex(3)
    t = await make_title(pg, title=f"{tag} Before", genres=[genre])
    await quiesce(app_client)
    pages = {
        "browse": (f"/api/v1/titles?genre={genre}", lambda b: [i["title"] for i in b["items"]]),
        "title": (f"/api/v1/titles/{t.id}", lambda b: [b["title"]]),
        "search": (f"/api/v1/search?q={tag}", lambda b: [i["title"] for i in b["items"]]),
        "suggest": (f"/api/v1/search/suggest?q={tag.lower()}", lambda b: b["suggestions"]),
    }

    async def read_all():
        out = {}
        for name, (path, pick) in pages.items():
            r = await app_client.get(path)
            out[name] = (r.status, pick(await r.json()) if r.status == 200 else None, r.headers.get("X-Cache"))
        return out

    await read_all()
    cached = await read_all()
    assert {n: v[2] for n, v in cached.items()} == dict.fromkeys(pages, "hit")
    assert all(v[1] == [f"{tag} Before"] for v in cached.values())

    r = await app_client.patch(f"/api/v1/titles/{t.id}", json={"title": f"{tag} After"}, headers=admin_headers)
    assert r.status == 200
    after = await read_all()
    assert {n: v[1] for n, v in after.items()} == dict.fromkeys(pages, [f"{tag} After"])

    assert (await app_client.delete(f"/api/v1/titles/{t.id}", headers=admin_headers)).status == 204
    gone = await read_all()
    assert gone["title"][0] == 404
    assert gone["browse"][1] == [] and gone["search"][1] == [] and gone["suggest"][1] == []
