"""`file:///abs/dir` storage: objects are files under one root directory.

Writes are atomic (a temp file in the same directory, fsynced, then `os.replace`), so a
reader sees the old object or the new one, never half of one. A writer killed mid-write
leaves its temp file behind: `list` never shows it, `list_incomplete` does, and
`delete_prefix` and `sweep_incomplete` remove it. Blocking calls run in the backend's own
bounded pool (media/pool.py).
"""

from __future__ import annotations

import builtins
import errno
import mimetypes
import os
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from media.errors import InvalidKey, ObjectNotFound, StorageError
from media.pool import StoragePool
from media.storage import ObjectInfo, StorageOptions, validate_key

CHUNK_SIZE = 256 * 1024
# Temp files start with this; `list` skips them so a write in progress is never visible.
TMP_PREFIX = ".sf-tmp-"

# mimetypes does not know the streaming types on every platform.
_CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".json": "application/json",
    ".jpg": "image/jpeg",
}


def guess_content_type(key: str) -> str | None:
    """The file backend keeps no metadata, so the content type comes from the extension."""
    ext = os.path.splitext(key)[1].lower()
    return _CONTENT_TYPES.get(ext) or mimetypes.guess_type(key)[0]


class FileStorage:
    """Storage under a local directory; `local_path` lets the server use sendfile."""

    def __init__(self, url: str, *, options: StorageOptions | None = None) -> None:
        if not url.startswith("file://"):
            raise StorageError(f"not a file:// URL: {url!r}")
        path = url[len("file://") :]
        if not path.startswith("/"):
            raise StorageError(f"file storage URL needs an absolute path (file:///abs/dir): {url!r}")
        self.url = url
        # resolve() once, so the containment check below compares real paths.
        self.root = Path(path).resolve()
        self.options = options or StorageOptions()
        self.pool = StoragePool(self.options.threads, self.options.wait_s)
        # Reads are awaited this long at most (a hung disk or network mount answers 503).
        self._read_s = self.options.read_timeout_s

    # ---- paths ---------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        validate_key(key)
        if key.endswith("/"):
            raise InvalidKey(f"invalid storage key: {key!r} (an object key cannot end with '/')")
        path = self.root / key
        # validate_key already refuses "..": this catches a symlink that points out of the root.
        if not path.resolve().is_relative_to(self.root):
            raise InvalidKey(f"storage key {key!r} resolves outside the storage root")
        return path

    def local_path(self, key: str) -> Path | None:
        """The file for `key` (it may not exist: `head` first)."""
        return self._path(key)

    def read_url(self, key: str, expires_s: int) -> str | None:
        return None

    def _info(self, key: str, path: Path) -> ObjectInfo:
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"no object {key!r}") from exc
        if not path.is_file():
            raise ObjectNotFound(f"no object {key!r}")
        return ObjectInfo(
            key=key,
            size=st.st_size,
            # Changes whenever the file is replaced (new inode) or rewritten (size, mtime), and is
            # the same across processes and restarts: a strong validator (RFC 9110 8.8.3).
            etag=f"{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ino:x}",
            mtime=datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC),
            content_type=guess_content_type(key),
        )

    # ---- writes --------------------------------------------------------------------------

    def _write_atomic(self, key: str, fill: Callable[[BinaryIO], object]) -> ObjectInfo:
        path = self._path(key)
        for attempt in range(3):
            # A concurrent delete_prefix may remove the (empty) parent between mkdir and open.
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}"
            try:
                fh = open(tmp, "xb")
            except FileNotFoundError:
                if attempt == 2:
                    raise
                continue
            try:
                with fh:
                    fill(fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            return self._info(key, path)
        raise AssertionError("unreachable")

    async def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        return await self.pool.run(self._write_atomic, key, lambda fh: fh.write(data))

    async def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        """Copy a local file in chunks (never the whole file in memory)."""

        def copy(dst: BinaryIO) -> None:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, dst, CHUNK_SIZE)

        return await self.pool.run(self._write_atomic, key, copy)

    # ---- writes in parts ------------------------------------------------------------------
    # One temp file beside the object (a temp name, so `list` skips it and the incomplete-write
    # sweep reclaims it), appended part by part (the first one moved in when the caller lets
    # it go, no copy; the next ones copied by the kernel); completing syncs it to disk once and
    # renames it into place.

    def _parts_path(self, key: str, write_id: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{32}", write_id):
            raise StorageError(f"not a write id of this storage: {write_id!r}")
        return self._path(key).parent / f"{TMP_PREFIX}parts-{write_id}"

    async def start_parts(self, key: str, content_type: str | None = None) -> str:
        write_id = uuid.uuid4().hex

        def run() -> None:
            path = self._parts_path(key, write_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=False)

        await self.pool.run(run)
        return write_id

    async def put_part(self, key: str, write_id: str, number: int, path: Path, *, consume: bool = False) -> str:
        """Appends: the tag is the part's end offset, so completing checks nothing is missing."""

        def run() -> str:
            target = self._parts_path(key, write_id)
            try:
                held = target.stat().st_size
            except FileNotFoundError:
                raise ObjectNotFound(f"no write {write_id!r} of {key!r}") from None
            if consume and held == 0:
                try:
                    # Unlinked first: a rename over an existing file makes ext4 flush the
                    # renamed file's data at once (auto_da_alloc), a second write of the part.
                    target.unlink()
                    os.rename(path, target)
                    return f"{number}:{target.stat().st_size}"
                except OSError as exc:
                    if exc.errno != errno.EXDEV:  # another filesystem: copied below
                        raise
            with open(path, "rb") as src, open(target, "r+b") as dst:
                # copy_file_range refuses an O_APPEND target: the offset is given instead
                end = held
                remaining = os.fstat(src.fileno()).st_size
                while remaining > 0:
                    sent = os.copy_file_range(src.fileno(), dst.fileno(), min(remaining, 1 << 30), offset_dst=end)
                    if sent == 0:
                        raise StorageError(f"part {number} of {key!r}: the copy stopped short")
                    end += sent
                    remaining -= sent
                return f"{number}:{end}"

        return await self.pool.run(run)

    async def complete_parts(self, key: str, write_id: str, parts: builtins.list[tuple[int, str]]) -> ObjectInfo:
        def run() -> ObjectInfo:
            target = self._parts_path(key, write_id)
            if not target.is_file():
                raise ObjectNotFound(f"no write {write_id!r} of {key!r}")
            numbers = [n for n, _tag in parts]
            if numbers != list(range(1, len(parts) + 1)):
                raise StorageError(f"parts of {key!r} must be 1..n in order, not {numbers}")
            end = int(parts[-1][1].split(":")[1]) if parts else 0
            if target.stat().st_size != end:
                raise StorageError(f"parts of {key!r} hold {target.stat().st_size} bytes, not {end}")
            with open(target, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(target, self._path(key))
            return self._info(key, self._path(key))

        return await self.pool.run(run)

    async def abort_parts(self, key: str, write_id: str) -> None:
        await self.pool.run(lambda: self._parts_path(key, write_id).unlink(missing_ok=True))

    async def copy(self, src_key: str, dst_key: str) -> ObjectInfo:
        src = self._path(src_key)

        def copy(dst: BinaryIO) -> None:
            try:
                fh = open(src, "rb")
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
                raise ObjectNotFound(f"no object {src_key!r}") from exc
            with fh:
                shutil.copyfileobj(fh, dst, CHUNK_SIZE)

        return await self.pool.run(self._write_atomic, dst_key, copy)

    # ---- reads ---------------------------------------------------------------------------

    async def head(self, key: str) -> ObjectInfo:
        path = self._path(key)
        return await self.pool.run(self._info, key, path, deadline_s=self._read_s)

    async def get_bytes(self, key: str) -> bytes:
        path = self._path(key)

        def read() -> bytes:
            try:
                return path.read_bytes()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
                raise ObjectNotFound(f"no object {key!r}") from exc

        return await self.pool.run(read, deadline_s=self._read_s)

    async def stream(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes [start, end] inclusive; `end` past the last byte is clamped, `start` past it
        yields nothing (the server answers 416 before it gets here)."""
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"bad byte range {start}-{end}")
        path = self._path(key)
        try:
            fh = await self.pool.run(lambda: open(path, "rb"), deadline_s=self._read_s)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectNotFound(f"no object {key!r}") from exc
        try:
            await self.pool.run(fh.seek, start, deadline_s=self._read_s)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                n = CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining)
                chunk = await self.pool.run(fh.read, n, deadline_s=self._read_s)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            fh.close()

    def _walk(self, prefix: str, *, temp: bool = False) -> list[tuple[str, Path]]:
        """(key, path) of the objects under `prefix`; with `temp`, of the temp files there
        instead (writes in progress, or left by a writer that died)."""
        # S3 semantics: a prefix is a string prefix, not a directory ("a/b" matches "a/bc").
        base = self.root / prefix.rpartition("/")[0] if prefix else self.root
        if not base.resolve().is_relative_to(self.root):
            raise InvalidKey(f"storage prefix {prefix!r} resolves outside the storage root")
        found = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(TMP_PREFIX) != temp:
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append((key, path))
        found.sort()
        return found

    async def list(self, prefix: str) -> list[ObjectInfo]:
        """Objects whose key starts with `prefix` ("" lists everything), sorted by key."""
        if prefix:
            validate_key(prefix)

        def run() -> builtins.list[ObjectInfo]:
            out = []
            for key, path in self._walk(prefix):
                try:
                    out.append(self._info(key, path))
                except ObjectNotFound:
                    pass  # deleted while we walked
            return out

        return await self.pool.run(run)

    def _stat_all(self, found: builtins.list[tuple[str, Path]]) -> builtins.list[ObjectInfo]:
        out = []
        for key, path in found:
            try:
                st = path.stat()
            except FileNotFoundError:
                continue  # renamed into place or removed while we walked
            mtime = datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC)
            out.append(ObjectInfo(key=key, size=st.st_size, etag=path.name, mtime=mtime))
        return out

    def _prune(self, dirs: set[Path]) -> None:
        """Remove the directories in `dirs`, and their parents, that are empty now: deepest
        first, walking up to (never including) the root."""
        todo = set()
        for d in dirs:
            while d != self.root and d.is_relative_to(self.root):
                todo.add(d)
                d = d.parent
        for d in sorted(todo, key=lambda p: len(p.parts), reverse=True):
            try:
                d.rmdir()
            except OSError:
                pass  # not empty (other objects, or a write in progress)

    async def list_incomplete(self, prefix: str) -> builtins.list[ObjectInfo]:
        """Temp files under `prefix` (their key ends in the temp name; `mtime` is their last write)."""
        if prefix:
            validate_key(prefix)
        return await self.pool.run(lambda: self._stat_all(self._walk(prefix, temp=True)))

    async def sweep_incomplete(self, prefix: str, older_than_s: float, keep: frozenset[str] = frozenset()) -> int:
        """Remove temp files under `prefix` not written to for `older_than_s` seconds (a live
        writer touches its file as it copies, so an old one belongs to a dead writer)."""
        if prefix:
            validate_key(prefix)

        def run() -> int:
            cutoff = time.time() - older_than_s
            count = 0
            dirs: set[Path] = set()
            kept = {f"{TMP_PREFIX}parts-{w}" for w in keep}
            for info in self._stat_all(self._walk(prefix, temp=True)):
                if info.mtime.timestamp() < cutoff and info.key.rpartition("/")[2] not in kept:
                    path = self.root / info.key
                    path.unlink(missing_ok=True)
                    dirs.add(path.parent)
                    count += 1
            self._prune(dirs)  # a dead writer's folder that held nothing else
            return count

        return await self.pool.run(run)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix` (which may not be empty), every temp file there
        (a write in progress under a prefix being deleted fails, as it would on S3), and the
        directories that become empty; returns how many objects went."""
        validate_key(prefix)

        def run() -> int:
            count = 0
            dirs: set[Path] = set()
            for _key, path in self._walk(prefix):
                try:
                    path.unlink()
                    count += 1
                except FileNotFoundError:
                    pass
                dirs.add(path.parent)
            for _key, path in self._walk(prefix, temp=True):
                path.unlink(missing_ok=True)
                dirs.add(path.parent)
            self._prune(dirs)
            return count

        return await self.pool.run(run)

    async def ping(self) -> None:
        def run() -> None:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"storage root {self.root} is not usable: {exc.strerror}") from exc
            if not os.access(self.root, os.W_OK | os.X_OK):
                raise StorageError(f"storage root {self.root} is not writable")

        await self.pool.run(run, deadline_s=self._read_s)

    async def close(self) -> None:
        self.pool.close()
