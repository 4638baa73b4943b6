"""Resumable uploads: the state machine behind the tus protocol (server/api/uploads.py holds
the HTTP). No HTTP here: bytes in, offsets out.

An upload is created with its length and the metadata of the title it becomes; the title's id
is chosen then, and the bytes are written to that title's source key as an object in parts
(`Storage.start_parts`: an S3 multipart upload, a part file on local storage), so nothing is
copied when it completes. State is in Postgres (`jobs.uploads`), so any server process takes
the next request, and a restart loses nothing that was acknowledged.

Each request's body is spooled to a local file first (memory stays flat whatever its size),
with its checksum when the client sent one: a mismatch stores nothing. The spooled bytes, after
the tail left by the previous request, become a part when they reach `MIN_PART_BYTES` or the
upload's end; a shorter run is kept as the tail object until the next request. A request cut
off mid-body keeps what arrived (the client asks for the offset and goes on from there).

When the last byte is in, the parts are joined, the title and its transcode job are created
in one transaction (as `streamflix ingest` does), with the `upload.completed` webhook.
Uploads not finished by `expires_at` (a day after their last request) are swept with their
bytes (`sweep_expired`, run by every worker's hourly clean-up).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import mimetypes
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from catalog import webhooks
from catalog.errors import InvalidTitle
from catalog.titles import Title
from media import keys
from media.storage import MIN_PART_BYTES, ObjectNotFound, Storage
from transcoder.errors import TranscoderError
from transcoder.ingest import SourceTooLarge, plan_kind, register, source_extension

log = logging.getLogger("streamflix.uploads")

EXPIRY_S = 24 * 3600
# A request holds the upload this long, renewed every LEASE_RENEW_S as its body arrives: a
# second request at the same time is refused (423), a request whose server died frees it
# after this (tus clients retry a 423).
LEASE_S = 15.0
LEASE_RENEW_S = 5.0
# tus "checksum" extension: the algorithms a client may name in Upload-Checksum.
CHECKSUMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "md5": hashlib.md5}
SPOOL_CHUNK = 1024 * 1024
METADATA_KEYS = ("filename", "title", "kind", "year", "description", "genres", "series", "season", "episode")


class UploadError(TranscoderError):
    code = "upload_error"


class UploadNotFound(UploadError):
    """No such upload, or not the caller's (the same answer: ids are not revealed)."""

    code = "upload_not_found"


class UploadGone(UploadError):
    """Terminated or expired: its bytes are gone."""

    code = "upload_gone"


class UploadOffsetMismatch(UploadError):
    code = "upload_offset_mismatch"


class UploadLocked(UploadError):
    """Another request is writing to it right now."""

    code = "upload_locked"


class UploadComplete(UploadError):
    code = "upload_complete"


class ChecksumMismatch(UploadError):
    code = "checksum_mismatch"


class InvalidUpload(UploadError):
    """A bad header value: length, metadata, checksum algorithm."""

    code = "invalid_upload"


@dataclass(frozen=True)
class Upload:
    id: str
    owner: str
    length: int
    received: int
    title_id: str
    metadata: dict[str, str]
    storage_key: str
    write_id: str
    parts: list[list[Any]]  # [[number, tag, bytes], ...]
    tail_bytes: int
    status: str
    expires_at: datetime
    created_at: datetime
    completed_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "length": self.length,
            "received": self.received,
            "status": self.status,
            "title_id": self.title_id if self.status == "completed" else None,
            "metadata": self.metadata,
            "expires_at": self.expires_at.isoformat(),
            "created_at": self.created_at.isoformat(),
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
        }


_COLUMNS = (
    "id, owner, length, received, title_id, metadata, storage_key, write_id, parts, tail_bytes, status,"
    " expires_at, created_at, completed_at"
)


def _upload(row: asyncpg.Record) -> Upload:
    data = dict(row)
    data["id"] = str(data["id"])
    data["title_id"] = str(data["title_id"])
    for name in ("metadata", "parts"):
        if isinstance(data[name], str):
            data[name] = json.loads(data[name])
    return Upload(**data)


# ---- headers -----------------------------------------------------------------------------


def parse_metadata(header: str | None) -> dict[str, str]:
    """tus Upload-Metadata: `key base64value,key2 base64value2`; only the keys a title uses
    (METADATA_KEYS) are kept. InvalidUpload for a malformed pair or value."""
    found: dict[str, str] = {}
    for pair in (header or "").split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        try:
            text = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value.strip() else ""
        except (ValueError, UnicodeDecodeError):
            raise InvalidUpload(f"Upload-Metadata: the value of {key!r} is not base64 of UTF-8 text") from None
        if "\x00" in text or len(text) > 10_000:
            raise InvalidUpload(f"Upload-Metadata: {key!r} is not a storable value")
        if key in METADATA_KEYS:
            found[key] = text
    return found


def title_fields(metadata: dict[str, str]) -> dict[str, Any]:
    """The title an upload becomes, from its metadata; checked at creation so a finished
    upload never fails for a bad field. `title` defaults to the file name without extension."""
    name = metadata.get("title") or Path(metadata.get("filename", "")).stem
    if not name.strip():
        raise InvalidUpload("Upload-Metadata needs a `title` (or a `filename`)")

    def number(key: str, low: int, high: int) -> int | None:
        if not metadata.get(key):
            return None
        try:
            value = int(metadata[key])
        except ValueError:
            raise InvalidUpload(f"Upload-Metadata: {key} must be a whole number") from None
        if not low <= value <= high:
            raise InvalidUpload(f"Upload-Metadata: {key} must be between {low} and {high}")
        return value

    series = metadata.get("series") or None
    season, episode = number("season", 0, 10_000), number("episode", 0, 100_000)
    try:
        kind = plan_kind(metadata.get("kind") or None, series, season, episode)
    except (InvalidTitle, ValueError) as exc:
        raise InvalidUpload(f"Upload-Metadata: {exc}") from None
    if kind not in ("movie", "episode"):
        raise InvalidUpload("Upload-Metadata: kind must be movie or episode")
    genres = [g.strip() for g in metadata.get("genres", "").split(",") if g.strip()]
    return {
        "title": name.strip()[:500],
        "kind": kind,
        "series": series,
        "season": season,
        "episode": episode,
        "year": number("year", 1870, 2200),
        "genres": genres[:20],
        "description": metadata.get("description", "")[:10_000],
    }


def parse_checksum(header: str | None) -> tuple[str, bytes] | None:
    """tus Upload-Checksum: `sha1 <base64 digest>`."""
    if header is None:
        return None
    algorithm, _, value = header.strip().partition(" ")
    if algorithm not in CHECKSUMS:
        raise InvalidUpload(f"Upload-Checksum: unsupported algorithm {algorithm!r} (one of {', '.join(CHECKSUMS)})")
    try:
        return algorithm, base64.b64decode(value.strip(), validate=True)
    except ValueError:
        raise InvalidUpload("Upload-Checksum: the digest is not base64") from None


# ---- the state machine ---------------------------------------------------------------------


async def create(
    conn: asyncpg.Connection,
    storage: Storage,
    *,
    owner: str,
    length: int,
    metadata: dict[str, str],
    max_bytes: int,
    expiry_s: float = EXPIRY_S,
) -> Upload:
    """A new upload of `length` bytes. SourceTooLarge over `max_bytes`; InvalidUpload for bad
    metadata (nothing is written then)."""
    if length <= 0:
        raise InvalidUpload("Upload-Length must be a positive whole number")
    if length > max_bytes:
        raise SourceTooLarge(f"the upload is {length} bytes, over the {max_bytes} bytes limit (max_source_bytes)")
    title_fields(metadata)
    upload_id, title_id = uuid.uuid4(), str(uuid.uuid4())
    key = keys.source_key(title_id, source_extension(metadata.get("filename", "")))
    content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    write_id = await storage.start_parts(key, content_type)
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO jobs.uploads (id, owner, length, title_id, metadata, storage_key, write_id, expires_at)
                VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, now() + make_interval(secs => $8))
                RETURNING {_COLUMNS}""",
            upload_id,
            owner,
            length,
            uuid.UUID(title_id),
            json.dumps(metadata),
            key,
            write_id,
            float(expiry_s),
        )
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.shield(storage.abort_parts(key, write_id))
        raise
    return _upload(row)


def _parse_id(upload_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(upload_id)
    except ValueError:
        raise UploadNotFound("no such upload") from None


async def get(conn: asyncpg.Connection, upload_id: str, owner: str) -> Upload:
    """The caller's upload; UploadNotFound (missing, another owner's), UploadGone (terminated,
    expired: also when its expiry passed and the sweep has not run yet)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, expires_at < now() AS past FROM jobs.uploads WHERE id = $1", _parse_id(upload_id)
    )
    if row is None or row["owner"] != owner:
        raise UploadNotFound("no such upload")
    upload = _upload({k: v for k, v in row.items() if k != "past"})
    if upload.status in ("terminated", "expired") or (upload.status == "receiving" and row["past"]):
        raise UploadGone("this upload was terminated or has expired")
    return upload


async def _take(pool: asyncpg.Pool, upload_id: str, owner: str) -> Upload:
    """Hold the upload for one request (the lease)."""
    async with pool.acquire() as conn:
        upload = await get(conn, upload_id, owner)
        if upload.status == "completed":
            raise UploadComplete("this upload is complete")
        taken = await conn.fetchval(
            """UPDATE jobs.uploads SET busy_until = now() + make_interval(secs => $2)
                WHERE id = $1 AND status = 'receiving' AND (busy_until IS NULL OR busy_until < now())
            RETURNING id""",
            _parse_id(upload_id),
            LEASE_S,
        )
    if taken is None:
        raise UploadLocked("another request is writing to this upload")
    return upload


async def _spool(
    body: AsyncIterator[bytes],
    path: Path,
    room: int,
    digest: Any,
    lost: list[BaseException],
    renew: Callable[[], Awaitable[None]],
) -> int:
    """Write `body` to `path`; more than `room` bytes is an error (nothing kept). A body cut off
    (the connection dropped) keeps what arrived; the error is put in `lost`. `renew` keeps the
    upload's lease while the body arrives."""
    size = 0
    renewed = time.monotonic()
    with open(path, "wb") as out:  # noqa: ASYNC230 (a local spool file, written in chunks)
        try:
            async for chunk in body:
                if time.monotonic() - renewed > LEASE_RENEW_S:
                    await renew()
                    renewed = time.monotonic()
                size += len(chunk)
                if size > room:
                    raise InvalidUpload(f"the request carries more than the {room} bytes this upload has left")
                if digest is not None:
                    digest.update(chunk)
                out.write(chunk)
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
            log.info("upload %s: the request was cut off after %d bytes (%s); they are kept", path.name, size, exc)
            lost.append(exc)
    return size


async def receive(
    pool: asyncpg.Pool,
    storage: Storage,
    upload_id: str,
    owner: str,
    offset: int,
    body: AsyncIterator[bytes],
    *,
    spool_dir: Path,
    checksum: tuple[str, bytes] | None = None,
    max_attempts: int = 3,
    expiry_s: float = EXPIRY_S,
) -> tuple[Upload, Title | None]:
    """Append one request's body at `offset`. Returns the upload after it, and the title it
    became when this was its last byte."""
    upload = await _take(pool, upload_id, owner)
    await asyncio.to_thread(spool_dir.mkdir, parents=True, exist_ok=True)
    spool = spool_dir / f"{upload.id}-{uuid.uuid4().hex}"
    try:
        if offset != upload.received:
            raise UploadOffsetMismatch(f"Upload-Offset is {offset}, the upload has {upload.received} bytes")
        digest = CHECKSUMS[checksum[0]]() if checksum else None

        async def renew() -> None:
            async with pool.acquire() as conn:
                await conn.execute(
                    "UPDATE jobs.uploads SET busy_until = now() + make_interval(secs => $2) WHERE id = $1",
                    _parse_id(upload.id),
                    LEASE_S,
                )

        lost: list[BaseException] = []
        began = time.monotonic()
        try:
            got = await _spool(body, spool, upload.length - upload.received, digest, lost, renew)
        except asyncio.CancelledError:
            # the connection was lost and the server stopped this request: keep what arrived
            # (not a checksummed body: it cannot be checked)
            if not checksum:
                kept = await asyncio.to_thread(lambda: spool.stat().st_size if spool.exists() else 0)
                log.info("upload %s: the request was stopped after %d bytes; they are kept", upload.id, kept)
                await asyncio.shield(_store(pool, storage, upload, spool, kept, expiry_s))
            raise
        if checksum and (lost or digest is None or digest.digest() != checksum[1]):
            # a body cut off cannot be checked: nothing of it is kept either
            raise ChecksumMismatch("the request's bytes do not match its Upload-Checksum")
        spooled = time.monotonic()
        upload = await _store(pool, storage, upload, spool, got, expiry_s)
        stored = time.monotonic()
        title = await _finish(pool, storage, upload, max_attempts) if upload.received == upload.length else None
        log.info(
            "upload %s: %d bytes received in %.2f s, stored in %.2f s%s",
            upload.id,
            got,
            spooled - began,
            stored - spooled,
            f", completed in {time.monotonic() - stored:.2f} s" if title else "",
        )
        if title is not None:
            upload = await _reload(pool, upload.id)
        return upload, title
    finally:
        spool.unlink(missing_ok=True)
        async with pool.acquire() as conn:
            await conn.execute("UPDATE jobs.uploads SET busy_until = NULL WHERE id = $1", _parse_id(upload_id))


async def _store(
    pool: asyncpg.Pool, storage: Storage, upload: Upload, spool: Path, got: int, expiry_s: float
) -> Upload:
    """The spooled bytes after the tail: a part when long enough (or the end), else the tail."""
    if got == 0:
        return upload
    received = upload.received + got
    pending = upload.tail_bytes + got
    tail_key = keys.upload_tail_key(upload.title_id)
    parts = list(upload.parts)
    if upload.tail_bytes:
        # the tail first, then this request's bytes: one local file
        joined = spool.with_name(spool.name + ".joined")
        try:
            with open(joined, "wb") as out:  # noqa: ASYNC230 (local, bounded by a part)
                async for chunk in storage.stream(tail_key):
                    out.write(chunk)
                with open(spool, "rb") as src:  # noqa: ASYNC230
                    shutil.copyfileobj(src, out, SPOOL_CHUNK)
            joined.replace(spool)
        except ObjectNotFound:
            raise UploadError("the upload's stored tail is missing; start the upload again") from None
        finally:
            joined.unlink(missing_ok=True)
    if pending >= MIN_PART_BYTES or received == upload.length:
        number = len(parts) + 1
        tag = await storage.put_part(upload.storage_key, upload.write_id, number, spool, consume=True)
        parts.append([number, tag, pending])
        tail = 0
    else:
        await storage.put_file(tail_key, spool, "application/octet-stream")
        tail = pending
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            f"""UPDATE jobs.uploads
                   SET received = $2, parts = $3::jsonb, tail_bytes = $4, updated_at = now(),
                       expires_at = now() + make_interval(secs => $5),
                       busy_until = now() + make_interval(secs => {LEASE_S})
                 WHERE id = $1 RETURNING {_COLUMNS}""",
            _parse_id(upload.id),
            received,
            json.dumps(parts),
            tail,
            float(expiry_s),
        )
    return _upload(row)


async def _finish(pool: asyncpg.Pool, storage: Storage, upload: Upload, max_attempts: int) -> Title:
    """Every byte is in: join the parts into the source, then the title and its job."""
    await storage.complete_parts(upload.storage_key, upload.write_id, [(int(n), str(t)) for n, t, _b in upload.parts])
    fields = title_fields(upload.metadata)
    async with pool.acquire() as conn, conn.transaction():
        title = await register(
            conn,
            title_id=upload.title_id,
            key=upload.storage_key,
            source=f"upload:{upload.id}",
            max_attempts=max_attempts,
            **fields,
        )
        await conn.execute(
            """UPDATE jobs.uploads SET status = 'completed', completed_at = now(), updated_at = now()
                WHERE id = $1""",
            _parse_id(upload.id),
        )
        await webhooks.emit(
            conn,
            "upload.completed",
            {"upload_id": upload.id, "title_id": upload.title_id, "bytes": upload.length, "title": fields["title"]},
        )
    with contextlib.suppress(Exception):
        await storage.delete_prefix(keys.upload_tail_key(upload.title_id))
    return title


async def finish_if_due(pool: asyncpg.Pool, storage: Storage, upload: Upload, *, max_attempts: int = 3) -> Upload:
    """An upload with every byte in that is not complete: its completion failed after the last
    request was stored (storage or the database went away). Completed now, under the lease;
    called when the client asks for the offset (a tus client that sees offset == length
    sends nothing more). Unchanged when another request holds it."""
    if upload.status != "receiving" or upload.received != upload.length:
        return upload
    try:
        await _take(pool, upload.id, upload.owner)
    except UploadLocked:
        return upload
    try:
        await _finish(pool, storage, upload, max_attempts)
    finally:
        async with pool.acquire() as conn:
            await conn.execute("UPDATE jobs.uploads SET busy_until = NULL WHERE id = $1", _parse_id(upload.id))
    return await _reload(pool, upload.id)


async def _reload(pool: asyncpg.Pool, upload_id: str) -> Upload:
    async with pool.acquire() as conn:
        return _upload(await conn.fetchrow(f"SELECT {_COLUMNS} FROM jobs.uploads WHERE id = $1", _parse_id(upload_id)))


async def terminate(pool: asyncpg.Pool, storage: Storage, upload_id: str, owner: str) -> None:
    """tus termination: the upload and its bytes go. A complete upload is a title now: 409."""
    upload = await _take(pool, upload_id, owner)
    await _drop(storage, upload)
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE jobs.uploads SET status = 'terminated', busy_until = NULL, updated_at = now() WHERE id = $1",
            _parse_id(upload.id),
        )


async def _drop(storage: Storage, upload: Upload) -> None:
    await storage.abort_parts(upload.storage_key, upload.write_id)
    await storage.delete_prefix(keys.upload_tail_key(upload.title_id))


async def sweep_expired(pool: asyncpg.Pool, storage: Storage) -> int:
    """Uploads past their expiry (and not being written): their bytes go, they are `expired`.
    Returns how many."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM jobs.uploads
                 WHERE status = 'receiving' AND expires_at < now() AND (busy_until IS NULL OR busy_until < now())"""
        )
    count = 0
    for row in rows:
        upload = _upload(row)
        await _drop(storage, upload)
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE jobs.uploads SET status = 'expired', updated_at = now() WHERE id = $1 AND status = 'receiving'",
                _parse_id(upload.id),
            )
        count += 1
    return count


async def live_writes(conn: asyncpg.Connection) -> frozenset[str]:
    """The storage write ids of uploads still receiving: the storage sweep leaves them alone."""
    rows = await conn.fetch("SELECT write_id FROM jobs.uploads WHERE status = 'receiving' AND expires_at >= now()")
    return frozenset(r["write_id"] for r in rows)


# ---- direct uploads: a one-time URL for a browser without an account ----------------------

DIRECT_TOKEN_BYTES = 32
DIRECT_EXPIRY_S = 3600.0


@dataclass(frozen=True)
class DirectUpload:
    id: str
    metadata: dict[str, str]
    created_by: str
    expires_at: datetime
    upload_id: str | None
    created_at: datetime

    @property
    def owner(self) -> str:
        """Who owns the upload it starts: the URL's holder."""
        return f"direct:{self.id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "metadata": self.metadata,
            "expires_at": self.expires_at.isoformat(),
            "upload_id": self.upload_id,
            "created_at": self.created_at.isoformat(),
        }


_DIRECT = "id, metadata, created_by, expires_at, upload_id, created_at"


def _direct(row: asyncpg.Record) -> DirectUpload:
    data = dict(row)
    data["id"] = str(data["id"])
    data["upload_id"] = str(data["upload_id"]) if data["upload_id"] else None
    if isinstance(data["metadata"], str):
        data["metadata"] = json.loads(data["metadata"])
    return DirectUpload(**data)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


async def create_direct(
    conn: asyncpg.Connection, *, created_by: str, metadata: dict[str, str], expiry_s: float = DIRECT_EXPIRY_S
) -> tuple[DirectUpload, str]:
    """A direct upload bound to `metadata` (checked now): (it, its token, shown once)."""
    title_fields(metadata)
    token = base64.urlsafe_b64encode(os.urandom(DIRECT_TOKEN_BYTES)).rstrip(b"=").decode("ascii")
    row = await conn.fetchrow(
        f"""INSERT INTO jobs.direct_uploads (token_sha256, metadata, created_by, expires_at)
            VALUES ($1, $2::jsonb, $3, now() + make_interval(secs => $4)) RETURNING {_DIRECT}""",
        _token_hash(token),
        json.dumps(metadata),
        created_by,
        float(expiry_s),
    )
    return _direct(row), token


async def direct_by_token(conn: asyncpg.Connection, token: str) -> DirectUpload:
    """The direct upload a URL's token names. UploadNotFound for an unknown token; UploadGone
    once it expired without being used (a started upload goes on until its own expiry)."""
    row = await conn.fetchrow(
        f"SELECT {_DIRECT}, expires_at < now() AS past FROM jobs.direct_uploads WHERE token_sha256 = $1",
        _token_hash(token),
    )
    if row is None:
        raise UploadNotFound("no such upload URL")
    if row["past"] and row["upload_id"] is None:
        raise UploadGone("this upload URL has expired")
    return _direct({k: v for k, v in row.items() if k != "past"})


async def get_direct(conn: asyncpg.Connection, direct_id: str, created_by: str) -> DirectUpload:
    row = await conn.fetchrow(
        f"SELECT {_DIRECT} FROM jobs.direct_uploads WHERE id = $1 AND created_by = $2", _parse_id(direct_id), created_by
    )
    if row is None:
        raise UploadNotFound("no such direct upload")
    return _direct(row)


async def start_direct(
    pool: asyncpg.Pool, storage: Storage, direct: DirectUpload, *, length: int, filename: str | None, max_bytes: int
) -> Upload:
    """The one upload a direct upload URL may start, with the metadata it was made with (the
    client's file name only names the stored source's extension). UploadComplete when it has
    already started one."""
    metadata = dict(direct.metadata)
    if filename and "filename" not in metadata:
        metadata["filename"] = filename
    async with pool.acquire() as conn, conn.transaction():
        claimed = await conn.fetchval(
            "SELECT id FROM jobs.direct_uploads WHERE id = $1 AND upload_id IS NULL AND expires_at >= now() FOR UPDATE",
            _parse_id(direct.id),
        )
        if claimed is None:
            raise UploadComplete("this upload URL has been used already")
        upload = await create(conn, storage, owner=direct.owner, length=length, metadata=metadata, max_bytes=max_bytes)
        await conn.execute(
            "UPDATE jobs.direct_uploads SET upload_id = $2 WHERE id = $1", _parse_id(direct.id), _parse_id(upload.id)
        )
    return upload
