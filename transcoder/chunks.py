"""A title encoded as independent tasks: video chunks (renditions x a range of segments) and
one audio task, whose outputs add up to what the one-pass encode (`transcoder.pipeline`)
gives, segment for segment and tick for tick.

Pure planning plus ffmpeg runs; no database and no storage (the worker uploads what
`on_segment` reports and stores `TaskOutput.to_result()` on the task row).

- `segment_frames`: the segment grid, in frames of the output rate (a 29.97 fps ladder cuts
  every 120 frames = 4.004 s, as the one-pass HLS muxer does: it cuts on the first keyframe
  at or after each multiple of `segment_s`).
- `measure_source_ends` / `measure_end_s`: where the source's content really ends, from the
  packets near its end (no decode).
- `predict_presentation`: the model the chunked encode will produce, before it runs
  (`progressive=True`, sizes 0, bandwidths from the encoder's caps).
- `encode_video_task` / `encode_audio_task`: one ffmpeg each, segments reported as they are
  finished; `assemble_presentation`: the measured model from every task's result.

See docs/transcode.md, "Chunked encode".
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import os
import shutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, NamedTuple

from media.probe import input_name, input_options
from media.probe_model import Probe
from packager.model import INIT_NAME, SEGMENT_EXT, Presentation, Rendition, Segment
from transcoder import mp4
from transcoder.adjustments import SOURCE_ADJUSTMENTS, source_adjustments
from transcoder.command import build_audio_args, build_chunk_args
from transcoder.errors import TranscodeError
from transcoder.ladder import AV1, KEYFRAME_INTERVAL_S, Ladder, av1_codecs
from transcoder.pipeline import default_timeout_s
from transcoder.readback import audio_name
from transcoder.runner import ProgressCallback, renice, run_ffmpeg, run_quiet

SegmentCallback = Callable[[str, "int | None", Path], "Awaitable[None] | None"]

# The AAC encoder: 1024 samples a frame, and one frame of priming ahead of the first sample
# (the fMP4 track starts with it, so the track is one frame longer than the audio).
AAC_FRAME = 1024
AAC_PRIMING = 1024
# Decoders of these codecs return every frame whole (samples per frame): a last packet whose
# duration says 530 samples still decodes to a full frame, and those samples reach the encoder.
WHOLE_FRAME_CODECS = {"aac": 1024, "mp3": 1152, "mp2": 1152, "ac3": 1536, "eac3": 1536}
# How much of the end the tail check reads.
TAIL_S = 10.0
# The tail read is not trusted when it ends this much before the probed end.
TAIL_TOLERANCE_S = 1.0
# Container overhead per segment (styp, sidx, moof, trun entries, mdat header), measured at
# 188 + 8 bytes/frame (video) and 184 + 8 bytes/packet (audio), rounded up generously.
SEGMENT_OVERHEAD_BYTES = 512
OVERHEAD_BYTES_PER_SAMPLE = 16
# The native AAC encoder is ABR: a segment may run over the target; and one frame at most
# 6144 bits per channel (ISO/IEC 14496-3) may sit in a segment on top.
AUDIO_PEAK_FACTOR = 1.25
AAC_MAX_FRAME_BITS_PER_CHANNEL = 6144
POLL_S = 0.05
# An audio part (not the first) starts encoding at least this long before its first segment
# and drops what it made there: the encoder's bit reservoir and overlap windows settle.
AUDIO_PREROLL_MIN_S = 4.0
# ... and goes on this many segment grids past its last one (dropped too), so its last frame is
# encoded with the samples that follow it, as in the one-pass encode, not against silence.
AUDIO_POSTROLL_GRIDS = 1
# Audio parts only when the frame grid lines up with the segments at least this often.
AUDIO_PART_GRID_MAX_S = 60


# ---- the grid ----------------------------------------------------------------------------


def segment_frames(ladder: Ladder) -> int:
    """Video frames per segment: `segment_s / 2` GOPs of `gop_frames` frames."""
    if not ladder.gop_frames:
        raise ValueError("ladder has no video")
    return ladder.gop_frames * ladder.segment_s // KEYFRAME_INTERVAL_S


def video_timescale(fps: Fraction) -> int:
    """The fMP4 video track timescale ffmpeg's mov muxer picks: the encoder's time base
    (1/fps) denominator, doubled until it is at least 10000 (30 -> 15360, 25 -> 12800,
    30000/1001 -> 30000)."""
    ts = fps.numerator
    while ts < 10000:
        ts *= 2
    return ts


def frame_start_ticks(frame: int, fps: Fraction, timescale: int) -> int:
    """Ticks of `timescale` at which output frame `frame` (0-based) starts."""
    return round(Fraction(frame) * timescale / fps)


# ---- the real end of the source ----------------------------------------------------------


@dataclass(frozen=True)
class SourceEnds:
    """Where each used stream's decoded content ends, in seconds on the encode's timeline
    (0 = the earliest stream start, as ffmpeg sees it). None: no such stream used."""

    video_s: float | None
    audio_s: float | None
    audio_start_s: float = 0.0  # where the audio begins (an audio-only encode starts there)
    method: str = "tail"  # "tail" (packets near the end) or "demux" (every packet)

    @property
    def end_s(self) -> float:
        return max(x for x in (self.video_s, self.audio_s, 0.0) if x is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "video_s": self.video_s,
            "audio_s": self.audio_s,
            "audio_start_s": self.audio_start_s,
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceEnds:
        return cls(**data)


async def measure_end_s(source: str, probe: Probe, *, ffprobe_bin: str = "ffprobe") -> float:
    """The real end of the source's content on the encode's timeline (see `SourceEnds`)."""
    return (await measure_source_ends(source, probe, ffprobe_bin=ffprobe_bin)).end_s


async def measure_source_ends(source: str, probe: Probe, *, ffprobe_bin: str = "ffprobe") -> SourceEnds:
    """Per stream, the end of the content: read only the packets of the last `TAIL_S` of the
    probed timeline (`ffprobe -read_intervals`, a seek, no decode); when that finds no packet
    of a used stream or ends well before the probed end (a truncated file, a wrong index),
    read every packet instead (a full demux, still no decode).

    Raises `TranscodeError` when ffprobe fails or the source has no packets at all.
    """
    wanted = _used_streams(probe)
    if not wanted:
        raise TranscodeError("source has no stream to encode")
    probed_end = probe.start_time_s + probe.duration_s
    tail_from = max(0.0, probed_end - TAIL_S)
    try:
        ends = await _read_ends(source, probe, wanted, ffprobe_bin, read_from=tail_from)
    except TranscodeError:
        ends = None
    if ends is not None and not _plausible(ends, probe):
        ends = None
    if ends is None:
        ends = await _read_ends(source, probe, wanted, ffprobe_bin, read_from=None)
        if ends is None:
            raise TranscodeError("the source has no packets of its audio/video streams")
        ends = SourceEnds(ends.video_s, ends.audio_s, ends.audio_start_s, method="demux")
    return ends


def _used_streams(probe: Probe) -> dict[int, Literal["video", "audio"]]:
    wanted: dict[int, Literal["video", "audio"]] = {}
    if probe.video is not None:
        wanted[probe.video.index] = "video"
    if probe.audio:
        wanted[probe.audio[0].index] = "audio"
    return wanted


def _plausible(ends: SourceEnds, probe: Probe) -> bool:
    wanted = _used_streams(probe)
    if "video" in wanted.values() and ends.video_s is None:
        return False
    if "audio" in wanted.values() and ends.audio_s is None:
        return False
    return ends.end_s >= probe.duration_s - TAIL_TOLERANCE_S


async def _read_ends(
    source: str, probe: Probe, wanted: Mapping[int, str], ffprobe_bin: str, *, read_from: float | None
) -> SourceEnds | None:
    args = [ffprobe_bin, "-v", "error", *input_options(source), "-of", "json"]
    if read_from is not None:
        args += ["-read_intervals", f"{read_from:.6f}%"]
    args += [
        "-show_entries",
        "stream=index,codec_name,time_base:packet=stream_index,pts,dts,duration",
        input_name(source),
    ]
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        reason = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise TranscodeError(f"ffprobe could not read the end of the source: {reason[0]}")
    data = json.loads(out or b"{}")
    streams = {s["index"]: s for s in data.get("streams", ())}
    packets: dict[int, list[tuple[int, int]]] = {i: [] for i in wanted}
    for p in data.get("packets", ()):
        i = p.get("stream_index")
        if i not in packets:
            continue
        ts = p.get("pts", p.get("dts"))
        if ts is None:
            continue
        packets[i].append((int(ts), int(p.get("duration") or 0)))
    origin = Fraction(probe.start_time_s).limit_denominator(1_000_000)
    video_s = audio_s = None
    audio_start_s = 0.0
    for index, kind in wanted.items():
        found = packets[index]
        if not found or index not in streams:
            continue
        tb = Fraction(streams[index]["time_base"])
        if kind == "video":
            default = _frame_ticks(probe, tb)
            end = max(pts + (dur or default) for pts, dur in found)
            video_s = float(end * tb - origin)
        else:
            last_pts, last_dur = max(found)
            # The probe's start (read from the file's beginning; a stream's start_time in a
            # tail read may be the first packet read).
            first = Fraction(probe.audio[0].start_time_s).limit_denominator(1_000_000)
            audio_start_s = max(0.0, float(first - origin))
            frame = WHOLE_FRAME_CODECS.get(str(streams[index].get("codec_name")))
            rate = probe.audio[0].sample_rate if probe.audio else 0
            if frame and rate > 0:
                # The decoder returns whole frames from the stream's start, whatever the last
                # packet's duration says; snapping to that grid also undoes a container's
                # millisecond timestamps (Matroska).
                frames = round((last_pts * tb - first) * rate / frame) + 1
                audio_s = float(first + Fraction(frames * frame, rate) - origin)
            else:
                audio_s = float((last_pts + last_dur) * tb - origin)
    if video_s is None and audio_s is None:
        return None
    return SourceEnds(video_s, audio_s, audio_start_s)


def _frame_ticks(probe: Probe, tb: Fraction) -> int:
    """One source frame in ticks of `tb`, for packets without a duration (MPEG-TS)."""
    video = probe.video
    try:
        fps = Fraction(video.fps_fraction) if video else Fraction(0)
    except (ValueError, ZeroDivisionError):
        fps = Fraction(0)
    if fps <= 0:
        return 0
    return round(1 / (fps * tb))


# ---- the predicted model -----------------------------------------------------------------


def video_frame_count(ladder: Ladder, video_end_s: float) -> int:
    """Frames the one-pass encode writes: `fps=start_time=0` fills every slot from 0 to the
    end of the last source frame, rounded to the nearest slot."""
    fps = ladder.fps_fraction
    if fps is None:
        raise ValueError("ladder has no video")
    return max(1, math.floor(Fraction(video_end_s).limit_denominator(10**9) * fps + Fraction(1, 2)))


def video_segment_count(ladder: Ladder, ends: SourceEnds | float) -> int:
    ends = _as_ends(ends)
    return -(-video_frame_count(ladder, ends.video_s or ends.end_s) // segment_frames(ladder))


def _as_ends(ends: SourceEnds | float) -> SourceEnds:
    if isinstance(ends, SourceEnds):
        return ends
    return SourceEnds(float(ends), float(ends))


def audio_samples(ladder: Ladder, ends: SourceEnds | float) -> int:
    """Samples (at the output rate) the audio task encodes: from 0 (padded) when there is
    video, from the audio's own start otherwise, to the end of its last decoded frame."""
    ends = _as_ends(ends)
    if ladder.audio is None or ends.audio_s is None:
        raise ValueError("no audio")
    begin = 0.0 if ladder.rungs else ends.audio_start_s
    return round(Fraction(ends.audio_s - begin).limit_denominator(10**9) * ladder.audio.sample_rate)


def audio_grid_segments(segment_s: int, sample_rate: int) -> int:
    """The fewest segments m whose samples are a whole number of AAC frames
    (m * segment_s * sample_rate % 1024 == 0): 2 for 4 s at 48 kHz. An audio part that starts
    on a multiple of m has the one-pass encode's frame grid and segment cuts."""
    return AAC_FRAME // math.gcd(segment_s * sample_rate, AAC_FRAME)


def audio_preroll_segments(segment_s: int, sample_rate: int) -> int:
    """Segments an audio part encodes before its first one (a multiple of the grid, at
    least AUDIO_PREROLL_MIN_S)."""
    m = audio_grid_segments(segment_s, sample_rate)
    return m * max(1, math.ceil(AUDIO_PREROLL_MIN_S / (m * segment_s)))


def audio_part_size(ladder: Ladder, wanted: int) -> int:
    """Segments per audio part for `wanted` (the setting): rounded to a multiple of every
    audio rendition's frame grid; 0 (one whole-timeline task) when `wanted` is 0 or the grid
    is longer than AUDIO_PART_GRID_MAX_S (a sample rate that lines up with the segments
    rarely, 44.1 kHz at 4 s: 64 segments)."""
    if wanted <= 0 or not ladder.audios:
        return 0
    grid = 1
    for a in ladder.audios:
        grid = math.lcm(grid, audio_grid_segments(ladder.segment_s, a.sample_rate))
    if grid * ladder.segment_s > AUDIO_PART_GRID_MAX_S:
        return 0
    return grid * max(1, round(wanted / grid))


def video_codecs(rung_level: int, preset: str) -> str:
    """RFC 6381 string x264 writes: High (64 00) unless the preset is ultrafast, which turns
    off CABAC, 8x8 transforms and B-frames and so gets Constrained Baseline (42 c0)."""
    head = "42c0" if preset == "ultrafast" else "6400"
    return f"avc1.{head}{rung_level:02x}"


def predict_presentation(
    probe: Probe,
    ladder: Ladder,
    *,
    title_id: str,
    version: str,
    end_s: SourceEnds | float,
    preset: str = "veryfast",
) -> Presentation:
    """The model the chunked encode of `ladder` will produce (`progressive=True`).

    Exact in segment count, per-segment durations, timescale and start time when `end_s` is
    the `SourceEnds` of `measure_source_ends`; a plain float (every stream ending there) can
    be off by one AAC frame. Sizes are 0; `bandwidth_peak` is a bound the measured peak does
    not exceed (VBV: at most maxrate x d + bufsize bits in any d seconds, plus container
    overhead), `bandwidth_avg` the target bitrate.
    """
    ends = _as_ends(end_s)
    renditions: list[Rendition] = []
    if ladder.rungs:
        fps = ladder.fps_fraction
        assert fps is not None
        timescale = video_timescale(fps)
        frames = video_frame_count(ladder, ends.video_s if ends.video_s is not None else ends.end_s)
        per_segment = segment_frames(ladder)
        counts = [per_segment] * (frames // per_segment) + ([frames % per_segment] if frames % per_segment else [])
        durations, edge = [], 0
        for n in counts:
            nxt = frame_start_ticks(edge + n, fps, timescale)
            durations.append(nxt - frame_start_ticks(edge, fps, timescale))
            edge += n
        for rung in ladder.rungs:
            peak = 0.0
            for n, d in zip(counts, durations, strict=True):
                seconds = d / timescale
                bits = (
                    rung.maxrate * seconds + rung.bufsize + 8 * (SEGMENT_OVERHEAD_BYTES + OVERHEAD_BYTES_PER_SAMPLE * n)
                )
                peak = max(peak, bits / seconds)
            renditions.append(
                Rendition(
                    id=rung.id,
                    kind="video",
                    codecs=av1_codecs(rung.level) if rung.codec == AV1 else video_codecs(rung.level, preset),
                    bandwidth_peak=math.ceil(peak),
                    bandwidth_avg=rung.video_bitrate,
                    timescale=timescale,
                    segments=tuple(Segment(duration=d, size=0) for d in durations),
                    start_number=1,
                    start_time=0,
                    width=rung.width,
                    height=rung.height,
                    frame_rate=ladder.fps,
                )
            )
    for a in ladder.audios:
        # Every audio rendition is cut to the same length (the first stream's measured end).
        if ends.audio_s is None:
            raise ValueError("the ladder has audio but the source ends say it has none")
        ticks = audio_samples(ladder, ends) + AAC_PRIMING
        packets = -(-ticks // AAC_FRAME)
        durations = []
        k, first = 1, 0
        while first < packets:
            boundary = -(-(k * ladder.segment_s * a.sample_rate) // AAC_FRAME)
            last = min(boundary, packets)
            durations.append(min(last * AAC_FRAME, ticks) - first * AAC_FRAME)
            first, k = last, k + 1
        peak = 0.0
        for d in durations:
            seconds = d / a.sample_rate
            n = -(-d // AAC_FRAME)
            bits = (
                a.bitrate * AUDIO_PEAK_FACTOR * seconds
                + AAC_MAX_FRAME_BITS_PER_CHANNEL * a.channels
                + 8 * (SEGMENT_OVERHEAD_BYTES + OVERHEAD_BYTES_PER_SAMPLE * n)
            )
            peak = max(peak, bits / seconds)
        renditions.append(
            Rendition(
                id=a.id,
                kind="audio",
                codecs="mp4a.40.2",
                bandwidth_peak=math.ceil(peak),
                bandwidth_avg=a.bitrate,
                timescale=a.sample_rate,
                segments=tuple(Segment(duration=d, size=0) for d in durations),
                start_number=1,
                start_time=0,
                language=a.language,
                name=audio_name(a.name, a.language),
                channels=a.channels,
                sample_rate=a.sample_rate,
                default=a is ladder.audio,
            )
        )
    if not renditions:
        raise ValueError("ladder has no renditions")
    main = renditions[0]
    return Presentation(
        title_id=title_id,
        version=version,
        duration_s=round(main.duration_s, 6),
        segment_target_s=ladder.segment_s,
        renditions=tuple(renditions),
        progressive=True,
        extra={SOURCE_ADJUSTMENTS: list(source_adjustments(probe, ladder))},
    )


# ---- running a task ----------------------------------------------------------------------


class ChunkSegment(NamedTuple):
    number: int  # the title's segment number (1-based)
    duration: int  # ticks
    size: int  # bytes
    path: Path
    start: int  # tfdt, ticks on the title's timeline
    keyframe: bool  # first sample is a sync sample
    key_offset: int | None = None  # the first (key) sample's bytes in the file, when known
    key_size: int | None = None


@dataclass
class RenditionOutput:
    id: str
    kind: Literal["video", "audio"]
    init: mp4.InitInfo
    init_path: Path
    segments: list[ChunkSegment] = field(default_factory=list)


@dataclass
class TaskOutput:
    renditions: dict[str, RenditionOutput] = field(default_factory=dict)

    def to_result(self) -> dict[str, Any]:
        """JSON-able: per rendition the init's facts and every segment's
        [number, duration, size, start, keyframe, key_offset, key_size] (results stored before
        the last two existed have five items: assemble_presentation reads both)."""
        return {
            "renditions": [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "init": {
                        "handler": r.init.handler,
                        "codec": r.init.codec,
                        "timescale": r.init.timescale,
                        "width": r.init.width,
                        "height": r.init.height,
                        "channels": r.init.channels,
                        "sample_rate": r.init.sample_rate,
                    },
                    "segments": [
                        [s.number, s.duration, s.size, s.start, s.keyframe, s.key_offset, s.key_size]
                        for s in r.segments
                    ],
                }
                for r in self.renditions.values()
            ]
        }


def chunk_start_s(ladder: Ladder, first: int) -> str:
    """The start of segment `first` on the encode's timeline, as an exact decimal when one
    exists (4.004, not 4.00399999)."""
    fps = ladder.fps_fraction
    assert fps is not None
    t = Fraction((first - 1) * segment_frames(ladder)) / fps
    for digits in range(0, 10):
        scaled = t * 10**digits
        if scaled.denominator == 1:
            return _decimal(int(scaled), digits)
    return f"{float(t):.9f}"


def _decimal(value: int, digits: int) -> str:
    if digits == 0:
        return str(value)
    s = str(value).rjust(digits + 1, "0")
    return f"{s[:-digits]}.{s[-digits:]}"


async def encode_video_task(
    source: str,
    probe: Probe,
    ladder: Ladder,
    out_dir: Path,
    *,
    rendition_ids: tuple[str, ...] | list[str],
    first: int,
    count: int,
    total: int,
    preset: str = "veryfast",
    threads: int = 0,
    timeout_s: float | None = None,
    ffmpeg_bin: str = "ffmpeg",
    on_segment: SegmentCallback | None = None,
    on_progress: ProgressCallback | None = None,
    nice: int = 0,
) -> TaskOutput:
    """Encode the rectangle `rendition_ids` x segments `first .. first+count-1` (of `total`)
    with one ffmpeg into `out_dir/{rid}/init.mp4` and `out_dir/{rid}/{n}.m4s` (n global),
    each segment rewritten onto the title's timeline and reported through `on_segment` as
    soon as it is complete (the init first). Raises `TranscodeError` when ffmpeg fails or
    does not produce exactly the segments asked for.

    `out_dir` must be this task's own: its rendition folders are emptied first (a retry
    starts clean), so two tasks sharing one would delete each other's segments.
    """
    if first < 1 or count < 1 or first + count - 1 > total:
        raise ValueError(f"segments {first}..{first + count - 1} are not within 1..{total}")
    ids, fps = _video_rungs(ladder, rendition_ids)
    per_segment = segment_frames(ladder)
    start_frame = (first - 1) * per_segment
    is_last = first + count - 1 == total
    frames = None if is_last else count * per_segment
    out_dir = Path(out_dir)
    await asyncio.to_thread(_prepare, out_dir, ids)
    args = _chunk_argv(source, ladder, out_dir, ids, first, frames, preset, threads, ffmpeg_bin)
    span_s = (
        float(Fraction(frames) / fps)
        if frames is not None
        else max(0.1, probe.duration_s - float(Fraction(start_frame) / fps))
    )

    def delta(init: mp4.InitInfo) -> int:
        return frame_start_ticks(start_frame, fps, init.timescale)

    output = TaskOutput()
    watcher = _Watcher(out_dir, {rid: "video" for rid in ids}, first, delta, output, on_segment)
    await _run_watched(
        args, watcher, span_s, on_progress, timeout_s if timeout_s is not None else default_timeout_s(span_s), nice
    )
    expected = list(range(first, first + count))
    for rid in ids:
        got = [s.number for s in output.renditions[rid].segments] if rid in output.renditions else []
        if got != expected:
            raise TranscodeError(f"{rid}: the chunk wrote segments {_span(got)}, not {_span(expected)}")
        for s in output.renditions[rid].segments:
            if not s.keyframe:
                raise TranscodeError(f"{rid}/{s.number}{SEGMENT_EXT} does not start with a keyframe")
    return output


def _video_rungs(ladder: Ladder, rendition_ids: tuple[str, ...] | list[str]) -> tuple[tuple[str, ...], Fraction]:
    """`rendition_ids` in ladder order, and the ladder's frame rate; ValueError for a ladder
    without video or an id that is not one of its rungs."""
    fps = ladder.fps_fraction
    if fps is None or not ladder.rungs:
        raise ValueError("ladder has no video")
    unknown = set(rendition_ids) - {r.id for r in ladder.rungs}
    if unknown or not rendition_ids:
        raise ValueError(f"not video renditions of this ladder: {sorted(unknown) or 'none given'}")
    return tuple(r.id for r in ladder.rungs if r.id in set(rendition_ids)), fps


def _chunk_argv(
    source: str,
    ladder: Ladder,
    out_dir: Path,
    ids: tuple[str, ...],
    first: int,
    frames: int | None,
    preset: str,
    threads: int,
    ffmpeg_bin: str,
) -> list[str]:
    """The ffmpeg argv of the rungs `ids` from segment `first`, `frames` frames (None: to the end)."""
    fps = ladder.fps_fraction
    assert fps is not None  # _video_rungs checked it
    return build_chunk_args(
        source,
        ladder,
        out_dir,
        rendition_ids=ids,
        start_s=chunk_start_s(ladder, first),
        frames=frames,
        start_number=first,
        segment_us=math.floor(Fraction(segment_frames(ladder)) / fps * 1_000_000),
        preset=preset,
        threads=threads,
        ffmpeg_bin=ffmpeg_bin,
    )


# Making the init segments of a few rungs: a few frames each, well under a second on a busy core.
INITS_TIMEOUT_S = 60.0
# Frames encoded to make them: x264 fixes its B-frame delay from the timestamps of its first
# (pyramid delay + 1) = 3 frames. While the inits held that delay in an edit list, fewer frames
# made an init that differed from every task's; the video inits have no edit list now (segments
# are presented from their decode time) and 1 frame gives the same bytes, but 3 cost nothing
# and keep the inits independent of what the muxer writes from the first timestamps.
INIT_FRAMES = 3


async def encode_inits(
    source: str,
    ladder: Ladder,
    out_dir: Path,
    *,
    rendition_ids: tuple[str, ...] | list[str],
    preset: str = "veryfast",
    threads: int = 0,
    ffmpeg_bin: str = "ffmpeg",
    timeout_s: float = INITS_TIMEOUT_S,
    nice: int = 0,
) -> dict[str, Path]:
    """The init segments of the video renditions `rendition_ids` without their media: the
    argv of their first chunk, cut to INIT_FRAMES frames. Every task of a rendition writes the same init
    bytes (the argv's bit-exact flags; tests compare them), so these may be stored before any
    segment of the rendition is: a player switching to a rung, or seeking far ahead, asks for
    the init first and for the segment only once it has it. Returns rendition id -> the file
    in `out_dir/{rid}/` (the folders are emptied first; the short segments written beside
    them are not results and are left there). Raises `TranscodeError` when ffmpeg fails or an init is
    missing or unreadable."""
    ids, _ = _video_rungs(ladder, rendition_ids)
    out_dir = Path(out_dir)
    await asyncio.to_thread(_prepare, out_dir, ids)
    args = _chunk_argv(source, ladder, out_dir, ids, 1, INIT_FRAMES, preset, threads, ffmpeg_bin)
    try:
        await run_quiet(args, timeout_s=timeout_s, what="init segments", nice=nice)
    except (RuntimeError, TimeoutError) as exc:
        raise TranscodeError(str(exc) or "ffmpeg init segments timed out") from exc
    found: dict[str, Path] = {}
    for rid in ids:
        path = out_dir / rid / INIT_NAME
        try:
            mp4.parse_init(await asyncio.to_thread(path.read_bytes))
        except (OSError, mp4.Mp4Error) as exc:
            raise TranscodeError(f"{rid}: no readable {INIT_NAME} ({exc})") from exc
        found[rid] = path
    return found


async def encode_audio_task(
    source: str,
    probe: Probe,
    ladder: Ladder,
    out_dir: Path,
    *,
    preset: str = "veryfast",
    threads: int = 0,
    timeout_s: float | None = None,
    ffmpeg_bin: str = "ffmpeg",
    on_segment: SegmentCallback | None = None,
    on_progress: ProgressCallback | None = None,
    end_s: SourceEnds | float | None = None,
    audio_id: str | None = None,
    first: int = 1,
    count: int | None = None,
    total: int | None = None,
    nice: int = 0,
    then_nice: int | None = None,
) -> TaskOutput:
    """Encode one audio rendition (`audio_id`, default: the ladder's default audio) as the
    one-pass command does, into `out_dir/{audio_id}/`, reporting segments as they are
    finished: the whole timeline, or the part `first .. first+count-1` of `total` segments.

    A part that is not the first starts `audio_preroll_segments` earlier, on the AAC frame
    grid, and one that is not the last runs on AUDIO_POSTROLL_GRIDS grids further; the
    segments outside the part are dropped, the rest moved onto the title's timeline, so they
    have the one-pass encode's numbers, times and sample counts (docs/transcode.md). Raises
    `TranscodeError` when a part does not write exactly its segments.

    Give `end_s` (what the prediction was made from) to make the track exactly as long as
    predicted: resampling from another rate than 48 kHz can otherwise end a sample off; the
    last part of a title needs it. `out_dir` must be this task's own, as for
    `encode_video_task`. `nice`: ffmpeg's CPU priority; with `then_nice`, it goes on at that
    priority once the first segment is reported (a player starts with it; the rest is needed
    at playback speed)."""
    if not ladder.audio:
        raise ValueError("ladder has no audio")
    rid = audio_id or ladder.audio.id
    plan = ladder.audio_plan(rid)
    whole = first == 1 and (count is None or total is None or count >= total)
    out_dir = Path(out_dir)
    await asyncio.to_thread(_prepare, out_dir, (rid,))
    samples = audio_samples(ladder, end_s) if end_s is not None else None
    if whole:
        start, last, rate = 1, None, plan.sample_rate
        args = build_audio_args(
            source,
            ladder,
            out_dir,
            preset=preset,
            threads=threads,
            ffmpeg_bin=ffmpeg_bin,
            samples=samples,
            audio_id=rid,
        )
        span_s = probe.duration_s
    else:
        assert count is not None and total is not None
        if first < 1 or count < 1 or first + count - 1 > total:
            raise ValueError(f"segments {first}..{first + count - 1} are not within 1..{total}")
        seg_s, rate = ladder.segment_s, plan.sample_rate
        m = audio_grid_segments(seg_s, rate)
        if (first - 1) % m:
            raise ValueError(f"an audio part must start on the frame grid ({m} segments), not at {first}")
        start = max(1, first - audio_preroll_segments(seg_s, rate))
        last = first + count - 1
        offset = (start - 1) * seg_s * rate  # samples before the encode's start
        if last < total:
            length = (min(total, last + AUDIO_POSTROLL_GRIDS * m) - start + 1) * seg_s * rate
        elif samples is None:
            raise ValueError("the last audio part needs the source's ends")
        else:
            length, last = samples - offset, None
        args = build_audio_args(
            source,
            ladder,
            out_dir,
            preset=preset,
            threads=threads,
            ffmpeg_bin=ffmpeg_bin,
            samples=length,
            audio_id=rid,
            # No seek for the first part: it begins as the one-pass encode does.
            start_s=str((start - 1) * seg_s) if start > 1 else None,
            start_number=start,
        )
        span_s = length / rate
    offset_s = (start - 1) * ladder.segment_s

    def delta(init: mp4.InitInfo) -> int:
        return offset_s * init.timescale

    output = TaskOutput()
    keep = (first, last)
    watcher = _Watcher(out_dir, {rid: "audio"}, start, delta, output, on_segment, keep=keep)
    await _run_watched(
        args,
        watcher,
        span_s,
        on_progress,
        timeout_s if timeout_s is not None else default_timeout_s(span_s),
        nice=nice,
        then_nice=then_nice,
    )
    if rid not in output.renditions or not output.renditions[rid].segments:
        raise TranscodeError(f"{rid}: no media segments were written")
    if last is not None and not whole:
        got = [s.number for s in output.renditions[rid].segments]
        expected = list(range(first, last + 1))
        if got != expected:
            raise TranscodeError(f"{rid}: the audio part wrote segments {_span(got)}, not {_span(expected)}")
    return output


def _span(numbers: list[int]) -> str:
    if not numbers:
        return "none"
    return f"{numbers[0]}..{numbers[-1]}" if numbers == list(range(numbers[0], numbers[-1] + 1)) else str(numbers)


def _prepare(out_dir: Path, ids: tuple[str, ...]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for rid in ids:
        folder = out_dir / rid
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
    for playlist in out_dir.glob("*.m3u8"):
        playlist.unlink(missing_ok=True)


class _Watcher:
    """Picks up each segment once ffmpeg has renamed it into place (`hls_flags temp_file`),
    rewrites its times, and reports it, in order per rendition."""

    def __init__(
        self,
        out_dir: Path,
        kinds: dict[str, Literal["video", "audio"]],
        first: int,
        delta: Callable[[mp4.InitInfo], int],
        output: TaskOutput,
        on_segment: SegmentCallback | None,
        keep: tuple[int, int | None] = (1, None),
    ) -> None:
        self.out_dir = out_dir
        # Segment numbers reported (first, last or None: to the end); the others (an audio
        # part's pre- and post-roll) are deleted unreported.
        self.keep = keep
        self.kinds = kinds
        self.next = dict.fromkeys(kinds, first)
        self.delta = delta
        self.output = output
        self.on_segment = on_segment

    async def sweep(self) -> None:
        for rid in self.kinds:
            while True:
                path = self.out_dir / rid / f"{self.next[rid]}{SEGMENT_EXT}"
                if not path.is_file():
                    break
                low, high = self.keep
                if self.next[rid] < low or (high is not None and self.next[rid] > high):
                    await asyncio.to_thread(path.unlink, missing_ok=True)
                else:
                    await self._take(rid, self.next[rid], path)
                self.next[rid] += 1

    async def _take(self, rid: str, number: int, path: Path) -> None:
        rendition = self.output.renditions.get(rid)
        if rendition is None:
            init_path = self.out_dir / rid / INIT_NAME
            try:
                init = mp4.parse_init(await asyncio.to_thread(init_path.read_bytes))
            except (OSError, mp4.Mp4Error) as exc:
                raise TranscodeError(f"{rid}: unreadable {INIT_NAME} ({exc})") from exc
            rendition = RenditionOutput(rid, self.kinds[rid], init, init_path)
            self.output.renditions[rid] = rendition
            await _call(self.on_segment, rid, None, init_path)
        try:
            info = await asyncio.to_thread(_rewrite, path, self.delta(rendition.init), number, rendition.init)
        except (OSError, mp4.Mp4Error) as exc:
            raise TranscodeError(f"{rid}/{number}{SEGMENT_EXT}: unreadable output ({exc})") from exc
        seg, size = info
        rendition.segments.append(
            ChunkSegment(
                number,
                seg.duration,
                size,
                path,
                seg.base_decode_time,
                seg.first_sample_is_sync,
                seg.key_offset,
                seg.key_size,
            )
        )
        await _call(self.on_segment, rid, number, path)


def _rewrite(path: Path, delta: int, number: int, init: mp4.InitInfo) -> tuple[mp4.SegmentInfo, int]:
    """The segment at `path` put onto the title's timeline (`delta` ticks later, fragments
    numbered from `number`) and presented from its decode time (`mp4.present_from_decode_time`:
    the init segments of video tasks carry no edit list)."""
    original = path.read_bytes()
    data = mp4.present_from_decode_time(original)
    if delta or number != 1:
        data = mp4.shift_segment(data, delta=delta, sequence_number=number)
    if data is not original:
        part = path.with_name(path.name + ".part")
        part.write_bytes(data)
        os.replace(part, path)
    return mp4.parse_segment(data, init.defaults), len(data)


async def _call(callback: SegmentCallback | None, rid: str, number: int | None, path: Path) -> None:
    if callback is None:
        return
    result = callback(rid, number, path)
    if inspect.isawaitable(result):
        await result


async def _run_watched(
    args: list[str],
    watcher: _Watcher,
    duration_s: float,
    on_progress: ProgressCallback | None,
    timeout_s: float,
    nice: int = 0,
    then_nice: int | None = None,
) -> None:
    """Run ffmpeg at CPU priority `nice` while `watcher` reports its segments; with
    `then_nice`, ffmpeg goes on at that priority once its first segment is reported."""
    pids: list[int] = []
    encode = asyncio.ensure_future(
        run_ffmpeg(
            args, duration_s=duration_s, on_progress=on_progress, timeout_s=timeout_s, nice=nice, on_start=pids.append
        )
    )
    try:
        while not encode.done():
            await watcher.sweep()
            if then_nice is not None and pids and any(r.segments for r in watcher.output.renditions.values()):
                renice(pids[0], then_nice)
                then_nice = None
            await asyncio.wait({encode}, timeout=POLL_S)
        encode.result()  # raises ffmpeg's failure
        await watcher.sweep()
    finally:
        if not encode.done():
            encode.cancel()  # run_ffmpeg stops ffmpeg and reaps it
            await asyncio.gather(encode, return_exceptions=True)
    for playlist in watcher.out_dir.glob("*.m3u8"):
        playlist.unlink(missing_ok=True)


# ---- the measured model ------------------------------------------------------------------


def assemble_presentation(
    ladder: Ladder, results: list[dict[str, Any]], *, title_id: str, version: str, probe: Probe | None = None
) -> Presentation:
    """The measured model (`progressive=False`) from every task's `to_result()`: codecs from
    the inits, durations and sizes from the segments, peak/average bitrates from those.

    Raises `TranscodeError` when a rendition is missing or its tasks disagree about its
    init, a segment is missing or reported twice, the segments are not back to back in time,
    or a video segment does not start with a keyframe. With `probe`, `extra` records the
    source adjustments as the one-pass encode does.
    """
    inits: dict[str, dict[str, Any]] = {}
    segments: dict[str, dict[int, list]] = {rid: {} for rid in ladder.rendition_ids}
    for result in results:
        for r in result.get("renditions", ()):
            rid = r["id"]
            if rid not in segments:
                raise TranscodeError(f"a task reported rendition {rid!r}, not in the ladder")
            if rid in inits and inits[rid] != r["init"]:
                raise TranscodeError(f"{rid}: tasks wrote different init segments")
            inits[rid] = r["init"]
            for seg in r["segments"]:
                number = seg[0]
                if number in segments[rid]:
                    raise TranscodeError(f"{rid}/{number}{SEGMENT_EXT} was reported twice")
                segments[rid][number] = seg
    renditions: list[Rendition] = []
    for rung in ladder.rungs:
        init, segs = _checked(rung.id, "vide", inits, segments)
        for number, _d, _s, _start, keyframe, *_key in segs:
            if not keyframe:
                raise TranscodeError(f"{rung.id}/{number}{SEGMENT_EXT} does not start with a keyframe")
        renditions.append(
            _measured(
                rung.id,
                "video",
                init,
                segs,
                width=init.get("width") or rung.width,
                height=init.get("height") or rung.height,
                frame_rate=ladder.fps,
            )
        )
    for a in ladder.audios:
        init, segs = _checked(a.id, "soun", inits, segments)
        renditions.append(
            _measured(
                a.id,
                "audio",
                init,
                segs,
                language=a.language,
                name=audio_name(a.name, a.language),
                # The encoder was told `-ac`; an MP4 AAC sample entry's channelcount says 2
                # whatever the layout (ISO 14496-12 12.2.3; the real one is in the esds).
                channels=a.channels,
                sample_rate=init.get("sample_rate") or a.sample_rate,
                default=a is ladder.audio,
            )
        )
    if not renditions:
        raise TranscodeError("ladder has no renditions")
    main = renditions[0]
    return Presentation(
        title_id=title_id,
        version=version,
        duration_s=round(main.duration_s, 6),
        segment_target_s=ladder.segment_s,
        renditions=tuple(renditions),
        progressive=False,
        # As the one-pass encode records them, when the caller has the probe.
        extra={SOURCE_ADJUSTMENTS: list(source_adjustments(probe, ladder))} if probe is not None else {},
    )


def _checked(
    rid: str, handler: str, inits: dict[str, dict[str, Any]], segments: dict[str, dict[int, list]]
) -> tuple[dict[str, Any], list[list]]:
    if rid not in inits or not segments[rid]:
        raise TranscodeError(f"{rid}: no task reported its segments")
    init = inits[rid]
    if init.get("handler") != handler:
        raise TranscodeError(f"{rid}: init segment holds a {init.get('handler')!r} track")
    numbers = sorted(segments[rid])
    if numbers != list(range(1, len(numbers) + 1)):
        missing = sorted(set(range(1, numbers[-1] + 1)) - set(numbers))
        raise TranscodeError(f"{rid}: segments {missing} are missing")
    segs = [segments[rid][n] for n in numbers]
    for prev, cur in zip(segs, segs[1:], strict=False):
        if prev[3] + prev[1] != cur[3]:
            raise TranscodeError(
                f"{rid}/{cur[0]}{SEGMENT_EXT} starts at tick {cur[3]}, not where {prev[0]} ends ({prev[3] + prev[1]})"
            )
    return init, segs


def _key_range(kind: str, seg: list) -> tuple[int | None, int | None]:
    """A video segment's key sample (offset, size), as its task reported it; (None, None) for
    audio, and for results stored before tasks reported it."""
    if kind != "video" or len(seg) < 7 or seg[5] is None or seg[6] is None:
        return None, None
    return int(seg[5]), int(seg[6])


def _measured(
    rid: str, kind: Literal["video", "audio"], init: dict[str, Any], segs: list[list], **fields: Any
) -> Rendition:
    timescale = int(init["timescale"])
    durations = [int(s[1]) for s in segs]
    sizes = [int(s[2]) for s in segs]
    key_ranges = [_key_range(kind, s) for s in segs]
    if timescale <= 0 or any(d <= 0 for d in durations):
        raise TranscodeError(f"{rid}: segment with no duration")
    peak = max(size * 8 * timescale / d for size, d in zip(sizes, durations, strict=True))
    avg = sum(sizes) * 8 * timescale / sum(durations)
    return Rendition(
        id=rid,
        kind=kind,
        codecs=init["codec"],
        bandwidth_peak=math.ceil(peak),
        bandwidth_avg=math.ceil(avg),
        timescale=timescale,
        segments=tuple(
            Segment(duration=d, size=s, key_offset=k[0], key_size=k[1])
            for d, s, k in zip(durations, sizes, key_ranges, strict=True)
        ),
        start_number=1,
        start_time=int(segs[0][3]),
        **fields,
    )
