"""On S3 storage nothing a player waits for waits for a download: the coordinator (probe,
measured ends) and the first segment's tasks read the source object over HTTP (a presigned
URL, with ranges); the first bulk task on a worker downloads it once, and every later task of
the title there reads that copy, removed when the job ends. A seekable copy the coordinator
made (of an MPEG-TS source), or a URL it fetched, is not downloaded back. A failed read of the
object while storage is down is the outage (deferred), and no error keeps a URL's signature."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from catalog import titles
from media import keys
from media.backend import open_storage
from media.storage_s3 import S3Storage
from server.settings import ConfigError, Settings
from tests.transcoder.jobs_support import make_worker, pool, work_dirs  # noqa: F401 (fixture)
from transcoder.ingest import ingest, register_url


@pytest.fixture
async def s3_storage(s3_server: str) -> AsyncIterator[S3Storage]:
    """A bucket of its own on moto's server."""
    storage = open_storage(f"s3://sf-{uuid.uuid4().hex[:12]}/media", s3_server)
    assert isinstance(storage, S3Storage)
    await storage.create_bucket()
    yield storage
    await storage.close()


async def encode_on_s3(
    settings: Settings,
    storage: S3Storage,
    pool: asyncpg.Pool,
    clip: Path,
    caplog: pytest.LogCaptureFixture,
    **worker_kw: Any,
) -> tuple[str, list[str]]:
    """Ingest `clip` and run its job to the end with a worker of one-segment chunks (so there
    are bulk tasks beside the first): the title (ready) and the worker's log lines."""
    title = await ingest(
        pool, storage, source=str(clip), title="S3", max_source_bytes=10**9, work_dir=settings.work_dir
    )
    worker = make_worker(pool, storage, settings, title_id=title.id, chunk_segments=1, **worker_kw)
    with caplog.at_level(logging.INFO, logger="streamflix"):
        await asyncio.wait_for(worker.run(once=True), 120)
    async with pool.acquire() as conn:
        done = await titles.get_title(conn, title.id)
    assert done.status == "ready", done.failure_reason
    assert work_dirs(settings) == []
    return title.id, [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("suffix", [".mp4", ".ts"])
async def test_a_title_on_s3_downloads_its_source_once_per_worker(
    settings: Settings,
    s3_storage: S3Storage,
    pool: asyncpg.Pool,
    clip_factory: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
    suffix: str,
) -> None:
    clip = clip_factory(seconds=12, width=320, height=180, suffix=suffix)
    title_id, messages = await encode_on_s3(settings, s3_storage, pool, clip, caplog)
    fetched = [m for m in messages if "downloaded (" in m]
    copied = [m for m in messages if "seekable container" in m]
    if suffix == ".ts":
        # The coordinator read the original over HTTP to copy it; every task reads the copy.
        assert (len(fetched), len(copied)) == (0, 1), (fetched, copied)
    else:
        assert len(fetched) == 1, fetched  # tasks of one segment each: the first bulk one fetched
        assert keys.source_key(title_id, suffix) in fetched[0]  # the original
        assert copied == []
        # The probe and the first segment did not wait for it.
        first = next(i for i, m in enumerate(messages) if "segments 1-1, priority 1" in m)
        assert first < messages.index(fetched[0]), messages


async def test_a_url_source_on_s3_is_fetched_once_then_read_locally(
    settings: Settings,
    s3_storage: S3Storage,
    pool: asyncpg.Pool,
    clip_factory: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ingest through the API by URL: the coordinator fetches the URL and stores it; its tasks
    on the same worker read that fetched file, not a download of what was just stored."""
    clip = clip_factory(seconds=12, width=320, height=180)

    async def source(_r: web.Request) -> web.StreamResponse:
        return web.FileResponse(clip)

    app = web.Application()
    app.router.add_get("/clip.mp4", source)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        url = str(server.make_url("/clip.mp4"))
        title = await register_url(pool, url=url, allow_private=True, title="By URL")
        worker = make_worker(
            pool, s3_storage, settings, title_id=title.id, chunk_segments=1, outbound_allow_private=True
        )
        with caplog.at_level(logging.INFO, logger="streamflix"):
            await asyncio.wait_for(worker.run(once=True), 120)
    finally:
        await server.close()
    async with pool.acquire() as conn:
        done = await titles.get_title(conn, title.id)
    assert done.status == "ready", done.failure_reason
    assert any("fetched" in r.getMessage() for r in caplog.records)
    assert [r.getMessage() for r in caplog.records if "downloaded (" in r.getMessage()] == []
    assert await s3_storage.head(keys.source_key(title.id, ".mp4"))  # kept for later attempts
    assert work_dirs(settings) == []


async def test_download_mode_makes_the_copy_before_the_probe(
    settings: Settings,
    s3_storage: S3Storage,
    pool: asyncpg.Pool,
    clip_factory: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`STREAMFLIX_SOURCE_READS=download`, for S3-compatible servers that read a whole object
    for every ranged GET: the coordinator downloads the source first, once, and everything
    reads that copy."""
    clip = clip_factory(seconds=12, width=320, height=180)
    _, messages = await encode_on_s3(settings, s3_storage, pool, clip, caplog, source_reads="download")
    fetched = [i for i, m in enumerate(messages) if "downloaded (" in m]
    first = next(i for i, m in enumerate(messages) if "segments 1-1, priority 1" in m)
    assert len(fetched) == 1 and fetched[0] < first, messages


def test_source_reads_setting(tmp_path: Path) -> None:
    assert Settings(data_dir=str(tmp_path), secret_key="k").source_reads == "ranged"
    assert Settings(data_dir=str(tmp_path), secret_key="k", source_reads="download").source_reads == "download"
    with pytest.raises(ConfigError, match="STREAMFLIX_SOURCE_READS must be ranged or download, not 'copy'"):
        Settings(data_dir=str(tmp_path), secret_key="k", source_reads="copy")
