"""A real `streamflix worker` killed (SIGKILL) while it uploads a version to file storage:
its temp files and the orphan version folder must not stay. The next attempt's garbage
collection removes them, and so does `streamflix titles delete`.

A database of this module's own, so the unfiltered worker subprocess only sees these jobs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from catalog import titles
from catalog.errors import TitleNotFound
from media import keys
from media.backend import open_storage
from media.storage_file import TMP_PREFIX
from server.settings import Settings
from tests.transcoder.jobs_support import (  # noqa: F401 (fixtures)
    cli_env,
    job_of,
    own_database_url,
    own_settings,
)
from tests.transcoder.test_worker_process import LEASE_S, REPO, start_worker
from transcoder import publish
from transcoder.ingest import ingest


@pytest.fixture
async def own_pool(own_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(own_settings.database_url, min_size=1, max_size=4)
    yield p
    await p.close()


def worker(settings: Settings, log: Path, *args: str) -> subprocess.Popen[bytes]:
    # Two-second segments (the shortest the ladder allows): many files, so the upload lasts long enough to be caught.
    return start_worker(settings, log, *args, STREAMFLIX_SEGMENT_DURATION_S="2")


def temp_files(root: Path) -> list[Path]:
    return [Path(d) / n for d, _, files in os.walk(root) for n in files if n.startswith(TMP_PREFIX)]


def measured(model: Path) -> bool:
    """The version's final model (the first one written is the prediction, `progressive`)."""
    try:
        return not json.loads(model.read_bytes()).get("progressive", False)
    except (OSError, ValueError):
        return False  # replaced between the listing and the read


def stopped(pid: int, timeout: float = 2.0) -> None:
    """Wait until every thread of `pid` is stopped: a thread inside a rename when SIGSTOP
    arrives finishes it first, so a check made before that could see a temp file that is
    gone by the time SIGKILL lands."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            except OSError:
                continue
            states.append(stat[stat.rindex(")") + 2])
        if states and all(state in "tT" for state in states):
            return
        time.sleep(0.001)


def kill_mid_upload(proc: subprocess.Popen[bytes], title_dir: Path, timeout: float) -> bool:
    """Poll until the worker has a temp file under `title_dir` (a segment, or a model being
    written); stop it (SIGSTOP freezes it at once), and if a temp file is still there, SIGKILL
    it. False if the title was published (or the worker exited) before it could be caught."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if temp_files(title_dir):
            os.kill(proc.pid, signal.SIGSTOP)
            stopped(proc.pid)
            if temp_files(title_dir):
                proc.kill()
                proc.wait(10)
                return True
            os.kill(proc.pid, signal.SIGCONT)
        if any(measured(m) for m in title_dir.glob(f"*/{keys.MODEL_NAME}")):
            return False  # published: too late
        time.sleep(0.001)
    return False


async def killed_mid_upload(
    settings: Settings, pool: asyncpg.Pool, clip_factory: Callable[..., Path], tmp_path: Path, name: str
) -> tuple[str, Path, Path]:
    """A title whose worker died mid-upload: (title id, its storage folder, worker log)."""
    storage = open_storage(settings.storage_url)
    try:
        clip = clip_factory(seconds=20, width=1280, height=720, audio=False)
        title = await ingest(
            pool, storage, source=str(clip), title=name, max_source_bytes=10**9, work_dir=settings.work_dir
        )
    finally:
        await storage.close()
    root = Path(settings.storage_url.removeprefix("file://"))
    title_dir = root / keys.title_prefix(title.id)
    log = tmp_path / "worker.log"
    proc = worker(settings, log)
    try:
        caught = await asyncio.to_thread(kill_mid_upload, proc, title_dir, 120)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait()
    assert caught, "the upload finished before the worker could be killed in it:\n" + log.read_text()[-2000:]
    return title.id, title_dir, log


async def test_worker_killed_mid_upload_leaves_nothing_after_the_next_attempt(
    own_settings: Settings, own_pool: asyncpg.Pool, clip_factory: Callable[..., Path], tmp_path: Path
) -> None:
    settings = own_settings
    title_id, title_dir, log = await killed_mid_upload(settings, own_pool, clip_factory, tmp_path, "Killed uploading")
    orphan = {p.relative_to(title_dir).parts[0] for p in temp_files(title_dir)}
    assert len(orphan) == 1
    (dead_version,) = orphan
    storage = open_storage(settings.storage_url)
    try:
        # Invisible to listings, visible to list_incomplete, and found as a version.
        assert not any(TMP_PREFIX in o.key for o in await storage.list(keys.title_prefix(title_id)))
        incomplete = await storage.list_incomplete(keys.title_prefix(title_id))
        assert incomplete and all(o.key.startswith(keys.version_prefix(title_id, dead_version)) for o in incomplete)
        assert dead_version in await publish.stored_versions(storage, title_id)

        await asyncio.sleep(LEASE_S + 0.5)
        restarted = worker(settings, log, "--once")
        try:
            code = await asyncio.to_thread(restarted.wait, 180)
        finally:
            if restarted.poll() is None:
                restarted.kill()
                restarted.wait()
        assert code == 0, log.read_text()[-3000:]
        async with own_pool.acquire() as conn:
            t = await titles.get_title(conn, title_id)
        assert t.status == "ready", t.failure_reason
        # The dead attempt's folder is gone, temp files and all; only the new version remains.
        assert sorted(p.name for p in title_dir.iterdir()) == [t.current_version]
        assert temp_files(title_dir.parent.parent) == []
        assert await storage.list_incomplete("") == []
    finally:
        await storage.close()


async def test_titles_delete_removes_a_dead_uploads_temp_files(
    own_settings: Settings, own_pool: asyncpg.Pool, clip_factory: Callable[..., Path], tmp_path: Path
) -> None:
    settings = own_settings
    title_id, title_dir, _log = await killed_mid_upload(settings, own_pool, clip_factory, tmp_path, "Killed, deleted")
    assert temp_files(title_dir)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "server.cli", "titles", "delete", title_id],
        env=cli_env(settings),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert not title_dir.exists(), sorted(str(p) for p in title_dir.rglob("*"))
    async with own_pool.acquire() as conn:
        with pytest.raises(TitleNotFound):
            await titles.get_title(conn, title_id)
