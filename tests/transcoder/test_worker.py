"""The worker in-process: a failed task is retried (and the probe reused), a task out of
attempts fails the title, a deleted title ends its job quietly, concurrency, the poster, and
every attempt's work dir is removed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from catalog import titles
from media import keys
from media.storage import Storage
from packager.model import Presentation
from server.settings import Settings
from tests.transcoder.jobs_support import (  # noqa: F401 (fixtures)
    ingest_and_run,
    job_of,
    make_worker,
    own_database_url,
    own_settings,
    pool,
    storage,
    stored_keys,
    work_dirs,
)
from tests.transcoder.test_worker_process import wait_until
from transcoder import chunks, per_title, poster, sources, tasks
from transcoder import worker as worker_mod
from transcoder.errors import TranscodeError
from transcoder.ingest import ingest
from transcoder.pipeline import check_presentation
from transcoder.remove import remove_title


async def test_a_failed_task_is_retried_and_the_probe_reused(
    settings: Settings,
    pool: asyncpg.Pool,
    storage: Storage,
    clip_factory: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_encode, real_probe = chunks.encode_video_task, worker_mod.run_probe
    calls = {"encode": 0, "probe": 0}

    async def flaky_encode(*args: Any, **kw: Any) -> Any:
        calls["encode"] += 1
        if calls["encode"] == 1:
            raise TranscodeError("ffmpeg failed (killed by SIGKILL): out of memory?")
        return await real_encode(*args, **kw)

    async def counting_probe(path: str) -> Any:
        calls["probe"] += 1
        return await real_probe(path)

    monkeypatch.setattr(chunks, "encode_video_task", flaky_encode)
    monkeypatch.setattr(worker_mod, "run_probe", counting_probe)
    clip = clip_factory(seconds=2, width=320, height=180)
    title = await ingest_and_run(pool, storage, settings, clip)
    assert title.status == "ready" and title.failure_reason is None
    job = await job_of(pool, title.id)
    assert (job.status, job.attempts, job.error) == ("done", 1, None)  # the task retried, not the job
    async with pool.acquire() as conn:
        done = await tasks.job_tasks(conn, job.id)
    assert {t.status for t in done} == {"done"}
    assert sorted(t.attempts for t in done if t.kind == "video")[-1] == 2
    assert calls["probe"] == 1
    assert work_dirs(settings) == []


async def test_a_task_out_of_attempts_fails_the_title(
    settings: Settings,
    pool: asyncpg.Pool,
    storage: Storage,
    clip_factory: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: Any, **kw: Any) -> Any:
        raise TranscodeError("ffmpeg failed (exit 1): Error while decoding stream #0:0")

    monkeypatch.setattr(chunks, "encode_video_task", broken)
    title = await ingest_and_run(pool, storage, settings, clip_factory(seconds=2, width=320, height=180))
    assert title.status == "failed" and title.current_version is None
    assert title.failure_reason is not None
    assert title.failure_reason.startswith("ffmpeg failed (exit 1): Error while decoding stream #0:0")
    job = await job_of(pool, title.id)
    assert (job.status, job.attempts) == ("failed", 1)  # the task had its attempts; the job none more
    async with pool.acquire() as conn:
        failed = [t for t in await tasks.job_tasks(conn, job.id) if t.status == "failed"]
    assert failed and all(t.attempts == t.max_attempts for t in failed)
    assert await stored_keys(storage, title.id) == []  # the unfinished version went too
    assert work_dirs(settings) == []


async def test_title_deleted_before_the_job_runs(
    settings: Settings,
    pool: asyncpg.Pool,
    storage: Storage,
    clip_factory: Callable[..., Path],
) -> None:
    clip = clip_factory(seconds=2, width=320, height=180)
    title = await ingest(
        pool, storage, source=str(clip), title="Gone", max_source_bytes=10**9, work_dir=settings.work_dir
    )
    async with pool.acquire() as conn:
        await titles.delete_title_tree(conn, title.id)  # the row only: the job is still queued
    w = make_worker(pool, storage, settings, title_id=title.id)
    await asyncio.wait_for(w.run(once=True), 30)
    job = await job_of(pool, title.id)
    assert (job.status, job.error) == ("cancelled", "title deleted")
    assert await stored_keys(storage, title.id) == []


async def test_title_deleted_mid_encode_ends_quietly(
    settings: Settings,
    pool: asyncpg.Pool,
    storage: Storage,
    clip_factory: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_encode = chunks.encode_video_task
    deleted: list[str] = []

    async def delete_then_encode(source: str, *args: Any, **kw: Any) -> Any:
        if not deleted:
            deleted.append("yes")
            await remove_title(pool, storage, title.id)
        return await real_encode(source, *args, **kw)

    monkeypatch.setattr(chunks, "encode_video_task", delete_then_encode)
    clip = clip_factory(seconds=2, width=320, height=180)
    title = await ingest(
        pool, storage, source=str(clip), title="Deleted midway", max_source_bytes=10**9, work_dir=settings.work_dir
    )
    w = make_worker(pool, storage, settings, title_id=title.id, lease_s=1.5)
    assert await asyncio.wait_for(w.run(once=True), 60) == 0
    assert (await job_of(pool, title.id)).status == "cancelled"
    assert await stored_keys(storage, title.id) == []
    assert await storage.list(keys.source_prefix(title.id)) == []
    assert work_dirs(settings) == []


async def test_concurrency_runs_jobs_side_by_side(
    own_settings: Settings,
    storage: Storage,
    clip_factory: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its own database, so the unfiltered worker sees only these two jobs."""
    real_encode = chunks.encode_video_task
    running, peak = 0, 0

    async def tracked(*args: Any, **kw: Any) -> Any:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.3)  # make the overlap certain
            return await real_encode(*args, **kw)
        finally:
            running -= 1

    monkeypatch.setattr(chunks, "encode_video_task", tracked)
    clip = clip_factory(seconds=2, width=320, height=180)
    own_pool = await asyncpg.create_pool(own_settings.database_url, min_size=1, max_size=8)
    try:
        made = [
            await ingest(
                own_pool,
                storage,
                source=str(clip),
                title=f"Side {i}",
                max_source_bytes=10**9,
                work_dir=own_settings.work_dir,
            )
            for i in range(2)
        ]
        w = make_worker(own_pool, storage, own_settings, concurrency=2)
        await asyncio.wait_for(w.run(once=True), 60)
        async with own_pool.acquire() as conn:
            for t in made:
                assert (await titles.get_title(conn, t.id)).status == "ready"
    finally:
        await own_pool.close()
    assert peak == 2
    assert work_dirs(own_settings) == []


async def test_ready_title_has_a_poster_and_only_its_version(
    ready_title: dict[str, Any],
    storage: Storage,
    pool: asyncpg.Pool,
) -> None:
    tid, version = ready_title["id"], ready_title["version"]
    data = await storage.get_bytes(keys.poster_key(tid, version))
    assert data[:3] == b"\xff\xd8\xff"  # JPEG SOI
    assert {k.split("/")[2] for k in await stored_keys(storage, tid)} == {version}
    async with pool.acquire() as conn:
        assert await sources.get_probe(conn, tid) is not None  # stored beside the source


def test_poster_argv_is_pure() -> None:
    argv = poster.poster_argv("/in/a b.mp4", Path("/out/poster.jpg"), 1.5)
    assert argv[0] == "ffmpeg"
    assert argv[argv.index("-ss") + 1] == "1.500"
    assert argv[argv.index("-i") + 1] == "file:/in/a b.mp4"
    assert argv[-1] == "file:/out/poster.jpg"
    assert "-frames:v" in argv and argv[argv.index("-frames:v") + 1] == "1"
    assert poster.poster_time_s(60) == pytest.approx(6.0)
    assert "bwdif" not in " ".join(argv)


def test_poster_of_an_interlaced_source_is_deinterlaced_before_scaling() -> None:
    argv = poster.poster_argv("/in/a.ts", Path("/out/poster.jpg"), 1.5, deinterlace=True)
    vf = argv[argv.index("-vf") + 1]
    assert vf.startswith("bwdif=mode=send_frame:parity=auto:deint=all,scale=")


def test_failure_reasons_are_classified() -> None:
    from media.errors import ProbeError
    from transcoder.errors import SourceRejected
    from transcoder.failures import classify

    assert (
        classify(ProbeError("/w/x.mp4", "zero-length file")).reason,
        classify(ProbeError("/w/x.mp4", "z")).retryable,
    ) == (
        "source rejected: zero-length file",
        False,
    )
    assert (classify(SourceRejected("no duration")).reason, classify(SourceRejected("no duration")).retryable) == (
        "source rejected: no duration",
        False,
    )
    assert classify(TranscodeError("ffmpeg failed")).retryable is True


async def test_a_wake_up_during_the_claims_starts_the_next_turn_at_once(
    pool: asyncpg.Pool, storage: Storage, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A far seek bumps the cell asked for and, a moment later, the lowest rung's cell the
    player falls back to: the second notification can arrive while the worker claims the
    first. It must start the next turn now, not a poll interval (here 30 s) later."""
    worker = make_worker(pool, storage, settings, poll_s=30, title_id=str(uuid.uuid4()))
    notified = asyncio.Event()
    real_claim = worker._claim_tasks

    async def claim_while_a_bump_arrives() -> None:
        await real_claim()
        if not notified.is_set():
            await pool.execute("SELECT pg_notify($1, 'tasks:0')", tasks.WAKE_CHANNEL)
            for _ in range(100):  # until the worker's own LISTEN connection has it
                if worker._wake.is_set():
                    break
                await asyncio.sleep(0.02)
            notified.set()

    monkeypatch.setattr(worker, "_claim_tasks", claim_while_a_bump_arrives)
    try:
        wait_s = await worker._poll(False)
        assert wait_s == 30 and notified.is_set()
        started = time.monotonic()
        await asyncio.wait_for(worker._sleep(wait_s), 5)
        assert time.monotonic() - started < 1
    finally:
        await worker._unlisten()


async def test_a_per_title_title_plays_before_its_ladder_is_chosen(
    settings: Settings,
    pool: asyncpg.Pool,
    storage: Storage,
    clip_factory: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The complexity probe is off the path to the first frame: the audio and the lowest
    rung's first segment start at once and make the title playable, published with the rungs
    every choice encodes alike; the rest of the ladder is planned and encoded once it is chosen."""
    clip = clip_factory(seconds=4, width=1280, height=720, fps=30)  # v720, v480, v360
    title = await ingest(
        pool, storage, source=str(clip), title="PT first", max_source_bytes=10**9, work_dir=settings.work_dir
    )
    real_plan = per_title.plan
    seen: dict[str, Any] = {}

    async def title_plays() -> bool:
        async with pool.acquire() as conn:
            t = await titles.get_title(conn, title.id)
        if t.status != "playable" or not t.current_version:
            return False
        seen["version"] = t.current_version
        seen["model"] = Presentation.from_json(await storage.get_bytes(keys.model_key(title.id, t.current_version)))
        return True

    async def plan_once_playable(*args: Any, **kw: Any) -> Any:
        # Hold the choice until the title plays: the first segments must not wait for it.
        await wait_until(title_plays, 60, "the title to play")
        return await real_plan(*args, **kw)

    monkeypatch.setattr(per_title, "plan", plan_once_playable)
    worker = make_worker(pool, storage, settings, title_id=title.id)
    assert worker.ladder_mode == per_title.PER_TITLE  # the default
    await asyncio.wait_for(worker.run(once=True), 120)

    # playable before the choice, with the lowest rung alone
    assert "model" in seen, "the title never played before its ladder was chosen"
    playing: Presentation = seen["model"]
    assert [r.id for r in playing.video] == ["v360"]
    assert [r.id for r in playing.audio] == ["a0"]
    assert per_title.is_pending(playing.extra)

    async with pool.acquire() as conn:
        t = await titles.get_title(conn, title.id)
        job = await job_of(pool, title.id)
        rows = await conn.fetch(
            "SELECT stage, kind, renditions, first_number, segment_count FROM jobs.transcode_tasks"
            " WHERE job_id = $1 ORDER BY id",
            job.id,
        )
    assert t.status == "ready" and t.current_version == seen["version"]
    ready = Presentation.from_json(await storage.get_bytes(keys.model_key(title.id, seen["version"])))
    record = ready.extra[per_title.RECORD_KEY]
    assert record["mode"] == per_title.PER_TITLE and not per_title.is_pending(ready.extra)
    assert sorted(r.id for r in ready.video) == sorted(record["caps"])
    assert {"v720", "v360"} <= set(record["caps"])  # a choice keeps the highest and lowest
    check_presentation(ready)
    # what a player starts with was made first, the rest (per the chosen rungs) after
    first = [(r["kind"], list(r["renditions"]), r["first_number"], r["segment_count"]) for r in rows if r["stage"] == 1]
    assert ("video", ["v360"], 1, 1) in first and all(f[1] == ["v360"] for f in first if f[0] == "video")
    audio = [f for f in first if f[0] == "audio"]
    assert audio and all(f[1] == ["a0"] for f in audio) and min(f[2] for f in audio) == 1
    later = [r for r in rows if r["stage"] == 2]
    assert later and all(r["kind"] == "video" for r in later)
    assert max(r["stage"] for r in rows[: len(first)]) == 1  # created before the rest
    made = {rid for r in later for rid in r["renditions"]}
    assert made | {"v360"} == {r.id for r in ready.video}  # v360's first chunk is all of it here


async def test_a_later_attempt_keeps_the_ladder_an_earlier_one_chose(
    settings: Settings,
    pool: asyncpg.Pool,
    storage: Storage,
    clip_factory: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A job stopped once its ladder was chosen and its tasks made is finished by another
    worker with that very ladder, whatever that worker's setting, and without a new probe:
    every task of the version encodes the same rungs."""
    clip = clip_factory(seconds=16, width=1280, height=720, fps=30)
    title = await ingest(
        pool, storage, source=str(clip), title="PT again", max_source_bytes=10**9, work_dir=settings.work_dir
    )
    first = make_worker(pool, storage, settings, title_id=title.id)
    runner = asyncio.create_task(first.run())

    async def stages() -> set[int]:
        async with pool.acquire() as conn:
            job = await job_of(pool, title.id)
            return await tasks.job_stages(conn, job.id, job.version or "")

    async def rest_made() -> bool:
        assert not runner.done(), runner
        return tasks.STAGE_REST in await stages()

    await wait_until(rest_made, 60, "the ladder to be chosen")
    first.stop()
    await asyncio.wait_for(runner, 60)
    job = await job_of(pool, title.id)
    assert job.status == "queued" and job.version
    chosen = Presentation.from_json(await storage.get_bytes(keys.model_key(title.id, job.version)))
    record = chosen.extra[per_title.RECORD_KEY]
    assert not per_title.is_pending(chosen.extra) and record["caps"]

    probes = 0
    real_plan = per_title.plan

    async def counting_plan(*args: Any, **kw: Any) -> Any:
        nonlocal probes
        probes += 1
        return await real_plan(*args, **kw)

    monkeypatch.setattr(per_title, "plan", counting_plan)
    later = make_worker(pool, storage, settings, title_id=title.id, ladder_mode=per_title.FIXED)
    await asyncio.wait_for(later.run(once=True), 120)
    assert probes == 0
    async with pool.acquire() as conn:
        t = await titles.get_title(conn, title.id)
    assert t.status == "ready" and t.current_version == job.version
    ready = Presentation.from_json(await storage.get_bytes(keys.model_key(title.id, job.version)))
    assert ready.extra[per_title.RECORD_KEY] == record
    assert sorted(r.id for r in ready.video) == sorted(record["caps"])
    assert await stages() == {tasks.STAGE_START, tasks.STAGE_REST}  # nothing made twice
    check_presentation(ready)
