"""`streamflix worker` processes through a Postgres outage (tests/faultproxy.py in front of the
shared Postgres): an idle worker waits and then works, a busy one keeps its job and finishes
it, one started during the outage waits for the database, and SIGTERM still stops each at once.

A database of this module's own, so the unfiltered worker subprocess only sees these jobs."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from catalog import titles
from media.backend import open_storage
from server.settings import Settings
from tests.faultproxy import FaultProxy
from tests.transcoder.jobs_support import (  # noqa: F401 (fixtures)
    cli_env,
    job_of,
    own_database_url,
    own_settings,
)
from tests.transcoder.test_worker_process import REPO, encoding, wait_until
from transcoder.ingest import ingest

LEASE_S = 2
OUTAGE_S = 4  # twice the lease: the lease runs out during the outage


@pytest.fixture
def pg_proxy(own_database_url: str) -> Iterator[FaultProxy]:
    with FaultProxy.in_front_of(own_database_url, 5432) as proxy:
        yield proxy


@pytest.fixture
def proxied(own_settings: Settings, pg_proxy: FaultProxy) -> Settings:
    """The settings a worker subprocess gets: the database through the proxy."""
    return dataclasses.replace(own_settings, database_url=pg_proxy.route(own_settings.database_url))


@pytest.fixture
async def own_pool(own_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """Straight to Postgres (not through the proxy): the test's own view."""
    p = await asyncpg.create_pool(own_settings.database_url, min_size=1, max_size=4)
    await p.execute("DELETE FROM jobs.transcode_jobs")  # our own database: only this test's jobs
    yield p
    await p.close()


class WorkerProcess:
    def __init__(self, settings: Settings, log: Path) -> None:
        self.log = log
        with log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "worker"],
                env=cli_env(settings, STREAMFLIX_JOB_LEASE_S=str(LEASE_S)),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )

    def text(self) -> str:
        return self.log.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    async def logged(self, needle: str, timeout: float = 30) -> None:
        await wait_until(lambda: needle in self.text() or not self.alive(), timeout, repr(needle))
        assert self.alive(), f"worker exited ({self.proc.returncode}):\n{self.text()[-3000:]}"

    async def terminate(self, timeout: float = 10) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.proc.wait, timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[[Settings], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(settings: Settings) -> WorkerProcess:
        w = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log")
        started.append(w)
        return w

    yield start
    for w in started:
        w.kill()


async def ingest_clip(settings: Settings, pool: asyncpg.Pool, clip: Path, name: str) -> titles.Title:
    storage = open_storage(settings.storage_url)
    try:
        return await ingest(
            pool, storage, source=str(clip), title=name, max_source_bytes=10**9, work_dir=settings.work_dir
        )
    finally:
        await storage.close()


async def status_of(pool: asyncpg.Pool, title_id: str) -> str:
    async with pool.acquire() as conn:
        return (await titles.get_title(conn, title_id)).status


async def test_idle_worker_waits_out_an_outage_then_works(
    proxied: Settings,
    pg_proxy: FaultProxy,
    own_pool: asyncpg.Pool,
    start_worker: Callable[[Settings], WorkerProcess],
    clip_factory: Callable[..., Path],
) -> None:
    worker = start_worker(proxied)
    await asyncio.sleep(1.5)  # connected and polling an empty queue
    assert worker.alive(), worker.text()

    pg_proxy.down()
    await worker.logged("database unreachable")
    await asyncio.sleep(OUTAGE_S)
    assert worker.alive(), worker.text()[-3000:]
    pg_proxy.up()
    await worker.logged("database reachable again")

    title = await ingest_clip(proxied, own_pool, clip_factory(seconds=2), "After the outage")
    await wait_until(
        lambda: _is(own_pool, title.id, "ready"), 90, "the worker to make the title ready after the outage"
    )
    log = worker.text()
    assert log.count("database unreachable") == 1, log  # one line when it starts
    assert log.count("database reachable again") == 1, log  # one when it ends
    assert "Traceback" not in log, log
    assert await worker.terminate() == 0


async def _is(pool: asyncpg.Pool, title_id: str, status: str) -> bool:
    return await status_of(pool, title_id) == status


async def test_busy_worker_keeps_its_job_through_an_outage(
    proxied: Settings,
    pg_proxy: FaultProxy,
    own_pool: asyncpg.Pool,
    start_worker: Callable[[Settings], WorkerProcess],
    clip_factory: Callable[..., Path],
) -> None:
    clip = clip_factory(seconds=20, width=1280, height=720, audio=False)
    title = await ingest_clip(proxied, own_pool, clip, "Encoding through an outage")
    worker = start_worker(proxied)
    await encoding(own_pool, title.id, worker.proc)

    pg_proxy.down()  # mid-encode: lease renewals fail, and the lease runs out
    await worker.logged("database unreachable")
    await asyncio.sleep(OUTAGE_S)
    assert worker.alive(), worker.text()[-3000:]
    pg_proxy.up()

    await wait_until(lambda: _is(own_pool, title.id, "ready"), 120, "the title to end ready")
    job = await job_of(own_pool, title.id)
    # the same attempt finished it: not failed, not deferred, not taken over by itself
    assert (job.status, job.attempts, job.deferrals) == ("done", 1, 0)
    log = worker.text()
    assert log.count("database unreachable") == 1, log
    assert "Traceback" not in log, log
    assert worker.alive()
    assert await worker.terminate() == 0


async def test_worker_started_during_an_outage_waits_and_sigterm_stops_it(
    proxied: Settings,
    pg_proxy: FaultProxy,
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    pg_proxy.down()
    worker = start_worker(proxied)
    await worker.logged("database unreachable")
    await asyncio.sleep(2)
    assert worker.alive(), worker.text()
    assert await worker.terminate(timeout=10) == 0  # promptly, though Postgres is still away
    assert "Traceback" not in worker.text()


async def test_sigterm_during_an_outage_exits_zero_promptly(
    proxied: Settings,
    pg_proxy: FaultProxy,
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    worker = start_worker(proxied)
    await asyncio.sleep(1.5)
    pg_proxy.down()
    await worker.logged("database unreachable")
    assert await worker.terminate(timeout=10) == 0
    assert "Traceback" not in worker.text()


async def test_a_worker_whose_job_was_taken_over_during_the_outage_publishes_nothing(
    proxied: Settings,
    pg_proxy: FaultProxy,
    own_pool: asyncpg.Pool,
    clip_factory: Callable[..., Path],
) -> None:
    """The lease runs out during the outage and another worker takes the job over: when the
    database is back, the first worker (in process here, through the proxy) must stop
    coordinating and publish nothing, whether it was still encoding or already committing."""
    from tests.transcoder.jobs_support import make_worker, stored_keys
    from transcoder import jobs

    clip = clip_factory(seconds=20, width=1280, height=720, audio=False)
    title = await ingest_clip(proxied, own_pool, clip, "Taken over")
    stale_pool = await asyncpg.create_pool(proxied.database_url, min_size=0, max_size=4)
    storage = open_storage(proxied.storage_url)
    stale = make_worker(stale_pool, storage, proxied, lease_s=1, title_id=title.id)
    runner = asyncio.create_task(stale.run())
    try:

        async def encoding() -> bool:
            assert not runner.done(), runner
            job = await job_of(own_pool, title.id)
            return job.status == "running" and job.progress > 0

        await wait_until(encoding, 60, "the encode to start")
        pg_proxy.down()
        await asyncio.sleep(1.5)  # the lease has run out
        async with own_pool.acquire() as conn:
            other = await jobs.claim(conn, "other-worker", 600)
        assert other is not None and other.attempts == 2
        pg_proxy.up()

        async def let_go() -> bool:
            return not stale._tasks  # its job's task ended

        await wait_until(let_go, 90, "the stale worker to drop the job")
    finally:
        stale.stop()
        await asyncio.wait({runner})
        await stale_pool.close()
    async with own_pool.acquire() as conn:
        t = await titles.get_title(conn, title.id)
    job = await job_of(own_pool, title.id)
    assert (job.status, job.worker_id, job.attempts) == ("running", "other-worker", 2)  # untouched
    # Nothing published ready. What its task lanes encoded belongs to the job (its version is
    # the job's, whoever coordinates it): the title may play it already, the next coordinator
    # carries on from it; nothing lies outside that version.
    assert t.status != "ready"
    assert t.current_version in (None, job.version)
    assert {k.split("/")[2] for k in await stored_keys(storage, title.id)} <= {job.version}
    assert stale.processed == 0
    await storage.close()
