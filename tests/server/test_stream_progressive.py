"""The origin and a version still being encoded (a progressive model): a missing segment or init
is asked for (the app's segment bumper) and waited for, then served as any other, or answered
503 segment_not_ready; its model is read again every few seconds, its playlists live briefly.

The bump hook here is a recorder (the end-to-end tests use the transcoder's queue)."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time

import m3u8
import pytest

from media import keys as media_keys
from media.backend import open_storage
from server import keys
from server.app import create_app
from server.origin import cache
from server.origin.handlers import ORIGIN, WAITS, fallbacks
from tests.server.origin_support import new_title_id, presentation, store_in, token_for

WAIT_S = 1.0


class Bumps:
    """A recording bump hook; `fail` makes it raise as a database outage would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, int | None]] = []
        self.fallbacks: list[tuple[tuple[str, int], ...]] = []
        self.fail = False

    async def __call__(
        self,
        title_id: str,
        version: str,
        rendition_id: str,
        number: int | None,
        fallbacks: tuple[tuple[str, int], ...],
    ) -> None:
        self.calls.append((title_id, version, rendition_id, number))
        self.fallbacks.append(fallbacks)
        if self.fail:
            raise ConnectionRefusedError("database is down")


class Progressive:
    """A progressive version in file storage with some objects missing, served by an app with a
    recording bumper and a short segment_wait_s."""

    def __init__(self, client, sv, token, storage, bumps) -> None:
        self.client, self.sv, self.token, self.storage, self.bumps = client, sv, token, storage, bumps

    def url(self, name: str) -> str:
        return self.sv.url(name, self.token)

    def key(self, name: str) -> str:
        return media_keys.object_key(self.sv.title_id, self.sv.version, name)

    async def remove(self, *names: str) -> None:
        for name in names:
            path = self.storage.local_path(self.key(name))
            assert path is not None
            path.unlink()

    async def put(self, name: str, after_s: float = 0.0) -> None:
        await asyncio.sleep(after_s)
        await self.storage.put_bytes(self.key(name), self.sv.objects[name])

    async def put_model(self, p) -> None:
        await self.storage.put_bytes(media_keys.model_key(p.title_id, p.version), p.to_json().encode())


async def _progressive(aiohttp_client, settings, *, progressive: bool = True, missing=("v360/2.m4s", "v720/init.mp4")):
    s = dataclasses.replace(settings, segment_wait_s=WAIT_S)
    p = dataclasses.replace(presentation(new_title_id(), "v" + secrets.token_hex(4)), progressive=progressive)
    sv = await store_in(s, p)
    app = create_app(s)
    bumps = Bumps()
    hook: keys.SegmentBumper = bumps
    app[keys.SEGMENT_BUMPER] = hook
    client = await aiohttp_client(app)
    storage = open_storage(s.storage_url)
    pv = Progressive(client, sv, token_for(s.secret_key, sv, s.playback_window_s), storage, bumps)
    await pv.remove(*missing)
    return pv


@pytest.fixture
async def prog(aiohttp_client, settings):
    pv = await _progressive(aiohttp_client, settings)
    yield pv
    await pv.storage.close()


async def _code(r) -> str:
    return (await r.json())["error"]["code"]


async def test_a_segment_that_appears_is_served_after_waiting(prog):
    writer = asyncio.create_task(prog.put("v360/2.m4s", after_s=0.5))
    start = time.monotonic()
    r = await prog.client.get(prog.url("v360/2.m4s"))
    waited = time.monotonic() - start
    await writer
    assert r.status == 200, await r.text()
    assert await r.read() == prog.sv.objects["v360/2.m4s"]
    assert 0.45 <= waited < WAIT_S
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert prog.bumps.calls == [(prog.sv.title_id, prog.sv.version, "v360", 2)]
    # The lowest rung's own wait names only the audio beside it as what comes next.
    assert prog.bumps.fallbacks == [(("a0", 2),)]
    # Then it is an ordinary cached segment (the fast path answers it): ranges, validators.
    r = await prog.client.get(prog.url("v360/2.m4s"), headers={"Range": "bytes=10-19"})
    assert r.status == 206 and await r.read() == prog.sv.objects["v360/2.m4s"][10:20]
    r = await prog.client.head(prog.url("v360/2.m4s"))
    assert r.status == 200 and r.headers["Content-Length"] == str(len(prog.sv.objects["v360/2.m4s"]))
    assert len(prog.bumps.calls) == 1
    assert not prog.client.app[WAITS].polls


async def test_a_segment_that_never_appears_is_503_not_ready(prog):
    for method in ("GET", "HEAD"):
        start = time.monotonic()
        r = await prog.client.request(method, prog.url("v360/2.m4s"))
        waited = time.monotonic() - start
        assert r.status == 503, method
        assert WAIT_S - 0.05 <= waited < WAIT_S + 1.0, method
        assert r.headers["Retry-After"] == "2"
        assert r.headers["Cache-Control"] == "no-store"
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        if method == "GET":
            assert await _code(r) == "segment_not_ready"
    assert prog.bumps.calls == [(prog.sv.title_id, prog.sv.version, "v360", 2)] * 2
    # Nobody waits any more: no poller is left behind.
    assert not prog.client.app[WAITS].polls and prog.client.app[WAITS].waiters == 0


async def test_a_missing_init_is_bumped_with_none(prog):
    writer = asyncio.create_task(prog.put("v720/init.mp4", after_s=0.3))
    r = await prog.client.get(prog.url("v720/init.mp4"))
    await writer
    assert r.status == 200
    assert await r.read() == prog.sv.objects["v720/init.mp4"]
    assert prog.bumps.fallbacks == [()]  # an init names nothing else
    assert prog.bumps.calls == [(prog.sv.title_id, prog.sv.version, "v720", None)]


async def test_a_higher_rungs_wait_names_the_audio_and_the_lowest_rung_at_that_number(aiohttp_client, settings):
    pv = await _progressive(aiohttp_client, settings, missing=("v720/3.m4s",))
    try:
        writer = asyncio.create_task(pv.put("v720/3.m4s", after_s=0.3))
        r = await pv.client.get(pv.url("v720/3.m4s"))
        await writer
        assert r.status == 200
        assert pv.bumps.calls == [(pv.sv.title_id, pv.sv.version, "v720", 3)]
        assert pv.bumps.fallbacks == [(("a0", 3), ("v360", 3))]
    finally:
        await pv.storage.close()


def test_fallbacks_of_each_kind_of_segment() -> None:
    p = presentation(new_title_id(), "v1", segments=4)
    assert fallbacks(p, "v720", 1) == (("a0", 1), ("v360", 1))
    assert fallbacks(p, "v720", 4) == (("a0", 4), ("v360", 4))
    assert fallbacks(p, "v360", 4) == (("a0", 4),)
    assert fallbacks(p, "v720", None) == ()
    assert fallbacks(p, "a0", 4) == ()
    assert fallbacks(p, "nope", 4) == ()
    assert fallbacks(presentation(new_title_id(), "v1", audio=False), "v720", 2) == (("v360", 2),)


async def test_concurrent_requests_share_one_poller_and_one_bump(prog):
    polls_seen = []

    async def get():
        return await prog.client.get(prog.url("v360/2.m4s"))

    requests = [asyncio.create_task(get()) for _ in range(6)]
    await asyncio.sleep(0.2)
    waits = prog.client.app[WAITS]
    polls_seen.append((len(waits.polls), waits.waiters))
    await prog.put("v360/2.m4s")
    answers = await asyncio.gather(*requests)
    assert [r.status for r in answers] == [200] * 6
    for r in answers:
        assert await r.read() == prog.sv.objects["v360/2.m4s"]
    assert polls_seen == [(1, 6)]
    assert len(prog.bumps.calls) == 1


async def test_past_the_waiter_cap_the_answer_is_503_at_once(prog):
    prog.client.app[WAITS].limit = 1
    first = asyncio.create_task(prog.client.get(prog.url("v360/2.m4s")))
    await asyncio.sleep(0.2)
    start = time.monotonic()
    r = await prog.client.get(prog.url("v720/init.mp4"))
    assert r.status == 503 and time.monotonic() - start < 0.5
    assert await _code(r) == "segment_not_ready"
    assert r.headers["Retry-After"] == "2" and r.headers["Cache-Control"] == "no-store"
    await prog.put("v360/2.m4s")
    assert (await first).status == 200


async def test_a_failing_bump_does_not_stop_the_wait(prog):
    prog.bumps.fail = True
    writer = asyncio.create_task(prog.put("v360/2.m4s", after_s=0.3))
    r = await prog.client.get(prog.url("v360/2.m4s"))
    await writer
    assert r.status == 200
    assert len(prog.bumps.calls) == 1


async def test_the_default_bumper_with_the_database_down_still_waits(aiohttp_client, settings):
    """The app's own bumper (transcoder.tasks, over the app's pool): with the pool closed the
    bump fails, and the request still waits and is answered."""
    s = dataclasses.replace(settings, segment_wait_s=0.5)
    p = dataclasses.replace(presentation(new_title_id(), "v1"), progressive=True)
    sv = await store_in(s, p)
    client = await aiohttp_client(create_app(s))
    await client.app[keys.PG].close()
    storage = open_storage(s.storage_url)
    try:
        path = storage.local_path(media_keys.object_key(sv.title_id, sv.version, "a0/3.m4s"))
        assert path is not None
        path.unlink()
        start = time.monotonic()
        r = await client.get(sv.url("a0/3.m4s", token_for(s.secret_key, sv)))
        assert r.status == 503 and await _code(r) == "segment_not_ready"
        assert time.monotonic() - start >= 0.45
    finally:
        await storage.close()


async def test_beyond_the_timeline_is_404_without_a_wait(prog):
    for name in ("v360/4.m4s", "v360/0.m4s"):
        start = time.monotonic()
        r = await prog.client.get(prog.url(name))
        assert r.status == 404 and await _code(r) == "segment_not_found"
        assert time.monotonic() - start < 0.5
    assert prog.bumps.calls == []


async def test_a_missing_segment_of_a_finished_version_is_still_404(aiohttp_client, settings):
    pv = await _progressive(aiohttp_client, settings, progressive=False)
    try:
        start = time.monotonic()
        r = await pv.client.get(pv.url("v360/2.m4s"))
        assert r.status == 404 and await _code(r) == "segment_not_found"
        assert time.monotonic() - start < 0.5
        assert pv.bumps.calls == []
    finally:
        await pv.storage.close()


async def test_the_measured_model_replaces_the_predicted_one(prog, monkeypatch):
    monkeypatch.setattr(cache, "MODEL_RECHECK_S", 0.3)
    master = prog.url("master.m3u8")
    r = await prog.client.get(master)
    assert r.status == 200
    assert r.headers["Cache-Control"] == "private, max-age=2"
    text = await r.text()
    assert "AVERAGE-BANDWIDTH" not in text and m3u8.loads(text).playlists
    for name in ("v360/index.m3u8", "manifest.mpd"):
        r = await prog.client.get(prog.url(name))
        assert r.status == 200 and r.headers["Cache-Control"] == "private, max-age=2", name
    # Served again and again (the fast path), the predicted model stays until it is due.
    for _ in range(3):
        r = await prog.client.get(master)
        assert "AVERAGE-BANDWIDTH" not in await r.text()
    # The last chunk lands: model.json is overwritten in place with the measured model.
    await prog.put("v360/2.m4s")
    await prog.put("v720/init.mp4")
    measured = dataclasses.replace(prog.sv.presentation, progressive=False)
    await prog.put_model(measured)
    await asyncio.sleep(0.4)
    r = await prog.client.get(master)
    assert r.status == 200
    assert "AVERAGE-BANDWIDTH" in await r.text()
    assert r.headers["Cache-Control"] == "private, max-age=60"
    r = await prog.client.get(prog.url("v360/index.m3u8"))
    assert r.headers["Cache-Control"] == "private, max-age=60"
    # Measured: no more re-reads, and a missing object is the finished version's 404.
    o = prog.client.app[ORIGIN]
    assert o.model(prog.sv.title_id, prog.sv.version) is not None
    assert not o.rechecks
    await prog.remove("v360/3.m4s")
    r = await prog.client.get(prog.url("v360/3.m4s"))
    assert r.status == 404 and await _code(r) == "segment_not_found"
    assert prog.bumps.calls == []


async def test_an_unchanged_model_read_again_keeps_its_playlists(prog, monkeypatch):
    monkeypatch.setattr(cache, "MODEL_RECHECK_S", 0.1)
    o = prog.client.app[ORIGIN]
    r = await prog.client.get(prog.url("master.m3u8"))
    etag = r.headers["ETag"]
    generation = o.generation
    await asyncio.sleep(0.2)
    r = await prog.client.get(prog.url("master.m3u8"))
    assert r.headers["ETag"] == etag
    assert o.generation == generation  # read again, found equal: nothing dropped
    assert prog.bumps.calls == []


async def test_s3_segment_appears_after_waiting(aiohttp_client, settings, s3_server):
    s3 = dataclasses.replace(
        settings,
        storage_url=f"s3://origin-{secrets.token_hex(4)}/media",
        s3_endpoint_url=s3_server,
        segment_wait_s=WAIT_S,
    )
    p = dataclasses.replace(presentation(new_title_id(), "v1"), progressive=True)
    sv = await store_in(s3, p, create_bucket=True)
    storage = open_storage(s3.storage_url, s3.s3_endpoint_url)
    try:
        key = media_keys.object_key(sv.title_id, sv.version, "v720/3.m4s")
        await storage.delete_prefix(key)
        client = await aiohttp_client(create_app(s3))
        token = token_for(s3.secret_key, sv)
        r = await client.get(sv.url("v720/3.m4s", token))
        assert r.status == 503 and await _code(r) == "segment_not_ready"

        async def later():
            await asyncio.sleep(0.4)
            await storage.put_bytes(key, sv.objects["v720/3.m4s"])

        writer = asyncio.create_task(later())
        r = await client.get(sv.url("v720/3.m4s", token))
        await writer
        assert r.status == 200 and await r.read() == sv.objects["v720/3.m4s"]
    finally:
        await storage.close()


async def test_the_default_bumper_puts_the_segment_first_in_the_queue(aiohttp_client, settings, pg):
    """The app's own bumper on a real queue: a viewer waiting for v720 segment 3 of a version
    whose tasks are queued makes exactly that cell a task at priority 0."""
    from transcoder import jobs, tasks

    s = dataclasses.replace(settings, segment_wait_s=0.5)
    title_id = new_title_id()
    p = dataclasses.replace(presentation(title_id, "v" + secrets.token_hex(4)), progressive=True)
    sv = await store_in(s, p)
    queued = await jobs.enqueue(pg, title_id, f"sources/{title_id}/original.mp4", 3)
    job = await jobs.claim(pg, "coordinator", 30, title_id=title_id)
    assert job is not None and job.id == queued.id
    assert await jobs.set_version(pg, job, p.version)
    await tasks.create_tasks(pg, job, p.version, tasks.plan_tasks(("v720", "v360"), "a0", 3, 8), max_attempts=3)
    client = await aiohttp_client(create_app(s))
    storage = open_storage(s.storage_url)
    try:
        path = storage.local_path(media_keys.object_key(title_id, p.version, "v720/3.m4s"))
        assert path is not None
        path.unlink()
        r = await client.get(sv.url("v720/3.m4s", token_for(s.secret_key, sv)))
        assert r.status == 503 and await _code(r) == "segment_not_ready"
    finally:
        await storage.close()
    first = [t for t in await tasks.job_tasks(pg, job.id) if t.priority == 0 and ("v720", 3) in t.cells()]
    assert len(first) == 1 and list(first[0].cells()) == [("v720", 3)], first
