"""A new audio track for a ready title, as a new version that reuses everything else.

An admin uploads an audio file (a dub, a commentary) for a title that already plays: it is
encoded once to the title's stereo AAC rendition format, cut to exactly the length of the
title's default audio (padded with silence or trimmed at the end), segmented on the same
boundaries, and published as the next `aN` rendition beside the copied objects of the
current version (`transcoder.derive.copy_version`): no video is re-encoded. The switch to
the new version is the same guarded one-statement switch as for subtitles.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
from pathlib import Path

import asyncpg

from catalog import status, titles
from catalog.errors import TitleNotReady
from media import keys
from media.errors import ProbeError
from media.probe import probe as run_probe
from media.storage import Storage
from packager.model import INIT_NAME, SEGMENT_EXT, Presentation, Rendition
from transcoder import chunks, jobs
from transcoder.derive import copy_version
from transcoder.errors import TranscoderError
from transcoder.ladder import AUDIO_SAMPLE_RATE, AudioPlan, Ladder
from transcoder.publish import content_type, new_version, write_model

log = logging.getLogger("streamflix.add_audio")

# An upload this much longer or shorter than the title is another cut, not its soundtrack.
MAX_LENGTH_DIFFERENCE_S = 2.0


class InvalidAudio(TranscoderError):
    """The uploaded file has no usable audio, or does not fit the title's length."""

    code = "invalid_audio"


async def _ready_version(pool: asyncpg.Pool, title_id: str) -> str:
    async with pool.acquire() as conn:
        title = await titles.get_title(conn, title_id)  # raises TitleNotFound
        job = (await jobs.progress_for(conn, [title_id])).get(title_id)
    if title.status != "ready" or not title.current_version:
        raise TitleNotReady(f"title {title_id} is {title.status}: audio tracks are added to a ready title")
    if job is not None and job.active:
        raise TitleNotReady(f"title {title_id} is being encoded again: add the audio track when it is done")
    return title.current_version


def next_audio_id(model: Presentation) -> str:
    """`aN` after the highest source-order number in use (a 5.1 copy `a0-51` counts as 0)."""
    used = [int(r.id[1:].split("-")[0]) for r in model.audio if r.id[1:].split("-")[0].isdigit()]
    return f"a{max(used, default=-1) + 1}"


def timeline_samples(model: Presentation) -> int:
    """Samples (48 kHz, priming excluded) the new track must have to end with the others."""
    main = next((a for a in model.audio if a.default), model.audio[0] if model.audio else None)
    if main is not None and main.timescale == AUDIO_SAMPLE_RATE:
        return sum(s.duration for s in main.segments) - chunks.AAC_PRIMING
    return round(model.duration_s * AUDIO_SAMPLE_RATE)


async def add_audio_track(
    pool: asyncpg.Pool,
    storage: Storage,
    title_id: str,
    source: Path,
    *,
    language: str,
    name: str,
    work_dir: Path,
) -> tuple[Presentation, Rendition]:
    """Publish the audio of `source` as a new rendition of the ready title; returns the new
    model and the rendition. Raises TitleNotFound, TitleNotReady (409), InvalidAudio (400)."""
    old = await _ready_version(pool, title_id)
    current = Presentation.from_json(await storage.get_bytes(keys.model_key(title_id, old)))
    try:
        probe = await run_probe(str(source))
    except ProbeError as exc:
        raise InvalidAudio(f"the file is not readable media ({exc})") from None
    if not probe.audio:
        raise InvalidAudio("the file has no audio stream")
    if abs(probe.duration_s - current.duration_s) > MAX_LENGTH_DIFFERENCE_S:
        raise InvalidAudio(
            f"the file lasts {probe.duration_s:.1f} s and the title {current.duration_s:.1f} s: not its soundtrack"
        )
    rid = next_audio_id(current)
    plan = AudioPlan(id=rid, source_index=probe.audio[0].index, language=language, name=name)
    ladder = Ladder(rungs=(), audios=(plan,), fps=None, gop_frames=0, segment_s=current.segment_target_s)
    samples = timeline_samples(current)
    ends = chunks.SourceEnds(None, samples / AUDIO_SAMPLE_RATE, 0.0)
    version = new_version()
    out_dir = Path(work_dir) / f"add-audio-{title_id}-{version}"

    async def put(rendition_id: str, number: int | None, path: Path) -> None:
        name_ = f"{rendition_id}/{INIT_NAME}" if number is None else f"{rendition_id}/{number}{SEGMENT_EXT}"
        await storage.put_file(keys.object_key(title_id, version, name_), path, content_type(name_))

    try:
        await copy_version(storage, title_id, old, version)
        output = await chunks.encode_audio_task(str(source), probe, ladder, out_dir, end_s=ends, on_segment=put)
        measured = chunks.assemble_presentation(ladder, [output.to_result()], title_id=title_id, version=version)
        added = dataclasses.replace(measured.renditions[0], default=False)
        derived = dataclasses.replace(current, version=version, renditions=(*current.renditions, added))
        await write_model(storage, derived)
        async with pool.acquire() as conn:
            switched = await status.switch_version(conn, title_id, old, version)
        if not switched:
            raise TitleNotReady(f"title {title_id} changed while the audio track was added: try again")
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.shield(storage.delete_prefix(keys.version_prefix(title_id, version)))
        raise
    finally:
        await asyncio.to_thread(shutil.rmtree, out_dir, True)
    log.info("title %s: audio %s (%s) added as version %s", title_id, rid, language, version)
    return derived, added
