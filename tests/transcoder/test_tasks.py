"""The task queue against real Postgres: the plan covers every cell once, claim order and
filters, tasks of a job that is not running are never claimed, lease takeover and fencing,
retries, deferral, bump (done / running / bumped / split, concurrent), and the wake-up
NOTIFY. A database of its own (like test_jobs.py), so unfiltered claims see only these tasks."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.transcoder.jobs_support import own_database_url  # noqa: F401 (fixture)
from transcoder import jobs, tasks
from transcoder.tasks import TaskSpec, plan_tasks

RUNGS = ("v720", "v480", "v360")  # highest first, as Ladder.rungs


@pytest.fixture
async def conn(own_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(own_database_url)
    await c.execute("DELETE FROM jobs.transcode_jobs")  # our own database: only our rows (tasks cascade)
    yield c
    await c.close()


async def running_job(conn: asyncpg.Connection, version: str = "v1", *, worker: str = "coord") -> jobs.Job:
    """A job claimed by its coordinator, with its version set."""
    title_id = str(uuid.uuid4())
    queued = await jobs.enqueue(conn, title_id, f"sources/{title_id}/original.mp4", 3)
    job = await jobs.claim(conn, worker, 30, title_id=title_id)
    assert job is not None and job.id == queued.id
    assert await jobs.set_version(conn, job, version)
    return job


async def job_with_tasks(
    conn: asyncpg.Connection,
    *,
    total: int = 20,
    k: int = 8,
    audio: bool = True,
    max_attempts: int = 3,
    rungs: tuple[str, ...] = RUNGS,
) -> tuple[jobs.Job, list[tasks.Task]]:
    job = await running_job(conn)
    specs = plan_tasks(rungs, "a0" if audio else None, total, k)
    created = await tasks.create_tasks(conn, job, "v1", specs, max_attempts=max_attempts)
    assert len(created) == len(specs)
    return job, created


async def claim_one(
    conn: asyncpg.Connection,
    worker: str = "w",
    lease_s: float = 30,
    *,
    job_id: int | None = None,
    kinds: list[str] | None = None,
    max_priority: int | None = None,
) -> tasks.Task:
    """tasks.claim_task where the test expects a task to be there."""
    task = await tasks.claim_task(conn, worker, lease_s, job_id=job_id, kinds=kinds, max_priority=max_priority)
    assert task is not None, f"{worker} found no task to claim"
    return task


async def task_by_id(conn: asyncpg.Connection, job_id: int, task_id: int) -> tasks.Task:
    return next(t for t in await tasks.job_tasks(conn, job_id) if t.id == task_id)


def cells(ts: list[tasks.Task]) -> Counter[tuple[str, int]]:
    return Counter(c for t in ts for c in t.cells())


def grid(renditions: tuple[str, ...], total: int) -> Counter[tuple[str, int]]:
    return Counter((r, n) for r in renditions for n in range(1, total + 1))


# --- the plan -----------------------------------------------------------------------------


def test_plan_of_a_three_rung_title() -> None:
    specs = plan_tasks(RUNGS, "a0", 20, 8)
    assert specs == [
        TaskSpec("audio", ("a0",), 1, 20, 1),
        TaskSpec("video", ("v360",), 1, 1, 1),
        TaskSpec("video", ("v360",), 2, 7, 2),
        TaskSpec("video", ("v720", "v480"), 1, 8, 2),
        TaskSpec("video", RUNGS, 9, 8, 11),
        TaskSpec("video", RUNGS, 17, 4, 12),
    ]
    assert plan_tasks((), "a0", 5, 8) == [TaskSpec("audio", ("a0",), 1, 5, 1)]  # audio only
    assert plan_tasks(("v360",), None, 1, 8) == [TaskSpec("video", ("v360",), 1, 1, 1)]  # one segment
    assert plan_tasks(RUNGS, "a0", 0, 8) == []


def test_plan_covers_every_cell_exactly_once_in_timeline_order() -> None:
    for n_video in range(5):
        video = tuple(f"v{i}" for i in range(n_video))
        for audio in (None, "a0"):
            for total in range(1, 40):
                for k in range(1, 11):
                    specs = plan_tasks(video, audio, total, k)
                    covered = Counter((r, n) for s in specs for r in s.renditions for n in range(s.first, s.last + 1))
                    expected = grid(video + ((audio,) if audio else ()), total)
                    assert covered == expected, (video, audio, total, k)
                    assert all(s.count >= 1 and s.renditions for s in specs)
                    assert all(s.kind == ("audio" if s.renditions == (audio,) else "video") for s in specs)
                    if audio:
                        assert specs[0] == TaskSpec("audio", (audio,), 1, total, 1)
                    if video:  # the lowest rung's first segment alone, before any other video
                        first = next(s for s in specs if s.kind == "video")
                        assert first == TaskSpec("video", video[-1:], 1, 1, 1)
                    chunks = [s for s in specs if s.priority >= 10]
                    assert [s.first for s in chunks] == sorted(s.first for s in chunks)
                    assert [s.priority for s in chunks] == sorted({s.priority for s in chunks})
                    assert all(s.count <= k for s in specs if s.kind == "video")


def test_plan_of_a_long_title_cuts_its_audio_into_parts() -> None:
    specs = plan_tasks(("v360",), ("a0", "a1"), 13, 8, audio_part_segments=4)
    assert [s for s in specs if s.kind == "audio"] == [
        TaskSpec("audio", ("a0",), 1, 4, 1),  # the first part at once (only the audio lane takes > 0)
        TaskSpec("audio", ("a0",), 5, 4, 11),  # the later ones bulk, in timeline order
        TaskSpec("audio", ("a0",), 9, 4, 12),
        TaskSpec("audio", ("a0",), 13, 1, 13),
        TaskSpec("audio", ("a1",), 1, 4, 1),
        TaskSpec("audio", ("a1",), 5, 4, 11),
        TaskSpec("audio", ("a1",), 9, 4, 12),
        TaskSpec("audio", ("a1",), 13, 1, 13),
    ]
    # as long as one part, or shorter: today's single whole-timeline task
    for total in (1, 3, 4):
        audio = [s for s in plan_tasks(("v360",), "a0", total, 8, audio_part_segments=4) if s.kind == "audio"]
        assert audio == [TaskSpec("audio", ("a0",), 1, total, 1)]
    for total in range(1, 30):
        for part in range(0, 9):
            specs = plan_tasks(RUNGS, "a0", total, 3, audio_part_segments=part)
            covered = Counter((r, n) for s in specs for r in s.renditions for n in range(s.first, s.last + 1))
            assert covered == grid((*RUNGS, "a0"), total), (total, part)
    with pytest.raises(ValueError):
        plan_tasks(RUNGS, "a0", 10, 3, audio_part_segments=-1)


def test_split_rectangles_cover_the_old_cells_exactly_once() -> None:
    for renditions in (("a",), ("a", "b"), RUNGS):
        for first in (1, 5):
            for last in range(first, first + 5):
                for r in renditions:
                    for n in range(first, last + 1):
                        parts = tasks.split_rectangles(renditions, first, last, r, n)
                        assert parts[0] == ((r,), n, n)
                        got = Counter((x, m) for rs, a, b in parts for x in rs for m in range(a, b + 1))
                        assert got == Counter((x, m) for x in renditions for m in range(first, last + 1))
                        assert all(rs and a <= b for rs, a, b in parts)


# --- create, claim, lease -----------------------------------------------------------------


async def test_set_version_is_chosen_once_and_fenced(conn: asyncpg.Connection) -> None:
    job = await running_job(conn, "v1")
    assert await jobs.set_version(conn, job, "v1")  # already that one
    assert not await jobs.set_version(conn, job, "v2")  # an earlier attempt chose v1
    got = await jobs.get(conn, job.id)
    assert got is not None and got.version == "v1" and got.to_json()["version"] == "v1"
    await conn.execute("UPDATE jobs.transcode_jobs SET lease_until = now() - interval '1 s' WHERE id = $1", job.id)
    later = await jobs.claim(conn, "coord2", 30)
    assert later is not None and later.attempts == 2 and later.version == "v1"  # reused
    assert not await jobs.set_version(conn, job, "v1")  # the stale attempt: not ours


async def test_create_tasks_is_idempotent_and_fenced(conn: asyncpg.Connection) -> None:
    job, created = await job_with_tasks(conn)
    assert [t.priority for t in created] == sorted(t.priority for t in created)
    assert all(t.status == "queued" and t.attempts == 0 and t.version == "v1" for t in created)
    assert all(t.title_id == job.title_id for t in created)
    again = await tasks.create_tasks(conn, job, "v1", plan_tasks(RUNGS, "a0", 99, 4))
    assert again == created  # the existing ones, untouched
    assert await tasks.create_tasks(conn, job, "v2", plan_tasks(RUNGS, "a0", 20, 8)) == []  # not the job's version
    await conn.execute("UPDATE jobs.transcode_jobs SET lease_until = now() - interval '1 s' WHERE id = $1", job.id)
    later = await jobs.claim(conn, "coord2", 30)
    assert later is not None
    assert await tasks.create_tasks(conn, job, "v1", plan_tasks(RUNGS, "a0", 20, 8)) == []  # stale attempt
    assert await tasks.create_tasks(conn, later, "v1", plan_tasks(RUNGS, "a0", 20, 8)) == created
    assert cells(await tasks.job_tasks(conn, job.id)) == grid(RUNGS + ("a0",), 20)


def test_starter_specs_are_the_audio_and_the_lowest_rungs_first_segment() -> None:
    specs = plan_tasks(RUNGS, ["a0", "a1"], 20, 8, audio_part_segments=4)
    start, rest = tasks.starter_specs(specs)
    assert {(s.kind, s.renditions, s.first, s.count) for s in start} == {
        ("video", ("v360",), 1, 1),
        ("video", ("v360",), 2, 7),  # the rest of the lowest rung's first chunk
        *{("audio", (a,), first, 4) for a in ("a0", "a1") for first in range(1, 21, 4)},
    }
    assert all(s.kind == "video" for s in rest) and sorted(start + rest, key=specs.index) == specs
    # what is left: the other rungs' first chunk, then every rung's later chunks
    assert {(s.renditions, s.first) for s in rest} == {(("v720", "v480"), 1), (RUNGS, 9), (RUNGS, 17)}


async def test_create_tasks_in_stages_is_idempotent_per_stage(conn: asyncpg.Connection) -> None:
    job = await running_job(conn)
    start, rest = tasks.starter_specs(plan_tasks(RUNGS, "a0", 20, 8))
    first = await tasks.create_tasks(conn, job, "v1", start, stage=tasks.STAGE_START)
    assert len(first) == len(start) == 3
    # an attempt making the first stage again gets those; the later stage is still to make
    assert await tasks.create_tasks(conn, job, "v1", start, stage=tasks.STAGE_START) == first
    later = await tasks.create_tasks(conn, job, "v1", rest, stage=tasks.STAGE_REST)
    assert len(later) == len(rest) and not {t.id for t in later} & {t.id for t in first}
    assert await tasks.create_tasks(conn, job, "v1", rest, stage=tasks.STAGE_REST) == later
    assert cells(await tasks.job_tasks(conn, job.id)) == grid(RUNGS + ("a0",), 20)  # each cell once
    # both stages are fenced like a single one
    await conn.execute("UPDATE jobs.transcode_jobs SET lease_until = now() - interval '1 s' WHERE id = $1", job.id)
    assert await jobs.claim(conn, "coord2", 30) is not None
    assert await tasks.create_tasks(conn, job, "v1", rest, stage=tasks.STAGE_REST) == []


async def test_claims_by_priority_then_timeline(conn: asyncpg.Connection) -> None:
    job, created = await job_with_tasks(conn)
    order = []
    while (t := await tasks.claim_task(conn, "w", 30)) is not None:
        assert (t.status, t.attempts, t.worker_id) == ("running", 1, "w")
        order.append((t.renditions, t.first_number))
    assert order == [
        (("a0",), 1),
        (("v360",), 1),
        (("v720", "v480"), 1),
        (("v360",), 2),
        (RUNGS, 9),
        (RUNGS, 17),
    ]


async def test_claim_filters(conn: asyncpg.Connection) -> None:
    job, _ = await job_with_tasks(conn)
    other, _ = await job_with_tasks(conn)
    assert (await claim_one(conn, kinds=["video"], job_id=job.id)).renditions == ("v360",)
    assert (await claim_one(conn, kinds=["audio"], job_id=other.id)).job_id == other.id
    assert await tasks.claim_task(conn, "w", 30, kinds=["audio"], job_id=other.id) is None
    low = await claim_one(conn, kinds=["video"], max_priority=2, job_id=job.id)
    assert low.priority == 2
    await claim_one(conn, kinds=["video"], max_priority=2, job_id=job.id)
    assert await tasks.claim_task(conn, "w", 30, kinds=["video"], max_priority=2, job_id=job.id) is None
    assert (await claim_one(conn, kinds=["video"], job_id=job.id)).first_number == 9  # the chunks remain


async def test_tasks_of_a_job_given_back_carry_on_and_of_an_ended_job_never_run(conn: asyncpg.Connection) -> None:
    job, _ = await job_with_tasks(conn)
    mine = await claim_one(conn)
    assert await tasks.heartbeat_task(conn, mine, 30)
    # the coordinator gives the job back (shutdown): the title's other workers carry on
    assert await jobs.release(conn, job)
    assert await tasks.heartbeat_task(conn, mine, 30)
    other = await claim_one(conn, "w2")
    assert other.id != mine.id
    assert await tasks.release_task(conn, mine)  # still ours to give back
    again = await jobs.claim(conn, "coord2", 30)
    assert again is not None and again.id == job.id
    retaken = await claim_one(conn, "w2")
    assert retaken.id == mine.id and retaken.attempts == 1  # the release did not count
    # cancelled (title deleted): never claimed again, the heartbeat says stop
    assert await jobs.cancel_for_title(conn, job.title_id) == 1
    assert not await tasks.heartbeat_task(conn, retaken, 30)
    assert await tasks.claim_task(conn, "w3", 30) is None
    assert await tasks.cancel_tasks(conn, job.id, "title deleted") == len(await tasks.job_tasks(conn, job.id))
    assert not await tasks.complete_task(conn, retaken, {})


async def test_expired_lease_is_taken_over_and_fences_the_old_worker(conn: asyncpg.Connection) -> None:
    job, created = await job_with_tasks(conn, audio=False)
    dead = await claim_one(conn, "dead", 0.2)
    nxt = await claim_one(conn, "w2", 30)
    assert nxt.id != dead.id  # a live lease is not taken over
    await asyncio.sleep(0.4)
    alive = await claim_one(conn, "w3", 30)  # the expired one comes first again (priority 1)
    assert (alive.id, alive.attempts, alive.worker_id) == (dead.id, 2, "w3")
    assert not await tasks.heartbeat_task(conn, dead, 30)
    assert not await tasks.complete_task(conn, dead, {"stale": True})
    assert await tasks.fail_task(conn, dead, "late") is None
    assert not await tasks.release_task(conn, dead)
    assert await tasks.defer_task(conn, dead, "late") is None
    assert await tasks.complete_task(conn, alive, {"v360": {"segments": [[1, 2000, 100]]}})
    done = await task_by_id(conn, job.id, alive.id)
    assert (done.status, done.result, done.lease_until) == ("done", {"v360": {"segments": [[1, 2000, 100]]}}, None)
    assert done.finished_at is not None
    total = 3 * 20
    assert await tasks.task_progress(conn, job.id) == (1, total)


async def test_a_worker_never_takes_over_a_task_it_still_runs(conn: asyncpg.Connection) -> None:
    await job_with_tasks(conn, audio=False, total=1, max_attempts=1, rungs=("v360",))
    mine = await claim_one(conn, "w", 0.1)
    await asyncio.sleep(0.3)
    assert await tasks.reap_tasks(conn, running=[mine.id]) == []
    assert await tasks.claim_task(conn, "w", 30, running=[mine.id]) is None
    assert await tasks.heartbeat_task(conn, mine, 30)


async def test_fail_retries_with_backoff_then_fails(conn: asyncpg.Connection) -> None:
    job, _ = await job_with_tasks(conn, audio=False, total=1, max_attempts=2, rungs=("v360",))
    a = await claim_one(conn)
    assert await tasks.fail_task(conn, a, "ffmpeg\n  broke", base_s=0.2) == "queued"
    row = await task_by_id(conn, job.id, a.id)
    assert (row.status, row.error, row.worker_id) == ("queued", "ffmpeg broke", None)
    assert await tasks.claim_task(conn, "w", 30) is None  # backoff
    await asyncio.sleep(0.3)
    b = await claim_one(conn)
    assert b.attempts == 2
    assert await tasks.fail_task(conn, b, "again") == "failed"
    failed = await tasks.failed_task(conn, job.id)
    assert failed is not None and (failed.id, failed.status, failed.error) == (a.id, "failed", "again")
    assert await tasks.claim_task(conn, "w", 30) is None


async def test_non_retryable_failure_and_reaper(conn: asyncpg.Connection) -> None:
    job, created = await job_with_tasks(conn, audio=False, total=9, k=8, max_attempts=1, rungs=("v360",))
    a = await claim_one(conn)
    assert await tasks.fail_task(conn, a, "bad input", retryable=False) == "failed"
    dead = await claim_one(conn, "dead", 0.1)
    await asyncio.sleep(0.3)
    assert await tasks.claim_task(conn, "w", 30, job_id=job.id, max_priority=dead.priority) is None  # no attempts left
    reaped = await tasks.reap_tasks(conn)
    assert [t.id for t in reaped] == [dead.id]
    assert reaped[0].error is not None and "stopped responding 1 times" in reaped[0].error
    assert await tasks.reap_tasks(conn) == []


async def test_defer_spends_no_attempt_and_backs_off(conn: asyncpg.Connection) -> None:
    job, _ = await job_with_tasks(conn, audio=False, total=1, max_attempts=1, rungs=("v360",))
    for n, delay in enumerate((0.1, 0.2, 0.3), start=1):
        t = await claim_one(conn)
        assert t.attempts == 1
        got = await tasks.defer_task(conn, t, "storage\n unreachable", base_s=0.1, cap_s=0.3)
        assert got == pytest.approx(delay)
        row = await task_by_id(conn, job.id, t.id)
        assert (row.status, row.attempts, row.deferrals, row.error) == ("queued", 0, n, "storage unreachable")
        assert await tasks.claim_task(conn, "w", 30) is None
        await asyncio.sleep(delay + 0.05)
    assert (await claim_one(conn)).attempts == 1


# --- bump ---------------------------------------------------------------------------------


async def test_bump_done_running_bumped_unknown(conn: asyncpg.Connection) -> None:
    job, created = await job_with_tasks(conn)
    title = job.title_id
    audio = await claim_one(conn)  # the audio task runs
    assert await tasks.bump(conn, title, "v1", "a0", 7) == "running"
    first = await claim_one(conn)  # v360 segment 1
    assert await tasks.complete_task(conn, first, {})
    assert await tasks.bump(conn, title, "v1", "v360", 1) == "done"
    assert await tasks.bump(conn, title, "v1", "v360", None) == "done"  # its init exists
    assert await tasks.bump(conn, title, "v1", "a0", None) == "running"
    assert await tasks.bump(conn, title, "v2", "v360", 2) == "unknown"  # not the job's version
    assert await tasks.bump(conn, title, "v1", "v360", 21) == "unknown"  # beyond the timeline
    assert await tasks.bump(conn, title, "v1", "v9", 1) == "unknown"
    assert await tasks.bump(conn, str(uuid.uuid4()), "v1", "v360", 1) == "unknown"
    assert await tasks.bump(conn, "not-a-uuid", "v1", "v360", 1) == "unknown"
    # init of a rendition nothing has started: its earliest queued task goes first
    assert await tasks.bump(conn, title, "v1", "v720", None) == "bumped"
    nxt = await claim_one(conn)
    assert (nxt.renditions, nxt.first_number, nxt.priority) == (("v720", "v480"), 1, 0)
    assert await tasks.bump(conn, title, "v1", "v480", None) == "running"
    assert await tasks.complete_task(conn, audio, {})
    assert await tasks.bump(conn, title, "v1", "a0", 3) == "done"
    # a running task bumped keeps priority 0 should it be retried
    assert (await task_by_id(conn, job.id, nxt.id)).priority == 0


async def test_bump_of_an_audio_segment_bumps_its_whole_part(conn: asyncpg.Connection) -> None:
    job = await running_job(conn)
    specs = plan_tasks(("v360",), "a0", 12, 4, audio_part_segments=4)
    await tasks.create_tasks(conn, job, "v1", specs)
    before = cells(await tasks.job_tasks(conn, job.id))
    # the first part is not urgent: an urgent audio lane (max priority 0) leaves it alone
    assert await tasks.claim_task(conn, "w", 30, kinds=["audio"], max_priority=0) is None
    assert await tasks.bump(conn, job.title_id, "v1", "a0", 10) == "bumped"
    after = await tasks.job_tasks(conn, job.id)
    assert cells(after) == before  # never split
    urgent = await claim_one(conn, kinds=["audio"], max_priority=0)
    assert (urgent.first_number, urgent.segment_count, urgent.priority) == (9, 4, 0)
    assert await tasks.bump(conn, job.title_id, "v1", "a0", 11) == "running"
    # the audio lane takes the first part, then the later ones in timeline order
    assert [(await claim_one(conn, kinds=["audio"])).first_number for _ in range(2)] == [1, 5]


async def test_bump_splits_a_queued_chunk_around_the_cell(conn: asyncpg.Connection) -> None:
    job, created = await job_with_tasks(conn)
    before = cells(await tasks.job_tasks(conn, job.id))
    chunk = next(t for t in created if t.first_number == 9)
    assert await tasks.bump(conn, job.title_id, "v1", "v480", 12) == "split"
    after = await tasks.job_tasks(conn, job.id)
    assert cells(after) == before  # every cell once, still
    pieces = {(t.renditions, t.first_number, t.segment_count): t for t in after if 9 <= t.first_number <= 16}
    assert set(pieces) == {
        (("v480",), 12, 1),
        (RUNGS, 9, 3),
        (("v720", "v360"), 12, 1),
        (RUNGS, 13, 4),
    }
    cell = pieces[(("v480",), 12, 1)]
    assert cell.id == chunk.id and cell.priority == 0  # the row became the wanted cell
    assert all(t.priority == chunk.priority for k, t in pieces.items() if k != (("v480",), 12, 1))
    # it runs before everything else, the audio task (priority 1) included
    assert (await claim_one(conn)).id == cell.id
    assert (await claim_one(conn)).kind == "audio"
    # a one-cell queued task is bumped, not split; edges of a chunk leave no empty piece
    assert await tasks.bump(conn, job.title_id, "v1", "v360", 1) == "bumped"
    assert await tasks.bump(conn, job.title_id, "v1", "v720", 17) == "split"
    assert await tasks.bump(conn, job.title_id, "v1", "v720", 20) == "split"
    final = await tasks.job_tasks(conn, job.id)
    assert cells(final) == before
    assert {(t.renditions, t.first_number, t.segment_count) for t in final if t.first_number >= 17} == {
        (("v720",), 17, 1),
        (("v480", "v360"), 17, 1),
        (("v720",), 20, 1),
        (("v480", "v360"), 20, 1),
        (RUNGS, 18, 2),
    }


async def test_a_far_bump_also_bumps_the_fallbacks_at_the_same_number(conn: asyncpg.Connection) -> None:
    job = await running_job(conn)
    specs = plan_tasks(RUNGS, "a0", 40, 8, audio_part_segments=8)
    await tasks.create_tasks(conn, job, "v1", specs)
    before = cells(await tasks.job_tasks(conn, job.id))

    def urgent(ts: list[tasks.Task]) -> set[tuple[str, tuple[str, ...], int, int]]:
        return {(t.kind, t.renditions, t.first_number, t.segment_count) for t in ts if t.priority == 0}

    # Near: the first chunk is being made for the player's start; only the cell asked for moves.
    assert (
        await tasks.bump(conn, job.title_id, "v1", "v720", 3, fallbacks=(("v360", 2), ("v360", 3), ("a0", 3)))
        == "split"
    )
    assert urgent(await tasks.job_tasks(conn, job.id)) == {("video", ("v720",), 3, 1)}
    # Far (a later chunk nobody started): the lowest rung's and the audio's cells come too.
    assert (
        await tasks.bump(
            conn, job.title_id, "v1", "v720", 30, fallbacks=(("v360", 29), ("v360", 30), ("v720", 30), ("a0", 30))
        )
        == "split"
    )
    after = await tasks.job_tasks(conn, job.id)
    assert cells(after) == before  # every cell still once
    assert urgent(after) == {
        ("video", ("v720",), 3, 1),
        ("video", ("v720",), 30, 1),
        ("video", ("v360",), 29, 1),
        ("video", ("v360",), 30, 1),
        ("audio", ("a0",), 25, 8),  # the part holding segment 30, whole
    }
    # A far cell that is already running names no fallbacks again.
    running = await claim_one(conn, kinds=["video"], max_priority=0)
    assert (
        await tasks.bump(
            conn,
            job.title_id,
            "v1",
            running.renditions[0],
            running.first_number,
            fallbacks=(("v480", running.first_number),),
        )
        == "running"
    )
    assert all(t.priority != 0 for t in await tasks.job_tasks(conn, job.id) if "v480" in t.renditions)


async def test_the_audio_task_is_bumped_never_split(conn: asyncpg.Connection) -> None:
    job, created = await job_with_tasks(conn)
    assert await tasks.bump(conn, job.title_id, "v1", "a0", 10) == "bumped"
    audio = [t for t in await tasks.job_tasks(conn, job.id) if t.kind == "audio"]
    assert [(t.first_number, t.segment_count) for t in audio] == [(1, 20)]


async def test_concurrent_bumps_of_one_cell_make_one_task(own_database_url: str, conn: asyncpg.Connection) -> None:
    job, created = await job_with_tasks(conn)
    before = cells(created)
    a = await asyncpg.connect(own_database_url)
    b = await asyncpg.connect(own_database_url)
    try:
        # a holds the row (its transaction stays open); b's bump waits for it, then finds
        # the cell already split off and only bumps it
        tx = a.transaction()
        await tx.start()
        assert await tasks.bump(a, job.title_id, "v1", "v480", 12) == "split"
        waiting = asyncio.create_task(tasks.bump(b, job.title_id, "v1", "v480", 12))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await tx.commit()
        assert await asyncio.wait_for(waiting, 5) == "bumped"
        # a different cell of the same (already split) rectangle, raced from both sides
        tx = a.transaction()
        await tx.start()
        assert await tasks.bump(a, job.title_id, "v1", "v720", 14) == "split"
        other = asyncio.create_task(tasks.bump(b, job.title_id, "v1", "v360", 15))
        await asyncio.sleep(0.3)
        await tx.commit()
        assert await asyncio.wait_for(other, 5) == "split"
        # and many at once, without a held transaction
        results = await asyncio.gather(*(tasks.bump(c, job.title_id, "v1", "v480", 2) for c in (a, b)))
        assert sorted(results) == ["bumped", "split"]
    finally:
        await a.close()
        await b.close()
    after = await tasks.job_tasks(conn, job.id)
    assert cells(after) == before
    singles = [t for t in after if t.priority == 0 and t.kind == "video"]
    assert sorted((t.renditions, t.first_number) for t in singles) == sorted(
        [(("v480",), 2), (("v480",), 12), (("v720",), 14), (("v360",), 15)]
    )


async def test_concurrent_bumps_race_freely(own_database_url: str, conn: asyncpg.Connection) -> None:
    job, created = await job_with_tasks(conn, total=40)
    before = cells(created)
    conns = [await asyncpg.connect(own_database_url) for _ in range(4)]
    wanted = [(r, n) for n in range(9, 41, 3) for r in RUNGS]

    async def viewer(c: asyncpg.Connection, cells: list[tuple[str, int]]) -> list[str]:
        return [await tasks.bump(c, job.title_id, "v1", r, n) for r, n in cells]

    try:
        # four viewers, each asking for every wanted cell in its own order
        orders = [wanted, wanted[::-1], wanted[1::2] + wanted[::2], wanted[::2] + wanted[1::2]]
        results = [
            r for rs in await asyncio.gather(*(viewer(c, o) for c, o in zip(conns, orders, strict=True))) for r in rs
        ]
    finally:
        for c in conns:
            await c.close()
    assert set(results) <= {"split", "bumped"}
    after = await tasks.job_tasks(conn, job.id)
    assert cells(after) == before
    singles = {(t.renditions[0], t.first_number) for t in after if t.priority == 0 and t.kind == "video"}
    assert singles == set(wanted)


# --- wake-ups -----------------------------------------------------------------------------


async def test_listeners_are_woken_on_enqueue_tasks_release_and_bump(
    own_database_url: str, conn: asyncpg.Connection
) -> None:
    listener = await asyncpg.connect(own_database_url)
    got: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(tasks.WAKE_CHANNEL, lambda _c, _pid, _ch, payload: got.put_nowait(payload))

    async def next_payload() -> str:
        return await asyncio.wait_for(got.get(), 2)

    try:
        title_id = str(uuid.uuid4())
        queued = await jobs.enqueue(conn, title_id, "sources/x/original.mp4", 3)
        assert await next_payload() == f"job:{queued.id}"
        job = await jobs.claim(conn, "coord", 30)
        assert job is not None and await jobs.set_version(conn, job, "v1")
        await tasks.create_tasks(conn, job, "v1", plan_tasks(RUNGS, "a0", 20, 8))
        assert await next_payload() == f"tasks:{job.id}"
        await tasks.create_tasks(conn, job, "v1", plan_tasks(RUNGS, "a0", 20, 8))  # nothing new: quiet
        t = await claim_one(conn)
        assert await tasks.release_task(conn, t)
        assert await next_payload() == f"tasks:{job.id}"
        assert await tasks.bump(conn, title_id, "v1", "v720", 10) == "split"
        assert await next_payload() == f"tasks:{job.id}"
        assert await tasks.bump(conn, title_id, "v1", "v720", 10) == "bumped"
        assert await next_payload() == f"tasks:{job.id}"
        assert await jobs.release(conn, job)
        assert await next_payload() == f"job:{job.id}"
        job = await jobs.claim(conn, "coord", 30)
        assert job is not None
        assert await jobs.defer(conn, job, "storage down") is not None
        assert await next_payload() == f"job:{job.id}"
        # a notification inside a transaction arrives when it commits, not before
        async with conn.transaction():
            await jobs.enqueue(conn, str(uuid.uuid4()), "sources/y/original.mp4", 3)
            await asyncio.sleep(0.2)
            assert got.empty()
        assert (await next_payload()).startswith("job:")
        await asyncio.sleep(0.1)
        assert got.empty()  # nothing else was sent
    finally:
        await listener.close()


async def test_concurrent_claimers_never_share_a_task(own_database_url: str, conn: asyncpg.Connection) -> None:
    job, created = await job_with_tasks(conn, total=60, k=4)
    claimers = [await asyncpg.connect(own_database_url) for _ in range(4)]

    async def drain(c: asyncpg.Connection, name: str) -> list[int]:
        got = []
        while (t := await tasks.claim_task(c, name, 30)) is not None:
            got.append(t.id)
        return got

    try:
        results = await asyncio.gather(*(drain(c, f"w{i}") for i, c in enumerate(claimers)))
    finally:
        for c in claimers:
            await c.close()
    assert sorted(i for r in results for i in r) == sorted(t.id for t in created)  # each once


async def test_a_better_queued_task_comes_before_an_expired_one(conn: asyncpg.Connection) -> None:
    job, created = await job_with_tasks(conn, audio=False, total=12, k=4, rungs=("v360",))
    by_first = {t.first_number: t for t in created}  # 1 (p1), 2..4 (p2), 5..8 (p11), 9..12 (p12)
    await claim_one(conn, "a")
    await claim_one(conn, "b")
    dead = await claim_one(conn, "dead", 0.1)
    assert dead.id == by_first[5].id
    await asyncio.sleep(0.3)
    assert await tasks.bump(conn, job.title_id, "v1", "v360", 12) == "split"
    assert (await claim_one(conn, "c")).first_number == 12  # bumped: priority 0
    assert (await claim_one(conn, "c")).id == dead.id  # expired, priority 11
    assert (await claim_one(conn, "c")).first_number == 9  # then the queued rest, priority 12
