"""`streamflix worker [--once] [--concurrency N]`: run transcode jobs until stopped.

SIGTERM / SIGINT: stop claiming, cancel in-flight encodes and give their jobs back (another
worker takes them at once); a second signal is not needed. These are the only ways it stops
(besides `--once`): while Postgres is unreachable, at start or later, it waits for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator

import asyncpg

from media.storage import Storage
from server.commands._args import positive_int
from server.commands._runtime import Stopped, open_runtime
from server.settings import Settings
from transcoder.worker import Worker

NAME = "worker"
HELP = "run transcode jobs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--concurrency", type=positive_int, default=1)


def make_worker(
    settings: Settings, pool: asyncpg.Pool, storage: Storage, *, concurrency: int = 1, title_id: str | None = None
) -> Worker:
    return Worker(
        pool,
        storage,
        work_dir=settings.work_dir,
        concurrency=concurrency,
        lease_s=settings.job_lease_s,
        segment_s=settings.segment_duration_s,
        preset=settings.x264_preset,
        timeout_s=settings.transcode_timeout_s,
        max_attempts=settings.job_max_attempts,
        defer_base_s=settings.job_defer_base_s,
        defer_cap_s=settings.job_defer_max_s,
        title_id=title_id,
        chunk_segments=settings.chunk_segments,
        audio_part_segments=settings.audio_part_segments,
        encoder_threads=settings.encoder_threads,
        max_source_bytes=settings.max_source_bytes,
        outbound_allow_private=settings.outbound_allow_private,
        s3_endpoint_url=settings.s3_endpoint_url,
        thumbnail_interval_s=settings.thumbnail_interval_s,
        av1_heights=settings.av1_heights,
        ladder_mode=settings.ladder,
        source_reads=settings.source_reads,
    )


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    sigs = (signal.SIGTERM, signal.SIGINT)
    for sig in sigs:
        loop.add_signal_handler(sig, stop)
    try:
        yield
    finally:
        for sig in sigs:
            loop.remove_signal_handler(sig)


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(settings, args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    stopping = asyncio.Event()
    worker: Worker | None = None

    def stop() -> None:
        stopping.set()
        if worker is not None:
            worker.stop()

    with stop_on_signals(stop):
        try:
            # A worker started while Postgres is down waits for it, like one running does.
            async with open_runtime(settings, pool_size=2 * args.concurrency + 6, wait_for=stopping) as (pool, storage):
                worker = make_worker(settings, pool, storage, concurrency=args.concurrency)
                if not stopping.is_set():
                    await worker.run(once=args.once)
        except Stopped:
            pass  # a signal while waiting for the database: nothing was started
    return 0
