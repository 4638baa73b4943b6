"""Publishing is atomic: until the one commit, viewers get the old version; a crash at any
earlier step leaves an orphan prefix the next attempt removes; a lost lease publishes nothing.

Each test republishes a `ready_title` (real ingest + worker) from its stored files under a
new version, with a job claimed for the title, then breaks one step."""

from __future__ import annotations

import dataclasses
from datetime import UTC
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from catalog import titles
from media import keys
from media.errors import ObjectNotFound, StorageError
from media.storage import Storage
from packager.model import Presentation
from tests.transcoder.jobs_support import pool, storage  # noqa: F401 (fixtures)
from transcoder import jobs, publish
from transcoder.publish import LeaseLost, gc_versions, new_version


@dataclasses.dataclass
class Republish:
    title_id: str
    old: str
    presentation: Presentation
    out_dir: Path
    job: jobs.Job


@pytest.fixture
async def republish(ready_title: dict[str, Any], pool: asyncpg.Pool, storage: Storage, tmp_path: Path) -> Republish:
    title_id, old = ready_title["id"], ready_title["version"]
    model = Presentation.from_json(await storage.get_bytes(keys.model_key(title_id, old)))
    out_dir = tmp_path / "out"
    prefix = keys.version_prefix(title_id, old)
    for obj in await storage.list(prefix):
        name = obj.key[len(prefix) :]
        if name != keys.MODEL_NAME:
            (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (out_dir / name).write_bytes(await storage.get_bytes(obj.key))
    async with pool.acquire() as conn:
        await jobs.enqueue(conn, title_id, keys.source_key(title_id, ".mp4"), 3)
        job = await jobs.claim(conn, "test-publisher", 30, title_id=title_id)
    assert job is not None, "the title's new job was not claimed"
    return Republish(title_id, old, dataclasses.replace(model, version=new_version()), out_dir, job)


async def served(pool: asyncpg.Pool, title_id: str) -> tuple[str, str | None]:
    async with pool.acquire() as conn:
        t = await titles.get_title(conn, title_id)
    return t.status, t.current_version


async def versions(storage: Storage, title_id: str) -> set[str]:
    return await publish.stored_versions(storage, title_id)


def test_version_names_sort_by_time_and_are_unique() -> None:
    from datetime import datetime

    a = new_version(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    b = new_version(datetime(2024, 1, 2, 3, 4, 6, tzinfo=UTC))
    assert a.startswith("v20240102030405-") and len(a) == len("v20240102030405-abcdef")
    assert a < b
    assert len({new_version() for _ in range(50)}) == 50


def test_content_types() -> None:
    assert publish.content_type("v720/init.mp4") == "video/mp4"
    assert publish.content_type("v720/3.m4s") == "video/iso.segment"
    assert publish.content_type("poster.jpg") == "image/jpeg"


async def test_publish_switches_version_and_removes_the_old_one(
    republish: Republish,
    pool: asyncpg.Pool,
    storage: Storage,
) -> None:
    r = republish
    old = await publish.publish(pool, storage, r.job, r.presentation, r.out_dir)
    assert old == r.old
    assert await served(pool, r.title_id) == ("ready", r.presentation.version)
    assert await versions(storage, r.title_id) == {r.presentation.version}
    stored = await storage.get_bytes(keys.model_key(r.title_id, r.presentation.version))
    assert Presentation.from_json(stored) == r.presentation
    await storage.head(keys.poster_key(r.title_id, r.presentation.version))
    async with pool.acquire() as conn:
        job = await jobs.get(conn, r.job.id)
    assert job is not None and job.status == "done"


async def test_crash_before_the_model_leaves_the_old_version_served(
    republish: Republish,
    pool: asyncpg.Pool,
    storage: Storage,
) -> None:
    r = republish
    new = r.presentation.version
    # the process dies mid-upload: some objects are there, the model is not, no cleanup ran
    for name, path in publish.version_files(r.out_dir, r.presentation)[:3]:
        await storage.put_file(keys.object_key(r.title_id, new, name), path)
    assert await served(pool, r.title_id) == ("ready", r.old)
    assert await versions(storage, r.title_id) == {r.old, new}
    with pytest.raises(ObjectNotFound):
        await storage.head(keys.model_key(r.title_id, new))
    await storage.head(keys.model_key(r.title_id, r.old))  # still whole
    # the next attempt starts by removing the orphan
    assert await gc_versions(storage, r.title_id, r.old) == [new]
    assert await versions(storage, r.title_id) == {r.old}


async def test_crash_after_upload_before_commit_shows_nothing(
    republish: Republish,
    pool: asyncpg.Pool,
    storage: Storage,
) -> None:
    r = republish
    await publish.upload_version(storage, r.presentation, r.out_dir)  # model written, no commit
    assert await served(pool, r.title_id) == ("ready", r.old)
    assert await gc_versions(storage, r.title_id, r.old) == [r.presentation.version]
    assert await versions(storage, r.title_id) == {r.old}


class FailingModelStorage:
    """Storage whose model write fails (the store is down at the last step)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> Any:
        raise StorageError("s3 put: SlowDown")


async def test_failed_model_write_cleans_up_and_keeps_the_old_version(
    republish: Republish,
    pool: asyncpg.Pool,
    storage: Storage,
) -> None:
    r = republish
    with pytest.raises(StorageError):
        await publish.publish(pool, FailingModelStorage(storage), r.job, r.presentation, r.out_dir)
    assert await served(pool, r.title_id) == ("ready", r.old)
    assert await versions(storage, r.title_id) == {r.old}


async def test_lost_lease_publishes_nothing(
    republish: Republish,
    pool: asyncpg.Pool,
    storage: Storage,
) -> None:
    r = republish
    async with pool.acquire() as conn:  # another worker took the job over
        await conn.execute(
            "UPDATE jobs.transcode_jobs SET attempts = attempts + 1, worker_id = 'other' WHERE id = $1", r.job.id
        )
    with pytest.raises(LeaseLost):
        await publish.publish(pool, storage, r.job, r.presentation, r.out_dir)
    assert await served(pool, r.title_id) == ("ready", r.old)
    assert await versions(storage, r.title_id) == {r.old}


async def test_deleted_title_publishes_nothing(
    republish: Republish,
    pool: asyncpg.Pool,
    storage: Storage,
) -> None:
    from transcoder.remove import remove_title

    r = republish
    await remove_title(pool, storage, r.title_id)
    with pytest.raises(LeaseLost):  # the delete cancelled the job
        await publish.publish(pool, storage, r.job, r.presentation, r.out_dir)
    assert await versions(storage, r.title_id) == set()
    assert await storage.list(keys.source_prefix(r.title_id)) == []
