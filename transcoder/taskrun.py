"""One task of a title's encode: its ffmpeg, and each segment uploaded the moment it is done.

A task is a rectangle of the title's timeline (`transcoder.tasks`): some renditions times a
range of segment numbers, or one audio rendition of the whole timeline (or of one part of a
long title's). Whichever worker claims it runs
this: the encode (`transcoder.chunks`) writes `{rendition}/init.mp4` and `{rendition}/{n}.m4s`
under a work dir, and every file is put under the title's version prefix as soon as ffmpeg has
finished it, so a viewer waiting for segment n gets it while the rest of the chunk encodes.

Every object put is atomic (the file backend renames a fsynced temp file, S3 PUTs whole
objects), so a worker killed mid-task leaves complete segments or none; the task's next attempt
encodes the same rectangle on the same frame grid and puts the same keys again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from media import keys
from media.errors import ObjectNotFound
from media.probe_model import Probe
from media.storage import Storage
from packager.model import INIT_NAME, SEGMENT_EXT
from transcoder import chunks
from transcoder.ladder import Ladder
from transcoder.publish import content_type

log = logging.getLogger("streamflix.worker")

# Wall-clock budget of one task: generous for a 4K chunk on a busy core.
MIN_TASK_TIMEOUT_S = 300.0
TASK_TIMEOUT_PER_MEDIA_SECOND = 30.0


@dataclass(frozen=True)
class TaskWork:
    """What a task needs besides its own row: the source, its probe and plan."""

    title_id: str
    version: str
    source: str  # a local file, or a presigned URL of the storage object (`Worker._source_for_reading`)
    probe: Probe
    ladder: Ladder
    total: int  # segments in the title's timeline (video, else audio)
    ends: chunks.SourceEnds | None = None  # what the prediction was made from
    # Read from a provisional model (its per-title ladder not chosen yet): right for the
    # lowest rung and the audio only (`per_title.provisional`), never kept for other tasks.
    provisional: bool = False


def task_timeout_s(segment_count: int, segment_s: int) -> float:
    return max(MIN_TASK_TIMEOUT_S, TASK_TIMEOUT_PER_MEDIA_SECOND * segment_count * segment_s)


async def run_task(
    storage: Storage,
    work: TaskWork,
    *,
    kind: str,
    renditions: tuple[str, ...] | list[str],
    first: int,
    count: int,
    out_dir: Path,
    preset: str,
    threads: int,
    timeout_s: float | None,
    on_progress: Callable[[float], Any] | None = None,
    uploaded: set[str] | None = None,
    redo: bool = False,
    nice: int = 0,
    audio_then_nice: int | None = None,
) -> dict[str, Any]:
    """Encode the rectangle and put every file it makes; returns the task's result (what
    `chunks.assemble_presentation` reads). `uploaded` collects the keys put, so a task stopped
    because its title was deleted can remove what it wrote.

    An object already stored is never put again: an init segment (every task of a rendition
    makes the same bytes, the first one stored serves), and with `redo` (a later attempt of
    the task) a segment the dead attempt stored. The origin may have served it, and remembers
    its size and ETag, so it must not change under a viewer; the new encode of it is the
    same frames on the same timestamps and is dropped. `nice`: the encode's CPU priority; an
    audio encode goes on at `audio_then_nice` once its first segment is stored, when given."""
    put_keys = uploaded if uploaded is not None else set()

    async def on_segment(rendition_id: str, number: int | None, path: Path) -> None:
        name = f"{rendition_id}/{INIT_NAME}" if number is None else f"{rendition_id}/{number}{SEGMENT_EXT}"
        key = keys.object_key(work.title_id, work.version, name)
        if number is None or redo:
            try:
                await storage.head(key)
                return
            except ObjectNotFound:
                pass
        put_keys.add(key)
        await storage.put_file(key, path, content_type(name))

    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    timeout = timeout_s if timeout_s is not None else task_timeout_s(count, work.ladder.segment_s)
    if kind == "audio":
        output = await chunks.encode_audio_task(
            work.source,
            work.probe,
            work.ladder,
            out_dir,
            preset=preset,
            threads=threads,
            timeout_s=timeout,
            on_segment=on_segment,
            on_progress=on_progress,
            end_s=work.ends,
            audio_id=renditions[0] if renditions else None,
            first=first,
            count=count,
            total=work.total,
            nice=nice,
            then_nice=audio_then_nice,
        )
    else:
        output = await chunks.encode_video_task(
            work.source,
            work.probe,
            work.ladder,
            out_dir,
            rendition_ids=tuple(renditions),
            first=first,
            count=count,
            total=work.total,
            preset=preset,
            threads=threads,
            timeout_s=timeout,
            on_segment=on_segment,
            on_progress=on_progress,
            nice=nice,
        )
    return output.to_result()


async def put_inits(
    storage: Storage,
    work: TaskWork,
    renditions: tuple[str, ...] | list[str],
    out_dir: Path,
    *,
    preset: str,
    threads: int,
    nice: int = 0,
) -> list[str]:
    """Store the init segments of the video `renditions` that are not stored yet, made ahead
    of their media (`chunks.encode_inits`): a player switching up to a rung, or seeking far
    ahead into it, asks for its init before the segment and waits for nothing else. Returns
    the renditions whose init this put; none when every init is there already."""

    def key(rid: str) -> str:
        return keys.object_key(work.title_id, work.version, f"{rid}/{INIT_NAME}")

    async def stored(rid: str) -> bool:
        try:
            await storage.head(key(rid))
            return True
        except ObjectNotFound:
            return False

    missing = [rid for rid in renditions if not await stored(rid)]
    if not missing:
        return []
    made = await chunks.encode_inits(
        work.source, work.ladder, out_dir, rendition_ids=missing, preset=preset, threads=threads, nice=nice
    )
    put = []
    for rid, path in made.items():
        if not await stored(rid):  # a task of the rendition may have put it meanwhile
            await storage.put_file(key(rid), path, content_type(INIT_NAME))
            put.append(rid)
    return put
