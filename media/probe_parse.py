"""ffprobe's JSON (`-show_format -show_streams`) -> `Probe`. Pure: takes a dict, returns data.

`media.probe` runs ffprobe; this module only reads its answer, so every quirk below is
tested from a literal dict in milliseconds.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

from media.errors import ProbeError
from media.probe_model import SUBTITLE_STREAMS, AudioStream, Probe, VideoStream

# Containers whose declared duration is measured on a timeline that starts at 0 (an MP4's
# mvhd counts an initial empty edit; a Matroska segment's Duration counts from the segment
# start). With a start offset it is the end time: libavformat reports it as declared. For
# other formats (MPEG-TS, PS, raw streams) libavformat estimates end - start itself.
_DECLARED_DURATION_FORMATS = ("mov", "mp4", "matroska", "webm")

# r_frame_rate (the lowest rate that represents every timestamp) and avg_frame_rate agree on
# constant-rate sources up to rounding (30000/1001 vs 2997/100); beyond this they are VFR.
VFR_TOLERANCE = 0.01

_PIX_FMT_DEPTH = re.compile(r"(?:p|gray)(\d{1,2})(?:le|be)$")  # yuv420p10le, gray12le, gbrp16be
_SEMI_PLANAR_DEPTH = re.compile(r"^p0(\d\d)(?:le|be)$")  # p010le, p016le (hardware decoders)


def parse_rate(text: str | None) -> float:
    """ "30000/1001" -> 29.97; "0/0", "N/A" or junk -> 0.0."""
    if not text:
        return 0.0
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(value) if value > 0 else 0.0


def normalise_rotation(degrees: float) -> int:
    """Any angle -> the nearest of 0/90/180/270."""
    return (round(degrees / 90) * 90) % 360


def rotation_of(stream: dict[str, Any]) -> int:
    """Clockwise degrees to turn the coded picture for display, as the old `rotate` tag says.

    The display matrix side data (what ffprobe >= 5 reports, and what phones write) holds the
    counter-clockwise angle: a portrait phone clip has rotate=90 and matrix rotation -90.
    Negating the matrix angle makes both sources agree (90 for that clip).
    """
    for side in stream.get("side_data_list") or ():
        if side.get("side_data_type") == "Display Matrix" and "rotation" in side:
            try:
                return normalise_rotation(-float(side["rotation"]))
            except (TypeError, ValueError):
                break
    tag = _tag(stream, "rotate")
    if tag:
        try:
            return normalise_rotation(float(tag))
        except ValueError:
            pass
    return 0


def bit_depth_of(stream: dict[str, Any]) -> int:
    """Bits per sample: from the pixel format name, else bits_per_raw_sample, else 8."""
    pix_fmt = stream.get("pix_fmt") or ""
    m = _PIX_FMT_DEPTH.search(pix_fmt) or _SEMI_PLANAR_DEPTH.match(pix_fmt)
    if m:
        return int(m.group(1))
    raw = _int(stream.get("bits_per_raw_sample"))
    return raw if raw else 8


def is_variable_frame_rate(r_frame_rate: float, avg_frame_rate: float) -> bool:
    if r_frame_rate <= 0 or avg_frame_rate <= 0:
        return False
    return abs(r_frame_rate - avg_frame_rate) / max(r_frame_rate, avg_frame_rate) > VFR_TOLERANCE


def is_picture(stream: dict[str, Any]) -> bool:
    """Cover art (an attached picture in MP3/M4A/MKV) is a video stream in ffprobe, not video."""
    return bool((stream.get("disposition") or {}).get("attached_pic"))


def parse_video(stream: dict[str, Any]) -> VideoStream:
    avg_text = stream.get("avg_frame_rate") or "0/0"
    r = parse_rate(stream.get("r_frame_rate"))
    avg = parse_rate(avg_text)
    if avg == 0 and r > 0:
        # Raw elementary streams (.h264, some .ts) have no average: the base rate is all we have.
        avg_text, avg = stream["r_frame_rate"], r
    return VideoStream(
        index=int(stream.get("index", 0)),
        codec=stream.get("codec_name") or "unknown",
        width=_int(stream.get("width")) or 0,
        height=_int(stream.get("height")) or 0,
        fps=avg,
        fps_fraction=avg_text,
        rotation=rotation_of(stream),
        pix_fmt=stream.get("pix_fmt") or "",
        bit_depth=bit_depth_of(stream),
        variable_frame_rate=is_variable_frame_rate(r, avg),
        bit_rate=_int(stream.get("bit_rate")),
        start_time_s=_float(stream.get("start_time")),
        field_order=field_order_of(stream),
    )


def field_order_of(stream: dict[str, Any]) -> str:
    """ffprobe's field_order ("progressive", "tt", "bb", "tb", "bt"), "unknown" when absent."""
    order = str(stream.get("field_order") or "unknown").strip().lower()
    return order or "unknown"


def timeline(fmt: dict[str, Any], streams: list[dict[str, Any]]) -> tuple[float, float]:
    """(start, real duration) in seconds of the audio/video `streams` (ffprobe dicts).

    A broadcast capture's timestamps start where the recording began (3600 s, or the 1.4 s
    every MPEG-TS muxer adds); what ffprobe calls its duration is sometimes the length and
    sometimes the end time. Evidence first: when every stream states its start and its
    duration, the length is the latest end minus the start. Otherwise a container that
    declares its duration from 0 (`_DECLARED_DURATION_FORMATS`) gives an end time, and
    anything else a length.
    """
    starts = [_optional_float(s.get("start_time")) for s in streams]
    start = _optional_float(fmt.get("start_time"))
    if start is None:
        start = min((s for s in starts if s is not None), default=0.0)
    reported = _float(fmt.get("duration"))
    ends: list[float] = []
    for stream, stream_start in zip(streams, starts, strict=True):
        length = _optional_float(stream.get("duration"))
        if stream_start is None or not length:
            ends = []
            break
        ends.append(stream_start + length)
    if ends:
        measured = max(ends) - start
        if measured > 0:
            return start, min(measured, reported) if reported > 0 else measured
    if not reported:
        reported = max((_float(s.get("duration")) for s in streams), default=0.0)
        return start, reported
    names = set((fmt.get("format_name") or "").split(","))
    if start > 0 and reported > start and names.intersection(_DECLARED_DURATION_FORMATS):
        return start, reported - start
    return start, reported


def parse_audio(stream: dict[str, Any]) -> AudioStream:
    return AudioStream(
        index=int(stream.get("index", 0)),
        codec=stream.get("codec_name") or "unknown",
        channels=_int(stream.get("channels")) or 0,
        sample_rate=_int(stream.get("sample_rate")) or 0,
        language=(_tag(stream, "language") or "und").lower(),
        bit_rate=_int(stream.get("bit_rate")),
        title=_tag(stream, "title"),
        start_time_s=_float(stream.get("start_time")),
        default=bool((stream.get("disposition") or {}).get("default")),
    )


def parse_probe(data: dict[str, Any], source: str = "") -> Probe:
    """Build a `Probe`; raises ProbeError when there is nothing to play."""
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    videos = [s for s in streams if s.get("codec_type") == "video" and not is_picture(s)]
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    if not videos and not audios:
        raise ProbeError(source, "no video or audio stream")
    video = parse_video(videos[0]) if videos else None
    start, duration = timeline(fmt, videos + audios)
    subtitles = [
        {"index": s.get("index"), "codec": s.get("codec_name"), "language": _tag(s, "language") or "und"}
        for s in streams
        if s.get("codec_type") == "subtitle"
    ]
    extra: dict[str, Any] = {}
    if len(videos) > 1:
        extra["video_streams"] = len(videos)
    if any(is_picture(s) for s in streams):
        extra["cover_art"] = True
    if subtitles:
        extra[SUBTITLE_STREAMS] = subtitles
    return Probe(
        format_name=fmt.get("format_name") or "",
        duration_s=duration,
        size_bytes=_int(fmt.get("size")) or 0,
        bit_rate=_int(fmt.get("bit_rate")),
        video=video,
        audio=tuple(parse_audio(s) for s in audios),
        extra=extra,
        start_time_s=start,
    )


def _tag(stream: dict[str, Any], name: str) -> str | None:
    # Matroska writes upper-case tag names (LANGUAGE, TITLE); MP4 lower-case.
    for key, value in (stream.get("tags") or {}).items():
        if key.lower() == name and value not in (None, ""):
            return str(value)
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float:
    return _optional_float(value) or 0.0


def _optional_float(value: Any) -> float | None:
    """ffprobe writes "N/A" (or leaves the key out) for unknown values."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
