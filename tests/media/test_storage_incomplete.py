"""Writes that never finished: a file backend's temp files and S3's unfinished multipart
uploads, left by a writer killed with SIGKILL. `list` never shows them; `list_incomplete`
does; `sweep_incomplete` removes the old ones; `delete_prefix` removes them all."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from media import keys
from media.storage_file import TMP_PREFIX, FileStorage
from media.storage_s3 import S3Storage
from transcoder.publish import gc_versions, stored_versions

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]


# ---- file backend -----------------------------------------------------------------------------


def dead_temp(root: Path, key_dir: str, age_s: float) -> Path:
    """A temp file as a writer killed mid-write leaves it, last written `age_s` ago."""
    d = root / key_dir
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    tmp.write_bytes(b"half a segment")
    then = time.time() - age_s
    os.utime(tmp, (then, then))
    return tmp


async def test_file_temp_files_listed_swept_by_age_and_deleted(tmp_path: Path) -> None:
    root = tmp_path / "media"
    st = FileStorage("file://" + str(root))
    try:
        await st.put_bytes("titles/t1/v1/v720/0.m4s", b"whole")
        old = dead_temp(root, "titles/t1/v1/v720", age_s=2 * 3600)
        young = dead_temp(root, "titles/t1/v1/v720", age_s=60)
        assert [o.key for o in await st.list("titles/t1/")] == ["titles/t1/v1/v720/0.m4s"]
        found = {o.key for o in await st.list_incomplete("titles/")}
        assert found == {f"titles/t1/v1/v720/{old.name}", f"titles/t1/v1/v720/{young.name}"}

        assert await st.sweep_incomplete("titles/t1/", 3600) == 1
        assert not old.exists() and young.exists()

        assert await st.delete_prefix("titles/t1/v1/") == 1  # the one object; the temp file too
        assert not young.exists() and not (root / "titles").exists()
    finally:
        await st.close()


async def test_gc_removes_a_version_that_holds_only_temp_files(tmp_path: Path) -> None:
    root = tmp_path / "media"
    st = FileStorage("file://" + str(root))
    try:
        await st.put_bytes(keys.model_key("t1", "vcurrent"), b"{}")
        dead_temp(root, "titles/t1/vdead/v720", age_s=5)
        stray = dead_temp(root, "titles/t1/vcurrent", age_s=2 * 3600)
        assert await stored_versions(st, "t1") == {"vcurrent", "vdead"}
        assert await gc_versions(st, "t1", "vcurrent") == ["vdead"]
        assert sorted(p.name for p in (root / "titles/t1").iterdir()) == ["vcurrent"]
        assert not stray.exists(), "a temp file older than an hour goes, even in the current version"
    finally:
        await st.close()


# ---- S3: a real process killed mid multipart upload ------------------------------------------

UPLOADER = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    import botocore.client
    from boto3.s3.transfer import TransferConfig
    from media.storage_s3 import S3Storage

    url, endpoint, key, path = sys.argv[1:5]
    # 5 MiB parts (S3's minimum), one at a time: a slow upload of many parts.
    config = TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20, max_concurrency=1)
    # A slow link: each part waits 0.2 s before it goes, so the upload lasts seconds even
    # when the local S3 server takes all 16 parts in one (it once finished before the test
    # could see it under way).
    call = botocore.client.BaseClient._make_api_call

    def slowly(self, operation, params):
        if operation == "UploadPart":
            time.sleep(0.2)
        return call(self, operation, params)

    botocore.client.BaseClient._make_api_call = slowly

    async def main():
        st = S3Storage(url, endpoint_url=endpoint, transfer_config=config)
        await st.put_file(key, Path(path))

    asyncio.run(main())
    """
)


@pytest.fixture
async def s3(s3_server: str) -> S3Storage:
    st = S3Storage(f"s3://mp-{uuid.uuid4().hex[:12]}/media", endpoint_url=s3_server)
    await st.create_bucket()
    return st


def start_uploader(st: S3Storage, key: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    """A process uploading an 80 MiB file to `key` in 5 MiB parts."""
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        for _ in range(80):
            fh.write(os.urandom(MiB))
    return subprocess.Popen(
        [sys.executable, "-c", UPLOADER, st.url, st.endpoint_url or "", key, str(big)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def kill_mid_multipart(st: S3Storage, key: str, tmp_path: Path) -> None:
    proc = start_uploader(st, key, tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not await st.list_incomplete(""):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "no multipart upload began"
            await asyncio.sleep(0.02)
        proc.kill()  # SIGKILL: no abort_multipart_upload runs
        await asyncio.to_thread(proc.wait, 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_s3_killed_multipart_upload_is_listed_and_aborted_by_delete(s3: S3Storage, tmp_path: Path) -> None:
    key = keys.object_key("t1", "vdead", "v720/big.m4s")
    try:
        await kill_mid_multipart(s3, key, tmp_path)
        assert await s3.list("titles/") == []  # never completed: no object
        (upload,) = await s3.list_incomplete("titles/t1/")
        assert upload.key == key and upload.etag
        # (Sweeping by age is the file test's: moto reports every upload as begun in 2010.)
        await s3.delete_prefix(keys.title_prefix("t1"))
        assert await s3.list_incomplete("") == []
    finally:
        await s3.close()


async def test_s3_gc_and_sweep_abort_dead_multipart_uploads(s3: S3Storage, tmp_path: Path) -> None:
    try:
        await kill_mid_multipart(s3, keys.object_key("t1", "vdead", "v720/big.m4s"), tmp_path)
        await s3.put_bytes(keys.model_key("t1", "vcurrent"), b"{}")
        assert await stored_versions(s3, "t1") == {"vcurrent", "vdead"}
        assert await gc_versions(s3, "t1", "vcurrent") == ["vdead"]
        assert await s3.list_incomplete("") == []

        await kill_mid_multipart(s3, keys.source_key("t2", ".mp4"), tmp_path)
        assert await s3.sweep_incomplete("", 0) == 1  # older than 0 s: every one
        assert await s3.list_incomplete("") == []
    finally:
        await s3.close()
