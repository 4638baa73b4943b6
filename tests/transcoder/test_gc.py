"""The worker's periodic storage sweep (transcoder/gc.py) on file storage and the session's
database: orphan versions of titles with no live job go, a title with a live job is left to
its job, the current version stays, and dead writers' temp files older than an hour go."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import asyncpg

from media import keys
from media.storage_file import TMP_PREFIX, FileStorage
from tests.server.origin_support import ready_title_row
from transcoder import gc, jobs


def old_temp(root: Path, folder: str) -> Path:
    (root / folder).mkdir(parents=True, exist_ok=True)
    tmp = root / folder / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    tmp.write_bytes(b"x")
    then = time.time() - 2 * 3600
    os.utime(tmp, (then, then))
    return tmp


async def test_sweep_removes_orphans_but_not_current_or_live_versions(
    tmp_path: Path, pg: asyncpg.Connection, database_url: str
) -> None:
    root = tmp_path / "media"
    st = FileStorage("file://" + str(root))
    try:
        done = await ready_title_row(pg, "vcurrent", title="Swept")
        busy = await ready_title_row(pg, "vcurrent", title="Being encoded")
        await jobs.enqueue(pg, busy, keys.source_key(busy, ".mp4"), 3)  # a live job: a worker may write
        unknown = str(uuid.uuid4())  # not in the catalog: left alone
        for tid in (done, busy, unknown):
            await st.put_bytes(keys.model_key(tid, "vcurrent"), b"{}")
            await st.put_bytes(keys.object_key(tid, "vorphan", "v720/0.m4s"), b"seg")
        dead_only = old_temp(root, keys.version_prefix(done, "vdead") + "v720")
        stray = old_temp(root, "sources/somewhere")
        young = root / keys.version_prefix(busy, "vcurrent") / f"{TMP_PREFIX}young"
        young.write_bytes(b"x")

        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        try:
            counts = await gc.sweep(pool, st)
        finally:
            await pool.close()

        assert sorted(p.name for p in (root / "titles" / done).iterdir()) == ["vcurrent"]
        assert sorted(p.name for p in (root / "titles" / busy).iterdir()) == ["vcurrent", "vorphan"]
        assert sorted(p.name for p in (root / "titles" / unknown).iterdir()) == ["vcurrent", "vorphan"]
        assert not dead_only.exists() and not stray.exists() and young.exists()
        # the two old temp files; `done`'s vorphan (vdead went with its only temp file)
        assert counts == {"incomplete": 2, "versions": 1, "uploads": 0}
        assert not (root / "sources").exists(), "folders emptied by the sweep go too"
    finally:
        await st.close()
