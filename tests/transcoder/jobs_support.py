"""Helpers for the jobs / worker / ingest tests: a database of the test's own (so an
unfiltered claim or a worker subprocess never takes another test's job), settings for it,
and a look into storage and the work dir."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from catalog import titles
from catalog.titles import Title
from media import keys
from media.backend import open_storage
from media.storage import Storage
from server.migrate import migrate
from server.settings import Settings
from tests.conftest import _drop, _dsn_for
from transcoder import jobs, tasks
from transcoder.ingest import ingest
from transcoder.worker import Worker


@pytest.fixture(scope="module")
def own_database_url() -> Iterator[str]:
    """A migrated database for this test module alone, dropped after it."""
    dbname = f"sf_test_jobs_{os.getpid()}_{secrets.token_hex(3)}"
    dsn = _dsn_for(dbname)
    asyncio.run(migrate(dsn))
    yield dsn
    asyncio.run(_drop(dbname))


@pytest.fixture
def own_settings(settings: Settings, own_database_url: str) -> Settings:
    return dataclasses.replace(settings, database_url=own_database_url)


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=8)
    yield p
    await p.close()


@pytest.fixture
async def storage(settings: Settings) -> AsyncIterator[Storage]:
    st = open_storage(settings.storage_url, settings.s3_endpoint_url)
    yield st
    await st.close()


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a `streamflix` subprocess use these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFLIX_")}
    env.update(
        STREAMFLIX_DATABASE_URL=settings.database_url,
        STREAMFLIX_DATA_DIR=settings.data_dir,
        STREAMFLIX_STORAGE_URL=settings.storage_url,
        STREAMFLIX_SECRET_KEY=settings.secret_key,
        STREAMFLIX_X264_PRESET=settings.x264_preset,
    )
    if settings.s3_endpoint_url:
        env["STREAMFLIX_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    env.update(extra)
    return env


def make_worker(pool: asyncpg.Pool, storage: Storage, settings: Settings, **kw: Any) -> Worker:
    args: dict[str, Any] = dict(
        work_dir=settings.work_dir,
        lease_s=settings.job_lease_s,
        segment_s=settings.segment_duration_s,
        preset=settings.x264_preset,
        timeout_s=120,
        backoff_base_s=0.05,
        poll_s=0.1,
    )
    args.update(kw)
    return Worker(pool, storage, **args)


async def ingest_and_run(
    pool: asyncpg.Pool, storage: Storage, settings: Settings, source: Path | str, **kw: Any
) -> Title:
    """Ingest `source` and work its job to the end with an in-process worker that only takes
    this title's job (the session database is shared with other tests)."""
    kw.setdefault("title", f"Test {secrets.token_hex(3)}")
    kw.setdefault("max_source_bytes", settings.max_source_bytes)
    title = await ingest(pool, storage, source=str(source), work_dir=settings.work_dir, **kw)
    worker = make_worker(pool, storage, settings, title_id=title.id)
    await asyncio.wait_for(worker.run(once=True), 120)
    async with pool.acquire() as conn:
        return await titles.get_title(conn, title.id)


async def job_of(pool: asyncpg.Pool, title_id: str) -> jobs.Job:
    async with pool.acquire() as conn:
        return (await jobs.progress_for(conn, [title_id]))[title_id]


async def stored_keys(storage: Storage, title_id: str) -> list[str]:
    return [o.key for o in await storage.list(keys.title_prefix(title_id))]


def work_dirs(settings: Settings) -> list[str]:
    root = settings.work_dir
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def task_row(**fields: Any) -> tasks.Task:
    """A `tasks.Task` as the queue returns it: a running one-segment video task of job 1,
    with `fields` replacing any of its values."""
    now = datetime.now(UTC)
    row: dict[str, Any] = dict(
        id=1, job_id=1, title_id="t", version="v", kind="video", renditions=("v360",), first_number=1,
        segment_count=1, priority=1, status="running", attempts=1, max_attempts=3, deferrals=0, worker_id="w",
        lease_until=None, run_after=now, error=None, result=None, created_at=now, updated_at=now, finished_at=None,
    )  # fmt: skip
    row.update(fields)
    return tasks.Task(**row)
