"""A real upload failure: the moto S3 server behind tests/faultproxy.py goes away while the
worker encodes, so the upload's TaskGroup fails. The job records the real cause (not
"ExceptionGroup: unhandled errors in a TaskGroup"), is deferred without spending an attempt,
and once storage is back the same title ends ready."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from catalog import titles
from media.backend import open_storage
from media.errors import ProbeError, StorageUnavailable
from media.probe import probe as run_probe
from media.storage_s3 import S3Storage
from server.settings import Settings
from tests.faultproxy import FaultProxy
from tests.transcoder.jobs_support import job_of, make_worker, pool  # noqa: F401 (fixture)
from tests.transcoder.test_worker_process import wait_until
from transcoder import tasks
from transcoder.ingest import ingest


@pytest.fixture
async def s3_proxy(s3_server: str) -> AsyncIterator[FaultProxy]:
    with FaultProxy.in_front_of(s3_server, 80) as proxy:
        yield proxy


@pytest.fixture
async def proxied_s3(settings: Settings, s3_server: str, s3_proxy: FaultProxy) -> Settings:
    bucket = f"sf-{uuid.uuid4().hex[:12]}"
    direct = open_storage(f"s3://{bucket}/media", s3_server)
    assert isinstance(direct, S3Storage)
    await direct.create_bucket()
    await direct.close()
    return dataclasses.replace(settings, storage_url=f"s3://{bucket}/media", s3_endpoint_url=s3_proxy.route(s3_server))


async def test_upload_failure_records_the_real_cause_and_defers(
    proxied_s3: Settings,
    s3_proxy: FaultProxy,
    pool: asyncpg.Pool,
    clip_factory: Callable[..., Path],
) -> None:
    settings = proxied_s3
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    clip = clip_factory(seconds=20, width=1280, height=720, audio=False)
    title = await ingest(
        pool,
        storage,
        source=str(clip),
        title="Upload into an outage",
        max_source_bytes=10**9,
        work_dir=settings.work_dir,
    )
    # Deferred for 3 s first: long enough to look at the job before it runs again.
    worker = make_worker(pool, storage, settings, title_id=title.id, defer_base_s=3, defer_cap_s=3)
    runner = asyncio.create_task(worker.run(once=True))
    try:

        async def encoding() -> bool:
            assert not runner.done(), runner
            job = await job_of(pool, title.id)
            if not (job.status == "running" and job.progress > 0):  # the source is fetched
                return False
            async with pool.acquire() as conn:  # a chunk beyond the first segment is encoding
                return any(t.status == "running" and t.last_number > 1 for t in await tasks.job_tasks(conn, job.id))

        await wait_until(encoding, 60, "the encode to start")
        s3_proxy.down()  # the upload after the encode finds storage gone

        async def deferred() -> bool:
            async with pool.acquire() as conn:
                return any(t.deferrals >= 1 for t in await tasks.job_tasks(conn, (await job_of(pool, title.id)).id))

        await wait_until(deferred, 120, "a task to be deferred")
        job = await job_of(pool, title.id)
        async with pool.acquire() as conn:
            put_back = [t for t in await tasks.job_tasks(conn, job.id) if t.deferrals >= 1]
        for t in put_back:
            assert (t.status, t.attempts) in (("queued", 0), ("running", 1)), t  # no attempt spent
            assert t.error is not None
            assert t.error.startswith("storage unreachable: s3 "), t.error  # a put or head of a segment
            assert "Could not connect to the endpoint URL" in t.error
            assert "ExceptionGroup" not in t.error and "TaskGroup" not in t.error
        assert job.status in ("running", "queued") and job.attempts <= 1
        async with pool.acquire() as conn:
            waiting = await titles.get_title(conn, title.id)
        assert waiting.status != "failed" and waiting.failure_reason is None  # not failed

        s3_proxy.up()
        await asyncio.wait_for(runner, 120)
    finally:
        runner.cancel()
        await asyncio.wait({runner})
        await storage.close()
    async with pool.acquire() as conn:
        done = await titles.get_title(conn, title.id)
    assert done.status == "ready", done.failure_reason
    job = await job_of(pool, title.id)
    assert (job.status, job.attempts) == ("done", 1)


async def test_a_failed_read_of_a_source_url_is_the_outage_when_storage_is_down(
    proxied_s3: Settings, s3_proxy: FaultProxy, pool: asyncpg.Pool
) -> None:
    """The coordinator's probe and the first tasks read the source over a presigned URL.
    A failed ffprobe of it is bad media only while storage answers (and its error does not
    carry the URL's signature); with storage down it is the outage, which defers the work."""
    settings = proxied_s3
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    worker = make_worker(pool, storage, settings)
    try:
        url = storage.read_url("sources/missing/original.mp4", 600)
        assert url is not None
        found = re.search(r"[?&](?:X-Amz-)?Signature=([^&]+)", url)
        assert found, url
        signature = found.group(1)
        with pytest.raises(ProbeError) as missing:
            async with worker._reading(url):
                await run_probe(url)
        assert "404" in missing.value.reason, missing.value
        assert signature not in str(missing.value) and "Signature=..." in str(missing.value)

        s3_proxy.down()
        with pytest.raises(StorageUnavailable):
            async with worker._reading(url):
                await run_probe(url)
    finally:
        s3_proxy.up()
        await storage.close()
