"""One title's transcode: plan -> ffmpeg -> read back -> check. Produces files and a model.

It does not upload: the publishing code puts the files named by the returned Presentation
(`{rendition}/init.mp4`, `{rendition}/{n}.m4s`, all under `out_dir`) into storage under a new
version prefix and writes the model last.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from fractions import Fraction
from pathlib import Path

from media.probe_model import Probe
from packager.model import Presentation, Rendition
from transcoder.adjustments import SOURCE_ADJUSTMENTS, source_adjustments
from transcoder.command import build_ffmpeg_args
from transcoder.errors import TranscodeError
from transcoder.ladder import DEFAULT_SEGMENT_S, Ladder, plan_ladder
from transcoder.readback import read_back
from transcoder.runner import ProgressCallback, run_ffmpeg

# Wall-clock budget when the caller gives none: generous for a 4K ladder on two cores.
MIN_TIMEOUT_S = 600.0
TIMEOUT_PER_SOURCE_SECOND = 20.0
# An output this much shorter than the probed duration means the source was truncated.
MIN_DURATION_RATIO = 0.9
DURATION_SLACK_S = 1.0


def default_timeout_s(duration_s: float) -> float:
    return max(MIN_TIMEOUT_S, TIMEOUT_PER_SOURCE_SECOND * duration_s)


async def transcode(
    source: str,
    probe: Probe,
    out_dir: Path,
    *,
    title_id: str,
    version: str,
    segment_s: int = DEFAULT_SEGMENT_S,
    preset: str = "veryfast",
    timeout_s: float | None = None,
    on_progress: ProgressCallback | None = None,
    threads: int = 0,
    ffmpeg_bin: str = "ffmpeg",
) -> Presentation:
    """Encode `source` (already probed) to its ladder under `out_dir` and return the model.

    - Raises `SourceRejected` (do not retry) for a source with neither video nor audio or
      without duration; `TranscodeTimeout` past `timeout_s` (default: 20x the duration, at
      least 10 min); `TranscodeError` when ffmpeg fails or its output fails the checks below.
    - An audio-only source becomes an audio-only title: a ladder of zero rungs and the one
      "a0" rendition (HLS and DASH both carry audio-only presentations). A video-only source
      has no audio rendition.
    - `out_dir` is created if needed. A previous attempt's output in it (same rendition ids)
      is removed first, so a retried job can reuse its work dir. ffmpeg's own playlists are
      deleted at the end: out_dir then holds exactly the files the model names.
    - Timeline and picture: the output starts at 0 whatever the source's start time, audio
      and video in step (`transcoder.command`); an interlaced source is deinterlaced. What
      was changed is listed in `presentation.extra["source_adjustments"]`
      (`transcoder.adjustments`).
    - Checks: every video rung has the same segment boundaries (exactly, in seconds), audio
      has the video's segment count +-1, every video segment starts with a keyframe (in
      `read_back`), and the output is not much shorter than the probed duration (the real
      length, without any start offset: see `media.probe_parse.timeline`).
    """
    ladder = plan_ladder(probe, segment_s=segment_s)
    out_dir = Path(out_dir)
    await asyncio.to_thread(_prepare_out_dir, out_dir, ladder)
    args = build_ffmpeg_args(source, ladder, out_dir, preset=preset, threads=threads, ffmpeg_bin=ffmpeg_bin)
    await run_ffmpeg(
        args,
        duration_s=probe.duration_s,
        on_progress=on_progress,
        timeout_s=timeout_s if timeout_s is not None else default_timeout_s(probe.duration_s),
    )
    presentation = await read_back(out_dir, ladder, title_id=title_id, version=version)
    check_presentation(presentation, expected_duration_s=probe.duration_s)
    await asyncio.to_thread(_remove_playlists, out_dir)
    adjusted = list(source_adjustments(probe, ladder))
    return dataclasses.replace(presentation, extra={**presentation.extra, SOURCE_ADJUSTMENTS: adjusted})


def check_presentation(p: Presentation, *, expected_duration_s: float | None = None) -> None:
    """Raise `TranscodeError` unless the renditions can be switched between seamlessly."""
    video = p.video
    if video:
        reference = _boundaries(video[0])
        for r in video[1:]:
            if _boundaries(r) != reference:
                raise TranscodeError(
                    f"segment boundaries of {r.id} differ from {video[0].id}: {_fmt(r)} vs {_fmt(video[0])}"
                )
        for a in p.audio:
            if abs(len(a.segments) - len(video[0].segments)) > 1:
                raise TranscodeError(f"{a.id} has {len(a.segments)} segments but video has {len(video[0].segments)}")
    if expected_duration_s:
        longest = max(r.duration_s for r in p.renditions)
        if longest < expected_duration_s * MIN_DURATION_RATIO - DURATION_SLACK_S:
            raise TranscodeError(
                f"output lasts {longest:.1f} s but the source claims {expected_duration_s:.1f} s "
                "(truncated or damaged source?)"
            )


def _boundaries(r: Rendition) -> list[Fraction]:
    t = r.start_time
    edges = [Fraction(t, r.timescale)]
    for s in r.segments:
        t += s.duration
        edges.append(Fraction(t, r.timescale))
    return edges


def _fmt(r: Rendition) -> str:
    return "[" + ", ".join(f"{s:.3f}" for s in r.segment_seconds()) + "]"


def _prepare_out_dir(out_dir: Path, ladder: Ladder) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for rendition_id in ladder.rendition_ids:
        folder = out_dir / rendition_id
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
    _remove_playlists(out_dir)


def _remove_playlists(out_dir: Path) -> None:
    for playlist in out_dir.glob("*.m3u8"):
        playlist.unlink(missing_ok=True)
