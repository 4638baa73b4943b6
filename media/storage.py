"""The async storage interface. Backends: `media.storage_file` (file://) and
`media.storage_s3` (s3://bucket/prefix). Open one with `media.backend.open_storage(url,
endpoint_url)`.

Keys are relative, "/"-separated, validated by `validate_key` (no "..", no absolute paths,
no NUL, no empty parts).
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

# Re-exported: media.errors is the one list of media errors; existing imports keep working.
from media.errors import InvalidKey, ObjectNotFound, StorageError, StorageUnavailable

__all__ = [
    "MIN_PART_BYTES",
    "InvalidKey",
    "ObjectInfo",
    "ObjectNotFound",
    "Storage",
    "StorageError",
    "StorageOptions",
    "StorageUnavailable",
    "validate_key",
]


# S3's smallest part but the last (5 MiB): a resumable write keeps a shorter run as a tail.
MIN_PART_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class StorageOptions:
    """How a backend bounds its blocking calls (media/pool.py says why each exists)."""

    threads: int = 16  # the backend's own pool (`sf-storage` threads)
    wait_s: float = 1.0  # longest wait for a free thread before StorageBusy
    # S3: botocore's defaults (60 s read, 60 s connect, retries) would hold a thread for minutes
    # against a hung endpoint. A read (HEAD, GET, a chunk of a body) is also awaited at most
    # read_timeout_s on any backend, then StorageUnavailable.
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 5.0
    max_attempts: int = 2


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # strong validator, without quotes
    mtime: datetime
    content_type: str | None = None


class Storage(Protocol):
    url: str

    async def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        """Upload a local file, streamed (multipart on S3 for large files)."""

    async def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo: ...

    async def copy(self, src_key: str, dst_key: str) -> ObjectInfo:
        """A server-side copy (S3 CopyObject, a file copy): a new version reuses the objects
        of the current one without passing them through this process. Raises ObjectNotFound
        when `src_key` is missing."""

    async def get_bytes(self, key: str) -> bytes:
        """Whole object; for small objects only (models, playlists)."""

    def stream(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes [start, end] inclusive (end None = to the last byte), in chunks."""

    async def head(self, key: str) -> ObjectInfo:
        """Raises ObjectNotFound."""

    async def list(self, prefix: str) -> list[ObjectInfo]: ...

    async def delete_prefix(self, prefix: str) -> int:
        """Deletes every object under prefix, and every incomplete write there (temp files,
        unfinished multipart uploads); returns how many objects went."""

    async def list_incomplete(self, prefix: str) -> builtins.list[ObjectInfo]:
        """Writes that never finished under `prefix`: temp files of the file backend,
        multipart uploads never completed or aborted on S3 (`etag` is their upload id, `mtime`
        when they started). `list` never shows them."""

    async def sweep_incomplete(self, prefix: str, older_than_s: float, keep: frozenset[str] = frozenset()) -> int:
        """Remove (abort) the incomplete writes under `prefix` started more than
        `older_than_s` seconds ago, but the writes in parts whose ids are in `keep` (live
        resumable uploads); returns how many went."""

    # ---- an object written in parts, across processes (resumable uploads) -------------
    # Parts are put in order, numbered from 1; on S3 every part but the last must be at
    # least `MIN_PART_BYTES`. Until completed the object is invisible (`list`, `head`); it is
    # an incomplete write (`list_incomplete`, `sweep_incomplete`) and `abort_parts` drops it.

    async def start_parts(self, key: str, content_type: str | None = None) -> str:
        """Begin writing `key` in parts; returns the write's id (kept by the caller)."""

    async def put_part(self, key: str, write_id: str, number: int, path: Path, *, consume: bool = False) -> str:
        """Part `number` from a local file; returns its tag, needed to complete. `consume`: the
        caller is done with the file, the backend may move it instead of copying it."""

    async def complete_parts(self, key: str, write_id: str, parts: builtins.list[tuple[int, str]]) -> ObjectInfo:
        """Join the parts [(number, tag), ...] into the object `key`."""

    async def abort_parts(self, key: str, write_id: str) -> None:
        """Drop an unfinished write and its parts (nothing when it is gone already)."""

    def local_path(self, key: str) -> Path | None:
        """A filesystem path for sendfile, or None when the backend is remote."""

    def read_url(self, key: str, expires_s: int) -> str | None:
        """An http(s) URL that a reader without credentials (ffmpeg) can GET, with ranges, for
        `expires_s` seconds; None when the backend is local (`local_path`). Made without a
        request: it may name an object that does not exist."""

    async def ping(self) -> None:
        """Raises StorageError when the backend does not answer (readiness)."""

    async def close(self) -> None: ...


def validate_key(key: str) -> str:
    if not key or "\x00" in key or key.startswith("/") or "\\" in key:
        raise InvalidKey(f"invalid storage key: {key!r}")
    parts = key.split("/")
    # a trailing "/" is allowed for prefixes
    for part in parts[:-1] if key.endswith("/") else parts:
        if part in ("", ".", ".."):
            raise InvalidKey(f"invalid storage key: {key!r}")
    return key
