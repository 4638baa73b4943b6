"""The transcode worker: claim a job, fetch the source, probe, encode, publish, complete.

Crash safety comes from the pieces: a lease renewed every couple of seconds (a dead worker's
job is taken over once it expires), every job write fenced on (worker, attempt), publishing
that only becomes visible in one final transaction, and cleanup at the start of the next
attempt (stale version prefixes, the dead attempt's work dir). So a job may run twice, and
running it twice is harmless.

Shutdown (SIGTERM/SIGINT -> `stop()`): no new claims; in-flight encodes are cancelled (the
runner kills ffmpeg) and their jobs released, not failed, so another worker starts them at
once.

Outages: while Postgres is unreachable the worker waits and tries again with backoff (one log
line when the outage starts, one when it ends) and never exits; a running encode goes on, its
failed lease renewals only logged, and every database write of the job waits for Postgres to
come back. The writes stay fenced, so if the lease ran out and another worker took the job
meanwhile, this one drops its result. A storage (or database) error that escapes a job
defers it without spending an attempt (transcoder/failures.py says which errors are outages).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from secrets import token_hex
from typing import TypeVar

import aiofiles
import asyncpg

from catalog import status, titles
from catalog.errors import TitleNotFound
from media.errors import ObjectNotFound, StorageError
from media.probe import probe as run_probe
from media.probe_model import Probe
from media.storage import Storage
from transcoder import gc, jobs, sources
from transcoder.failures import OUTAGE, classify, is_database_outage
from transcoder.pipeline import transcode
from transcoder.poster import make_poster
from transcoder.publish import LeaseLost, gc_versions, new_version, publish

log = logging.getLogger("streamflix.worker")

POLL_S = 1.0
HEARTBEAT_MAX_S = 2.0
# Progress: the encode is 0..90 %, poster and upload the rest.
ENCODE_SHARE = 90.0
PUBLISH_AT = 92.0
# While Postgres is unreachable: the first retry after this, doubling up to the cap.
OUTAGE_RETRY_S = 0.5
OUTAGE_RETRY_MAX_S = 10.0
# A connection that neither connects nor fails (a hung server) counts as unreachable after this.
DB_ACQUIRE_TIMEOUT_S = 10.0
# Giving a job back at shutdown is worth one quick try: during an outage its lease runs out.
RELEASE_TIMEOUT_S = 3.0

T = TypeVar("T")


def make_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{token_hex(3)}"


class Worker:
    """Runs up to `concurrency` jobs at once until `stop()` (or, with `once`, until nothing is
    left to do). `title_id` restricts it to one title's jobs (`ingest --wait`)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        storage: Storage,
        *,
        work_dir: Path,
        concurrency: int = 1,
        lease_s: float = 60,
        segment_s: int = 4,
        preset: str = "veryfast",
        timeout_s: float | None = None,
        max_attempts: int = 3,
        title_id: str | None = None,
        poll_s: float = POLL_S,
        backoff_base_s: float = jobs.BACKOFF_BASE_S,
        defer_base_s: float = jobs.DEFER_BASE_S,
        defer_cap_s: float = jobs.DEFER_CAP_S,
        outage_retry_s: float = OUTAGE_RETRY_S,
        outage_retry_max_s: float = OUTAGE_RETRY_MAX_S,
        worker_id: str | None = None,
        sweep_s: float | None = gc.SWEEP_EVERY_S,
    ) -> None:
        self.pool = pool
        self.storage = storage
        self.work_dir = Path(work_dir)
        self.concurrency = max(1, concurrency)
        self.lease_s = float(lease_s)
        self.segment_s = segment_s
        self.preset = preset
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts  # jobs carry their own; kept for the record
        self.title_id = title_id
        self.poll_s = poll_s
        self.backoff_base_s = backoff_base_s
        self.defer_base_s = defer_base_s
        self.defer_cap_s = defer_cap_s
        self.outage_retry_s = outage_retry_s
        self.outage_retry_max_s = outage_retry_max_s
        self._db_down_since: float | None = None
        self.worker_id = worker_id or make_worker_id()
        # A worker for one title (`ingest --wait`) does not sweep everyone's storage.
        self.sweep_s = sweep_s if title_id is None else None
        self._next_sweep = 0.0
        self._sweeper: asyncio.Task[None] | None = None
        self.heartbeat_s = max(0.2, min(HEARTBEAT_MAX_S, self.lease_s / 3))
        self.processed = 0
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._progress: dict[int, float] = {}
        self._titles: dict[int, str] = {}  # job id -> title id, for jobs in flight
        self._lost: set[int] = set()

    # ---- the loop -------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; cancel and release what is in flight. Safe from a signal handler."""
        if not self._stopping.is_set():
            log.info("worker %s stopping: releasing %d job(s)", self.worker_id, len(self._tasks))
            self._stopping.set()
            for task in self._tasks.values():
                task.cancel()

    def local_progress(self, title_id: str) -> float | None:
        """Progress of this title's job when this worker runs it (fresher than the database,
        which sees it once per heartbeat)."""
        for job_id, task_title in self._titles.items():
            if task_title == title_id and job_id in self._progress:
                return self._progress[job_id]
        return None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self, *, once: bool = False) -> int:
        """Returns how many jobs this worker finished (ready, failed or retried)."""
        await asyncio.to_thread(self.work_dir.mkdir, parents=True, exist_ok=True)
        outage_wait_s = self.outage_retry_s
        try:
            while not self._stopping.is_set():
                try:
                    wait_s = await self._poll(once)
                except Exception as exc:
                    if not is_database_outage(exc):
                        raise
                    self._outage_begins(exc)
                    wait_s, outage_wait_s = outage_wait_s, min(self.outage_retry_max_s, outage_wait_s * 2)
                else:
                    self._outage_ends()
                    outage_wait_s = self.outage_retry_s
                if wait_s is None:
                    break  # queue empty: --once is done
                await self._sleep(wait_s)
        finally:
            self._stopping.set()
            for task in self._tasks.values():
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            await _stop_task(self._sweeper)
        return self.processed

    def _maybe_sweep(self) -> None:
        """Start the periodic storage sweep (transcoder/gc.py) when it is due, in the
        background: claiming jobs never waits for it."""
        if self.sweep_s is None or (self._sweeper is not None and not self._sweeper.done()):
            return
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.sweep_s
        self._sweeper = asyncio.create_task(self._sweep(), name="storage-sweep")

    async def _sweep(self) -> None:
        try:
            await gc.sweep(self.pool, self.storage)
        except (OSError, asyncpg.PostgresError, StorageError) as exc:
            log.warning("storage sweep failed (next in %.0f s): %s", self.sweep_s or 0, exc)

    async def _poll(self, once: bool) -> float | None:
        """One turn of the loop: reap, claim what fits; how long to sleep (None: --once done)."""
        await self._reap()
        self._maybe_sweep()
        while len(self._tasks) < self.concurrency and not self._stopping.is_set():
            async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                job = await jobs.claim(
                    conn, self.worker_id, self.lease_s, title_id=self.title_id, running=list(self._tasks)
                )
            if job is None:
                break
            self._start(job)
        if once and not self._tasks:
            async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                due = await jobs.next_due_s(conn, self.title_id)
            if due is None:
                return None
            return max(0.05, min(self.poll_s, due))
        return self.poll_s

    # ---- outages --------------------------------------------------------------------------

    def _outage_begins(self, exc: BaseException) -> None:
        if self._db_down_since is None:
            self._db_down_since = time.monotonic()
            detail = " ".join(str(exc).split()) or type(exc).__name__
            log.warning("database unreachable (%s); waiting for it, jobs in flight keep running", detail)

    def _outage_ends(self) -> None:
        if self._db_down_since is not None:
            log.warning("database reachable again after %.1f s", time.monotonic() - self._db_down_since)
            self._db_down_since = None

    async def _waiting(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, tried again with backoff for as long as Postgres is unreachable (every
        job write is fenced, so a late one is harmless). Cancelled by `stop()`."""
        delay = self.outage_retry_s
        while True:
            try:
                result = await call()
            except Exception as exc:
                if not is_database_outage(exc):
                    raise
                self._outage_begins(exc)
                await asyncio.sleep(delay)
                delay = min(self.outage_retry_max_s, delay * 2)
                continue
            self._outage_ends()
            return result

    def _start(self, job: jobs.Job) -> None:
        task = asyncio.create_task(self._run_job(job), name=f"job-{job.id}")
        self._tasks[job.id] = task
        self._titles[job.id] = job.title_id

        def done(_t: asyncio.Task[None]) -> None:
            self._tasks.pop(job.id, None)
            self._titles.pop(job.id, None)
            self._wake.set()

        task.add_done_callback(done)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        stop = asyncio.create_task(self._stopping.wait())
        wake = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait({stop, wake}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            wake.cancel()

    async def _reap(self) -> None:
        """Jobs whose worker died on their last attempt end failed, and so do their titles."""
        async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
            for job in await jobs.reap_exhausted(conn, running=list(self._tasks)):
                log.warning("job %s (title %s) failed: %s", job.id, job.title_id, job.error)
                await status.mark_failed(conn, job.title_id, job.error or "worker died")

    # ---- one job --------------------------------------------------------------------------

    async def _run_job(self, job: jobs.Job) -> None:
        attempt_dir = self.work_dir / f"job-{job.id}-{job.attempts}"
        started = time.monotonic()
        heartbeat: asyncio.Task[None] | None = None
        self._progress[job.id] = 0.0
        log.info("job %s title %s: attempt %d/%d", job.id, job.title_id, job.attempts, job.max_attempts)
        try:
            await asyncio.to_thread(self._clean_work_dirs, job.id)

            async def start() -> titles.Title | None:
                async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                    try:
                        title = await titles.get_title(conn, job.title_id)
                    except TitleNotFound:
                        await jobs.cancel(conn, job, "title deleted")
                        return None
                    await status.mark_processing(conn, title.id)
                    return title

            title = await self._waiting(start)
            if title is None:
                log.info("job %s: title %s is gone; nothing to do", job.id, job.title_id)
                return
            heartbeat = asyncio.create_task(self._heartbeat(job, asyncio.current_task()))
            await gc_versions(self.storage, job.title_id, title.current_version)
            source = await self._fetch_source(job, attempt_dir)
            probe = await self._probe(job, source)
            out_dir = attempt_dir / "out"
            presentation = await transcode(
                str(source),
                probe,
                out_dir,
                title_id=job.title_id,
                version=new_version(),
                segment_s=self.segment_s,
                preset=self.preset,
                timeout_s=self.timeout_s,
                on_progress=lambda pct: self._set_progress(job, pct * ENCODE_SHARE / 100),
            )
            await make_poster(str(source), probe, out_dir)
            self._set_progress(job, PUBLISH_AT)

            async def stop_heartbeat() -> None:
                await _stop_task(heartbeat)

            await publish(
                self.pool, self.storage, job, presentation, out_dir, before_commit=stop_heartbeat, retry=self._waiting
            )
            self.processed += 1
            log.info(
                "job %s title %s: ready as %s in %.1f s",
                job.id,
                job.title_id,
                presentation.version,
                time.monotonic() - started,
            )
        except asyncio.CancelledError:
            if job.id in self._lost:
                log.warning("job %s: lease lost, another worker has it; stopped", job.id)
                return
            if self._stopping.is_set():
                await asyncio.shield(self._release(job))
            raise
        except LeaseLost:
            log.warning("job %s: lease lost before publishing; another worker has it", job.id)
        except TitleNotFound:

            async def cancel() -> None:
                async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                    await jobs.cancel(conn, job, "title deleted")

            await self._waiting(cancel)
            log.info("job %s: title %s was deleted while it ran", job.id, job.title_id)
        except Exception as exc:
            await self._failed(job, exc)
        finally:
            await _stop_task(heartbeat)
            self._progress.pop(job.id, None)
            self._lost.discard(job.id)
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, attempt_dir, True))

    async def _release(self, job: jobs.Job) -> None:
        """One quick try (we are shutting down): when Postgres is unreachable the job stays
        ours until its lease runs out, then another worker takes it over."""
        try:
            async with asyncio.timeout(RELEASE_TIMEOUT_S):
                async with self.pool.acquire() as conn, conn.transaction():
                    if await jobs.release(conn, job):
                        await status.release_to_pending(conn, job.title_id)
                        log.info("job %s released for another worker", job.id)
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            log.warning("job %s: not released (database unreachable); another worker takes it after its lease", job.id)

    async def _failed(self, job: jobs.Job, exc: Exception) -> None:
        verdict = classify(exc)
        reason = verdict.reason
        log.log(
            logging.DEBUG if not verdict.retryable else logging.WARNING,
            "job %s failure detail",
            job.id,
            exc_info=exc,
        )
        if verdict.kind == OUTAGE:
            await self._waiting(lambda: self._defer(job, reason))
            return

        async def record() -> str | None:
            async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                outcome = await jobs.fail(conn, job, reason, retryable=verdict.retryable, base_s=self.backoff_base_s)
                if outcome == "failed":
                    await status.mark_failed(conn, job.title_id, reason)
                return outcome

        outcome = await self._waiting(record)
        if outcome == "failed":
            log.warning("job %s title %s failed: %s", job.id, job.title_id, reason)
        elif outcome == "queued":
            log.warning(
                "job %s title %s: attempt %d failed, will retry: %s", job.id, job.title_id, job.attempts, reason
            )
        else:  # cancelled (title deleted) or taken over while it failed: not ours to judge
            log.info("job %s: no longer ours; dropping the failure (%s)", job.id, reason)
            return
        self.processed += 1

    async def _defer(self, job: jobs.Job, reason: str) -> None:
        """A dependency was unreachable: give the job back for later, attempt not spent."""
        async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            delay = await jobs.defer(conn, job, reason, base_s=self.defer_base_s, cap_s=self.defer_cap_s)
            if delay is None:
                log.info("job %s: no longer ours; dropping the deferral (%s)", job.id, reason)
                return
            await status.release_to_pending(conn, job.title_id)
        log.warning("job %s title %s deferred for %.0f s, attempt not counted: %s", job.id, job.title_id, delay, reason)

    def _set_progress(self, job: jobs.Job, percent: float) -> None:
        self._progress[job.id] = percent

    async def _heartbeat(self, job: jobs.Job, main: asyncio.Task[None] | None) -> None:
        """Renew the lease with the latest progress; when the job stops being ours, cancel
        the job's task (which stops ffmpeg)."""
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                    ours = await jobs.heartbeat(conn, job, self.lease_s, self._progress.get(job.id))
            except Exception as exc:
                # The encode goes on: if the lease runs out meanwhile and another worker takes
                # the job, the next renewal (or the fenced commit) finds out.
                if is_database_outage(exc):
                    self._outage_begins(exc)
                else:
                    log.warning("job %s: heartbeat failed (%s); retrying", job.id, exc)
                continue
            self._outage_ends()
            if not ours:
                self._lost.add(job.id)
                if main is not None:
                    main.cancel()
                return

    # ---- source and probe -----------------------------------------------------------------

    async def _fetch_source(self, job: jobs.Job, attempt_dir: Path) -> Path:
        """The source as a local file: in place on file storage, else streamed down."""
        local = self.storage.local_path(job.source)
        if local is not None:
            if not await asyncio.to_thread(local.is_file):
                raise ObjectNotFound(f"no object {job.source!r}")
            return local
        await self.storage.head(job.source)
        await asyncio.to_thread(attempt_dir.mkdir, parents=True, exist_ok=True)
        dest = attempt_dir / ("source" + Path(job.source).suffix)
        async with aiofiles.open(dest, "wb") as fh:
            async for chunk in self.storage.stream(job.source):
                await fh.write(chunk)
        return dest

    async def _probe(self, job: jobs.Job, source: Path) -> Probe:
        """The stored probe when an earlier attempt made one, else ffprobe (and store it)."""

        async def get() -> dict | None:
            async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                return await sources.get_probe(conn, job.title_id)

        stored = await self._waiting(get)
        if stored:
            try:
                return Probe.from_dict(stored)
            except (TypeError, KeyError, ValueError):
                log.info("job %s: stored probe is from an older model; probing again", job.id)
        probe = await run_probe(str(source))

        async def put() -> None:
            async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                await sources.set_probe(conn, job.title_id, probe.to_dict())

        await self._waiting(put)
        return probe

    def _clean_work_dirs(self, job_id: int) -> None:
        """A dead attempt of this job on this machine may have left its work dir."""
        if self.work_dir.is_dir():
            for stale in self.work_dir.glob(f"job-{job_id}-*"):
                shutil.rmtree(stale, ignore_errors=True)


async def _stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel and wait for `task` without swallowing a cancellation of the caller."""
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task})
