"""The progressive download: one MP4 a viewer can keep, made from the SAME encode as the stream.

After the measured model is assembled, the worker concatenates one video rung's init and
media segments (the highest at most 720p, else the lowest: small enough to keep, sharp
enough to watch) and the default audio's, and remuxes them with `ffmpeg -c copy` (no
re-encode, so it costs seconds) into one non-fragmented MP4 with the `moov` box first
(`-movflags +faststart`: a browser or player can start it before it is all down). Every
subtitles rendition of the model joins as a soft `mov_text` track.

It is published as a rendition of kind "download", id `dl`, with one segment (the title's
duration, the file's size) stored at `dl/download.mp4` (packager.model.DOWNLOAD_NAME). Its
`name` is the file name offered to the viewer (a slug of the title). A download that cannot
be made is logged and left out: it never fails the title.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import shutil
import unicodedata
from pathlib import Path
from typing import BinaryIO

from media import keys, languages
from media.probe import input_name
from media.storage import Storage
from packager.model import DOWNLOAD_NAME, Presentation, Rendition, Segment
from transcoder.runner import run_quiet

log = logging.getLogger("streamflix.download")

DOWNLOAD_ID = "dl"
MAX_HEIGHT = 720
DOWNLOAD_TIMESCALE = 1000
REMUX_TIMEOUT_S = 600.0
CONTENT_TYPE = "video/mp4"
# WebVTT blocks that are not cues (RFC-less, W3C WebVTT 4.1): dropped when segments are joined.
_NOT_CUES = ("WEBVTT", "NOTE", "STYLE", "REGION")
_TIMING = re.compile(r"^\S*\s*-->\s*\S+")


def download_key(title_id: str, version: str) -> str:
    return keys.object_key(title_id, version, f"{DOWNLOAD_ID}/{DOWNLOAD_NAME}")


def file_name(title: str) -> str:
    """The offered file name: the title's words joined by '-', lowercase, plus '.mp4'
    (Unicode kept: the origin adds an ASCII fallback for old clients)."""
    words = re.findall(r"\w+", unicodedata.normalize("NFC", title).lower())
    slug = "-".join(words)[:100].strip("-")
    return (slug or "video") + ".mp4"


def pick_video(p: Presentation) -> Rendition | None:
    """The highest rung at most MAX_HEIGHT high, else the lowest; H.264 (every device plays
    it) over an AV1 copy."""
    h264 = [r for r in p.video if r.codecs.startswith(("avc1", "avc3"))]
    video = sorted(h264 or p.video, key=lambda r: (r.height or 0, r.bandwidth_avg))
    if not video:
        return None
    fitting = [r for r in video if (r.height or 0) <= MAX_HEIGHT]
    return fitting[-1] if fitting else video[0]


def pick_audio(p: Presentation) -> Rendition | None:
    return next((a for a in p.audio if a.default), p.audio[0] if p.audio else None)


def merge_webvtt(parts: list[str]) -> str:
    """Segmented WebVTT as one file: one header, every cue once (a cue that spans a segment
    boundary is repeated in each segment it overlaps)."""
    seen: set[str] = set()
    cues: list[str] = []
    for text in parts:
        for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")):
            block = block.strip("\n")
            if not block or block.split(None, 1)[0] in _NOT_CUES:
                continue
            lines = block.split("\n")
            # the timing line, without a cue id (ids may differ between segments)
            timing = next((i for i, line in enumerate(lines) if _TIMING.match(line)), None)
            if timing is None:
                continue
            cue = "\n".join(lines[timing:])
            if cue not in seen:
                seen.add(cue)
                cues.append(cue)
    return "WEBVTT\n\n" + "".join(c + "\n\n" for c in cues)


def _keys(p: Presentation, r: Rendition, *, init: bool) -> list[str]:
    names = [r.init_name] if init else []
    names += [r.segment_name(n) for n in range(r.start_number, r.start_number + len(r.segments))]
    return [keys.object_key(p.title_id, p.version, name) for name in names]


def _copy_local(paths: list[Path], dest: Path) -> None:
    with open(dest, "wb") as out:
        for path in paths:
            with open(path, "rb") as f:
                shutil.copyfileobj(f, out)


async def concat_rendition(storage: Storage, p: Presentation, r: Rendition, dest: Path) -> Path:
    """init + media segments, in order: one fragmented MP4 that ffmpeg reads as a whole.
    From the files themselves on file storage, else streamed down."""
    objects = _keys(p, r, init=True)
    local = [storage.local_path(k) for k in objects]
    if all(path is not None for path in local):
        await asyncio.to_thread(_copy_local, [path for path in local if path is not None], dest)
        return dest
    out: BinaryIO = await asyncio.to_thread(open, dest, "wb")
    try:
        for key in objects:
            async for chunk in storage.stream(key):
                await asyncio.to_thread(out.write, chunk)
    finally:
        await asyncio.to_thread(out.close)
    return dest


async def _subtitle_file(storage: Storage, p: Presentation, r: Rendition, dest: Path) -> Path:
    parts = [(await storage.get_bytes(k)).decode("utf-8", errors="replace") for k in _keys(p, r, init=False)]
    await asyncio.to_thread(dest.write_text, merge_webvtt(parts), encoding="utf-8")
    return dest


def remux_argv(inputs: list[Path], subtitles: list[Rendition], out: Path, *, ffmpeg: str = "ffmpeg") -> list[str]:
    """`inputs` are the video and/or audio files, then one WebVTT file per subtitles rendition."""
    argv = [ffmpeg, "-nostdin", "-v", "error", "-y"]
    for path in inputs:
        argv += ["-i", input_name(str(path))]
    for i in range(len(inputs)):
        argv += ["-map", f"{i}"]
    argv += ["-c", "copy"]
    if subtitles:
        argv += ["-c:s", "mov_text"]
    for i, s in enumerate(subtitles):
        argv += [f"-metadata:s:s:{i}", f"language={_mp4_language(s.language)}"]
        if s.name:
            argv += [f"-metadata:s:s:{i}", f"title={s.name}"]
    return [*argv, "-movflags", "+faststart", "-f", "mp4", "file:" + str(out)]


async def make_download(storage: Storage, p: Presentation, work_dir: Path, *, title: str) -> Rendition:
    """Make, upload and describe the download of version `p` (its segments are all stored)."""
    video, audio = pick_video(p), pick_audio(p)
    tracks = [r for r in (video, audio) if r is not None]
    if not tracks:
        raise ValueError("no video or audio rendition to download")
    await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
    inputs = [await concat_rendition(storage, p, r, work_dir / f"{r.id}.mp4") for r in tracks]
    subtitles = list(p.subtitles)
    for s in subtitles:
        inputs.append(await _subtitle_file(storage, p, s, work_dir / f"{s.id}.vtt"))
    out = work_dir / DOWNLOAD_NAME
    await run_quiet(remux_argv(inputs, subtitles, out), timeout_s=REMUX_TIMEOUT_S, what="remux")
    size = (await asyncio.to_thread(out.stat)).st_size
    await storage.put_file(download_key(p.title_id, p.version), out, CONTENT_TYPE)
    duration = max(1, round(p.duration_s * DOWNLOAD_TIMESCALE))
    rate = round(size * 8 / max(p.duration_s, 0.001))
    return Rendition(
        id=DOWNLOAD_ID,
        kind="download",
        codecs=",".join(r.codecs for r in tracks),
        bandwidth_peak=rate,
        bandwidth_avg=rate,
        timescale=DOWNLOAD_TIMESCALE,
        segments=(Segment(duration=duration, size=size),),
        width=video.width if video else None,
        height=video.height if video else None,
        frame_rate=video.frame_rate if video else None,
        name=file_name(title),
    )


async def with_download(storage: Storage, p: Presentation, work_dir: Path, *, title: str) -> Presentation:
    """`p` plus its download rendition; `p` unchanged (and a log line) when it cannot be made."""
    try:
        dl = await make_download(storage, p, work_dir, title=title)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("title %s version %s: no download: %s", p.title_id, p.version, exc)
        return p
    finally:
        await asyncio.to_thread(shutil.rmtree, work_dir, True)
    others = tuple(r for r in p.renditions if r.id != DOWNLOAD_ID)
    return dataclasses.replace(p, renditions=(*others, dl))


def _mp4_language(lang: str | None) -> str:
    """MP4 language boxes hold ISO 639-2 codes; unknown or absent is undetermined."""
    return (languages.to_iso639_2(lang) if lang else None) or "und"
