"""Both storage backends against the same tests: files under tmp_path, and S3 on moto's
server over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from media import errors
from media.backend import open_storage
from media.storage import InvalidKey, ObjectNotFound, Storage, StorageError
from media.storage_file import TMP_PREFIX, FileStorage
from media.storage_s3 import S3Storage

MiB = 1024 * 1024
# Smaller parts than production so the >16 MiB upload below makes several of them quickly
# (S3 and moto refuse parts under 5 MiB, except the last).
TEST_TRANSFER = TransferConfig(multipart_threshold=6 * MiB, multipart_chunksize=6 * MiB)


@pytest.fixture(params=["file", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "file":
        st: Storage = FileStorage("file://" + str(tmp_path / "media"))
    else:
        endpoint = request.getfixturevalue("s3_server")
        bucket = f"t-{uuid.uuid4().hex[:16]}"
        st = S3Storage(f"s3://{bucket}/media", endpoint_url=endpoint, transfer_config=TEST_TRANSFER)
        await st.create_bucket()
    yield st
    await st.close()


async def collect(it: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in it])


def test_errors_live_in_one_place() -> None:
    assert StorageError is errors.StorageError and issubclass(StorageError, errors.MediaError)
    assert issubclass(ObjectNotFound, StorageError) and issubclass(InvalidKey, StorageError)
    assert {e.code for e in (errors.MediaError, StorageError, InvalidKey, ObjectNotFound, errors.ProbeError)} == {
        "media_error",
        "storage_error",
        "invalid_key",
        "not_found",
        "probe_failed",
    }


def test_open_storage_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_storage("file://" + str(tmp_path)), FileStorage)
    assert isinstance(open_storage("s3://bucket/prefix", "http://127.0.0.1:1"), S3Storage)
    with pytest.raises(StorageError, match="unsupported"):
        open_storage("ftp://x/y")
    with pytest.raises(StorageError, match="absolute"):
        FileStorage("file://relative/dir")


async def test_put_get_head(storage: Storage) -> None:
    info = await storage.put_bytes("titles/t1/v1/model.json", b'{"a": 1}', "application/json")
    assert info.key == "titles/t1/v1/model.json"
    assert info.size == 8
    assert info.etag and '"' not in info.etag
    assert await storage.get_bytes("titles/t1/v1/model.json") == b'{"a": 1}'
    head = await storage.head("titles/t1/v1/model.json")
    assert (head.size, head.etag, head.content_type) == (8, info.etag, "application/json")
    assert head.mtime.tzinfo is not None
    # stable: the same object keeps its validator
    assert (await storage.head("titles/t1/v1/model.json")).etag == head.etag


async def test_overwrite_changes_etag(storage: Storage) -> None:
    first = await storage.put_bytes("k/a.m4s", b"one")
    second = await storage.put_bytes("k/a.m4s", b"two!")
    assert first.etag != second.etag
    assert await storage.get_bytes("k/a.m4s") == b"two!"


async def test_empty_object(storage: Storage) -> None:
    info = await storage.put_bytes("k/empty", b"")
    assert info.size == 0
    assert await storage.get_bytes("k/empty") == b""
    assert await collect(storage.stream("k/empty")) == b""


DATA = bytes(range(256)) * 2400  # 600 KiB: several 256 KiB chunks
N = len(DATA)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        pytest.param(0, None, DATA, id="whole"),
        pytest.param(0, N - 1, DATA, id="whole-explicit"),
        pytest.param(0, 0, DATA[:1], id="first-byte"),
        pytest.param(N - 1, N - 1, DATA[-1:], id="last-byte"),
        pytest.param(1000, 299_999, DATA[1000:300_000], id="middle-across-chunks"),
        pytest.param(N - 10, None, DATA[-10:], id="suffix-open-end"),
        pytest.param(N - 10, N + 500, DATA[-10:], id="end-past-size-clamped"),
        pytest.param(N, None, b"", id="start-past-end-empty"),
    ],
)
async def test_stream_ranges(storage: Storage, start: int, end: int | None, expected: bytes) -> None:
    await storage.put_bytes("titles/t/v/v720/1.m4s", DATA, "video/iso.segment")
    chunks = [c async for c in storage.stream("titles/t/v/v720/1.m4s", start, end)]
    assert b"".join(chunks) == expected
    assert all(len(c) <= 256 * 1024 for c in chunks)


async def test_stream_rejects_backwards_range(storage: Storage) -> None:
    await storage.put_bytes("k/x", b"abc")
    with pytest.raises(ValueError):
        await collect(storage.stream("k/x", 2, 1))


def _write_random(path: Path, mebibytes: int, tail_size: int) -> tuple[hashlib._Hash, bytes]:
    """Random bytes into `path`: their running SHA-256 and the last `tail_size` of them."""
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        for _ in range(mebibytes):
            block = os.urandom(MiB)
            digest.update(block)
            fh.write(block)
        tail = os.urandom(tail_size)
        digest.update(tail)
        fh.write(tail)
    return digest, tail


async def test_put_file_large_multipart(storage: Storage, tmp_path: Path) -> None:
    src = tmp_path / "big.mp4"
    size = 17 * MiB + 123
    digest, tail = _write_random(src, 17, 123)
    info = await storage.put_file("sources/big.mp4", src, "video/mp4")
    assert info.size == size
    if isinstance(storage, S3Storage):
        # a multipart upload's ETag is "<md5 of part md5s>-<parts>"
        assert info.etag.endswith("-3"), info.etag
    got = hashlib.sha256()
    async for chunk in storage.stream("sources/big.mp4"):
        got.update(chunk)
    assert got.hexdigest() == digest.hexdigest()
    tail_read = await collect(storage.stream("sources/big.mp4", size - 123, size - 1))
    assert tail_read == tail


async def test_put_file_small(storage: Storage, tmp_path: Path) -> None:
    src = tmp_path / "init.mp4"
    src.write_bytes(b"ftyp" * 100)
    info = await storage.put_file("titles/t/v/v360/init.mp4", src, "video/mp4")
    assert info.size == 400
    assert await storage.get_bytes("titles/t/v/v360/init.mp4") == b"ftyp" * 100
    assert (await storage.head("titles/t/v/v360/init.mp4")).content_type == "video/mp4"


async def test_list_is_a_string_prefix_sorted(storage: Storage) -> None:
    keys = ["a/b/2.m4s", "a/b/1.m4s", "a/b/sub/x", "a/bc/1.m4s", "z/1"]
    for k in keys:
        await storage.put_bytes(k, k.encode())
    assert [o.key for o in await storage.list("a/b/")] == ["a/b/1.m4s", "a/b/2.m4s", "a/b/sub/x"]
    assert [o.key for o in await storage.list("a/b")] == ["a/b/1.m4s", "a/b/2.m4s", "a/b/sub/x", "a/bc/1.m4s"]
    assert [o.key for o in await storage.list("")] == sorted(keys)
    assert await storage.list("nothing/") == []
    listed = {o.key: o for o in await storage.list("a/")}
    assert listed["a/b/1.m4s"].size == len("a/b/1.m4s")
    assert listed["a/b/1.m4s"].etag == (await storage.head("a/b/1.m4s")).etag


async def test_delete_prefix(storage: Storage) -> None:
    for k in ["titles/t1/v1/model.json", "titles/t1/v1/v360/1.m4s", "titles/t1/v2/model.json", "titles/t2/v1/x"]:
        await storage.put_bytes(k, b"x")
    assert await storage.delete_prefix("titles/t1/v1/") == 2
    assert [o.key for o in await storage.list("titles/")] == ["titles/t1/v2/model.json", "titles/t2/v1/x"]
    assert await storage.delete_prefix("titles/t1/v1/") == 0
    assert await storage.delete_prefix("titles/t1/") == 1
    with pytest.raises(ObjectNotFound):
        await storage.head("titles/t1/v2/model.json")
    if isinstance(storage, FileStorage):
        # the emptied directories go too, the root and unrelated ones stay
        assert not (storage.root / "titles" / "t1").exists()
        assert (storage.root / "titles" / "t2" / "v1" / "x").exists()
    with pytest.raises(InvalidKey):
        await storage.delete_prefix("")  # never "delete everything" by accident


async def test_delete_prefix_batches_over_1000(storage: Storage) -> None:
    sem = asyncio.Semaphore(16)

    async def put(i: int) -> None:
        async with sem:
            await storage.put_bytes(f"many/{i:05d}", b"")

    await asyncio.gather(*(put(i) for i in range(1005)))
    assert len(await storage.list("many/")) == 1005
    assert await storage.delete_prefix("many/") == 1005
    assert await storage.list("many/") == []


async def test_missing_object(storage: Storage) -> None:
    with pytest.raises(ObjectNotFound):
        await storage.head("no/such/key")
    with pytest.raises(ObjectNotFound):
        await storage.get_bytes("no/such/key")
    with pytest.raises(ObjectNotFound):
        await collect(storage.stream("no/such/key"))
    with pytest.raises(ObjectNotFound):
        await collect(storage.stream("no/such/key", 5, 10))
    await storage.put_bytes("dir/obj", b"x")
    with pytest.raises(ObjectNotFound):
        await storage.head("dir")  # a "directory" is not an object


BAD_KEYS = [
    pytest.param("..", id="dotdot"),
    pytest.param("a/../b", id="dotdot-inside"),
    pytest.param("../etc/passwd", id="dotdot-escape"),
    pytest.param("/abs", id="absolute"),
    pytest.param("/etc/passwd", id="absolute-etc"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("a//b", id="empty-part"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("..\\x", id="backslash-dotdot"),
    pytest.param("./a", id="dot"),
    pytest.param("", id="empty"),
    pytest.param("a/", id="trailing-slash-object"),
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_invalid_keys(storage: Storage, key: str) -> None:
    with pytest.raises(InvalidKey):
        await storage.put_bytes(key, b"x")
    with pytest.raises(InvalidKey):
        await storage.head(key)
    with pytest.raises(InvalidKey):
        await storage.get_bytes(key)
    with pytest.raises(InvalidKey):
        await collect(storage.stream(key))
    if isinstance(storage, FileStorage):
        with pytest.raises(InvalidKey):
            storage.local_path(key)
    if key not in ("", "a/"):  # valid prefixes ("" lists everything; delete_prefix refuses it)
        with pytest.raises(InvalidKey):
            await storage.list(key)
        with pytest.raises(InvalidKey):
            await storage.delete_prefix(key)


async def test_local_path(storage: Storage, tmp_path: Path) -> None:
    await storage.put_bytes("titles/t/v/v360/1.m4s", b"segment")
    path = storage.local_path("titles/t/v/v360/1.m4s")
    if isinstance(storage, S3Storage):
        assert path is None
        return
    assert isinstance(storage, FileStorage)  # the fixture's other backend
    assert path is not None and path.read_bytes() == b"segment"
    assert path.is_relative_to(storage.root)
    # a symlink inside the root that points out of it is refused
    outside = tmp_path / "secret"
    outside.write_text("secret")
    (storage.root / "titles" / "evil").symlink_to(outside)
    with pytest.raises(InvalidKey):
        storage.local_path("titles/evil")
    with pytest.raises(InvalidKey):
        await storage.get_bytes("titles/evil")


async def test_file_writes_are_atomic_and_leave_no_temp_files(tmp_path: Path) -> None:
    st = FileStorage("file://" + str(tmp_path / "root"))
    src = tmp_path / "missing-source"
    with pytest.raises(FileNotFoundError):
        await st.put_file("a/b", src)
    # the failed copy left neither the object nor its temp file
    assert list((tmp_path / "root" / "a").iterdir()) == []
    await asyncio.gather(*(st.put_bytes("a/b", bytes([i]) * 100_000) for i in range(20)))
    data = await st.get_bytes("a/b")
    assert len(data) == 100_000 and len(set(data)) == 1  # one whole write won, never a mix
    assert not [p for p in (tmp_path / "root").rglob("*") if p.name.startswith(TMP_PREFIX)]


async def test_ping(storage: Storage) -> None:
    await storage.ping()


async def test_ping_fails_when_unusable(tmp_path: Path, s3_server: str) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StorageError, match="not usable"):
        await FileStorage("file://" + str(tmp_path / "afile" / "media")).ping()
    missing = S3Storage("s3://no-such-bucket-here/x", endpoint_url=s3_server)
    with pytest.raises(StorageError) as exc_info:
        await missing.ping()
    assert "\n" not in str(exc_info.value)
    await missing.close()
    down = S3Storage("s3://b/x", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(StorageError, match="s3 bucket"):
        await down.ping()
    await down.close()


async def test_file_ping_creates_root(tmp_path: Path) -> None:
    st = FileStorage("file://" + str(tmp_path / "new" / "root"))
    await st.ping()
    assert (tmp_path / "new" / "root").is_dir()


async def test_copy(storage: Storage) -> None:
    """A new version reuses the current one's objects through a server-side copy."""
    await storage.put_bytes("titles/t1/v1/v720/1.m4s", b"segment-bytes", "video/iso.segment")
    info = await storage.copy("titles/t1/v1/v720/1.m4s", "titles/t1/v2/v720/1.m4s")
    assert (info.key, info.size) == ("titles/t1/v2/v720/1.m4s", 13)
    assert await storage.get_bytes("titles/t1/v2/v720/1.m4s") == b"segment-bytes"
    assert await storage.get_bytes("titles/t1/v1/v720/1.m4s") == b"segment-bytes"
    with pytest.raises(ObjectNotFound):
        await storage.copy("titles/t1/v1/missing.m4s", "titles/t1/v2/missing.m4s")
    assert not await storage.list("titles/t1/v2/missing")
