"""A seekable copy of a source whose container cannot be seeked reliably.

Chunk tasks start ffmpeg at their first frame with `-ss` before `-i`, which needs a container
with an index: MP4/MOV and Matroska/WebM have one. MPEG-TS, MPEG-PS, FLV and raw streams do
not; ffmpeg bisects them by timestamp and, near the end of a short file or between sparse
keyframes, lands after the keyframe it needed and decodes nothing. So before the tasks are made,
such a source is copied once, streams as they are (`-c copy`, no decoding) and timestamps as
they are (`-copyts`: the start offsets and the gap between audio and video stay exact), into
NUT, ffmpeg's own container, which keeps every timestamp exactly and writes an index. The copy
is stored beside the original (`media.keys.seekable_source_key`), so a worker on any machine
uses it, and goes with the title.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from media.probe import input_name, input_options
from media.probe_model import Probe
from transcoder.ladder import Ladder
from transcoder.runner import run_ffmpeg

# ffprobe format names (the first of a comma-separated list is enough) that seek by index.
SEEKABLE_FORMATS = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "nut"})
COPY_TIMEOUT_PER_GB_S = 600.0
MIN_COPY_TIMEOUT_S = 120.0


def needs_copy(probe: Probe) -> bool:
    """True when chunk seeks into this source would not be reliable."""
    names = {n.strip() for n in probe.format_name.split(",")}
    return not names & SEEKABLE_FORMATS


def _used(ladder: Ladder) -> list[int]:
    """The source streams the ladder reads, in the order the copy holds them."""
    used = [] if ladder.video_source_index is None or not ladder.rungs else [ladder.video_source_index]
    for a in ladder.audios:
        if a.source_index not in used:
            used.append(a.source_index)  # a 5.1 rendition reads the same stream as its stereo one
    return used


def copy_argv(source: str, ladder: Ladder, out: Path, *, ffmpeg_bin: str = "ffmpeg") -> list[str]:
    maps = [arg for index in _used(ladder) for arg in ("-map", f"0:{index}")]
    return [
        ffmpeg_bin, "-hide_banner", "-nostdin", "-y", "-loglevel", "warning", "-nostats",
        "-progress", "pipe:1",
        "-copyts", *input_options(source), "-i", input_name(source), *maps, "-c", "copy", "-map_metadata", "-1",
        "-f", "nut", "file:" + str(out),
    ]  # fmt: skip


def ladder_for_copy(ladder: Ladder) -> Ladder:
    """The same plan reading the copy, whose streams are the used ones only: video first."""
    used = _used(ladder)
    video = used.index(ladder.video_source_index) if ladder.video_source_index in used else None
    audios = tuple(dataclasses.replace(a, source_index=used.index(a.source_index)) for a in ladder.audios)
    return dataclasses.replace(ladder, video_source_index=video, audios=audios)


async def make_seekable_copy(
    source: str, probe: Probe, ladder: Ladder, out: Path, *, ffmpeg_bin: str = "ffmpeg"
) -> Path:
    """Copy the streams `ladder` uses from `source` into a NUT file at `out` (packets and
    timestamps untouched); read it with `ladder_for_copy(ladder)`."""
    timeout = max(MIN_COPY_TIMEOUT_S, COPY_TIMEOUT_PER_GB_S * probe.size_bytes / 1e9)
    argv = copy_argv(source, ladder, out, ffmpeg_bin=ffmpeg_bin)
    await run_ffmpeg(argv, duration_s=probe.duration_s, timeout_s=timeout)
    return out
