"""A new version of a ready title from its current one plus new renditions, without
re-encoding: every object of the current version is copied server-side (`Storage.copy`) to a
new version prefix, the new renditions are written beside them, then the model, and the title
is switched to the new version in one statement that succeeds only if it still plays the
version copied from. The old version is left for garbage collection (players mid-title keep
their segments until then).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging

import asyncpg

from catalog import status, titles
from catalog.errors import TitleNotReady
from media import keys
from media.storage import Storage
from media.subtitles import check_within
from packager.model import Presentation, Rendition
from transcoder import jobs
from transcoder.publish import new_version, write_model
from transcoder.subtitles import Track, publish_tracks

log = logging.getLogger("streamflix.derive")

COPY_CONCURRENCY = 8


async def _ready_version(pool: asyncpg.Pool, title_id: str) -> str:
    async with pool.acquire() as conn:
        title = await titles.get_title(conn, title_id)  # raises TitleNotFound
        job = (await jobs.progress_for(conn, [title_id])).get(title_id)
    if title.status != "ready" or not title.current_version:
        raise TitleNotReady(f"title {title_id} is {title.status}: subtitles are added to a ready title")
    if job is not None and job.active:
        # Its worker collects every version but its own and the current one: a copy in
        # progress would be removed under us, and its publish would drop the new track.
        raise TitleNotReady(f"title {title_id} is being encoded again: add subtitles when it is done")
    return title.current_version


async def copy_version(storage: Storage, title_id: str, old: str, new: str) -> int:
    """Every object of `old` except its model (written last, it marks the version complete)."""
    src, dst = keys.version_prefix(title_id, old), keys.version_prefix(title_id, new)
    objects = [o for o in await storage.list(src) if o.key != keys.model_key(title_id, old)]
    gate = asyncio.Semaphore(COPY_CONCURRENCY)

    async def one(key: str) -> None:
        async with gate:
            await storage.copy(key, dst + key[len(src) :])

    await asyncio.gather(*(one(o.key) for o in objects))
    return len(objects)


async def add_subtitle_track(
    pool: asyncpg.Pool, storage: Storage, title_id: str, track: Track
) -> tuple[Presentation, Rendition]:
    """Publish `track` as a new version of the ready title; returns the new model and its new
    rendition. Raises TitleNotFound, TitleNotReady (409) or SubtitleError (a cue past the end)."""
    old = await _ready_version(pool, title_id)
    current = Presentation.from_json(await storage.get_bytes(keys.model_key(title_id, old)))
    check_within(track.cues, current.duration_s)
    version = new_version()
    derived = dataclasses.replace(current, version=version)
    used = [int(r.id[1:]) for r in current.subtitles if r.id[1:].isdigit()]
    try:
        await copy_version(storage, title_id, old, version)
        added, skipped = await publish_tracks(storage, derived, [track], first_index=max(used, default=-1) + 1)
        if not added:
            raise TitleNotReady(f"title {title_id} has no timeline to align subtitles with: {'; '.join(skipped)}")
        derived = dataclasses.replace(derived, renditions=(*derived.renditions, *added))
        await write_model(storage, derived)
        async with pool.acquire() as conn:
            switched = await status.switch_version(conn, title_id, old, version)
        if not switched:
            raise TitleNotReady(f"title {title_id} changed while the subtitles were added: try again")
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.shield(storage.delete_prefix(keys.version_prefix(title_id, version)))
        raise
    log.info("title %s: subtitles %s (%s) added as version %s", title_id, added[0].id, track.language, version)
    return derived, added[0]
