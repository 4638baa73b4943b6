"""`streamflix worker` as a real process: SIGKILL mid-encode (ffmpeg dies with it, the lease
expires, a restarted worker finishes the title on attempt 2 and nothing of the dead attempt
is left), and SIGTERM (the job is given back at once, uncounted).

A database of this module's own, so the unfiltered worker subprocess only sees these jobs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from catalog import titles
from media import keys
from media.backend import open_storage
from packager.model import Presentation
from server.settings import Settings
from tests.transcoder.jobs_support import (  # noqa: F401 (fixtures)
    cli_env,
    job_of,
    own_database_url,
    own_settings,
    stored_keys,
    work_dirs,
)
from transcoder import tasks
from transcoder.ingest import ingest

REPO = Path(__file__).resolve().parents[2]
LEASE_S = 2


def start_worker(settings: Settings, log: Path, *args: str, **env_extra: str) -> subprocess.Popen[bytes]:
    """`streamflix worker` as a real process (short lease), its output appended to `log`."""
    env = cli_env(settings, STREAMFLIX_JOB_LEASE_S=str(LEASE_S), **env_extra)
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "server.cli", "worker", *args],
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


def ffmpeg_children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if comm == "ffmpeg" and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"  # a zombie is dead, only not yet reaped


async def wait_until(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def own_pool(own_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(own_settings.database_url, min_size=1, max_size=4)
    yield p
    await p.close()


async def encoding(pool: asyncpg.Pool, title_id: str, worker: subprocess.Popen[bytes]) -> list[int]:
    """Wait until the worker's ffmpeg runs a task and the job has reported progress; its pids."""

    async def check() -> bool:
        assert worker.poll() is None, "worker exited early"
        job = await job_of(pool, title_id)
        if not (job.status == "running" and job.progress > 0 and ffmpeg_children(worker.pid)):
            return False
        async with pool.acquire() as conn:  # not only the ladder's probe between two tasks
            return any(t.status == "running" for t in await tasks.job_tasks(conn, job.id))

    await wait_until(check, 60, "ffmpeg to run with progress > 0")
    return ffmpeg_children(worker.pid)


async def ingest_and_start(
    settings: Settings, pool: asyncpg.Pool, clip_factory: Callable[..., Path], tmp_path: Path, name: str
) -> tuple[Any, Any, subprocess.Popen[bytes], Path]:
    """A 20 s 720p title ingested and a real worker process started on it: (storage, title,
    worker, its log file)."""
    storage = open_storage(settings.storage_url)
    clip = clip_factory(seconds=20, width=1280, height=720, audio=False)
    title = await ingest(
        pool, storage, source=str(clip), title=name, max_source_bytes=10**9, work_dir=settings.work_dir
    )
    log = tmp_path / "worker.log"
    return storage, title, start_worker(settings, log), log


async def test_sigkill_mid_encode_then_restart(
    own_settings: Settings,
    own_pool: asyncpg.Pool,
    clip_factory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    settings = own_settings
    storage, title, worker, log = await ingest_and_start(settings, own_pool, clip_factory, tmp_path, "Killed midway")
    try:
        ffmpegs = await encoding(own_pool, title.id, worker)
        dead_attempt = (await job_of(own_pool, title.id)).attempts
        assert any(d.startswith("job-") for d in work_dirs(settings))
        worker.kill()  # SIGKILL: no cleanup of any kind runs
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    # PR_SET_PDEATHSIG: the kernel takes ffmpeg down with its parent
    await wait_until(lambda: not any(alive(p) for p in ffmpegs), 10, "the orphaned ffmpeg to die")
    async with own_pool.acquire() as conn:
        assert (await titles.get_title(conn, title.id)).status in ("processing", "playable")
    assert (await job_of(own_pool, title.id)).status == "running"  # until its lease runs out
    async with own_pool.acquire() as conn:
        killed = {
            t.id for t in await tasks.job_tasks(conn, (await job_of(own_pool, title.id)).id) if t.status == "running"
        }
    assert killed  # it died mid-task

    await asyncio.sleep(LEASE_S + 0.5)
    restarted = start_worker(settings, log, "--once")
    try:
        code = await asyncio.to_thread(restarted.wait, 120)
    finally:
        if restarted.poll() is None:
            restarted.kill()
            restarted.wait()
    assert code == 0, log.read_text()[-3000:]

    async with own_pool.acquire() as conn:
        t = await titles.get_title(conn, title.id)
    assert t.status == "ready", t.failure_reason
    job = await job_of(own_pool, title.id)
    assert (job.status, job.attempts) == ("done", dead_attempt + 1) == ("done", 2)
    # The killed tasks were redone (their attempt 2), every task once done; storage holds
    # exactly what the model names, each segment once: nothing duplicated or half written.
    async with own_pool.acquire() as conn:
        done = await tasks.job_tasks(conn, job.id)
    assert {x.status for x in done} == {"done"}
    assert all(x.attempts == (2 if x.id in killed else 1) for x in done), [(x.id, x.attempts) for x in done]
    model = Presentation.from_json(await storage.get_bytes(keys.model_key(title.id, t.current_version or "")))
    assert not model.progressive
    named = {keys.model_key(title.id, model.version), keys.poster_key(title.id, model.version)}
    for r in model.renditions:
        named |= {keys.object_key(title.id, model.version, name) for name in r.object_names()}
    assert set(await stored_keys(storage, title.id)) == named
    assert not await storage.list_incomplete(keys.title_prefix(title.id))
    assert [o.key for o in await storage.list(keys.source_prefix(title.id))] == [keys.source_key(title.id, ".mp4")]
    assert work_dirs(settings) == []


async def test_sigterm_gives_the_job_back(
    own_settings: Settings,
    own_pool: asyncpg.Pool,
    clip_factory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    settings = own_settings
    storage, title, worker, log = await ingest_and_start(settings, own_pool, clip_factory, tmp_path, "Stopped politely")
    try:
        ffmpegs = await encoding(own_pool, title.id, worker)
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait, 15)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert code == 0, log.read_text()[-3000:]
    assert not any(alive(p) for p in ffmpegs)
    job = await job_of(own_pool, title.id)
    assert (job.status, job.attempts, job.worker_id) == ("queued", 0, None)  # back at once, uncounted
    async with own_pool.acquire() as conn:
        # playable when its first segments were in before the signal: it stays so
        assert (await titles.get_title(conn, title.id)).status in ("pending", "playable")
        back = await tasks.job_tasks(conn, job.id)
    assert {x.status for x in back} <= {"queued", "done"}  # its tasks given back too
    assert all(x.attempts == (1 if x.status == "done" else 0) for x in back)
    assert {k.split("/")[2] for k in await stored_keys(storage, title.id)} <= {job.version}
    assert work_dirs(settings) == []
    assert "released for another worker" in log.read_text()
