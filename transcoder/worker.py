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
import contextlib
import dataclasses
import logging
import os
import shutil
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from secrets import token_hex
from typing import Any, TypeVar

import aiofiles
import asyncpg

from catalog import status, titles
from catalog.errors import TitleNotFound
from media import keys
from media.errors import ObjectNotFound, ProbeError, StorageError
from media.probe import is_http, unsigned
from media.probe import probe as run_probe
from media.probe_model import SUBTITLE_STREAMS, Probe
from media.storage import Storage
from packager.model import INIT_NAME, SEGMENT_EXT, Presentation
from transcoder import chunks, gc, jobs, per_title, seekable, sources, subtitles, tasks
from transcoder.adjustments import SOURCE_ADJUSTMENTS, source_adjustments
from transcoder.download import with_download
from transcoder.errors import TaskFailed, TranscodeError
from transcoder.failures import OUTAGE, classify, is_database_outage
from transcoder.ingest import fetch_to_local, source_extension
from transcoder.ladder import H264, Ladder, plan_ladder
from transcoder.pipeline import check_presentation
from transcoder.poster import make_poster
from transcoder.publish import LeaseLost, commit_version, content_type, gc_versions, new_version, write_model
from transcoder.taskrun import TaskWork, put_inits, run_task
from transcoder.thumbnails import with_thumbnails

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
# Segments per chunk task: 8 x 4 s = 32 s of media, long enough that a chunk's ffmpeg start
# and seek cost little, short enough that a crash loses little and many workers share a title.
DEFAULT_CHUNK_SEGMENTS = 8
# Audio parts of about 30 x 4 s = 2 min: a far seek waits for ~2 min of audio (about a second
# of a core), and a title has few parts (each costs a pre-roll and an ffmpeg start).
DEFAULT_AUDIO_PART_SEGMENTS = 30
# How often a coordinator looks at its tasks: fast until the title is playable (a viewer may
# be waiting for it), then at a relaxed pace (a task finishing in this worker wakes it anyway).
WATCH_FAST_S = 0.02
WATCH_S = 0.5
# A task that needs a per-title title's chosen ladder (the first task's inits ahead) reads the
# model again this often, for at most this long.
LADDER_POLL_S = 0.25
LADDER_WAIT_S = 120.0
LANE_VIDEO, LANE_URGENT, LANE_AUDIO, LANE_URGENT_AUDIO = "video", "urgent", "audio", "urgent-audio"
# Bulk video chunks (everything after the first chunk, unless a viewer bumped it) run their
# ffmpeg this much nicer, so on busy cores the audio task and the segments a viewer waits for
# get the CPU first. Alone on a machine, nice costs nothing.
BULK_NICE = 10
WORK_CACHE_SIZE = 32
# A source whose content ends this far from its header's length is listed as adjusted.
LENGTH_MISMATCH_S = 0.5
# Where the model's `extra` keeps the source's measured ends for the tasks.
SOURCE_ENDS = "source_ends"
# ... and the key of the source's seekable copy, when it needed one.
SEEKABLE_SOURCE = "seekable_source"
# How long a presigned URL of a source object stays valid: longer than any job's coordinator
# holds one (its probe, subtitle and poster reads) and any task's run.
SOURCE_URL_EXPIRES_S = 12 * 3600
# The ingest's audio language overrides the ladder was planned with ({"0": "en"}): the tasks
# plan the same ladder from the model.
AUDIO_LANGUAGES = "audio_languages"
# ... and the heights that got an AV1 copy ([720]), from the setting or the ingest's --av1.
AV1_RUNGS = "av1_rungs"
# ... and a per-title ladder's measurements and choice (its "caps": bit/s by rung id).
LADDER = per_title.RECORD_KEY

T = TypeVar("T")


def bulk_nice(task: tasks.Task) -> int:
    """The CPU niceness of a task's ffmpeg: 0 for what a player starts with (the lowest rung's
    first segment, the audio task or first part) and what a viewer waits for (bumped), else
    BULK_NICE (the rest of the first chunk, later chunks and audio parts)."""
    return BULK_NICE if task.priority >= tasks.PRIORITY_CHUNK1 else 0


def audio_then_nice(task: tasks.Task) -> int | None:
    """The audio a player starts with (the whole-timeline task or the first part) runs at
    full priority until its first segment is stored, then at BULK_NICE: the rest is needed at
    playback speed, and the lowest rung's first segment, encoded beside it, is what the
    player still waits for."""
    return BULK_NICE if task.kind == "audio" and task.first_number == 1 and task.priority > 0 else None


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
        chunk_segments: int = DEFAULT_CHUNK_SEGMENTS,
        audio_part_segments: int = DEFAULT_AUDIO_PART_SEGMENTS,
        encoder_threads: int = 0,
        max_source_bytes: int = 20 * 1024**3,
        outbound_allow_private: bool = False,
        s3_endpoint_url: str | None = None,
        thumbnail_interval_s: float = 0,
        av1_heights: tuple[int, ...] = (),
        ladder_mode: str = per_title.PER_TITLE,
        source_reads: str = sources.RANGED,
    ) -> None:
        self.pool = pool
        self.storage = storage
        # a job whose source is a URL (ingest through the API): fetched once, like ingest does
        self.max_source_bytes = max_source_bytes
        self.outbound_allow_private = outbound_allow_private
        self.s3_endpoint_url = s3_endpoint_url
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
        self.chunk_segments = max(1, chunk_segments)
        self.audio_part_segments = max(0, audio_part_segments)
        self.encoder_threads = max(0, encoder_threads)
        # Seconds between seek thumbnails; 0 chooses by the title's length (transcoder/thumbnails.py).
        self.thumbnail_interval_s = max(0.0, thumbnail_interval_s)
        # Rung heights that also get an AV1 copy (STREAMFLIX_AV1_RUNGS); a title's own
        # ingest option replaces it.
        self.av1_heights = tuple(av1_heights)
        # "fixed" (the table) or "per-title" (caps from a complexity probe), STREAMFLIX_LADDER.
        self.ladder_mode = per_title.parse_mode(ladder_mode)
        # sources.RANGED: until this machine has a copy, what a player waits for reads the
        # source object over a presigned URL; sources.DOWNLOAD: a copy is made first.
        self.source_reads = sources.parse_source_reads(source_reads)
        # Tasks this worker runs (any title's), by task id, and the lane each runs in.
        self._runs: dict[int, asyncio.Task[None]] = {}
        self._lanes: dict[int, str] = {}
        self._runs_lost: set[int] = set()
        self._task_done = asyncio.Event()
        self._works: dict[tuple[int, str], TaskWork] = {}
        self._sources: dict[str, Path] = {}  # source key -> its download (`_local_source`)
        self._source_locks: dict[str, asyncio.Lock] = {}
        self._listener: asyncpg.pool.PoolConnectionProxy | None = None

    # ---- the loop -------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; cancel and release what is in flight. Safe from a signal handler."""
        if not self._stopping.is_set():
            log.info("worker %s stopping: releasing %d job(s)", self.worker_id, len(self._tasks))
            self._stopping.set()
            for task in [*self._tasks.values(), *self._runs.values()]:
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
            running = [*self._tasks.values(), *self._runs.values()]
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
            await _stop_task(self._sweeper)
            await self._unlisten()
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
        """One turn of the loop: reap, claim what fits; how long to sleep (None: --once done).

        The wake-up event is cleared here, before the claims, not when the loop goes to
        sleep: a notification that arrives while this turn claims (a far seek bumps the
        cell asked for and, a moment later, the lowest rung's cell the player falls back
        to) then starts the next turn at once instead of a poll interval later."""
        self._wake.clear()
        await self._listen()
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
        await self._claim_tasks()
        if once and not self._tasks and not self._runs:
            async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                due = await jobs.next_due_s(conn, self.title_id)
            if due is None:
                return None
            return max(0.05, min(self.poll_s, due))
        return self.poll_s

    # ---- waking up: Postgres NOTIFY -----------------------------------------------------------

    async def _listen(self) -> None:
        """Hold one connection that LISTENs on the wake channel, so a job enqueued or a task
        made claimable anywhere starts within milliseconds, not at the next poll. Polling
        stays the fallback (a lost notification costs at most one poll interval)."""
        if self._listener_alive():
            return
        await self._unlisten()
        conn = await self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S)
        try:
            await conn.add_listener(tasks.WAKE_CHANNEL, self._on_notify)
        except BaseException:
            await self.pool.release(conn)
            raise
        self._listener = conn

    def _listener_alive(self) -> bool:
        if self._listener is None:
            return False
        try:
            return not self._listener.is_closed()
        except asyncpg.InterfaceError:  # the pool took it back when its connection broke
            return False

    async def _unlisten(self) -> None:
        conn, self._listener = self._listener, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            if not conn.is_closed():
                await asyncio.wait_for(conn.remove_listener(tasks.WAKE_CHANNEL, self._on_notify), 1)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pool.release(conn), 1)

    def _on_notify(self, *_args: object) -> None:
        self._wake.set()

    # ---- tasks: any title's chunks ------------------------------------------------------------

    def _lane_count(self, lane: str) -> int:
        return sum(1 for v in self._lanes.values() if v == lane)

    async def _claim_tasks(self) -> None:
        """Fill the task lanes: `concurrency` video tasks, one more for a task a viewer is
        waiting for (priority 0: one segment, run beside the others), one audio task (a whole
        timeline of audio costs a few percent of a video rung), and one more audio task a
        viewer is waiting for (a far seek's audio part, bumped to 0, runs beside the video
        cell of the same seek instead of after the audio lane's current part)."""
        if self._stopping.is_set():
            return
        job_ids: list[int | None] = list(self._tasks) if self.title_id else [None]
        lanes = (
            (LANE_URGENT, 2, {"kinds": ["video"], "max_priority": 0}),
            (LANE_URGENT_AUDIO, 1, {"kinds": ["audio"], "max_priority": 0}),
            (LANE_AUDIO, 1, {"kinds": ["audio"]}),
            (LANE_VIDEO, self.concurrency, {"kinds": ["video"]}),
        )
        for lane, size, filters in lanes:
            for job_id in job_ids:
                while self._lane_count(lane) < size and not self._stopping.is_set():
                    async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                        task = await tasks.claim_task(
                            conn, self.worker_id, self.lease_s, job_id=job_id, running=list(self._runs), **filters
                        )
                    if task is None:
                        break
                    self._start_task(task, lane)

    def _start_task(self, task: tasks.Task, lane: str) -> None:
        run = asyncio.create_task(self._run_task(task), name=f"task-{task.id}")
        self._runs[task.id] = run
        self._lanes[task.id] = lane
        started = time.monotonic()
        what = f"{task.kind} {','.join(task.renditions)} segments {task.first_number}-{task.last_number}"
        log.info("task %s: %s, priority %d, %s lane", task.id, what, task.priority, lane)

        def done(_t: asyncio.Task[None]) -> None:
            log.info("task %s: ended after %.2f s", task.id, time.monotonic() - started)
            self._runs.pop(task.id, None)
            self._lanes.pop(task.id, None)
            self._task_done.set()
            self._wake.set()

        run.add_done_callback(done)

    async def _run_task(self, task: tasks.Task) -> None:
        out_dir = self.work_dir / f"task-{task.id}-{task.attempts}"
        # A dead attempt of this task on this machine may have left its work dir.
        await asyncio.to_thread(self._clean_work_dirs, task.id, "task")
        heartbeat = asyncio.create_task(self._task_heartbeat(task, asyncio.current_task()))
        uploaded: set[str] = set()
        try:
            work = await self._task_work(task)
            async with self._reading(work.source):
                result = await run_task(
                    self.storage,
                    work,
                    kind=task.kind,
                    renditions=task.renditions,
                    first=task.first_number,
                    count=task.segment_count,
                    out_dir=out_dir,
                    preset=self.preset,
                    threads=self.encoder_threads,
                    timeout_s=None,
                    uploaded=uploaded,
                    redo=task.attempts > 1,
                    nice=bulk_nice(task),
                    audio_then_nice=audio_then_nice(task),
                )
            await _stop_task(heartbeat)

            async def complete() -> bool:
                async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                    return await tasks.complete_task(conn, task, result)

            if not await self._waiting(complete):
                log.warning("task %s: no longer ours at completion; its result is dropped", task.id)
                await asyncio.shield(self._release_task(task))  # fenced: a taken-over task stays
                if uploaded:
                    await self._drop_if_deleted(task)
            elif task.kind == "video" and task.first_number == 1:
                # Done: its lane takes the next task while the inits are made beside it.
                self._lanes.pop(task.id, None)
                self._wake.set()
                await self._while_job_runs(task, self._put_inits(task, work, out_dir / "inits"))
        except asyncio.CancelledError:
            if task.id in self._runs_lost:
                log.info("task %s: stopped (its job ended or another worker took it)", task.id)
                # Fenced: a task another worker took over stays its; one whose job ended goes
                # back to `queued`, where it waits (claimable only while its job runs).
                await asyncio.shield(self._release_task(task))
                if uploaded:
                    await self._drop_if_deleted(task)
                return
            if self._stopping.is_set():
                await asyncio.shield(self._release_task(task))
            raise
        except Exception as exc:
            await self._task_failed(task, exc)
        finally:
            await _stop_task(heartbeat)
            self._runs_lost.discard(task.id)
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, out_dir, True))

    async def _while_job_runs(self, task: tasks.Task, work: Awaitable[T]) -> T | None:
        """Await `work`, done on behalf of `task` after it completed (its lease and heartbeat
        are over), and stop it when the task's job ends meanwhile (the title deleted, the job
        failed): a deleted title must not keep this worker busy, nor its `--once` run alive.
        Returns what `work` returns, or None when it was stopped."""
        run = asyncio.ensure_future(work)
        try:
            while True:
                finished, _ = await asyncio.wait({run}, timeout=self.heartbeat_s)
                if finished:
                    return run.result()
                try:
                    async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                        job = await jobs.get(conn, task.job_id)
                except Exception as exc:
                    if not is_database_outage(exc):
                        raise
                    continue  # the work goes on; its writes are checked when it ends
                if job is None or not job.active:
                    log.info("task %s: its job ended; the work after it is stopped", task.id)
                    await _stop_task(run)
                    await self._drop_if_deleted(task)  # the work may have put some
                    return None
        finally:
            await _stop_task(run)

    async def _put_inits(self, task: tasks.Task, work: TaskWork, out_dir: Path) -> None:
        """After a task that began at segment 1 (the title's first: the lowest rung's first
        segment): the init segments of the other rungs of its codec, ahead of their media
        (`taskrun.put_inits`), so a player that switches up or seeks far ahead in the first
        seconds does not wait for the bulk chunk that would write them. Best effort: a
        failure is logged, and those inits come with their rungs' first segments as before."""
        if work.provisional:
            # The other rungs' bitrates (and so their inits' levels) are being chosen: wait
            # for the chosen ladder (this task's lane is free meanwhile).
            try:
                work = dataclasses.replace(await self._chosen_work(task), source=work.source)
            except Exception as exc:
                log.warning("task %s: no init segments of the other rungs ahead: %s", task.id, exc)
                return
        codec = next((r.codec for r in work.ladder.rungs if r.id in task.renditions), None)
        others = [r.id for r in work.ladder.rungs if r.codec == codec and r.id not in task.renditions]
        if codec != H264 or not others:  # x264's init bytes are known not to depend on the span
            return
        started = time.monotonic()
        try:
            # At bulk priority: a player starting on the first segment must not wait for them.
            put = await put_inits(
                self.storage, work, others, out_dir, preset=self.preset, threads=self.encoder_threads, nice=BULK_NICE
            )
        except Exception as exc:
            log.warning("task %s: could not store the other rungs' init segments ahead: %s", task.id, exc)
            return
        if put:
            log.info(
                "task %s: init segments of %s stored in %.2f s", task.id, ",".join(put), time.monotonic() - started
            )
            # The title may have been deleted meanwhile: what was put after its clean-up goes too.
            await self._drop_if_deleted(task)

    async def _chosen_work(self, task: tasks.Task) -> TaskWork:
        """`_task_plan` once the task's model has its per-title ladder chosen (read again every
        LADDER_POLL_S); `TranscodeError` after LADDER_WAIT_S."""
        deadline = time.monotonic() + LADDER_WAIT_S
        while True:
            work = await self._task_plan(task)
            if not work.provisional:
                return work
            if time.monotonic() >= deadline:
                raise TranscodeError(f"task {task.id}: its title's ladder was not chosen within {LADDER_WAIT_S:.0f} s")
            await asyncio.sleep(LADDER_POLL_S)

    async def _task_work(self, task: tasks.Task) -> TaskWork:
        """The source (local), probe, ladder and timeline length of a task's title: read once
        per job and version by this worker."""
        cache_key = (task.job_id, task.version)
        cached = self._works.get(cache_key)
        if cached is None:
            cached = await self._task_plan(task)
            if cached.provisional and not set(task.renditions) <= per_title.invariant_renditions(cached.ladder):
                # Only the first tasks run before the ladder is chosen; never on a guess.
                cached = await self._chosen_work(task)
            if not cached.provisional:  # the ladder is final: the same for every later task
                if len(self._works) >= WORK_CACHE_SIZE:
                    self._works.pop(next(iter(self._works)))
                self._works[cache_key] = cached
        # What a player waits for (the first segment and audio, a bumped cell) reads the
        # source where it is while this machine has no copy yet; bulk work makes the copy.
        if task.priority < tasks.PRIORITY_CHUNK1:
            source = await self._source_for_reading(task.title_id, cached.source)
        else:
            source = str(await self._local_source(task.title_id, cached.source))
        return dataclasses.replace(cached, source=source)

    async def _task_plan(self, task: tasks.Task) -> TaskWork:
        """`_task_work` without the source: `source` holds its storage key."""

        async def read() -> tuple[jobs.Job | None, dict | None]:
            async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                return await jobs.get(conn, task.job_id), await sources.get_probe(conn, task.title_id)

        job, stored = await self._waiting(read)
        if job is None or stored is None:
            raise TranscodeError(f"task {task.id}: its job or probe is gone")
        probe = Probe.from_dict(stored)
        model = Presentation.from_json(await self.storage.get_bytes(keys.model_key(task.title_id, task.version)))
        overrides = {int(k): v for k, v in (model.extra.get(AUDIO_LANGUAGES) or {}).items()}
        ladder = plan_ladder(
            probe,
            segment_s=model.segment_target_s,
            audio_languages=overrides,
            av1_heights=model.extra.get(AV1_RUNGS) or (),
            caps=(model.extra.get(LADDER) or {}).get("caps") or None,
        )
        source_key = job.source
        if model.extra.get(SEEKABLE_SOURCE):
            source_key = model.extra[SEEKABLE_SOURCE]
            ladder = seekable.ladder_for_copy(ladder)
        ends = model.extra.get(SOURCE_ENDS)
        work = TaskWork(
            title_id=task.title_id,
            version=task.version,
            source=source_key,
            probe=probe,
            ladder=ladder,
            total=timeline_length(model),
            ends=chunks.SourceEnds.from_dict(ends) if ends else None,
            provisional=per_title.is_pending(model.extra),
        )
        return work

    async def _local_source(self, title_id: str, source_key: str) -> Path:
        """A title's source (its original, or its seekable copy) as a local file: in place on
        file storage, else streamed down once per machine, into `source-{title_id}/`, and
        shared by the title's coordinator and every task of it run here."""
        local = self.storage.local_path(source_key)
        if local is not None:
            if not await asyncio.to_thread(local.is_file):
                raise ObjectNotFound(f"no object {source_key!r}")
            return local
        async with self._source_lock(title_id):
            path = self._sources.get(source_key)
            if path is not None and await asyncio.to_thread(path.is_file):
                return path
            dest = self._source_path(title_id, source_key)
            await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)
            part = dest.with_name(dest.name + ".part")
            started = time.monotonic()
            async with aiofiles.open(part, "wb") as fh:
                async for chunk in self.storage.stream(source_key):
                    await fh.write(chunk)
            await asyncio.to_thread(part.replace, dest)
            size = (await asyncio.to_thread(dest.stat)).st_size
            log.info(
                "title %s: %s downloaded (%.1f MB in %.2f s)",
                title_id,
                source_key,
                size / 1e6,
                time.monotonic() - started,
            )
            self._sources[source_key] = dest
            return dest

    async def _source_for_reading(self, title_id: str, source_key: str) -> str:
        """What ffmpeg reads a title's source object from without waiting for a download: the
        file on file storage or this machine's finished copy, else a presigned URL of the
        object (read with ranges: a task reads its span, ffprobe the header and the tail)."""
        local = self.storage.local_path(source_key)
        if local is None and self.source_reads == sources.RANGED:
            copy = self._sources.get(source_key)
            if copy is not None and await asyncio.to_thread(copy.is_file):
                return str(copy)
            url = self.storage.read_url(source_key, SOURCE_URL_EXPIRES_S)
            if url is not None:
                return url
        return str(await self._local_source(title_id, source_key))

    def _source_lock(self, title_id: str) -> asyncio.Lock:
        """Held while this machine's copy of one of the title's source objects is made."""
        return self._source_locks.setdefault(title_id, asyncio.Lock())

    def _source_path(self, title_id: str, key: str) -> Path:
        """Where this machine keeps its copy of the source object `key`."""
        return self.work_dir / f"source-{title_id}" / Path(key).name

    def _drop_source_cache(self, title_id: str) -> None:
        """The job is over on this machine: its downloaded source goes (tasks still running
        here for it keep their open file)."""
        prefix = keys.source_prefix(title_id)
        self._sources = {k: v for k, v in self._sources.items() if not k.startswith(prefix)}
        self._source_locks.pop(title_id, None)
        self._works = {k: v for k, v in self._works.items() if v.title_id != title_id}
        shutil.rmtree(self.work_dir / f"source-{title_id}", ignore_errors=True)

    async def _task_heartbeat(self, task: tasks.Task, main: asyncio.Task[None] | None) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                    ours = await tasks.heartbeat_task(conn, task, self.lease_s)
            except Exception as exc:
                if is_database_outage(exc):
                    self._outage_begins(exc)
                else:
                    log.warning("task %s: heartbeat failed (%s); retrying", task.id, exc)
                continue
            self._outage_ends()
            if not ours:
                self._runs_lost.add(task.id)
                if main is not None:
                    main.cancel()
                return

    async def _release_task(self, task: tasks.Task) -> None:
        try:
            async with asyncio.timeout(RELEASE_TIMEOUT_S):
                async with self.pool.acquire() as conn:
                    if await tasks.release_task(conn, task):
                        log.info("task %s released for another worker", task.id)
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            log.warning(
                "task %s: not released (database unreachable); another worker takes it after its lease", task.id
            )

    async def _task_failed(self, task: tasks.Task, exc: Exception) -> None:
        verdict = classify(exc)
        log.log(
            logging.DEBUG if not verdict.retryable else logging.WARNING, "task %s failure detail", task.id, exc_info=exc
        )

        async def record() -> str | None:
            async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                if verdict.kind == OUTAGE:
                    await tasks.defer_task(conn, task, verdict.reason)
                    return "deferred"
                return await tasks.fail_task(
                    conn, task, verdict.reason, retryable=verdict.retryable, base_s=self.backoff_base_s
                )

        outcome = await self._waiting(record)
        log.warning("task %s (title %s): %s: %s", task.id, task.title_id, outcome or "no longer ours", verdict.reason)

    async def _drop_if_deleted(self, task: tasks.Task) -> None:
        """Called when `task` put objects and then stopped because its job ended (title deleted,
        job failed): the version belongs to nobody, and what the task put after the job's own
        clean-up must go too. A task taken over by another worker leaves everything to it."""
        try:
            async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                job = await jobs.get(conn, task.job_id)
                try:
                    current = (await titles.get_title(conn, task.title_id)).current_version
                except TitleNotFound:
                    current = None
        except Exception as exc:  # best effort: the hourly sweep removes versions nothing points at
            log.info("task %s: could not check its job: %s", task.id, exc)
            return
        if (job is None or job.status in ("failed", "cancelled")) and current != task.version:
            with contextlib.suppress(Exception):
                await self.storage.delete_prefix(keys.version_prefix(task.title_id, task.version))

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
        stop = asyncio.create_task(self._stopping.wait())
        wake = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait({stop, wake}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            wake.cancel()

    async def _reap(self) -> None:
        """Jobs whose worker died on their last attempt end failed, and so do their titles;
        tasks likewise (their job's coordinator then fails the job)."""
        async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
            for job in await jobs.reap_exhausted(conn, running=list(self._tasks)):
                log.warning("job %s (title %s) failed: %s", job.id, job.title_id, job.error)
                await fail_title(conn, self.storage, job, job.error or "worker died")
            for task in await tasks.reap_tasks(conn, running=list(self._runs)):
                log.warning("task %s (title %s) failed: %s", task.id, task.title_id, task.error)

    # ---- one job: the coordinator of a title's encode ------------------------------------

    async def _run_job(self, job: jobs.Job) -> None:
        """Plan the title's encode into tasks, publish the complete timeline, make the title
        playable as soon as a player can start, and publish it ready when every task is done.
        The tasks themselves run in whichever worker claims them (this one included)."""
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
            # Only a first publication is progressive: a title that plays an older version
            # keeps it until the new one is complete. An earlier attempt of this job may have
            # made the title playable with the job's version already.
            progressive = title.current_version is None or title.current_version == job.version
            await gc_versions(self.storage, job.title_id, title.current_version, keep=job.version)
            source = await self._fetch_source(job, attempt_dir)
            async with self._reading(source):
                probe = await self._probe(job, source)
                ends = await chunks.measure_source_ends(source, probe)
            options = await self._source_options(job)
            overrides = sources.audio_languages(options)
            av1_heights = sources.av1_heights(options, self.av1_heights)

            def replan(caps: dict[str, int] | None = None) -> Ladder:
                return plan_ladder(
                    probe, segment_s=self.segment_s, audio_languages=overrides, av1_heights=av1_heights, caps=caps
                )

            ladder = replan()
            version = job.version or new_version()
            earlier: set[int] = set()
            earlier_record: dict | None = None
            if job.version is None:

                async def claim_version() -> bool:
                    async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                        return await jobs.set_version(conn, job, version)

                if not await self._waiting(claim_version):
                    raise LeaseLost(f"job {job.id} attempt {job.attempts} is no longer ours")
                job = dataclasses.replace(job, version=version)
            else:
                earlier, earlier_record = await self._earlier_attempt(job, version)
            ladder_record: dict | None = None
            choosing = staged = False
            if earlier - {tasks.STAGE_START}:
                # An earlier attempt planned the ladder and made the tasks beyond the first
                # ones: the same ladder again (its record; none: the table's), whatever this
                # worker's setting, so every task encodes the same rungs.
                ladder_record = earlier_record
                caps = (earlier_record or {}).get("caps")
                ladder = replan(caps) if caps else ladder
                staged = tasks.STAGE_ALL not in earlier
            elif self.ladder_mode == per_title.PER_TITLE and per_title.has_choice(ladder):
                # Chosen once the first segments are stored (`_choose_ladder`).
                choosing = staged = True
            elif self.ladder_mode == per_title.PER_TITLE and ladder.h264_rungs:
                _, ladder_record = await per_title.plan(source, ladder, ends.end_s)  # one rung: no probe
            predicted = chunks.predict_presentation(
                probe, ladder, title_id=job.title_id, version=version, end_s=ends, preset=self.preset
            )
            adjusted = list(source_adjustments(probe, ladder))
            if abs(ends.end_s - probe.duration_s) > LENGTH_MISMATCH_S:
                adjusted.append(
                    f"content ends at {ends.end_s:.1f} s, not at the {probe.duration_s:.1f} s the source's "
                    "header states (truncated or badly indexed): the real length is published"
                )
            # The tasks read the source's measured ends from here (the audio is cut to them).
            extra = {**predicted.extra, SOURCE_ADJUSTMENTS: adjusted, SOURCE_ENDS: ends.to_dict()}
            if overrides:
                extra[AUDIO_LANGUAGES] = {str(k): v for k, v in overrides.items()}
            if ladder.av1_rungs:
                extra[AV1_RUNGS] = list(av1_heights)
            if ladder_record is not None:
                extra[LADDER] = ladder_record
            if seekable.needs_copy(probe):
                async with self._reading(source):
                    extra[SEEKABLE_SOURCE] = await self._seekable_copy(job, source, probe, ladder, attempt_dir)
            predicted = dataclasses.replace(predicted, extra=extra)
            # Subtitle renditions need only the source and the (exact) predicted timeline.
            predicted = await subtitles.add_subtitles(
                self.storage, predicted, source, embedded=bool(probe.extra.get(SUBTITLE_STREAMS))
            )
            total = timeline_length(predicted)
            audio_ids = sorted(
                (a.id for a in ladder.audios), key=lambda i: ladder.audio is None or i != ladder.audio.id
            )
            part_segments = audio_parts(ladder, probe, ends, predicted, total, self.audio_part_segments)

            def plan_tasks(ladder: Ladder) -> list[tasks.TaskSpec]:
                return tasks.plan_tasks(
                    [r.id for r in ladder.h264_rungs],
                    audio_ids,
                    total,
                    self.chunk_segments,
                    av1_ids=[r.id for r in ladder.av1_rungs],
                    audio_part_segments=part_segments,
                )

            choice: asyncio.Task[tuple[Ladder, Presentation]] | None = None
            playable = asyncio.Event()  # set once a player can start (at once for a re-encode)
            if choosing:
                # What a player starts with (the audio and the lowest rung, which every choice
                # encodes as the table says) starts now and is published alone
                # (`per_title.provisional`); the rest once the ladder is chosen.
                await write_model(self.storage, per_title.provisional(predicted, ladder))
                first_tasks, _ = tasks.starter_specs(plan_tasks(ladder))
                await self._make_tasks(job, version, first_tasks, tasks.STAGE_START)

                async def choose() -> tuple[Ladder, Presentation]:
                    # Once the first segments are stored: until then they have every core (the
                    # probe costs about as much CPU as they do, even at nice 10 it slowed them).
                    await playable.wait()
                    return await self._choose_ladder(job, source, probe, ends, predicted, replan, plan_tasks)

                choice = asyncio.create_task(choose())
            elif staged:
                await write_model(self.storage, predicted)
                first_tasks, rest = tasks.starter_specs(plan_tasks(ladder))
                await self._make_tasks(job, version, first_tasks, tasks.STAGE_START)
                await self._make_tasks(job, version, rest, tasks.STAGE_REST)
            else:
                await write_model(self.storage, predicted)
                await self._make_tasks(job, version, plan_tasks(ladder), tasks.STAGE_ALL)
            self._wake.set()  # our own task lanes start at once
            posters: list[asyncio.Task[None]] = []

            def on_playable() -> None:
                playable.set()
                # Once the title is playable: until then the first segments have every core.
                posters.append(asyncio.create_task(self._poster(job, source, probe, attempt_dir, version)))

            try:
                await self._watch(
                    job, ladder, predicted, progressive=progressive, on_playable=on_playable, choice=choice
                )
                if choice is not None:
                    ladder, predicted = choice.result()
                presentation = await self._assemble(job, ladder, version, ends.end_s, predicted)
                presentation = subtitles.carry_over(predicted, presentation)
                if posters:
                    await posters[0]
            finally:
                for poster in posters:
                    await _stop_task(poster)
                await _stop_task(choice)
            # From the stored segments: a download that cannot be made is logged and left out.
            presentation = await with_download(self.storage, presentation, attempt_dir / "download", title=title.title)
            # The same for the seek thumbnails: after the encode, so they never delay playback.
            presentation = await with_thumbnails(
                self.storage, presentation, attempt_dir / "thumbnails", every_s=self.thumbnail_interval_s or None
            )
            self._set_progress(job, PUBLISH_AT)
            # Every task is done: whatever half-written object is left under the version is a
            # dead attempt's (a worker killed mid-upload), never a live writer's.
            await self.storage.sweep_incomplete(keys.version_prefix(job.title_id, version), 0)
            await write_model(self.storage, presentation)
            await _stop_task(heartbeat)

            async def commit() -> str | None:
                return await commit_version(self.pool, job, presentation)

            old = await self._waiting(commit)
            if old and old != version:
                try:
                    await self.storage.delete_prefix(keys.version_prefix(job.title_id, old))
                except Exception as exc:  # the next attempt's gc_versions retries it
                    log.warning("title %s: could not delete old version %s: %s", job.title_id, old, exc)
            self.processed += 1
            log.info(
                "job %s title %s: ready as %s in %.1f s", job.id, job.title_id, version, time.monotonic() - started
            )
        except asyncio.CancelledError:
            if job.id in self._lost:
                log.warning("job %s: lease lost, another worker has it; stopped", job.id)
                await self._forget_if_deleted(job)
                return
            if self._stopping.is_set():
                await asyncio.shield(self._release(job))
            raise
        except LeaseLost:
            log.warning("job %s: lease lost before publishing; another worker has it", job.id)
            await self._forget_if_deleted(job)
        except TitleNotFound:

            async def cancel() -> None:
                async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                    await jobs.cancel(conn, job, "title deleted")

            await self._waiting(cancel)
            await self._forget_if_deleted(job)
            log.info("job %s: title %s was deleted while it ran", job.id, job.title_id)
        except Exception as exc:
            await self._failed(job, exc)
        finally:
            await _stop_task(heartbeat)
            self._progress.pop(job.id, None)
            self._lost.discard(job.id)
            self._drop_source_cache(job.title_id)
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, attempt_dir, True))

    async def _earlier_attempt(self, job: jobs.Job, version: str) -> tuple[set[int], dict | None]:
        """What an earlier attempt of the job left: the stages of tasks it made, and the ladder
        record of the model it wrote once it had made more than the first ones (None: the
        table's ladder, or only the first tasks made)."""

        async def stages() -> set[int]:
            async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                return await tasks.job_stages(conn, job.id, version)

        found = await self._waiting(stages)
        if not found - {tasks.STAGE_START}:
            return found, None
        try:
            model = Presentation.from_json(await self.storage.get_bytes(keys.model_key(job.title_id, version)))
        except ObjectNotFound:
            return found, None
        record = model.extra.get(LADDER)
        return found, record if isinstance(record, dict) and not per_title.is_pending(model.extra) else None

    async def _make_tasks(self, job: jobs.Job, version: str, specs: list[tasks.TaskSpec], stage: int) -> None:
        async def make() -> None:
            async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                made = await tasks.create_tasks(conn, job, version, specs, max_attempts=job.max_attempts, stage=stage)
            if not made:
                raise LeaseLost(f"job {job.id} attempt {job.attempts} is no longer ours")

        await self._waiting(make)

    async def _choose_ladder(
        self,
        job: jobs.Job,
        source: str,
        probe: Probe,
        ends: chunks.SourceEnds,
        predicted: Presentation,
        replan: Callable[[dict[str, int] | None], Ladder],
        plan_tasks: Callable[[Ladder], list[tasks.TaskSpec]],
    ) -> tuple[Ladder, Presentation]:
        """A per-title title's ladder, chosen once its first segments are stored: the
        complexity probe at bulk priority (what a viewer waits for keeps the cores), then the
        chosen ladder's predicted model (`predicted` is the fixed ladder's), and the tasks
        beyond the first segments. Returns the ladder and the model."""
        fixed = replan(None)
        async with self._reading(source):
            caps, record = await per_title.plan(source, fixed, ends.end_s, nice=BULK_NICE)
        ladder = replan(caps) if caps else fixed
        chosen = chunks.predict_presentation(
            probe, ladder, title_id=job.title_id, version=predicted.version, end_s=ends, preset=self.preset
        )
        chosen = dataclasses.replace(chosen, extra={**chosen.extra, **predicted.extra, LADDER: record})
        chosen = subtitles.carry_over(predicted, chosen)
        await write_model(self.storage, chosen)
        # Stage 1 (made on the fixed ladder) is the same on the chosen one: it holds only what
        # every choice encodes alike (`per_title.invariant_renditions`).
        _, rest = tasks.starter_specs(plan_tasks(ladder))
        await self._make_tasks(job, predicted.version, rest, tasks.STAGE_REST)
        self._wake.set()
        return ladder, chosen

    async def _seekable_copy(self, job: jobs.Job, source: str, probe: Probe, ladder: Ladder, attempt_dir: Path) -> str:
        """The storage key of the source's seekable copy (`transcoder.seekable`), made once."""
        key = keys.seekable_source_key(job.title_id)
        try:
            await self.storage.head(key)
            return key
        except ObjectNotFound:
            pass
        out = attempt_dir / "seekable.nut"
        await asyncio.to_thread(attempt_dir.mkdir, parents=True, exist_ok=True)
        started = time.monotonic()
        await seekable.make_seekable_copy(source, probe, ladder, out)
        await self.storage.put_file(key, out, "application/octet-stream")
        log.info(
            "job %s: %s source copied to a seekable container in %.1f s",
            job.id,
            probe.format_name,
            time.monotonic() - started,
        )
        await self._keep_local(job.title_id, key, out)
        return key

    async def _keep_local(self, title_id: str, key: str, made: Path) -> Path:
        """`made`, just stored at `key`, becomes this machine's local copy of it (as if
        `_local_source` had downloaded it): the title's tasks run here do not fetch it back.
        Returns where the file is now."""
        if self.storage.local_path(key) is not None:
            return made  # file storage: the stored object is read in place
        async with self._source_lock(title_id):
            dest = self._source_path(title_id, key)
            await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(made.replace, dest)
            self._sources[key] = dest
            return dest

    async def _watch(
        self,
        job: jobs.Job,
        ladder: Ladder,
        predicted: Presentation,
        *,
        progressive: bool,
        on_playable: Callable[[], None],
        choice: asyncio.Task[Any] | None = None,
    ) -> None:
        """Until every task of the job is done: make the title playable once a player can
        start (first publication only), keep the job's progress, and fail when a task failed
        for good. `on_playable` runs once, when a player could start (or at once for a
        re-encode, which is not progressive). `choice`: the per-title ladder being chosen,
        which makes the tasks after the first ones; its failure is the job's."""
        first = first_objects(predicted, ladder)
        playable = not progressive
        if playable:
            on_playable()
        if choice is not None:
            choice.add_done_callback(lambda _t: self._task_done.set())
        while True:
            # Read before the tasks are: a choice done by then has made all of them.
            chosen = choice is None or choice.done()
            if choice is not None and chosen:
                choice.result()  # raises what the choice raised
            if not playable and await self._all_stored(first):

                async def mark() -> None:
                    async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                        await status.mark_playable(
                            conn, job.title_id, predicted.version, duration_s=predicted.duration_s
                        )

                await self._waiting(mark)
                playable = True
                on_playable()
                log.info("job %s title %s: playable as %s", job.id, job.title_id, predicted.version)

            async def look() -> tuple[tuple[int, int], tasks.Task | None]:
                async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                    return await tasks.task_progress(conn, job.id), await tasks.failed_task(conn, job.id)

            (cells_done, cells), failed = await self._waiting(look)
            done = cells_done / cells if cells else 0.0
            if failed is not None:
                raise TaskFailed(
                    f"{failed.error or 'task failed'} ({'+'.join(failed.renditions)} segments "
                    f"{failed.first_number}-{failed.first_number + failed.segment_count - 1})"
                )
            if chosen:  # before, the cells are only the first tasks': the share would fall back
                self._set_progress(job, done * ENCODE_SHARE)
            if cells and cells_done >= cells and chosen:
                return
            self._task_done.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._task_done.wait(), WATCH_FAST_S if not playable else WATCH_S)

    async def _all_stored(self, names: list[str]) -> bool:
        for key in names:
            try:
                await self.storage.head(key)
            except ObjectNotFound:
                return False
        return True

    async def _assemble(
        self, job: jobs.Job, ladder: Ladder, version: str, end_s: float, predicted: Presentation
    ) -> Presentation:
        """The measured model from every task's result, checked like a one-pass encode."""

        async def job_tasks() -> list[tasks.Task]:
            async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                return await tasks.job_tasks(conn, job.id)

        done = await self._waiting(job_tasks)
        # Every task is done: a worker killed between a task's completion and the removal of
        # its work dir on this machine left that dir, and no attempt of the task will come
        # to clean it.
        await asyncio.to_thread(self._clean_task_dirs, [t.id for t in done if t.id not in self._runs])
        measured = chunks.assemble_presentation(
            ladder, [t.result for t in done if t.result], title_id=job.title_id, version=version
        )
        check_presentation(measured, expected_duration_s=end_s)
        extra = dict(predicted.extra)
        fixed = timeline_changes(predicted, measured)
        if fixed:
            log.warning("job %s title %s: timeline fixed up: %s", job.id, job.title_id, "; ".join(fixed))
            extra[SOURCE_ADJUSTMENTS] = [*extra.get(SOURCE_ADJUSTMENTS, []), *fixed]
        return dataclasses.replace(measured, extra={**measured.extra, **extra})

    async def _poster(self, job: jobs.Job, source: str, probe: Probe, attempt_dir: Path, version: str) -> None:
        """Beside the renditions, from the source; a poster that cannot be made is logged."""
        out = attempt_dir / "poster"
        await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
        await make_poster(source, probe, out)
        path = out / keys.POSTER_NAME
        if await asyncio.to_thread(path.is_file):
            await self.storage.put_file(keys.poster_key(job.title_id, version), path, content_type(keys.POSTER_NAME))

    async def _forget_if_deleted(self, job: jobs.Job) -> None:
        """A job stopped because its title was deleted: what its tasks put after the title's
        storage was removed goes too."""
        if not job.version:
            return
        try:
            async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                await titles.get_title(conn, job.title_id)
        except TitleNotFound:
            with contextlib.suppress(Exception):
                await self.storage.delete_prefix(keys.version_prefix(job.title_id, job.version))
        except Exception as exc:  # best effort; the hourly sweep logs what is left
            log.info("job %s: could not check title %s: %s", job.id, job.title_id, exc)

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
                    await fail_title(conn, self.storage, job, reason)
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

    async def _fetch_source(self, job: jobs.Job, attempt_dir: Path) -> str:
        """What the coordinator reads the source from (`_source_for_reading`: on S3 a
        presigned URL, so the probe does not wait for a download). A URL (ingest through the
        API) is downloaded and kept in storage, where the job then reads it (its tasks, its
        later attempts), and this machine keeps the downloaded file as its copy."""
        if "://" in job.source:
            return str(await self._fetch_url(job, attempt_dir))
        return await self._source_for_reading(job.title_id, job.source)

    @contextlib.asynccontextmanager
    async def _reading(self, source: str) -> AsyncIterator[None]:
        """Around ffmpeg or ffprobe reading `source`. When that fails on a storage object read
        over HTTP: if storage does not answer now, its outage is the cause (`ping` raises it:
        the work is deferred without spending an attempt, not failed as bad media); either way
        the presigned URL's signature is kept out of the error a user or a log sees."""
        try:
            yield
        except (ProbeError, TranscodeError) as exc:
            if not is_http(source):
                raise
            await self.storage.ping()
            if isinstance(exc, ProbeError):
                raise ProbeError(unsigned(exc.path), unsigned(exc.reason)) from None
            raise type(exc)(unsigned(str(exc))) from None

    async def _fetch_url(self, job: jobs.Job, attempt_dir: Path) -> Path:
        local = await fetch_to_local(
            job.source,
            attempt_dir / "download",
            self.max_source_bytes,
            s3_endpoint_url=self.s3_endpoint_url,
            allow_private=self.outbound_allow_private,
        )
        key = keys.source_key(job.title_id, source_extension(job.source))
        await self.storage.put_file(key, local)

        async def point_at_it() -> bool:
            async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                return await jobs.set_source(conn, job, key)

        if not await self._waiting(point_at_it):
            raise LeaseLost(f"job {job.id} is no longer ours")
        log.info("job %s: fetched %s into storage", job.id, job.source)
        return await self._keep_local(job.title_id, key, local)

    async def _source_options(self, job: jobs.Job) -> dict[str, Any]:
        """What ingest was told about the source (`--audio-lang`, `--av1`)."""

        async def get() -> dict:
            async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                return await sources.get_options(conn, job.title_id)

        return await self._waiting(get)

    async def _probe(self, job: jobs.Job, source: str) -> Probe:
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
        probe = await run_probe(source)

        async def put() -> None:
            async with self.pool.acquire(timeout=DB_ACQUIRE_TIMEOUT_S) as conn:
                await sources.set_probe(conn, job.title_id, probe.to_dict())

        await self._waiting(put)
        return probe

    def _clean_task_dirs(self, task_ids: list[int]) -> None:
        for task_id in task_ids:
            self._clean_work_dirs(task_id, "task")

    def _clean_work_dirs(self, job_id: int, kind: str = "job") -> None:
        """A dead attempt of this job (or task) on this machine may have left its work dir."""
        if self.work_dir.is_dir():
            for stale in self.work_dir.glob(f"{kind}-{job_id}-*"):
                shutil.rmtree(stale, ignore_errors=True)


async def _stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel and wait for `task` without swallowing a cancellation of the caller."""
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task})


def audio_parts(
    ladder: Ladder, probe: Probe, ends: chunks.SourceEnds, predicted: Presentation, total: int, wanted: int
) -> int:
    """Segments per audio part for this title (`chunks.audio_part_size`), or 0: one task for
    the whole timeline. Parts need a source whose timeline and audio start at 0 (a part seeks
    in it; the padding a late audio track gets, and a broadcast capture's offset, are handled
    from 0 by the whole-timeline encode, and parts were not verified on them) and audio that
    lasts the whole timeline (every part but the last makes all of its segments)."""
    if not ladder.audios or abs(ends.audio_start_s) > 1e-3 or abs(probe.start_time_s) > 1e-3:
        return 0
    if any(abs(a.start_time_s) > 1e-3 for a in probe.audio):
        return 0
    if any(len(r.segments) < total for r in predicted.audio):
        return 0
    return chunks.audio_part_size(ladder, wanted)


def timeline_length(model: Presentation) -> int:
    """Segments in the title's timeline: the video's, else the audio's."""
    main = model.video[0] if model.video else model.audio[0]
    return len(main.segments)


def first_objects(model: Presentation, ladder: Ladder) -> list[str]:
    """What a player needs to start: the lowest rung's and the default audio's init and
    first segment. Once they are stored the title is playable."""
    wanted = []
    if ladder.h264_rungs:
        wanted.append(ladder.h264_rungs[-1].id)
    if ladder.audio:
        wanted.append(ladder.audio.id)
    out = []
    for rid in wanted:
        r = model.rendition(rid)
        if r is None:
            continue
        out.append(keys.object_key(model.title_id, model.version, f"{rid}/{INIT_NAME}"))
        out.append(keys.object_key(model.title_id, model.version, f"{rid}/{r.start_number}{SEGMENT_EXT}"))
    return out


def timeline_changes(predicted: Presentation, measured: Presentation) -> list[str]:
    """Sentences for each rendition whose measured timeline differs from the published
    prediction (a source whose real length differs from its probe): the final model is the
    measured one."""
    out = []
    for m in measured.renditions:
        p = predicted.rendition(m.id)
        if p is None:
            continue
        if len(p.segments) != len(m.segments) or p.timescale != m.timescale:
            out.append(f"{m.id}: {len(m.segments)} segments instead of the {len(p.segments)} predicted")
        elif [s.duration for s in p.segments] != [s.duration for s in m.segments]:
            out.append(f"{m.id}: lasts {m.duration_s:.3f} s instead of the {p.duration_s:.3f} s predicted")
    return out


async def fail_title(conn: asyncpg.Connection, storage: Storage, job: jobs.Job, reason: str) -> None:
    """The job failed for good: the title turns failed (unless an older complete version
    still plays). A title that was playable from this job's unfinished version stops being
    playable. The job's version then belongs to nobody, and its objects go."""
    if not await status.mark_failed(conn, job.title_id, reason) and job.version:
        await status.fail_progressive(conn, job.title_id, job.version, reason)
    await tasks.cancel_tasks(conn, job.id, "job failed")
    if not job.version:
        return
    try:
        current = (await titles.get_title(conn, job.title_id)).current_version
    except TitleNotFound:
        current = None
    if current == job.version:
        return
    try:
        await storage.delete_prefix(keys.version_prefix(job.title_id, job.version))
    except Exception as exc:  # the hourly sweep removes versions nothing points at
        log.warning("title %s: could not delete unfinished version %s: %s", job.title_id, job.version, exc)
