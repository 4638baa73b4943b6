"""The chunked encode end to end, with real workers in-process: a title is playable (from a
complete, progressive model) before it is ready, the measured model replaces the prediction
without changing a segment, two workers share one title, a deleted title stops every task, a
source shorter than its header says never lists a segment that will not exist, and a re-encode
keeps the old version playing until the new one is complete."""

from __future__ import annotations

import array
import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from catalog import titles
from catalog.errors import TitleNotFound
from media import keys
from media.probe import probe
from media.storage import Storage
from packager.model import Presentation
from server.settings import Settings
from tests.transcoder.jobs_support import (  # noqa: F401 (fixtures)
    job_of,
    make_worker,
    own_database_url,
    own_settings,
    pool,
    storage,
    stored_keys,
    task_row,
    work_dirs,
)
from transcoder import jobs, tasks
from transcoder.ingest import ingest
from transcoder.ladder import plan_ladder
from transcoder.pipeline import check_presentation
from transcoder.remove import remove_title
from transcoder.taskrun import TaskWork, put_inits, run_task


async def _ingest(pool: asyncpg.Pool, storage: Storage, settings: Settings, source: Path, name: str) -> titles.Title:
    return await ingest(
        pool, storage, source=str(source), title=name, max_source_bytes=10**9, work_dir=settings.work_dir
    )


async def _title(pool: asyncpg.Pool, title_id: str) -> titles.Title:
    async with pool.acquire() as conn:
        return await titles.get_title(conn, title_id)


async def _model(storage: Storage, title_id: str, version: str) -> Presentation:
    return Presentation.from_json(await storage.get_bytes(keys.model_key(title_id, version)))


@contextlib.asynccontextmanager
async def watching(pool: asyncpg.Pool, title_id: str) -> AsyncIterator[list[tuple[str, str | None]]]:
    """Every (status, current version) the title goes through while the block runs."""
    seen: list[tuple[str, str | None]] = []

    async def watch() -> None:
        while True:
            with contextlib.suppress(TitleNotFound):
                t = await _title(pool, title_id)
                if not seen or seen[-1] != (t.status, t.current_version):
                    seen.append((t.status, t.current_version))
            await asyncio.sleep(0.02)

    task = asyncio.create_task(watch())
    try:
        yield seen
    finally:
        task.cancel()
        await asyncio.wait({task})
    t = await _title(pool, title_id)
    if seen[-1] != (t.status, t.current_version):
        seen.append((t.status, t.current_version))


async def test_playable_from_a_progressive_model_then_ready_with_the_measured_one(
    settings: Settings,
    pool: asyncpg.Pool,
    storage: Storage,
    clip_factory: Callable[..., Path],
) -> None:
    clip = clip_factory(seconds=13, width=640, height=360)
    title = await ingest(
        pool, storage, source=str(clip), title="Early", max_source_bytes=10**9, work_dir=settings.work_dir
    )
    worker = make_worker(pool, storage, settings, title_id=title.id, chunk_segments=2)
    predicted: list[Presentation] = []

    async def grab_the_prediction() -> None:
        while True:
            t = await _title(pool, title.id)
            if t.status == "playable" and t.current_version:
                predicted.append(await _model(storage, title.id, t.current_version))
                return
            await asyncio.sleep(0.01)

    grab = asyncio.create_task(grab_the_prediction())
    async with watching(pool, title.id) as seen:
        await asyncio.wait_for(worker.run(once=True), 120)
    grab.cancel()
    await asyncio.wait({grab})
    t = await _title(pool, title.id)
    assert t.status == "ready", t.failure_reason
    statuses = [s for s, _ in seen]
    assert "playable" in statuses and statuses.index("playable") < statuses.index("ready"), seen
    assert {v for _, v in seen if v} == {t.current_version}  # one version from playable to ready

    assert predicted, "the prediction was replaced before it could be read"
    before, after = predicted[0], await _model(storage, title.id, t.current_version or "")
    assert before.progressive and not after.progressive
    # the download and the thumbnails are made from the finished segments, after the encode:
    # never predicted
    assert [r.kind for r in after.renditions if before.rendition(r.id) is None] == ["download", "image"]
    for r in after.renditions:
        p = before.rendition(r.id)
        if r.kind in ("download", "image"):
            continue
        assert p is not None
        # the timeline the players got first is the one that was made
        assert [s.duration for s in p.segments] == [s.duration for s in r.segments], r.id
        assert (p.timescale, p.start_time, p.codecs) == (r.timescale, r.start_time, r.codecs), r.id
        assert r.bandwidth_peak <= p.bandwidth_peak, r.id  # the advertised cap held
    assert len(after.video[0].segments) == 4  # 13 s in 4 s segments
    job = await job_of(pool, title.id)
    assert job.status == "done" and job.version == t.current_version
    async with pool.acquire() as conn:
        done = await tasks.job_tasks(conn, job.id)
    assert len(done) > 3 and {x.status for x in done} == {"done"}  # it was cut into tasks
    assert work_dirs(settings) == []


async def test_two_workers_share_one_title(
    own_settings: Settings,
    storage: Storage,
    clip_factory: Callable[..., Path],
) -> None:
    """Its own database: the unfiltered workers see only this title."""
    clip = clip_factory(seconds=24, width=640, height=360, audio=False)
    own_pool = await asyncpg.create_pool(own_settings.database_url, min_size=1, max_size=12)
    try:
        title = await ingest(
            own_pool, storage, source=str(clip), title="Shared", max_source_bytes=10**9, work_dir=own_settings.work_dir
        )
        first = make_worker(own_pool, storage, own_settings, chunk_segments=1, worker_id="first")
        second = make_worker(own_pool, storage, own_settings, chunk_segments=1, worker_id="second")
        run_first = asyncio.create_task(first.run())
        await asyncio.sleep(0.3)  # the first one coordinates
        run_second = asyncio.create_task(second.run())
        try:

            async def ready() -> bool:
                return (await _title(own_pool, title.id)).status == "ready"

            for _ in range(1200):
                if await ready():
                    break
                await asyncio.sleep(0.1)
        finally:
            first.stop()
            second.stop()
            await asyncio.wait({run_first, run_second})
        t = await _title(own_pool, title.id)
        assert t.status == "ready", t.failure_reason
        job = await job_of(own_pool, title.id)
        async with own_pool.acquire() as conn:
            done = await tasks.job_tasks(conn, job.id)
        assert {x.worker_id for x in done} == {"first", "second"}, [(x.id, x.worker_id) for x in done]
        assert job.worker_id == "first"
    finally:
        await own_pool.close()


def _still_running(worker: Any) -> list[str]:
    """What keeps a worker busy, with where each of its tasks waits (a failure's diagnosis)."""
    running = [*worker._tasks.values(), *worker._runs.values()]

    def where(task: asyncio.Task[Any]) -> str:
        return " < ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in task.get_stack())

    return [f"{t.get_name()} at {where(t)}" for t in running]


async def test_work_after_a_task_stops_when_its_job_ends(
    settings: Settings, pool: asyncpg.Pool, storage: Storage, clip_factory: Callable[..., Path]
) -> None:
    """What a worker does for a task after completing it (the other rungs' init segments) has
    no lease of its own: it is stopped when the title is deleted, and returns its result
    otherwise."""
    title = await _ingest(pool, storage, settings, clip_factory(seconds=2), "Gone soon")
    job = await job_of(pool, title.id)
    worker = make_worker(pool, storage, settings, title_id=title.id, lease_s=1.5)
    task = task_row(job_id=job.id, title_id=title.id, version="v-test", status="done", worker_id=worker.worker_id)

    async def quick() -> str:
        await asyncio.sleep(0.8)  # longer than a check of the job: it runs on while the job does
        return "made"

    assert await worker._while_job_runs(task, quick()) == "made"
    stopped = asyncio.Event()

    async def endless() -> str:
        try:
            await asyncio.sleep(3600)
            return "made at last"
        finally:
            stopped.set()

    watched = asyncio.create_task(worker._while_job_runs(task, endless()))
    await asyncio.sleep(0.3)
    assert not watched.done()
    await remove_title(pool, storage, title.id)
    assert await asyncio.wait_for(watched, 10) is None
    assert stopped.is_set()
    # The title went first: what the work put under its version meanwhile goes too.
    await storage.put_bytes(keys.object_key(title.id, "v-test", "v360/init.mp4"), b"late", "video/mp4")
    watched = asyncio.create_task(worker._while_job_runs(task, endless()))
    await asyncio.wait_for(watched, 10)
    assert await stored_keys(storage, title.id) == []


async def test_deleting_a_title_stops_every_task(
    settings: Settings,
    pool: asyncpg.Pool,
    storage: Storage,
    clip_factory: Callable[..., Path],
) -> None:
    clip = clip_factory(seconds=30, width=1280, height=720)
    title = await ingest(
        pool, storage, source=str(clip), title="Doomed", max_source_bytes=10**9, work_dir=settings.work_dir
    )
    worker = make_worker(pool, storage, settings, title_id=title.id, chunk_segments=2, lease_s=1.5)
    runner = asyncio.create_task(worker.run(once=True))
    try:
        for _ in range(600):
            if len(worker._runs) >= 2:  # the audio and a video task encode
                break
            await asyncio.sleep(0.05)
        assert len(worker._runs) >= 2
        await remove_title(pool, storage, title.id)
        try:
            await asyncio.wait_for(asyncio.shield(runner), 30)  # every task stopped, none left to claim
        except TimeoutError:
            raise AssertionError(f"the worker still runs after the title went: {_still_running(worker)}") from None
    finally:
        runner.cancel()
        await asyncio.wait({runner})
    job = await job_of(pool, title.id)
    assert job.status == "cancelled"
    async with pool.acquire() as conn:
        left = await tasks.job_tasks(conn, job.id)
        assert await tasks.claim_task(conn, "anyone", 30, job_id=job.id) is None
    assert all(x.status in ("cancelled", "done", "queued") for x in left), [(x.id, x.status) for x in left]
    assert await stored_keys(storage, title.id) == []
    assert await storage.list(keys.source_prefix(title.id)) == []
    assert work_dirs(settings) == []


async def test_a_source_shorter_than_its_header_never_lists_missing_segments(
    settings: Settings,
    pool: asyncpg.Pool,
    storage: Storage,
    clip_factory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """A faststart MP4 cut short: the header (first in the file) still says 12 s, the media
    ends at about half. The published timeline is the real one from the first playlist on."""
    whole = clip_factory(seconds=12, width=320, height=180, extra=["-movflags", "+faststart"])
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    title = await ingest(
        pool, storage, source=str(cut), title="Cut", max_source_bytes=10**9, work_dir=settings.work_dir
    )
    worker = make_worker(pool, storage, settings, title_id=title.id, chunk_segments=1)
    models: list[Presentation] = []

    async def grab() -> None:
        while True:
            t = await _title(pool, title.id)
            if t.current_version:
                models.append(await _model(storage, title.id, t.current_version))
                return
            await asyncio.sleep(0.01)

    grabbing = asyncio.create_task(grab())
    await asyncio.wait_for(worker.run(once=True), 120)
    grabbing.cancel()
    await asyncio.wait({grabbing})
    t = await _title(pool, title.id)
    assert t.status == "ready", t.failure_reason
    final = await _model(storage, title.id, t.current_version or "")
    assert final.duration_s < 9  # not the 12 s of the header
    for model in [*models, final]:
        for r in model.renditions:
            for n in range(r.start_number, r.start_number + len(r.segments)):
                await storage.head(keys.object_key(title.id, model.version, r.segment_name(n)))  # all exist
    assert any("header" in line for line in final.extra["source_adjustments"]), final.extra


async def test_a_reencode_keeps_the_old_version_until_the_new_one_is_complete(
    settings: Settings,
    pool: asyncpg.Pool,
    storage: Storage,
    ready_title: dict[str, Any],
) -> None:
    tid, old = ready_title["id"], ready_title["version"]
    async with pool.acquire() as conn:
        source = await conn.fetchval(
            "SELECT source FROM jobs.transcode_jobs WHERE title_id = $1 ORDER BY id DESC LIMIT 1", tid
        )
        await jobs.enqueue(conn, tid, source, 3)
    worker = make_worker(pool, storage, settings, title_id=tid, chunk_segments=1)
    async with watching(pool, tid) as seen:
        await asyncio.wait_for(worker.run(once=True), 120)
    t = await _title(pool, tid)
    assert t.status == "ready" and t.current_version not in (None, old)
    assert seen[0] == ("ready", old) and seen[-1] == ("ready", t.current_version)
    assert all(s == "ready" for s, _ in seen), seen  # never playable, never processing: the old one played
    assert {k.split("/")[2] for k in await stored_keys(storage, tid)} == {t.current_version}


@pytest.mark.parametrize("chunk_segments", [0, -1])
def test_chunk_segments_must_be_positive(settings: Settings, chunk_segments: int) -> None:
    import dataclasses

    from server.settings import ConfigError

    with pytest.raises(ConfigError, match="STREAMFLIX_CHUNK_SEGMENTS"):
        dataclasses.replace(settings, chunk_segments=chunk_segments)


def test_audio_part_segments_zero_or_more(settings: Settings) -> None:
    import dataclasses

    from server.settings import ConfigError

    assert settings.audio_part_segments == 30
    assert dataclasses.replace(settings, audio_part_segments=0).audio_part_segments == 0  # parts off
    with pytest.raises(ConfigError, match="STREAMFLIX_AUDIO_PART_SEGMENTS"):
        dataclasses.replace(settings, audio_part_segments=-1)


async def test_a_long_title_encodes_its_audio_in_parts(
    settings: Settings,
    pool: asyncpg.Pool,
    storage: Storage,
    clip_factory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """Parts of 2 x 4 s (the frame grid at 48 kHz; STREAMFLIX_AUDIO_PART_SEGMENTS=2) on a
    22 s clip: three audio parts through a real worker; ready, the checks pass, the audio is
    contiguous and ends with the video as a one-task title's does, and its decoded samples
    are the source's, with no click where one part hands over to the next."""
    clip = clip_factory(seconds=22, width=320, height=180, fps=10)
    title = await _ingest(pool, storage, settings, clip, "Parts")
    worker = make_worker(pool, storage, settings, title_id=title.id, chunk_segments=8, audio_part_segments=2)
    await asyncio.wait_for(worker.run(once=True), 120)
    t = await _title(pool, title.id)
    assert t.status == "ready", t.failure_reason
    job = await job_of(pool, title.id)
    async with pool.acquire() as conn:
        audio = sorted(
            (x.first_number, x.segment_count) for x in await tasks.job_tasks(conn, job.id) if x.kind == "audio"
        )
    assert audio == [(1, 2), (3, 2), (5, 2)]
    version = t.current_version or ""
    model = await _model(storage, title.id, version)
    check_presentation(model, expected_duration_s=22)
    a0, top = model.rendition("a0"), model.video[0]
    assert a0 is not None

    def end(r: Any) -> Fraction:
        return Fraction(r.start_time + sum(s.duration for s in r.segments), r.timescale)

    # the audio track is one priming frame (and the last frame's padding) longer than the video
    assert 0 <= end(a0) - end(top) < Fraction(2 * 1024, 48_000)
    joined = tmp_path / "a0.mp4"
    with joined.open("wb") as f:
        f.write(await storage.get_bytes(keys.object_key(title.id, version, "a0/init.mp4")))
        for n in range(1, len(a0.segments) + 1):
            f.write(await storage.get_bytes(keys.object_key(title.id, version, f"a0/{n}.m4s")))
    made, source = _pcm(joined), _pcm(clip)
    source = array.array("f", bytes(4 * 1024)) + source  # the track starts with the priming frame
    n = min(len(made), len(source))
    assert n > 21 * 48_000
    assert max(abs(made[i] - source[i]) for i in range(n)) < 0.01
    step = max(abs(source[i] - source[i - 1]) for i in range(1, n))
    for first in (3, 5):
        at = (first - 1) * 4 * 48_000 + 1024
        assert max(abs(made[i] - made[i - 1]) for i in range(at - 2048, at + 2048)) <= step * 1.05


def _pcm(path: Path) -> array.array:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a", "-f", "f32le", "-ac", "1", "-ar", "48000", "-"],
        check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip
    samples = array.array("f")
    samples.frombytes(raw)
    return samples


async def test_inits_are_stored_ahead_of_their_rungs_media(
    settings: Settings, storage: Storage, clip_factory: Callable[..., Path], tmp_path: Path
) -> None:
    clip = clip_factory(seconds=5, width=854, height=480)
    p = await probe(str(clip))
    ladder = plan_ladder(p, segment_s=4)
    assert [r.id for r in ladder.rungs] == ["v480", "v360"]
    work = TaskWork(title_id=str(uuid.uuid4()), version="v1", source=str(clip), probe=p, ladder=ladder, total=2)
    key = keys.object_key(work.title_id, work.version, "v480/init.mp4")
    put = await put_inits(storage, work, ["v480"], tmp_path / "inits", preset="veryfast", threads=0)
    assert put == ["v480"]
    assert await stored_keys(storage, work.title_id) == [key]  # the init alone, no media
    ahead = await storage.get_bytes(key)
    # Stored already: nothing is made again.
    assert await put_inits(storage, work, ["v480"], tmp_path / "again", preset="veryfast", threads=0) == []
    assert not (tmp_path / "again").exists()
    # The rung's own task then finds its init there and writes the same bytes beside it.
    await run_task(
        storage,
        work,
        kind="video",
        renditions=("v480",),
        first=1,
        count=2,
        out_dir=tmp_path / "task",
        preset="veryfast",
        threads=0,
        timeout_s=None,
    )
    assert (tmp_path / "task" / "v480" / "init.mp4").read_bytes() == ahead == await storage.get_bytes(key)
