"""Helpers shared by the test packages (fixtures live in conftest.py)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import test_utils

from server.settings import Settings


class EdgeTestServer(test_utils.TestServer):
    """aiohttp's TestServer with the runner `streamflix serve` uses (server.origin.edge.Runner):
    tests reach the stream fast path exactly as players do. tests/conftest.py wraps every app
    given to `aiohttp_client` in one."""

    async def _make_runner(self, **kwargs: Any) -> Any:
        from server.origin.edge import Runner

        return Runner(self.app, **kwargs)


def free_port() -> int:
    """A port nobody listens on right now (tests run side by side: never a fixed port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def ingest_and_transcode(settings: Settings, clip: Path, **fields: Any) -> Any:
    """Ingest `clip` with the real ingest code and run the real worker on that one title
    (never another test's job from a shared database); returns the catalog Title."""
    from catalog.titles import get_title
    from media.backend import open_storage
    from transcoder.ingest import ingest
    from transcoder.worker import Worker

    # the worker holds one connection to LISTEN; its job, tasks and heartbeats share the rest
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=8)
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    try:
        title = await ingest(
            pool,
            storage,
            source=str(clip),
            max_source_bytes=settings.max_source_bytes,
            work_dir=settings.work_dir,
            **fields,
        )
        worker = Worker(
            pool,
            storage,
            work_dir=settings.work_dir,
            lease_s=settings.job_lease_s,
            segment_s=settings.segment_duration_s,
            preset=settings.x264_preset,
            title_id=title.id,
        )
        await worker.run(once=True)
        async with pool.acquire() as conn:
            return await get_title(conn, title.id)
    finally:
        await storage.close()
        await pool.close()


async def run_worker_on(settings: Settings, title_id: str) -> Any:
    """The worker `streamflix worker` builds from `settings`, run on that one title until its
    queue is empty; returns the catalog Title."""
    from catalog.titles import get_title
    from media.backend import open_storage
    from server.commands.worker import make_worker

    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=8)
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    try:
        await make_worker(settings, pool, storage, title_id=title_id).run(once=True)
        async with pool.acquire() as conn:
            return await get_title(conn, title_id)
    finally:
        await storage.close()
        await pool.close()
