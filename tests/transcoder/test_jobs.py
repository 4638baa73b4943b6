"""The job queue against real Postgres: claim, lease, heartbeat fencing, retry with backoff,
expiry takeover, release, SKIP LOCKED with concurrent claimers. A database of its own, so
unfiltered claims see only these jobs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from tests.transcoder.jobs_support import own_database_url  # noqa: F401 (fixture)
from transcoder import jobs


@pytest.fixture
async def conn(own_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(own_database_url)
    await c.execute("DELETE FROM jobs.transcode_jobs")  # our own database: only our rows
    yield c
    await c.close()


def tid() -> str:
    return str(uuid.uuid4())


async def enqueue(conn: asyncpg.Connection, max_attempts: int = 3) -> jobs.Job:
    title_id = tid()
    return await jobs.enqueue(conn, title_id, f"sources/{title_id}/original.mp4", max_attempts)


async def claim_one(
    conn: asyncpg.Connection, worker_id: str, lease_s: float, *, title_id: str | None = None
) -> jobs.Job:
    """jobs.claim where the test expects a job to be there."""
    job = await jobs.claim(conn, worker_id, lease_s, title_id=title_id)
    assert job is not None, f"{worker_id} found no job to claim"
    return job


async def get_job(conn: asyncpg.Connection, job_id: int) -> jobs.Job:
    """jobs.get of a job the test knows exists."""
    job = await jobs.get(conn, job_id)
    assert job is not None, f"job {job_id} is gone"
    return job


async def due_in_s(conn: asyncpg.Connection, job_id: int) -> float:
    return await conn.fetchval(
        "SELECT extract(epoch FROM run_after - now())::float8 FROM jobs.transcode_jobs WHERE id = $1", job_id
    )


async def make_due(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE jobs.transcode_jobs SET run_after = now() WHERE status = 'queued'")


async def test_claim_heartbeat_complete(conn: asyncpg.Connection) -> None:
    job = await enqueue(conn)
    assert (job.status, job.attempts, job.progress) == ("queued", 0, 0)
    claimed = await jobs.claim(conn, "w1", 30)
    assert claimed is not None and claimed.id == job.id
    assert (claimed.status, claimed.attempts, claimed.worker_id) == ("running", 1, "w1")
    assert claimed.lease_until is not None and claimed.lease_until > datetime.now(UTC)
    assert await jobs.claim(conn, "w2", 30) is None  # nothing else to take

    assert await jobs.heartbeat(conn, claimed, 30, 42.5)
    assert (await get_job(conn, job.id)).progress == pytest.approx(42.5)
    assert await jobs.complete(conn, claimed)
    done = await get_job(conn, job.id)
    assert (done.status, done.progress, done.lease_until) == ("done", 100, None)
    assert done.finished_at is not None
    assert not await jobs.heartbeat(conn, claimed, 30)  # finished: not ours to renew


async def test_claims_oldest_due_first(conn: asyncpg.Connection) -> None:
    first, second = await enqueue(conn), await enqueue(conn)
    assert (await claim_one(conn, "w", 30)).id == first.id
    assert (await claim_one(conn, "w", 30)).id == second.id


async def test_claim_can_be_limited_to_one_title(conn: asyncpg.Connection) -> None:
    await enqueue(conn)
    wanted = await enqueue(conn)
    claimed = await claim_one(conn, "w", 30, title_id=wanted.title_id)
    assert claimed.id == wanted.id
    assert await jobs.claim(conn, "w", 30, title_id=wanted.title_id) is None


async def test_one_live_job_per_title(conn: asyncpg.Connection) -> None:
    job = await enqueue(conn)
    with pytest.raises(asyncpg.UniqueViolationError):
        await jobs.enqueue(conn, job.title_id, job.source, 3)


async def test_skip_locked_claimer_does_not_wait(own_database_url: str, conn: asyncpg.Connection) -> None:
    """A claim in an open transaction keeps its row locked; a second claimer skips it at once
    (no blocking) and takes the next job, or gets None."""
    first, second = await enqueue(conn), await enqueue(conn)
    a = await asyncpg.connect(own_database_url)
    b = await asyncpg.connect(own_database_url)
    try:
        tx = a.transaction()
        await tx.start()
        got_a = await claim_one(a, "a", 30)
        assert got_a.id == first.id
        t0 = time.monotonic()
        got_b = await asyncio.wait_for(claim_one(b, "b", 30), 2)
        assert got_b.id == second.id
        assert await asyncio.wait_for(jobs.claim(b, "b", 30), 2) is None
        assert time.monotonic() - t0 < 1.0
        await tx.rollback()  # the first job is free again
        again = await claim_one(b, "b", 30)
        assert again.id == first.id and again.attempts == 1
    finally:
        await a.close()
        await b.close()


async def test_concurrent_claimers_never_share_a_job(own_database_url: str, conn: asyncpg.Connection) -> None:
    ids = {(await enqueue(conn)).id for _ in range(20)}
    claimers = [await asyncpg.connect(own_database_url) for _ in range(4)]

    async def drain(c: asyncpg.Connection, name: str) -> list[int]:
        got = []
        while (job := await jobs.claim(c, name, 30)) is not None:
            got.append(job.id)
        return got

    try:
        results = await asyncio.gather(*(drain(c, f"w{i}") for i, c in enumerate(claimers)))
    finally:
        for c in claimers:
            await c.close()
    taken = [j for r in results for j in r]
    assert sorted(taken) == sorted(ids)  # every job once, none twice


async def test_expired_lease_is_taken_over_and_fences_the_old_worker(conn: asyncpg.Connection) -> None:
    await enqueue(conn)
    dead = await claim_one(conn, "dead", 0.2)
    assert await jobs.claim(conn, "w2", 30) is None  # lease still live
    await asyncio.sleep(0.4)
    alive = await claim_one(conn, "w2", 30)
    assert alive.id == dead.id and alive.attempts == 2 and alive.worker_id == "w2"
    # the dead worker, should it wake up, can touch nothing
    assert not await jobs.heartbeat(conn, dead, 30)
    assert not await jobs.complete(conn, dead)
    assert await jobs.fail(conn, dead, "late") is None
    assert not await jobs.release(conn, dead)
    assert await jobs.heartbeat(conn, alive, 30)
    assert (await get_job(conn, alive.id)).worker_id == "w2"


async def test_same_worker_reclaim_is_fenced_by_attempt(conn: asyncpg.Connection) -> None:
    await enqueue(conn)
    old = await claim_one(conn, "w", 0.1)
    await asyncio.sleep(0.3)
    new = await claim_one(conn, "w", 30)
    assert new.attempts == 2
    assert not await jobs.heartbeat(conn, old, 30)
    assert await jobs.heartbeat(conn, new, 30)


def test_backoff_doubles_and_is_capped() -> None:
    assert [jobs.backoff_s(n) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert jobs.backoff_s(30) == jobs.BACKOFF_CAP_S


async def test_fail_retries_with_backoff_then_fails(conn: asyncpg.Connection) -> None:
    job = await enqueue(conn, max_attempts=3)
    a = await claim_one(conn, "w", 30)
    assert await jobs.fail(conn, a, "ffmpeg failed:\n  something\tbroke") == "queued"
    row = await get_job(conn, job.id)
    assert row.error == "ffmpeg failed: something broke"  # one line
    assert row.worker_id is None and row.lease_until is None
    assert 8 < await due_in_s(conn, job.id) <= 10
    assert await jobs.claim(conn, "w", 30) is None  # not due yet

    await make_due(conn)
    b = await claim_one(conn, "w", 30)
    assert b.attempts == 2
    assert await jobs.fail(conn, b, "again") == "queued"
    assert 18 < await due_in_s(conn, job.id) <= 20

    await make_due(conn)
    c = await claim_one(conn, "w", 30)
    assert c.attempts == 3
    assert await jobs.fail(conn, c, "third time") == "failed"
    final = await get_job(conn, job.id)
    assert (final.status, final.error) == ("failed", "third time")
    assert final.finished_at is not None
    await make_due(conn)
    assert await jobs.claim(conn, "w", 30) is None


async def test_non_retryable_failure_is_final_at_once(conn: asyncpg.Connection) -> None:
    job = await enqueue(conn, max_attempts=3)
    a = await claim_one(conn, "w", 30)
    assert await jobs.fail(conn, a, "not a media file", retryable=False) == "failed"
    assert (await get_job(conn, job.id)).status == "failed"


async def test_release_gives_the_job_back_without_counting(conn: asyncpg.Connection) -> None:
    job = await enqueue(conn)
    a = await claim_one(conn, "w1", 30)
    assert await jobs.release(conn, a)
    row = await get_job(conn, job.id)
    assert (row.status, row.attempts, row.worker_id) == ("queued", 0, None)
    b = await claim_one(conn, "w2", 30)  # at once, no backoff
    assert b.attempts == 1


async def test_reap_exhausted_fails_jobs_whose_worker_kept_dying(conn: asyncpg.Connection) -> None:
    job = await enqueue(conn, max_attempts=1)
    await jobs.claim(conn, "dead", 0.1)
    await asyncio.sleep(0.3)
    assert await jobs.claim(conn, "w", 30) is None  # out of attempts: not taken over
    reaped = await jobs.reap_exhausted(conn)
    assert [j.id for j in reaped] == [job.id]
    row = await get_job(conn, job.id)
    assert row.status == "failed" and row.error is not None and "stopped responding" in row.error
    assert await jobs.reap_exhausted(conn) == []


async def test_cancel_for_title_stops_the_worker_at_its_next_heartbeat(conn: asyncpg.Connection) -> None:
    job = await enqueue(conn)
    a = await claim_one(conn, "w", 30)
    assert await jobs.cancel_for_title(conn, job.title_id) == 1
    assert not await jobs.heartbeat(conn, a, 30)
    assert not await jobs.still_ours(conn, a)
    assert (await get_job(conn, job.id)).status == "cancelled"


async def test_progress_queue_depth_and_next_due(conn: asyncpg.Connection) -> None:
    assert await jobs.queue_depth(conn) == 0
    assert await jobs.next_due_s(conn) is None
    j1, j2 = await enqueue(conn), await enqueue(conn)
    assert await jobs.queue_depth(conn) == 2
    assert await jobs.next_due_s(conn) == 0
    a = await claim_one(conn, "w", 30)
    await jobs.heartbeat(conn, a, 30, 12.0)
    progress = await jobs.progress_for(conn, [j1.title_id, j2.title_id, tid()])
    assert set(progress) == {j1.title_id, j2.title_id}
    assert progress[a.title_id].progress == pytest.approx(12.0)
    assert progress[a.title_id].status == "running"
    assert await jobs.queue_depth(conn) == 1
    listed = await jobs.list_jobs(conn, title_id=j1.title_id)
    assert [j.id for j in listed] == [j1.id]
    assert listed[0].to_json()["title_id"] == j1.title_id


def test_deferral_delay_doubles_to_minutes_without_a_limit() -> None:
    assert [jobs.deferral_s(n) for n in range(6)] == [10, 20, 40, 80, 120, 120]
    assert jobs.deferral_s(10_000) == jobs.DEFER_CAP_S == 120  # no limit on how many


async def test_defer_spends_no_attempt_and_backs_off_further_each_time(conn: asyncpg.Connection) -> None:
    job = await enqueue(conn, max_attempts=1)
    for n, delay in enumerate((10, 20, 40, 80, 120, 120), start=1):
        running = await claim_one(conn, "w", 30)
        assert running.attempts == 1  # never more: deferrals are not attempts
        assert await jobs.defer(conn, running, "storage unreachable:\n connect refused") == delay
        row = await get_job(conn, job.id)
        assert (row.status, row.attempts, row.deferrals, row.worker_id) == ("queued", 0, n, None)
        assert row.error == "storage unreachable: connect refused"
        assert delay - 2 < await due_in_s(conn, job.id) <= delay
        assert await jobs.claim(conn, "w", 30) is None  # not due yet
        await make_due(conn)
    # a single attempt was allowed, and after six outages the job still runs
    last = await claim_one(conn, "w", 30)
    assert await jobs.complete(conn, last)


async def test_defer_is_fenced(conn: asyncpg.Connection) -> None:
    await enqueue(conn)
    stale = await claim_one(conn, "a", 0.1)
    await asyncio.sleep(0.3)
    current = await claim_one(conn, "b", 30)
    assert await jobs.defer(conn, stale, "late") is None
    assert (await get_job(conn, current.id)).status == "running"


async def test_a_worker_never_takes_over_or_reaps_a_job_it_still_runs(conn: asyncpg.Connection) -> None:
    """After a database outage longer than the lease, the worker's own lease has expired; its
    next claim must not take the job it is still encoding (nor its reaper fail it)."""
    job = await enqueue(conn, max_attempts=1)
    mine = await claim_one(conn, "w", 0.1)
    await asyncio.sleep(0.3)
    assert await jobs.reap_exhausted(conn, running=[mine.id]) == []
    await conn.execute("UPDATE jobs.transcode_jobs SET max_attempts = 3 WHERE id = $1", job.id)
    assert await jobs.claim(conn, "w", 30, running=[mine.id]) is None
    assert await jobs.heartbeat(conn, mine, 30)  # still ours: the renewal goes through
    # another worker (not running it) takes over an expired lease as before
    await conn.execute("UPDATE jobs.transcode_jobs SET lease_until = now() - interval '1 s' WHERE id = $1", job.id)
    assert (await claim_one(conn, "other", 30)).attempts == 2


async def test_requeue_gives_a_failed_title_fresh_attempts(conn: asyncpg.Connection) -> None:
    job = await enqueue(conn, max_attempts=2)
    for _ in range(2):
        running = await claim_one(conn, "w", 30)
        await jobs.fail(conn, running, "boom")
        await make_due(conn)
    assert (await get_job(conn, job.id)).status == "failed"
    again = await jobs.requeue(conn, job.title_id, 3)
    assert again is not None and again.id != job.id
    assert (again.status, again.attempts, again.max_attempts, again.deferrals) == ("queued", 0, 3, 0)
    assert again.source == job.source
    assert (await get_job(conn, job.id)).status == "failed"  # kept as history
    assert await jobs.requeue(conn, job.title_id, 3) == again  # already live: that one
    assert await jobs.requeue(conn, tid(), 3) is None  # never had a job
