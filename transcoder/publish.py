"""Publishing a finished encode: a fresh version prefix, the model last, one transaction.

Order, and why each step is crash safe:

1. Every init segment, media segment and the poster go under a version prefix nobody has
   seen yet (`titles/{id}/{version}/`, `version` time-sortable and random). Nothing points
   at it, so a crash here leaves the previous version served and an orphan prefix behind.
2. `model.json` is written last: a version prefix without it is, by construction, incomplete.
3. One transaction checks that the job is still ours (locking its row, the fence against a
   worker whose lease ran out), points the title at the version, marks it `ready` and the job
   `done`. Until this commits, viewers get the old version (or nothing, for a new title).
4. After the commit, the previous version's prefix is deleted.

Orphans from dead attempts (crash before step 3, or between 3 and 4) are removed by
`gc_versions` at the start of the next attempt for the title: every version prefix other
than the current one goes, including one that holds nothing but the temp files (or
unfinished multipart uploads) of a worker killed mid-upload. Temp files older than
INCOMPLETE_MAX_AGE_S elsewhere under the title (and its source) go too. A title whose job
never runs again is the worker's periodic sweep's (transcoder/gc.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from catalog import status, titles
from catalog.errors import TitleNotFound
from media import keys
from media.storage import Storage
from packager.model import Presentation
from transcoder import jobs
from transcoder.errors import TranscodeError

log = logging.getLogger("streamflix.publish")

UPLOAD_CONCURRENCY = 8
# A write not touched for this long belongs to a dead writer: a live one writes as it goes
# (a file's mtime moves with every chunk; a multipart upload of a source takes minutes).
INCOMPLETE_MAX_AGE_S = 3600
# Media types of what a version holds. RFC 8216 4.3.2.5 / CMAF: fMP4 init = video/mp4,
# media segments = video/iso.segment (the ISO BMFF segment type registered with IANA).
CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".m4s": "video/iso.segment",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt; charset=utf-8",
    ".json": "application/json",
}


class LeaseLost(Exception):
    """The job is no longer ours (lease expired and taken over, or the title was deleted)."""

    code = "lease_lost"


def new_version(now: datetime | None = None) -> str:
    """`v20240131120000-a1b2c3`: sorts by time, unique across concurrent attempts."""
    now = now or datetime.now(UTC)
    return f"v{now:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


def version_files(out_dir: Path, presentation: Presentation) -> list[tuple[str, Path]]:
    """(name relative to the version, local file) for everything the model references, plus
    the poster when there is one. Raises TranscodeError when a referenced file is missing."""
    files: list[tuple[str, Path]] = []
    for r in presentation.renditions:
        files.extend((name, out_dir / name) for name in r.object_names())
    poster = out_dir / keys.POSTER_NAME
    if poster.is_file():
        files.append((keys.POSTER_NAME, poster))
    missing = [name for name, path in files if not path.is_file()]
    if missing:
        raise TranscodeError(f"encoder output is incomplete: {len(missing)} files missing (first: {missing[0]})")
    return files


async def upload_version(
    storage: Storage,
    presentation: Presentation,
    out_dir: Path,
    *,
    concurrency: int = UPLOAD_CONCURRENCY,
) -> None:
    """Steps 1 and 2: the objects, at most `concurrency` uploads at once, then the model."""
    title_id, version = presentation.title_id, presentation.version
    files = version_files(out_dir, presentation)
    gate = asyncio.Semaphore(concurrency)

    async def put(name: str, path: Path) -> None:
        async with gate:
            await storage.put_file(keys.object_key(title_id, version, name), path, content_type(name))

    async with asyncio.TaskGroup() as tg:
        for name, path in files:
            tg.create_task(put(name, path))
    # Last: its presence marks the version complete.
    await storage.put_bytes(keys.model_key(title_id, version), presentation.to_json().encode(), CONTENT_TYPES[".json"])


async def write_model(storage: Storage, presentation: Presentation) -> None:
    """Put the version's model.json (one atomic object put). A chunked encode writes it twice:
    the predicted, progressive model once the timeline is planned, and the measured one when
    the last task is done; the segments under the prefix are the same for both."""
    await storage.put_bytes(
        keys.model_key(presentation.title_id, presentation.version),
        presentation.to_json().encode(),
        CONTENT_TYPES[".json"],
    )


async def commit_version(pool: asyncpg.Pool, job: jobs.Job, presentation: Presentation) -> str | None:
    """Step 3: point the title at the version, mark it ready and the job done, atomically.
    Returns the version it replaced. Raises LeaseLost, or TitleNotFound when it was deleted."""
    async with pool.acquire() as conn, conn.transaction():
        if not await jobs.still_ours(conn, job, lock=True):
            with contextlib.suppress(TitleNotFound):
                title = await titles.get_title(conn, presentation.title_id)
                # `ready` too: a progressive first publication points the title at the
                # version (status playable) long before this commit.
                if title.current_version == presentation.version and title.status == "ready":
                    # An earlier try of this commit went through and only its answer was lost
                    # (the connection dropped): done; the old version is left to `gc_versions`.
                    return None
            raise LeaseLost(f"job {job.id} attempt {job.attempts} is no longer ours")
        await titles.get_title(conn, presentation.title_id)  # raises TitleNotFound
        old = await status.publish_ready(
            conn, presentation.title_id, presentation.version, duration_s=presentation.duration_s
        )
        await jobs.complete(conn, job)
    return old


async def publish(
    pool: asyncpg.Pool,
    storage: Storage,
    job: jobs.Job,
    presentation: Presentation,
    out_dir: Path,
    *,
    concurrency: int = UPLOAD_CONCURRENCY,
    before_commit: Callable[[], Awaitable[None]] | None = None,
    retry: Callable[[Callable[[], Awaitable[str | None]]], Awaitable[str | None]] | None = None,
) -> str | None:
    """Upload, write the model, commit, delete the previous version. Returns the previous
    version. On any failure before the commit, the new prefix is removed (best effort; the
    next attempt's `gc_versions` catches what this misses) and the error re-raised.
    `before_commit` runs between upload and commit (the worker stops its heartbeat there:
    the commit is fenced anyway, and a finished job must not look like a lost lease).
    `retry` wraps the commit (the worker's wait through a database outage: an encode that is
    uploaded is worth waiting for; the commit is fenced, so a late one is safe)."""
    title_id, version = presentation.title_id, presentation.version
    try:
        await upload_version(storage, presentation, out_dir, concurrency=concurrency)
        if before_commit is not None:
            await before_commit()

        async def commit() -> str | None:
            return await commit_version(pool, job, presentation)

        old = await (retry(commit) if retry is not None else commit())
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.shield(storage.delete_prefix(keys.version_prefix(title_id, version)))
        raise
    if old and old != version:
        try:
            await storage.delete_prefix(keys.version_prefix(title_id, old))
        except Exception as exc:  # the next attempt's gc_versions retries it
            log.warning("title %s: could not delete old version %s: %s", title_id, old, exc)
    return old


def version_of(title_id: str, key: str) -> str | None:
    prefix = keys.title_prefix(title_id)
    if not key.startswith(prefix):
        return None
    version, sep, _rest = key[len(prefix) :].partition("/")
    return version if sep and version else None


async def stored_versions(storage: Storage, title_id: str) -> set[str]:
    """Every version prefix of the title in storage, one holding only incomplete writes (a
    worker killed mid-upload) included."""
    prefix = keys.title_prefix(title_id)
    objects = await storage.list(prefix) + await storage.list_incomplete(prefix)
    return {v for v in (version_of(title_id, o.key) for o in objects) if v}


async def gc_versions(
    storage: Storage,
    title_id: str,
    current: str | None,
    *,
    keep: str | None = None,
    max_age_s: float = INCOMPLETE_MAX_AGE_S,
) -> list[str]:
    """Delete every version prefix of the title except `current` and `keep` (the version the
    live job is encoding, whose tasks may be writing it) — orphans of dead attempts, or an old
    version a crash left behind — then the title's and its source's incomplete writes older
    than `max_age_s`. Only call it while holding the title's job, or while the title has no
    live job (a title has at most one): then no live worker is writing any other version."""
    removed = []
    for version in sorted(await stored_versions(storage, title_id)):
        if version not in (current, keep):
            await storage.delete_prefix(keys.version_prefix(title_id, version))
            removed.append(version)
    if removed:
        log.info("title %s: removed %d stale version(s): %s", title_id, len(removed), ", ".join(removed))
    swept = await storage.sweep_incomplete(keys.title_prefix(title_id), max_age_s)
    swept += await storage.sweep_incomplete(keys.source_prefix(title_id), max_age_s)
    if swept:
        log.info("title %s: removed %d abandoned incomplete write(s)", title_id, swept)
    return removed
