"""Seek thumbnails: JPEG sprite sheets of small frames, one every few seconds, made from the
SAME encode as the stream once every segment is in (like the download: never before the
title is playable, so the first segment is never slowed).

One ffmpeg reads one video rung (init + media segments, concatenated) and writes the sheets:
`fps=1/N` keeps one frame per N seconds (for thumbnail k, standing for [kN, (k+1)N), the last
frame before kN + N/2: from the middle of its span), `scale` makes each
TILE_WIDTH pixels wide with the rung's aspect ratio, `tile` lays them out COLUMNS x ROWS,
left to right then top to bottom (the last sheet is padded). The sheets are published as
the rendition `th` of kind "image", one segment per sheet (`th/1.jpg`, `th/2.jpg`, ...),
timescale 1000; the origin renders its WebVTT index (`packager.thumbnails`) and the MPD its
DASH-IF image AdaptationSet. Thumbnails that cannot be made are logged and left out: they
never fail the title.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import shutil
from pathlib import Path

from media import keys
from media.probe import input_name
from media.storage import Storage
from packager.model import Presentation, Rendition, Segment
from transcoder.download import concat_rendition
from transcoder.runner import run_quiet

log = logging.getLogger("streamflix.thumbnails")

THUMBNAILS_ID = "th"
TILE_WIDTH = 160
COLUMNS, ROWS = 5, 5
TIMESCALE = 1000
# One every 2 s under 10 minutes, every 5 s past that (a two-hour film: 1440 thumbnails,
# 58 sheets of about 30 KB).
SHORT_INTERVAL_S, LONG_INTERVAL_S, LONG_TITLE_S = 2, 5, 600
JPEG_QUALITY = 5  # ffmpeg -q:v, 2 (best) .. 31
TIMEOUT_S = 900.0
CONTENT_TYPE = "image/jpeg"


def interval_s(duration_s: float, override: float | None = None) -> float:
    """Seconds between thumbnails: `override` when set (> 0), else by the title's length."""
    if override:
        return override
    return SHORT_INTERVAL_S if duration_s < LONG_TITLE_S else LONG_INTERVAL_S


def pick_video(p: Presentation) -> Rendition | None:
    """The smallest rung at least TILE_WIDTH wide (the cheapest to decode that loses
    nothing), else the widest; H.264 over an AV1 copy of the same size (faster to decode)."""
    h264 = [r for r in p.video if r.codecs.startswith(("avc1", "avc3"))]
    video = sorted(h264 or p.video, key=lambda r: (r.width or 0, r.bandwidth_avg))
    if not video:
        return None
    return next((r for r in video if (r.width or 0) >= TILE_WIDTH), video[-1])


def tile_size(width: int, height: int) -> tuple[int, int]:
    """TILE_WIDTH wide, the height keeping the aspect ratio, even (4:2:0 JPEG)."""
    return TILE_WIDTH, max(2, round(TILE_WIDTH * height / width / 2) * 2)


def sprite_argv(
    source: Path, out_dir: Path, every_s: float, tile: tuple[int, int], *, ffmpeg: str = "ffmpeg"
) -> list[str]:
    """ffmpeg writing out_dir/1.jpg, 2.jpg, ...: COLUMNS x ROWS tiles of `tile` pixels."""
    w, h = tile
    vf = f"fps=1/{every_s:g},scale={w}:{h},setsar=1,format=yuvj420p,tile={COLUMNS}x{ROWS}"
    return [
        ffmpeg, "-nostdin", "-v", "error", "-y",
        "-i", input_name(str(source)),
        "-map", "0:v:0", "-an", "-sn", "-vf", vf, "-q:v", str(JPEG_QUALITY),
        "-start_number", "1", "-f", "image2", "file:" + str(out_dir / "%d.jpg"),
    ]  # fmt: skip


def sheet_durations(duration_ms: int, every_ms: int) -> list[int]:
    """Each sheet's duration (ms): full ones of COLUMNS*ROWS thumbnails, then the rest."""
    full = every_ms * COLUMNS * ROWS
    durations = [full] * (duration_ms // full)
    if duration_ms % full:
        durations.append(duration_ms % full)
    return durations


async def make_thumbnails(
    storage: Storage, p: Presentation, work_dir: Path, *, every_s: float | None = None
) -> Rendition:
    """Make, upload and describe the sprite sheets of version `p` (its segments are stored)."""
    video = pick_video(p)
    if video is None or not video.width or not video.height:
        raise ValueError("no video rendition to take thumbnails from")
    step_ms = max(1, round(interval_s(p.duration_s, every_s) * TIMESCALE))
    duration_ms = max(1, round(p.duration_s * TIMESCALE))
    durations = sheet_durations(duration_ms, step_ms)
    tile = tile_size(video.width, video.height)
    await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
    source = await concat_rendition(storage, p, video, work_dir / f"{video.id}.mp4")
    sheets_dir = work_dir / THUMBNAILS_ID
    await asyncio.to_thread(sheets_dir.mkdir, exist_ok=True)
    await run_quiet(sprite_argv(source, sheets_dir, step_ms / TIMESCALE, tile), timeout_s=TIMEOUT_S, what="thumbnails")
    # ffmpeg's frame count can differ by one from the duration's at the very end (its last
    # frame's rounding): the model's sheets follow the timeline, and one more is dropped.
    paths = [sheets_dir / f"{n}.jpg" for n in range(1, len(durations) + 1)]
    sizes = []
    for path in paths:
        if not path.is_file():
            raise RuntimeError(f"ffmpeg made fewer sheets than the {len(durations)} the duration needs")
        sizes.append((await asyncio.to_thread(path.stat)).st_size)
    for number, path in enumerate(paths, start=1):
        key = keys.object_key(p.title_id, p.version, f"{THUMBNAILS_ID}/{number}.jpg")
        await storage.put_file(key, path, CONTENT_TYPE)
    rates = [size * 8 * TIMESCALE / d for size, d in zip(sizes, durations, strict=True)]
    return Rendition(
        id=THUMBNAILS_ID,
        kind="image",
        codecs="jpeg",
        bandwidth_peak=math.ceil(max(rates)),
        bandwidth_avg=math.ceil(sum(sizes) * 8 * TIMESCALE / sum(durations)),
        timescale=TIMESCALE,
        segments=tuple(Segment(duration=d, size=s) for d, s in zip(durations, sizes, strict=True)),
        width=tile[0] * COLUMNS,
        height=tile[1] * ROWS,
        tiles=f"{COLUMNS}x{ROWS}",
        tile_duration=step_ms,
    )


async def with_thumbnails(
    storage: Storage, p: Presentation, work_dir: Path, *, every_s: float | None = None
) -> Presentation:
    """`p` plus its thumbnails rendition; `p` unchanged (and a log line) when they cannot be
    made (an audio-only title has none, silently)."""
    if not p.video:
        return p
    try:
        th = await make_thumbnails(storage, p, work_dir, every_s=every_s)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("title %s version %s: no thumbnails: %s", p.title_id, p.version, exc)
        # Sheets uploaded before the failure are named by no model: they go now.
        with contextlib.suppress(Exception):
            await storage.delete_prefix(keys.object_key(p.title_id, p.version, f"{THUMBNAILS_ID}/"))
        return p
    finally:
        await asyncio.to_thread(shutil.rmtree, work_dir, True)
    others = tuple(r for r in p.renditions if r.id != THUMBNAILS_ID)
    return dataclasses.replace(p, renditions=(*others, th))
