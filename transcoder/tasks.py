"""The task queue in Postgres (`jobs.transcode_tasks`): a job's encode cut into rectangles
(renditions x a range of segment numbers) that any worker may claim. Pure SQL, no policy.

The job's coordinator (the worker holding the job) plans the rectangles (`plan_tasks`) and
creates them (`create_tasks`, fenced on the job, idempotent for the job's version). A task is
`queued` until a worker claims it (`FOR UPDATE SKIP LOCKED`), then `running` under a lease
renewed by `heartbeat_task`; a lease that runs out means its worker died and the next
`claim_task` takes it over (the dead attempt counts). Every write to a task is fenced on
(id, worker_id, attempts), as for jobs. Tasks are claimable only while their JOB is
`running`: a cancelled, failed, finished (or given back) job's tasks wait, and the heartbeat
of a running one answers False so its worker stops ffmpeg and `release_task`s it.

Order: lower `priority` first, then `first_number`, then id. `bump` (a viewer waits for a
segment) moves the task owning that segment to priority 0, splitting a queued multi-segment
video task so exactly the wanted segment runs first. An audio task is never split (one encode
of the whole timeline, or of one part of a long title's: its pre-roll makes it continuous).

Work becoming claimable (tasks created, released, bumped) sends a NOTIFY on `WAKE_CHANNEL`
(payload `tasks:<job id>`) when the transaction commits.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from transcoder.jobs import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    DEFER_BASE_S,
    DEFER_CAP_S,
    WAKE_CHANNEL,
    Job,
    _one_line,
    fail_leased,
    put_back_leased,
)

__all__ = [
    "WAKE_CHANNEL",
    "Task",
    "TaskSpec",
    "bump",
    "cancel_tasks",
    "claim_task",
    "complete_task",
    "create_tasks",
    "defer_task",
    "fail_task",
    "failed_task",
    "heartbeat_task",
    "job_tasks",
    "plan_tasks",
    "reap_tasks",
    "release_task",
    "task_progress",
]

# Priorities set by plan_tasks (lower runs first). A viewer's bump sets 0.
PRIORITY_AUDIO = 1  # the (first part of the) audio: over 0, so only the audio lane takes it
PRIORITY_FIRST = 1  # the lowest rung's first segment: a player can start
PRIORITY_CHUNK1 = 2  # the rest of the first chunk
PRIORITY_CHUNKS = 10  # chunk c (0-based, c >= 1) gets PRIORITY_CHUNKS + c: timeline order
# create_tasks' stages: every task at once, or what a player starts with, then the rest.
STAGE_ALL = 0
STAGE_START = 1
STAGE_REST = 2

_NAMES = (
    "id",
    "job_id",
    "title_id",
    "version",
    "kind",
    "renditions",
    "first_number",
    "segment_count",
    "priority",
    "status",
    "attempts",
    "max_attempts",
    "deferrals",
    "worker_id",
    "lease_until",
    "run_after",
    "error",
    "result",
    "created_at",
    "updated_at",
    "finished_at",
)
_COLUMNS = ", ".join(_NAMES)
_T_COLUMNS = ", ".join("t." + c for c in _NAMES)
_TASKS = "jobs.transcode_tasks"
# bump: how many times to look for a cell whose row concurrent bumps keep splitting
_LOCATE_TRIES = 50
# The live job of a title (at most one: a partial unique index), by that index.
_LIVE_JOB = "(SELECT id FROM jobs.transcode_jobs WHERE title_id = $1 AND status IN ('queued', 'running'))"
# bump: the row owning a cell ($1 title, $2 version, $3 rendition, $4 number)
_CELL = f"""job_id = {_LIVE_JOB} AND version = $2 AND $3 = ANY(renditions)
            AND first_number <= $4 AND first_number + segment_count > $4"""


@dataclass(frozen=True)
class TaskSpec:
    """One planned rectangle: `renditions` x segments first .. first + count - 1."""

    kind: str  # "audio" | "video"
    renditions: tuple[str, ...]
    first: int
    count: int
    priority: int

    @property
    def last(self) -> int:
        return self.first + self.count - 1


def starter_specs(specs: Iterable[TaskSpec]) -> tuple[list[TaskSpec], list[TaskSpec]]:
    """`specs` (from `plan_tasks`) split into what does not depend on the video ladder beyond
    its lowest rung and the rest. The first: every audio task and the lowest rung's tasks of
    the first chunk (its first segment alone, then the rest of the chunk), what a player
    starts with and plays next."""
    specs = list(specs)
    first = next((s for s in specs if s.kind == "video" and s.priority == PRIORITY_FIRST and s.first == 1), None)
    start: list[TaskSpec] = []
    rest: list[TaskSpec] = []
    for s in specs:
        lowest_only = first is not None and s.kind == "video" and s.renditions == first.renditions
        (start if s.kind == "audio" or lowest_only else rest).append(s)
    return start, rest


def plan_tasks(
    video_ids: Sequence[str],
    audio_ids: str | Sequence[str] | None,
    total: int,
    chunk_segments: int,
    av1_ids: Sequence[str] = (),
    audio_part_segments: int = 0,
) -> list[TaskSpec]:
    """The tasks of a title of `total` segments (numbered 1..total), every (rendition, number)
    cell exactly once. `video_ids`: the video renditions, highest rung first (Ladder.rungs);
    `audio_ids`: the audio renditions, the default one (a player needs it to start) first.

    - audio: one task per audio rendition for the whole timeline (priority 1, in that order);
      with `audio_part_segments` (a multiple of the AAC frame grid, see
      `chunks.audio_grid_segments`) and more segments than that, parts of that many segments
      instead: the first at priority 1, the later ones bulk, in timeline order
      (PRIORITY_CHUNKS + part index), so a viewer's bump runs only the part it needs;
    - the lowest rung's segment 1 alone (priority 1): a player can start with it;
    - the rest of chunk 1 (segments 1..K): (lowest, [2, K]) and (the other rungs, [1, K])
      (priority 2), so nothing is encoded twice;
    - then chunks of K segments over all rungs, in timeline order (priority 10 + chunk index);
    - `av1_ids` (the AV1 rungs, highest first) in chunks of their own, a separate ffmpeg from
      the H.264 rungs (another encoder, several times slower per pixel): chunk c right after
      the H.264 chunk c (priority 10 + c + 1, ahead of H.264 chunk c + 1 by its earlier first
      number), so the first playable segment and chunk never wait for AV1, and it runs nice
      like any bulk chunk.
    """
    if chunk_segments < 1:
        raise ValueError(f"chunk_segments must be at least 1, not {chunk_segments}")
    if total < 1:
        return []
    specs: list[TaskSpec] = []
    if audio_part_segments < 0:
        raise ValueError(f"audio_part_segments must not be negative, not {audio_part_segments}")
    part = audio_part_segments if 0 < audio_part_segments < total else total
    for audio_id in [audio_ids] if isinstance(audio_ids, str) else audio_ids or ():
        for index, first in enumerate(range(1, total + 1, part)):
            priority = PRIORITY_AUDIO if index == 0 else PRIORITY_CHUNKS + index
            specs.append(TaskSpec("audio", (audio_id,), first, min(part, total - first + 1), priority))
    if not video_ids:
        return specs
    videos = tuple(video_ids)
    lowest, others = videos[-1:], videos[:-1]
    first_chunk = min(chunk_segments, total)
    specs.append(TaskSpec("video", lowest, 1, 1, PRIORITY_FIRST))
    if first_chunk > 1:
        specs.append(TaskSpec("video", lowest, 2, first_chunk - 1, PRIORITY_CHUNK1))
    if others:
        specs.append(TaskSpec("video", others, 1, first_chunk, PRIORITY_CHUNK1))
    for chunk in range(1, math.ceil(total / chunk_segments)):
        first = chunk * chunk_segments + 1
        count = min(chunk_segments, total - first + 1)
        specs.append(TaskSpec("video", videos, first, count, PRIORITY_CHUNKS + chunk))
    if av1_ids:
        for chunk in range(math.ceil(total / chunk_segments)):
            first = chunk * chunk_segments + 1
            count = min(chunk_segments, total - first + 1)
            specs.append(TaskSpec("video", tuple(av1_ids), first, count, PRIORITY_CHUNKS + chunk + 1))
    return specs


@dataclass(frozen=True)
class Task:
    id: int
    job_id: int
    title_id: str
    version: str
    kind: str  # "audio" | "video"
    renditions: tuple[str, ...]
    first_number: int
    segment_count: int
    priority: int
    status: str  # queued | running | done | failed | cancelled
    attempts: int  # including the current one once claimed; the fencing token
    max_attempts: int
    deferrals: int  # times put back by an outage, attempt not spent
    worker_id: str | None
    lease_until: datetime | None
    run_after: datetime
    error: str | None
    result: dict[str, Any] | None  # what the encode produced (complete_task)
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def last_number(self) -> int:
        return self.first_number + self.segment_count - 1

    def cells(self) -> set[tuple[str, int]]:
        """Every (rendition, segment number) this task makes."""
        return {(r, n) for r in self.renditions for n in range(self.first_number, self.last_number + 1)}


def _task(row: asyncpg.Record) -> Task:
    data = dict(row)
    data["title_id"] = str(data["title_id"])
    data["renditions"] = tuple(data["renditions"])
    if data["result"] is not None:
        data["result"] = json.loads(data["result"])
    return Task(**data)


async def create_tasks(
    conn: asyncpg.Connection,
    job: Job,
    version: str,
    specs: Iterable[TaskSpec],
    *,
    max_attempts: int = 3,
    stage: int = STAGE_ALL,
) -> list[Task]:
    """Create the job's tasks of `stage` for `version` (the job's version: `jobs.set_version`
    first). Idempotent per stage: when the job already has tasks of that stage for that
    version (an earlier attempt made them), returns those untouched. Fenced on the job:
    returns [] when the job is no longer ours or its version is not `version`. Ordered as
    claimed (priority, first number, id).

    Stages: a job makes all its tasks at once (STAGE_ALL), or what a player starts with first
    (STAGE_START, `starter_specs`) and the rest (STAGE_REST) once its ladder is chosen."""
    payload = json.dumps(
        [
            {
                "kind": s.kind,
                "renditions": list(s.renditions),
                "first": s.first,
                "count": s.count,
                "priority": s.priority,
            }
            for s in specs
        ]
    )
    # One statement: the fence locks the job row (only the job's current attempt passes it,
    # so there is one creator at a time); `existing` reads the statement's snapshot, from
    # before the insert, so exactly one half of the UNION returns rows.
    rows = await conn.fetch(
        f"""WITH j AS (SELECT id, title_id FROM jobs.transcode_jobs
                        WHERE id = $1 AND worker_id = $2 AND attempts = $3 AND status = 'running'
                          AND version = $4
                          FOR UPDATE),
                 existing AS (SELECT {_T_COLUMNS} FROM {_TASKS} t, j
                               WHERE t.job_id = j.id AND t.version = $4 AND t.stage = $8),
                 ins AS (INSERT INTO {_TASKS} (job_id, title_id, version, kind, renditions,
                                               first_number, segment_count, priority, max_attempts,
                                               stage)
                         SELECT j.id, j.title_id, $4, s->>'kind',
                                ARRAY(SELECT jsonb_array_elements_text(s->'renditions')),
                                (s->>'first')::int, (s->>'count')::int, (s->>'priority')::int, $6, $8
                           FROM j, jsonb_array_elements($5::jsonb) s
                          WHERE NOT EXISTS (SELECT 1 FROM existing)
                      RETURNING {_COLUMNS}),
                 n AS (SELECT pg_notify($7, 'tasks:' || $1::bigint) WHERE EXISTS (SELECT 1 FROM ins))
            SELECT * FROM ins, (SELECT count(*) FROM n) notified
            UNION ALL
            SELECT *, 0 FROM existing
            ORDER BY priority, first_number, id""",
        job.id,
        job.worker_id,
        job.attempts,
        version,
        payload,
        max_attempts,
        WAKE_CHANNEL,
        stage,
    )
    return [_task({k: v for k, v in r.items() if k != "count"}) for r in rows]


async def claim_task(
    conn: asyncpg.Connection,
    worker_id: str,
    lease_s: float,
    *,
    job_id: int | None = None,
    kinds: Iterable[str] | None = None,
    max_priority: int | None = None,
    running: Iterable[int] = (),
) -> Task | None:
    """Take the best task (lowest priority, then first number, then id) of a LIVE job
    (running, or queued again: its coordinator gave it back or waits out a backoff, and the
    title's other workers carry on meanwhile):
    queued and due, or running with an expired lease (its worker died) and attempts left.
    Counts the attempt. `job_id`, `kinds` ("audio", "video"), `max_priority` narrow the
    choice. `running`: task ids the caller still works on, never taken over by it."""
    # Two candidates, each the first of an ordered index walk (the claim index for queued
    # tasks, the lease index for expired ones) instead of sorting every queued task of every
    # title; the better of the two is taken (the other one stays locked, so skipped by other
    # claimers, until this transaction ends: at once when the caller is not in one).
    where = """j.status IN ('queued', 'running')
                AND ($4::bigint IS NULL OR c.job_id = $4)
                AND ($5::text[] IS NULL OR c.kind = ANY($5::text[]))
                AND ($6::int IS NULL OR c.priority <= $6)"""
    row = await conn.fetchrow(
        f"""WITH queued AS (SELECT c.id, c.priority, c.first_number
                              FROM {_TASKS} c JOIN jobs.transcode_jobs j ON j.id = c.job_id
                             WHERE c.status = 'queued' AND c.run_after <= now() AND {where}
                             ORDER BY c.priority, c.first_number, c.id
                             LIMIT 1
                               FOR UPDATE OF c SKIP LOCKED),
                 expired AS (SELECT c.id, c.priority, c.first_number
                               FROM {_TASKS} c JOIN jobs.transcode_jobs j ON j.id = c.job_id
                              WHERE c.status = 'running' AND c.lease_until < now()
                                AND c.attempts < c.max_attempts AND NOT c.id = ANY($3::bigint[]) AND {where}
                              ORDER BY c.priority, c.first_number, c.id
                              LIMIT 1
                                FOR UPDATE OF c SKIP LOCKED),
                 pick AS (SELECT id FROM (SELECT * FROM queued UNION ALL SELECT * FROM expired) both_
                           ORDER BY priority, first_number, id
                           LIMIT 1)
            UPDATE {_TASKS} t
               SET status = 'running', attempts = t.attempts + 1, worker_id = $1,
                   lease_until = now() + make_interval(secs => $2), updated_at = now()
              FROM pick
             WHERE t.id = pick.id
         RETURNING {_T_COLUMNS}""",
        worker_id,
        float(lease_s),
        list(running),
        job_id,
        None if kinds is None else list(kinds),
        max_priority,
    )
    return _task(row) if row else None


async def heartbeat_task(conn: asyncpg.Connection, task: Task, lease_s: float) -> bool:
    """Renew our lease. False when the task is no longer ours (taken over, cancelled) or its
    job is over (cancelled, failed, done): stop ffmpeg, then
    `release_task` (which does nothing when the task is not ours)."""
    result = await conn.execute(
        f"""UPDATE {_TASKS} t
               SET lease_until = now() + make_interval(secs => $4), updated_at = now()
              FROM jobs.transcode_jobs j
             WHERE t.id = $1 AND t.worker_id = $2 AND t.attempts = $3 AND t.status = 'running'
               AND j.id = t.job_id AND j.status IN ('queued', 'running')""",
        task.id,
        task.worker_id,
        task.attempts,
        float(lease_s),
    )
    return result == "UPDATE 1"


async def complete_task(conn: asyncpg.Connection, task: Task, result: dict[str, Any]) -> bool:
    """Mark our task done with its `result` (JSON). False when it is no longer ours or its
    job is over (a title deleted mid-encode: what the task stored belongs to nobody)."""
    status = await conn.execute(
        f"""UPDATE {_TASKS} t
               SET status = 'done', result = $4::jsonb, lease_until = NULL, error = NULL,
                   finished_at = now(), updated_at = now()
              FROM jobs.transcode_jobs j
             WHERE t.id = $1 AND t.worker_id = $2 AND t.attempts = $3 AND t.status = 'running'
               AND j.id = t.job_id AND j.status IN ('queued', 'running')""",
        task.id,
        task.worker_id,
        task.attempts,
        json.dumps(result),
    )
    return status == "UPDATE 1"


async def fail_task(
    conn: asyncpg.Connection,
    task: Task,
    reason: str,
    *,
    retryable: bool = True,
    base_s: float = BACKOFF_BASE_S,
    cap_s: float = BACKOFF_CAP_S,
) -> str | None:
    """Record a failed attempt: "queued" (again after backoff, as `jobs.fail`), "failed"
    (attempts spent, or not retryable: the coordinator fails the job), or None when the task
    was not ours any more."""
    return await fail_leased(conn, _TASKS, task, reason, retryable=retryable, base_s=base_s, cap_s=cap_s)


async def release_task(conn: asyncpg.Connection, task: Task) -> bool:
    """Give our task back at once, this attempt not counted (shutting down, or the job
    stopped running). Due now; wakes the workers."""
    return await put_back_leased(conn, _TASKS, task, wake="'tasks:' || t.job_id") is not None


async def defer_task(
    conn: asyncpg.Connection,
    task: Task,
    reason: str,
    *,
    base_s: float = DEFER_BASE_S,
    cap_s: float = DEFER_CAP_S,
) -> float | None:
    """Put our task back because a dependency (storage, ...) was unreachable: queued again
    after `jobs.deferral_s(its deferrals)`, this attempt not counted, `deferrals` + 1, the
    reason kept. Returns the delay, or None when the task was not ours any more."""
    return await put_back_leased(
        conn, _TASKS, task, wake="'tasks:' || t.job_id", reason=reason, base_s=base_s, cap_s=cap_s
    )


async def reap_tasks(conn: asyncpg.Connection, *, running: Iterable[int] = ()) -> list[Task]:
    """Fail running tasks whose lease expired on their last attempt (the worker died every
    time). Returns them: the coordinator of each job then fails the job. `running`: task ids
    the caller still works on."""
    rows = await conn.fetch(
        f"""UPDATE {_TASKS} t
               SET status = 'failed', finished_at = now(), updated_at = now(), lease_until = NULL,
                   error = coalesce(t.error || '; ', '') || 'the worker running it stopped responding '
                           || t.attempts || ' times'
              FROM (SELECT id FROM {_TASKS}
                     WHERE status = 'running' AND lease_until < now() AND attempts >= max_attempts
                       AND NOT id = ANY($1::bigint[])
                     FOR UPDATE SKIP LOCKED) c
             WHERE t.id = c.id
         RETURNING {_T_COLUMNS}""",
        list(running),
    )
    return [_task(r) for r in rows]


async def cancel_tasks(conn: asyncpg.Connection, job_id: int, reason: str = "job ended") -> int:
    """End a job's queued and running tasks (their workers' next heartbeat says False)."""
    result = await conn.execute(
        f"""UPDATE {_TASKS}
               SET status = 'cancelled', error = $2, lease_until = NULL, finished_at = now(),
                   updated_at = now()
             WHERE job_id = $1 AND status IN ('queued', 'running')""",
        job_id,
        _one_line(reason),
    )
    return int(result.split()[-1])


async def job_stages(conn: asyncpg.Connection, job_id: int, version: str) -> set[int]:
    """The stages (`create_tasks`) of which the job has tasks for `version`."""
    rows = await conn.fetch(f"SELECT DISTINCT stage FROM {_TASKS} WHERE job_id = $1 AND version = $2", job_id, version)
    return {r["stage"] for r in rows}


async def job_tasks(conn: asyncpg.Connection, job_id: int) -> list[Task]:
    """The job's tasks in timeline order (first number, then id)."""
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM {_TASKS} WHERE job_id = $1 ORDER BY first_number, id", job_id)
    return [_task(r) for r in rows]


async def task_progress(conn: asyncpg.Connection, job_id: int) -> tuple[int, int]:
    """(done, total) in (rendition, segment) cells, so a split does not move it. All done
    when done == total > 0."""
    row = await conn.fetchrow(
        f"""SELECT coalesce(sum(cardinality(renditions) * segment_count) FILTER (WHERE status = 'done'), 0)::int,
                   coalesce(sum(cardinality(renditions) * segment_count), 0)::int
              FROM {_TASKS} WHERE job_id = $1""",
        job_id,
    )
    return int(row[0]), int(row[1])


async def failed_task(conn: asyncpg.Connection, job_id: int) -> Task | None:
    """A failed task of the job (the first one), whose error fails the job."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM {_TASKS} WHERE job_id = $1 AND status = 'failed' ORDER BY id LIMIT 1", job_id
    )
    return _task(row) if row else None


def split_rectangles(
    renditions: Sequence[str], first: int, last: int, rendition_id: str, number: int
) -> list[tuple[tuple[str, ...], int, int]]:
    """Cut the rectangle `renditions` x [first, last] around the cell (rendition_id, number):
    [(({rendition_id}, number, number)), (R, first, number-1), (R - {r}, number, number),
    (R, number+1, last)], empty ones dropped; the cell comes first. Together they cover the
    rectangle's cells exactly once."""
    rest = tuple(r for r in renditions if r != rendition_id)
    parts: list[tuple[tuple[str, ...], int, int]] = [((rendition_id,), number, number)]
    if number > first:
        parts.append((tuple(renditions), first, number - 1))
    if rest:
        parts.append((rest, number, number))
    if number < last:
        parts.append((tuple(renditions), number + 1, last))
    return parts


async def bump(
    conn: asyncpg.Connection,
    title_id: str,
    version: str,
    rendition_id: str,
    number: int | None,
    *,
    fallbacks: Sequence[tuple[str, int]] = (),
) -> str:
    """A viewer waits for segment `number` of `rendition_id` (None: its init segment) of the
    title's `version`. Returns:

    - "done": made already (the init: any task of the rendition is done);
    - "running": a worker is making it (its task's priority is set to 0 anyway, so a retry
      of it comes first);
    - "bumped": its queued task had this one cell (or is the audio task, never split; or, for
      an init, the rendition's queued task with the lowest first number): priority 0 now;
    - "split": its queued task had more cells: cut so exactly this cell is a new task at
      priority 0, the rest keeping their priority (one transaction);
    - "unknown": the title has no live job for that version, or nothing owns the cell.

    Two statements on the indexes (live job by title, tasks by job). Concurrent bumps of
    the same task serialize on its row lock; a bump whose row was split under it looks again,
    so a cell is never made twice.

    `fallbacks`: the cells (rendition, number) a player is likely to ask for next (the lowest
    video rung an adaptive player drops to when the one it asked for is slow, the audio it needs
    beside the video). When the wanted cell lay in a chunk no worker had started (a seek far
    ahead), those are bumped too, so they are being made while the player still waits for its
    first choice instead of after it gives up on it."""
    try:
        tid = uuid.UUID(str(title_id))
    except ValueError:
        return "unknown"
    if number is None:
        return await _bump_init(conn, tid, version, rendition_id)
    status, far = await _bump_cell(conn, tid, version, rendition_id, number)
    if far:
        for other, other_number in fallbacks:
            if (other, other_number) != (rendition_id, number) and other_number >= 1:
                await _bump_cell(conn, tid, version, other, other_number)
    return status


async def _bump_cell(
    conn: asyncpg.Connection, tid: uuid.UUID, version: str, rendition_id: str, number: int
) -> tuple[str, bool]:
    """bump() of one media cell: (status, whether it was queued in a later chunk or audio
    part, priority >= PRIORITY_CHUNKS)."""
    args = (tid, version, rendition_id, number)
    async with conn.transaction():
        row = None
        for _ in range(_LOCATE_TRIES):
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM {_TASKS} WHERE {_CELL} LIMIT 1 FOR UPDATE", *args)
            if row is not None:
                break
            # Nothing, or a concurrent bump split the row we waited for (the re-check after
            # the lock drops it, and this statement's snapshot predates the new rows). A new
            # statement sees them: look again only when the cell has an owner now.
            if await conn.fetchval(f"SELECT 1 FROM {_TASKS} WHERE {_CELL} LIMIT 1", *args) is None:
                return "unknown", False
        if row is None:
            return "unknown", False
        task = _task(row)
        if task.status == "done":
            return "done", False
        if task.status == "running":
            if task.priority != 0:
                await conn.execute(f"UPDATE {_TASKS} SET priority = 0, updated_at = now() WHERE id = $1", task.id)
            return "running", False
        if task.status != "queued":  # failed or cancelled: its job is ending
            return "unknown", False
        if len(task.renditions) * task.segment_count == 1 or task.kind == "audio":
            await conn.execute(
                f"""WITH u AS (UPDATE {_TASKS} SET priority = 0, updated_at = now() WHERE id = $1
                            RETURNING job_id)
                    SELECT pg_notify($2, 'tasks:' || u.job_id) FROM u""",
                task.id,
                WAKE_CHANNEL,
            )
            return "bumped", task.priority >= PRIORITY_CHUNKS
        parts = split_rectangles(task.renditions, task.first_number, task.last_number, rendition_id, number)
        rest = json.dumps([{"renditions": list(r), "first": a, "count": b - a + 1} for r, a, b in parts[1:]])
        # One statement: the row becomes the wanted cell at priority 0, the rest of its
        # rectangle new rows with its priority and history (attempts, deferrals, due time).
        await conn.execute(
            f"""WITH u AS (UPDATE {_TASKS}
                              SET renditions = ARRAY[$2::text], first_number = $3, segment_count = 1,
                                  priority = 0, updated_at = now()
                            WHERE id = $1
                        RETURNING {_COLUMNS}),
                     ins AS (INSERT INTO {_TASKS} (job_id, title_id, version, kind, renditions, first_number,
                                                   segment_count, priority, attempts, max_attempts, deferrals,
                                                   run_after, error, created_at)
                             SELECT u.job_id, u.title_id, u.version, u.kind,
                                    ARRAY(SELECT jsonb_array_elements_text(s->'renditions')),
                                    (s->>'first')::int, (s->>'count')::int, $4, u.attempts, u.max_attempts,
                                    u.deferrals, u.run_after, u.error, u.created_at
                               FROM u, jsonb_array_elements($5::jsonb) s
                          RETURNING job_id)
                SELECT pg_notify($6, 'tasks:' || u.job_id) FROM u""",
            task.id,
            rendition_id,
            number,
            task.priority,
            rest,
            WAKE_CHANNEL,
        )
        return "split", task.priority >= PRIORITY_CHUNKS


async def _bump_init(conn: asyncpg.Connection, tid: uuid.UUID, version: str, rendition_id: str) -> str:
    # One statement: done/running anywhere in the rendition answers; else its queued task
    # with the lowest first number goes to priority 0.
    row = await conn.fetchrow(
        f"""WITH mine AS (SELECT id, status, first_number, job_id FROM {_TASKS}
                           WHERE job_id = {_LIVE_JOB} AND version = $2 AND $3 = ANY(renditions)),
                 state AS (SELECT bool_or(status = 'done') AS done, bool_or(status = 'running') AS running
                             FROM mine),
                 pick AS (SELECT id FROM mine, state
                           WHERE status = 'queued' AND NOT coalesce(state.done, false)
                             AND NOT coalesce(state.running, false)
                           ORDER BY first_number, id LIMIT 1),
                 u AS (UPDATE {_TASKS} t SET priority = 0, updated_at = now()
                         FROM pick WHERE t.id = pick.id
                     RETURNING t.job_id),
                 n AS (SELECT pg_notify($4, 'tasks:' || u.job_id) FROM u)
            SELECT state.done, state.running, (SELECT count(*) FROM n) AS bumped FROM state""",
        tid,
        version,
        rendition_id,
        WAKE_CHANNEL,
    )
    if row["done"]:
        return "done"
    if row["running"]:
        return "running"
    return "bumped" if row["bumped"] else "unknown"
