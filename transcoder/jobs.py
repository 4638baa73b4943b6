"""The transcode job queue in Postgres (`jobs.transcode_jobs`): pure SQL, no policy.

A job is `queued` until a worker claims it (`FOR UPDATE SKIP LOCKED`, so claimers never wait
on each other and never take the same row), then `running` under a lease the worker renews by
heartbeat. A lease that runs out means the worker died: the next `claim` takes the job over
(the dead attempt counts). Every write a worker makes to its job is fenced on
(worker_id, attempts), so a worker that lost its lease cannot complete, fail or release a job
that another worker now holds.

Retries: `fail` requeues with exponential backoff while attempts remain, else the job ends
`failed`; the caller then marks the title failed. `release` gives a job back without counting
the attempt (a graceful shutdown is not the job's fault), and so does `defer` (a dependency
outage is not the title's fault either), on a schedule that grows to minutes and never ends.
`requeue` gives a failed title a new job with fresh attempts (an operator's retry).

Whenever a job becomes claimable (enqueued, requeued, released) or its due time moves
(deferred), a NOTIFY on `WAKE_CHANNEL` (payload `job:<id>`, sent when the transaction commits)
wakes listening workers at once instead of at their next poll. The job's `version` (the
version it publishes) is chosen once by its first attempt (`set_version`) and reused by the
later ones, whose tasks (transcoder/tasks.py) belong to it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg

BACKOFF_BASE_S = 10.0
BACKOFF_CAP_S = 600.0
DEFER_BASE_S = 10.0
DEFER_CAP_S = 120.0
ERROR_MAX_CHARS = 500
# The Postgres NOTIFY channel sent whenever work becomes claimable (a job, or tasks: see
# transcoder/tasks.py, which re-exports it); workers LISTEN on it.
WAKE_CHANNEL = "streamflix_work"

_COLUMNS = (
    "id, title_id, source, status, attempts, max_attempts, deferrals, run_after, lease_until, worker_id,"
    " progress, error, created_at, updated_at, finished_at, version"
)
_J_COLUMNS = ", ".join("j." + c.strip() for c in _COLUMNS.split(","))


@dataclass(frozen=True)
class Job:
    id: int
    title_id: str
    source: str  # storage key of the uploaded source; a URL until a worker fetched it (API ingest)
    status: str
    attempts: int  # including the current one once claimed; the fencing token
    max_attempts: int
    deferrals: int  # times put back by an outage, attempt not spent (`defer`)
    run_after: datetime
    lease_until: datetime | None
    worker_id: str | None
    progress: float
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    version: str | None = None  # the version it publishes, once its first attempt chose it

    @property
    def active(self) -> bool:
        """Still to be done (queued or running): not done, failed or cancelled."""
        return self.status in ("queued", "running")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title_id": self.title_id,
            "status": self.status,
            "progress": round(self.progress, 1),
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "deferrals": self.deferrals,
            "error": self.error,
            "worker_id": self.worker_id,
            "run_after": self.run_after.isoformat(),
            "lease_until": self.lease_until.isoformat() if self.lease_until else None,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "version": self.version,
        }


def _job(row: asyncpg.Record) -> Job:
    data = dict(row)
    data["title_id"] = str(data["title_id"])
    return Job(**data)


def backoff_s(attempts: int, base_s: float = BACKOFF_BASE_S, cap_s: float = BACKOFF_CAP_S) -> float:
    """Delay before the next try after `attempts` failed ones: base, 2x base, 4x base, ..."""
    return min(cap_s, base_s * 2 ** max(0, attempts - 1))


def deferral_s(deferrals: int, base_s: float = DEFER_BASE_S, cap_s: float = DEFER_CAP_S) -> float:
    """Delay before a job deferred `deferrals` times before runs again: base, 2x base, ...,
    capped. No limit on how many: an outage ends when it ends."""
    return min(cap_s, base_s * 2 ** min(max(0, deferrals), 32))


def _one_line(reason: str) -> str:
    line = " ".join(str(reason).split()) or "unknown error"
    return line if len(line) <= ERROR_MAX_CHARS else line[: ERROR_MAX_CHARS - 1] + "…"


async def enqueue(conn: asyncpg.Connection, title_id: str, source: str, max_attempts: int) -> Job:
    row = await conn.fetchrow(
        f"""WITH j AS (INSERT INTO jobs.transcode_jobs (title_id, source, max_attempts)
                       VALUES ($1, $2, $3) RETURNING {_COLUMNS})
            SELECT {_J_COLUMNS} FROM j, LATERAL (SELECT pg_notify($4, 'job:' || j.id)) n""",
        uuid.UUID(str(title_id)),
        source,
        max_attempts,
        WAKE_CHANNEL,
    )
    return _job(row)


async def claim(
    conn: asyncpg.Connection,
    worker_id: str,
    lease_s: float,
    *,
    title_id: str | None = None,
    running: Iterable[int] = (),
) -> Job | None:
    """Take the oldest runnable job: queued and due, or running with an expired lease (its
    worker died). Counts the attempt. `title_id` restricts the claim to one title (`ingest
    --wait`). `running`: job ids the caller is still working on, never taken over by it (after
    a database outage longer than the lease, its own expired leases are still its own). Jobs
    out of attempts are left to `reap_exhausted`."""
    row = await conn.fetchrow(
        f"""UPDATE jobs.transcode_jobs j
               SET status = 'running', attempts = j.attempts + 1, worker_id = $1,
                   lease_until = now() + make_interval(secs => $2), progress = 0,
                   updated_at = now()
              FROM (SELECT id FROM jobs.transcode_jobs
                     WHERE ((status = 'queued' AND run_after <= now())
                            OR (status = 'running' AND lease_until < now()
                                AND attempts < max_attempts AND NOT id = ANY($4::bigint[])))
                       AND ($3::uuid IS NULL OR title_id = $3::uuid)
                     ORDER BY run_after, id
                     LIMIT 1
                     FOR UPDATE SKIP LOCKED) c
             WHERE j.id = c.id
         RETURNING {_J_COLUMNS}""",
        worker_id,
        float(lease_s),
        uuid.UUID(str(title_id)) if title_id else None,
        list(running),
    )
    return _job(row) if row else None


async def reap_exhausted(conn: asyncpg.Connection, *, running: Iterable[int] = ()) -> list[Job]:
    """Fail running jobs whose lease expired on their last attempt (the worker died every
    time: a source that crashes or starves workers must not loop forever). Returns them so
    the caller marks their titles failed. `running`: job ids the caller still works on."""
    rows = await conn.fetch(
        f"""UPDATE jobs.transcode_jobs j
               SET status = 'failed', finished_at = now(), updated_at = now(), lease_until = NULL,
                   error = coalesce(j.error || '; ', '') || 'the worker running it stopped responding '
                           || j.attempts || ' times'
              FROM (SELECT id FROM jobs.transcode_jobs
                     WHERE status = 'running' AND lease_until < now() AND attempts >= max_attempts
                       AND NOT id = ANY($1::bigint[])
                     FOR UPDATE SKIP LOCKED) c
             WHERE j.id = c.id
         RETURNING {_J_COLUMNS}""",
        list(running),
    )
    return [_job(r) for r in rows]


async def heartbeat(conn: asyncpg.Connection, job: Job, lease_s: float, progress: float | None = None) -> bool:
    """Renew our lease (and record progress, 0..100); False when the job is no longer ours
    (lease expired and taken over, cancelled, or deleted)."""
    result = await conn.execute(
        """UPDATE jobs.transcode_jobs
              SET lease_until = now() + make_interval(secs => $4),
                  progress = coalesce($5, progress), updated_at = now()
            WHERE id = $1 AND worker_id = $2 AND attempts = $3 AND status = 'running'""",
        job.id,
        job.worker_id,
        job.attempts,
        float(lease_s),
        None if progress is None else float(max(0.0, min(100.0, progress))),
    )
    return result == "UPDATE 1"


async def still_ours(conn: asyncpg.Connection, job: Job, *, lock: bool = False) -> bool:
    """True while the job is running under this attempt; with `lock`, keeps the row locked
    until the transaction ends (the publish fence)."""
    row = await conn.fetchval(
        f"""SELECT 1 FROM jobs.transcode_jobs
             WHERE id = $1 AND worker_id = $2 AND attempts = $3 AND status = 'running'
             {"FOR UPDATE" if lock else ""}""",
        job.id,
        job.worker_id,
        job.attempts,
    )
    return row is not None


async def set_version(conn: asyncpg.Connection, job: Job, version: str) -> bool:
    """Record the version this job publishes, unless an earlier attempt already chose one.
    Fenced. True when the job now has `version` (set now, or already); False when it has
    another one (use that: `get(...).version`) or the job is no longer ours."""
    current = await conn.fetchval(
        """UPDATE jobs.transcode_jobs SET version = coalesce(version, $4), updated_at = now()
            WHERE id = $1 AND worker_id = $2 AND attempts = $3 AND status = 'running'
        RETURNING version""",
        job.id,
        job.worker_id,
        job.attempts,
        version,
    )
    return current == version


async def set_source(conn: asyncpg.Connection, job: Job, key: str) -> bool:
    """A job whose source was a URL now reads it from storage at `key` (the worker fetched
    it once). Fenced; False when the job is no longer ours."""
    result = await conn.execute(
        """UPDATE jobs.transcode_jobs SET source = $4, updated_at = now()
            WHERE id = $1 AND worker_id = $2 AND attempts = $3 AND status = 'running'""",
        job.id,
        job.worker_id,
        job.attempts,
        key,
    )
    return result == "UPDATE 1"


async def complete(conn: asyncpg.Connection, job: Job) -> bool:
    result = await conn.execute(
        """UPDATE jobs.transcode_jobs
              SET status = 'done', progress = 100, lease_until = NULL, error = NULL,
                  finished_at = now(), updated_at = now()
            WHERE id = $1 AND worker_id = $2 AND attempts = $3 AND status = 'running'""",
        job.id,
        job.worker_id,
        job.attempts,
    )
    return result == "UPDATE 1"


# ---- fenced writes on a leased row: jobs here, tasks (transcoder/tasks.py) alike ---------
# Both tables have the lease columns (status, attempts, max_attempts, deferrals, worker_id,
# lease_until, run_after, error, finished_at, updated_at); every write is fenced on the row's
# (id, worker_id, attempts) while it is running.

_FENCE = "id = $1 AND worker_id = $2 AND attempts = $3 AND status = 'running'"


class Leased(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def worker_id(self) -> str | None: ...
    @property
    def attempts(self) -> int: ...
    @property
    def max_attempts(self) -> int: ...


async def fail_leased(
    conn: asyncpg.Connection, table: str, row: Leased, reason: str, *, retryable: bool, base_s: float, cap_s: float
) -> str | None:
    """Record a failed attempt of `row` in `table`: "queued" (again after backoff), "failed"
    (attempts spent, or not retryable), or None when the row was not ours any more."""
    terminal = not retryable or row.attempts >= row.max_attempts
    return await conn.fetchval(
        f"""UPDATE {table}
               SET status = $4, error = $5, lease_until = NULL, worker_id = NULL,
                   run_after = CASE WHEN $4 = 'queued' THEN now() + make_interval(secs => $6)
                                    ELSE run_after END,
                   finished_at = CASE WHEN $4 = 'failed' THEN now() END,
                   updated_at = now()
             WHERE {_FENCE}
         RETURNING status""",
        row.id,
        row.worker_id,
        row.attempts,
        "failed" if terminal else "queued",
        _one_line(reason),
        backoff_s(row.attempts, base_s, cap_s),
    )


async def put_back_leased(
    conn: asyncpg.Connection,
    table: str,
    row: Leased,
    *,
    wake: str,
    reason: str | None = None,
    base_s: float = DEFER_BASE_S,
    cap_s: float = DEFER_CAP_S,
    reset: str = "",
) -> float | None:
    """Give `row` back, queued, this attempt not counted. `reason` None: a release, due now.
    `reason` given: a deferral (a dependency was unreachable), due after
    `deferral_s(its deferrals)`, deferrals + 1, the reason kept as its error.
    `wake`: the SQL of the NOTIFY payload (e.g. `'job:' || id`), sent on `WAKE_CHANNEL` when
    the transaction commits. `reset`: more `column = value` assignments. Returns the delay
    (0 for a release), or None when the row was not ours any more."""
    deferral = reason is not None
    return await conn.fetchval(
        f"""WITH d AS (SELECT id,
                               CASE WHEN $4 THEN least($7::float8, $6::float8 * 2 ^ least(greatest(deferrals, 0), 32))
                                    ELSE 0 END AS delay
                          FROM {table}
                         WHERE {_FENCE}
                           FOR UPDATE),
                 u AS (UPDATE {table} t
                          SET status = 'queued', attempts = t.attempts - 1,
                              deferrals = t.deferrals + CASE WHEN $4 THEN 1 ELSE 0 END,
                              error = CASE WHEN $4 THEN $5 ELSE t.error END,
                              worker_id = NULL, lease_until = NULL,
                              run_after = now() + make_interval(secs => d.delay), updated_at = now(){reset}
                         FROM d
                        WHERE t.id = d.id
                    RETURNING d.delay, {wake} AS payload)
            SELECT u.delay FROM u, LATERAL (SELECT pg_notify($8, u.payload)) n""",
        row.id,
        row.worker_id,
        row.attempts,
        deferral,
        _one_line(reason) if reason is not None else None,
        float(base_s),
        float(cap_s),
        WAKE_CHANNEL,
    )


_JOBS = "jobs.transcode_jobs"


async def fail(
    conn: asyncpg.Connection,
    job: Job,
    reason: str,
    *,
    retryable: bool = True,
    base_s: float = BACKOFF_BASE_S,
    cap_s: float = BACKOFF_CAP_S,
) -> str | None:
    """Record a failed attempt. Returns "queued" (retry after backoff), "failed" (terminal:
    mark the title failed) or None when the job was not ours any more."""
    return await fail_leased(conn, _JOBS, job, reason, retryable=retryable, base_s=base_s, cap_s=cap_s)


async def release(conn: asyncpg.Connection, job: Job) -> bool:
    """Give a job back at once without counting this attempt (worker shutting down)."""
    return await put_back_leased(conn, _JOBS, job, wake="'job:' || t.id", reset=", progress = 0") is not None


async def defer(
    conn: asyncpg.Connection,
    job: Job,
    reason: str,
    *,
    base_s: float = DEFER_BASE_S,
    cap_s: float = DEFER_CAP_S,
) -> float | None:
    """Put the job back because a dependency was unreachable: queued again after
    `deferral_s(job's deferrals)`, this attempt not counted, `deferrals` + 1, the reason kept
    as its error. Returns the delay, or None when the job was not ours any more."""
    return await put_back_leased(
        conn, _JOBS, job, wake="'job:' || t.id", reason=reason, base_s=base_s, cap_s=cap_s, reset=", progress = 0"
    )


async def requeue(conn: asyncpg.Connection, title_id: str, max_attempts: int) -> Job | None:
    """A new job for a title whose last one failed, from the same source, with fresh attempts
    and no deferrals (the failed one stays as history). Returns the live job instead when
    there already is one; None when the title never had a job (nothing to transcode)."""
    tid = uuid.UUID(str(title_id))
    live = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM jobs.transcode_jobs
             WHERE title_id = $1 AND status IN ('queued', 'running')""",
        tid,
    )
    if live:
        return _job(live)
    source = await conn.fetchval(
        "SELECT source FROM jobs.transcode_jobs WHERE title_id = $1 ORDER BY id DESC LIMIT 1", tid
    )
    if source is None:
        return None
    return await enqueue(conn, str(tid), source, max_attempts)


async def cancel_for_title(conn: asyncpg.Connection, title_id: str, reason: str = "title deleted") -> int:
    """End the title's live jobs (its worker notices at the next heartbeat and stops)."""
    result = await conn.execute(
        """UPDATE jobs.transcode_jobs
              SET status = 'cancelled', error = $2, lease_until = NULL, finished_at = now(),
                  updated_at = now()
            WHERE title_id = $1 AND status IN ('queued', 'running')""",
        uuid.UUID(str(title_id)),
        reason,
    )
    return int(result.split()[-1])


async def cancel(conn: asyncpg.Connection, job: Job, reason: str) -> bool:
    """End our own job quietly (its title is gone)."""
    result = await conn.execute(
        """UPDATE jobs.transcode_jobs
              SET status = 'cancelled', error = $4, lease_until = NULL, finished_at = now(),
                  updated_at = now()
            WHERE id = $1 AND worker_id = $2 AND attempts = $3 AND status = 'running'""",
        job.id,
        job.worker_id,
        job.attempts,
        _one_line(reason),
    )
    return result == "UPDATE 1"


async def get(conn: asyncpg.Connection, job_id: int) -> Job | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM jobs.transcode_jobs WHERE id = $1", job_id)
    return _job(row) if row else None


async def live_titles(conn: asyncpg.Connection, title_ids: Iterable[str]) -> set[str]:
    """Which of `title_ids` have a live (queued or running) job: a worker may be writing
    their storage, so storage sweeps leave them to that job's own clean-up."""
    ids = [uuid.UUID(str(t)) for t in title_ids]
    if not ids:
        return set()
    rows = await conn.fetch(
        "SELECT title_id FROM jobs.transcode_jobs WHERE title_id = ANY($1::uuid[]) AND status IN ('queued', 'running')",
        ids,
    )
    return {str(r["title_id"]) for r in rows}


async def queue_depth(conn: asyncpg.Connection) -> int:
    """Jobs waiting for a worker (due now or later)."""
    return await conn.fetchval("SELECT count(*) FROM jobs.transcode_jobs WHERE status = 'queued'")


async def next_due_s(conn: asyncpg.Connection, title_id: str | None = None) -> float | None:
    """Seconds until the next queued job is due (0 when one is due now); None when none is
    queued. Lets `worker --once` wait out a retry backoff instead of exiting."""
    return await conn.fetchval(
        # greatest() skips NULLs: unguarded, "no queued job" (min() = NULL) would read as 0.
        """SELECT CASE WHEN min(run_after) IS NULL THEN NULL
                       ELSE greatest(0, extract(epoch FROM min(run_after) - now()))::float8 END
             FROM jobs.transcode_jobs
            WHERE status = 'queued' AND ($1::uuid IS NULL OR title_id = $1::uuid)""",
        uuid.UUID(str(title_id)) if title_id else None,
    )


async def list_jobs(conn: asyncpg.Connection, *, title_id: str | None = None, limit: int = 100) -> list[Job]:
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM jobs.transcode_jobs
             WHERE ($1::uuid IS NULL OR title_id = $1::uuid)
             ORDER BY id DESC LIMIT $2""",
        uuid.UUID(str(title_id)) if title_id else None,
        limit,
    )
    return [_job(r) for r in rows]


async def progress_for(conn: asyncpg.Connection, title_ids: Iterable[str]) -> dict[str, Job]:
    """The latest job of each title (status, progress, attempts, error), keyed by title id."""
    ids = [uuid.UUID(str(t)) for t in title_ids]
    if not ids:
        return {}
    rows = await conn.fetch(
        f"""SELECT DISTINCT ON (title_id) {_COLUMNS} FROM jobs.transcode_jobs
             WHERE title_id = ANY($1::uuid[])
             ORDER BY title_id, id DESC""",
        ids,
    )
    return {str(r["title_id"]): _job(r) for r in rows}
