"""Ladder planning: a pure function from a source's probe to the renditions to encode.

Rules:

- **Rungs are 16:9 boxes** named by their height: 2160, 1440, 1080, 720, 480, 360 (a
  portrait source uses the same boxes turned on their side, so a 1080x1920 phone clip gets a
  1080x1920 "v1080" rung and is judged by its short side, as players and stores label it). The
  source's *display* size (rotation applied) is fitted into each box with its aspect ratio
  kept. A rung exists only when the source fills its box in at least one dimension, so nothing
  is ever upscaled and the top rung is never taller (or wider) than the source. A 2.39:1
  1920x804 film therefore keeps a full-width 1920x804 "v1080" rung instead of dropping to 720.
- **A source between boxes keeps its own size as the top rung** when it is clearly larger (at
  least 1.44x the pixels, i.e. 1.2x per side) than the largest box it fills: 1919x1079 gives
  v1078 (1918x1078) over 720/480/360 rather than throwing away 55% of its pixels. Closer
  than that, the extra rung would cost an encode for no visible gain. A source smaller than the
  360 box gets exactly one rung at its own size.
- **Even dimensions** (4:2:0 chroma is subsampled by 2 in both directions), rounded to the
  nearest even number and never above the source.
- **Frame rate** is the source's (standard rates recognised despite rounding in the container),
  divided by the smallest integer that brings it to <= `max_fps` (120 -> 60, 119.88 -> 59.94,
  90 -> 45): whole-frame decimation keeps motion even, where 90 -> 60 would judder. A variable
  frame rate source is made constant at its average rate.
- **Keyframes every 2 s exactly** (`gop_frames = round(2 * fps)`), scene-cut keyframes off, so
  every rung has IDR frames at the same instants and segments align across rungs (Apple HLS
  authoring spec 1.x: "keyframes ... aligned across variants").
- **Segments of `segment_s` = 4 s** by default: a multiple of the 2 s GOP, so every segment
  starts on an IDR frame. Shorter than 6 s means a faster start and faster bitrate switching
  (a player needs about one segment to start and to switch), still a CDN-friendly request
  rate and within Apple's guidance (the spec's target is 6 s; 4 s is common practice, e.g.
  CMAF/DASH-IF ladders, and what low-start-latency services use).
- **Bitrates** from a table in the Apple HLS authoring spec's ballpark for H.264 (1080p 5 Mb/s,
  720p 3 Mb/s, 480p 1.2 Mb/s, 360p 0.7 Mb/s), interpolated by pixel count for non-16:9 or
  in-between sizes, x1.5 above 30 fps. maxrate is 1.5x the average (Apple: VOD peak should stay
  under 200% of the average) and the VBV buffer 2x the average (about 1.3 s at maxrate).
- **H.264 High, 8-bit 4:2:0** (`yuv420p`) for every rung, whatever the source (10-bit and
  4:2:2 are converted), at the lowest level from H.264 Table A-1 that fits the rung.
- **AV1 copies** (optional, `av1_heights`, the `STREAMFLIX_AV1_RUNGS` setting): for each height
  asked for whose H.264 rung exists, an AV1 rung of the same size and frame grid,
  "v720-av1", after the H.264 rungs (a height the source cannot fill is skipped, as its H.264
  rung is: never an upscale). Main profile 8-bit 4:2:0, at 0.6x the H.264 bitrates (AV1 needs
  roughly 30-50% fewer bits for the same quality), the lowest AV1 level (Annex A) that holds
  it. H.264 stays for every player that cannot decode AV1.
- **Interlaced sources** (ffprobe field order tt, bb, tb or bt) are deinterlaced before
  anything else, at their frame rate (see `transcoder.command`).
- **Audio**: every audio stream of the source becomes an AAC-LC stereo 128 kb/s 48 kHz
  rendition, "a0", "a1", ... in the source's audio stream order; a stream with 6 or more
  channels also gets a 5.1 AAC-LC 384 kb/s rendition beside it, "a0-51" (stereo stays, for
  devices without surround). Languages are the streams' tags as BCP 47 ("eng" -> "en"),
  "und" when absent, or the ingest's override by audio stream order; names are the stream's
  title, else the language's own name ("Français", "English 5.1"). The source's default
  stream (disposition default, else the first) is the default rendition; none when the
  source has no audio. An audio-only source gives a
  ladder with zero rungs (an audio-only title); a source with neither is rejected.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from media import languages
from media.probe_model import AudioStream, Probe, VideoStream
from transcoder.errors import SourceRejected

KEYFRAME_INTERVAL_S = 2
DEFAULT_SEGMENT_S = 4
DEFAULT_MAX_FPS = 60
PIX_FMT = "yuv420p"
PROFILE = "high"
H264 = "h264"
AV1 = "av1"
AV1_SUFFIX = "-av1"
AV1_PROFILE = "main"  # seq_profile 0: 8/10-bit 4:2:0
AV1_BITRATE_FACTOR = 0.6

# (box height, average video bit/s at <= 30 fps) for a 16:9 box of that height.
STANDARD_RUNGS: tuple[tuple[int, int], ...] = (
    (2160, 16_000_000),
    (1440, 9_000_000),
    (1080, 5_000_000),
    (720, 3_000_000),
    (480, 1_200_000),
    (360, 700_000),
)
HIGH_FPS_FACTOR = 1.5  # bitrate multiplier above 30 fps
MAXRATE_FACTOR = 1.5
BUFSIZE_FACTOR = 2.0
MIN_VIDEO_BITRATE = 100_000
# Add the source's own size as the top rung when it has this many times the pixels of the
# largest box it fills (1.2 per side).
NATIVE_RUNG_MIN_PIXEL_RATIO = 1.44

AUDIO_ID = "a0"
AUDIO_CODEC = "aac"  # AAC-LC, ffmpeg's native encoder
AUDIO_BITRATE = 128_000
AUDIO_CHANNELS = 2
AUDIO_SAMPLE_RATE = 48_000
SURROUND_CHANNELS = 6  # 5.1
SURROUND_BITRATE = 384_000
SURROUND_SUFFIX = "-51"

# Frame rates a container often stores rounded (29.97 as 2997/100, 23.976 as 2997/125).
STANDARD_FPS: tuple[Fraction, ...] = tuple(
    Fraction(f)
    for f in (
        "24000/1001",
        "24",
        "25",
        "30000/1001",
        "30",
        "48",
        "50",
        "60000/1001",
        "60",
        "100",
        "120000/1001",
        "120",
        "240",
    )
)
FALLBACK_FPS = Fraction(30)


@dataclass(frozen=True, kw_only=True)
class Rung:
    id: str  # "v1080": the box height (short side for portrait), or the native size
    width: int
    height: int
    video_bitrate: int  # bit/s, average target (-b:v)
    maxrate: int  # bit/s (-maxrate)
    bufsize: int  # bits (-bufsize)
    profile: str = PROFILE
    # H.264 level_idc (40 means 4.0); for AV1 the seq_level_idx (8 means 4.0).
    level: int
    codec: str = H264  # H264 (libx264) or AV1 (libsvtav1)

    @property
    def level_name(self) -> str:
        if self.codec == AV1:
            return f"{2 + self.level // 4}.{self.level % 4}"
        return f"{self.level // 10}.{self.level % 10}"


@dataclass(frozen=True, kw_only=True)
class AudioPlan:
    id: str = AUDIO_ID
    source_index: int  # absolute stream index in the source
    language: str  # as probed, "und" when unknown
    name: str | None = None
    codec: str = AUDIO_CODEC
    bitrate: int = AUDIO_BITRATE
    channels: int = AUDIO_CHANNELS
    sample_rate: int = AUDIO_SAMPLE_RATE
    default: bool = False  # the rendition a player picks when nothing else decides


@dataclass(frozen=True, kw_only=True)
class Ladder:
    # The H.264 rungs highest first, then the AV1 ones highest first; empty for an
    # audio-only source.
    rungs: tuple[Rung, ...]
    # Source audio stream order, a 5.1 rendition right after its stereo one; empty: no audio.
    audios: tuple[AudioPlan, ...]
    fps: str | None  # output frame rate, "30" or "30000/1001"; None without video
    gop_frames: int  # keyframe interval in frames; 0 without video
    segment_s: int
    video_source_index: int | None = None  # absolute stream index of the source's video
    # ffprobe field order of an interlaced source ("tt", "bb", "tb", "bt"): deinterlace first.
    deinterlace: str | None = None

    @property
    def audio(self) -> AudioPlan | None:
        """The default audio rendition (what a player starts with), None without audio."""
        return next((a for a in self.audios if a.default), self.audios[0] if self.audios else None)

    def audio_plan(self, audio_id: str) -> AudioPlan:
        for a in self.audios:
            if a.id == audio_id:
                return a
        raise ValueError(f"no audio rendition {audio_id!r} in the ladder")

    @property
    def h264_rungs(self) -> tuple[Rung, ...]:
        """The H.264 rungs, highest first: every player plays these."""
        return tuple(r for r in self.rungs if r.codec == H264)

    @property
    def av1_rungs(self) -> tuple[Rung, ...]:
        return tuple(r for r in self.rungs if r.codec == AV1)

    @property
    def rendition_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rungs) + tuple(a.id for a in self.audios)

    @property
    def fps_fraction(self) -> Fraction | None:
        return Fraction(self.fps) if self.fps else None


def plan_ladder(
    probe: Probe,
    *,
    segment_s: int = DEFAULT_SEGMENT_S,
    max_fps: float = DEFAULT_MAX_FPS,
    audio_languages: dict[int, str] | None = None,
    av1_heights: Iterable[int] = (),
    caps: dict[str, int] | None = None,
) -> Ladder:
    """Plan the renditions for `probe` (see the module docstring for the rules).

    `audio_languages`: BCP 47 tags by audio stream order (0 = the first audio stream) that
    replace the streams' own tags (the ingest's `--audio-lang`). `av1_heights`: the H.264
    rungs ("v720" for 720) that also get an AV1 copy; heights without an H.264 rung are skipped.

    Raises `SourceRejected` for a source that can never be transcoded: neither video nor
    audio, no duration, or a video stream without dimensions.
    """
    if segment_s <= 0 or segment_s % KEYFRAME_INTERVAL_S:
        raise ValueError(f"segment_s must be a positive multiple of {KEYFRAME_INTERVAL_S} s")
    if probe.video is None and not probe.audio:
        raise SourceRejected("source has neither a video nor an audio stream")
    if not probe.duration_s or probe.duration_s <= 0:
        raise SourceRejected("source has no duration (empty or unreadable)")

    audios = plan_audio(probe.audio, audio_languages or {})
    video = probe.video
    if video is None:
        return Ladder(rungs=(), audios=audios, fps=None, gop_frames=0, segment_s=segment_s)
    if video.width <= 0 or video.height <= 0:
        raise SourceRejected(f"video stream has no size ({video.width}x{video.height})")

    fps = output_fps(video, Fraction(max_fps).limit_denominator(1001))
    rungs = plan_rungs(video.display_width, video.display_height, fps)
    if caps is not None:
        rungs = apply_caps(rungs, caps, fps)
    return Ladder(
        rungs=rungs + av1_copies(rungs, av1_heights, fps),
        audios=audios,
        fps=_fraction_str(fps),
        gop_frames=round(KEYFRAME_INTERVAL_S * fps),
        segment_s=segment_s,
        video_source_index=video.index,
        deinterlace=video.field_order if video.interlaced else None,
    )


def plan_rungs(display_width: int, display_height: int, fps: Fraction) -> tuple[Rung, ...]:
    """The video rungs, highest first, for a source of this display size."""
    dw, dh = display_width, display_height
    portrait = dh > dw
    sizes: list[tuple[str, int, int]] = []
    for box_h, _ in STANDARD_RUNGS:
        box_w = _even(box_h * 16 / 9)
        bw, bh = (box_h, box_w) if portrait else (box_w, box_h)
        scale = min(bw / dw, bh / dh)
        if scale > 1:
            continue  # the source does not fill this box: it would be an upscale
        sizes.append((f"v{box_h}", _even_at_most(dw * scale, dw), _even_at_most(dh * scale, dh)))

    native_w, native_h = _even_at_most(dw, dw), _even_at_most(dh, dh)
    top_box_filled = bool(sizes) and sizes[0][0] == f"v{STANDARD_RUNGS[0][0]}"
    if not sizes or (
        not top_box_filled and sizes[0][1] * sizes[0][2] * NATIVE_RUNG_MIN_PIXEL_RATIO <= native_w * native_h
    ):
        sizes.insert(0, (f"v{min(native_w, native_h)}", native_w, native_h))

    factor = HIGH_FPS_FACTOR if fps > 31 else 1.0
    rungs = []
    for rung_id, w, h in sizes:
        bitrate = _round_to(_bitrate_for_pixels(w * h) * factor, 1000)
        maxrate = _round_to(bitrate * MAXRATE_FACTOR, 1000)
        bufsize = _round_to(bitrate * BUFSIZE_FACTOR, 1000)
        rungs.append(
            Rung(
                id=rung_id,
                width=w,
                height=h,
                video_bitrate=bitrate,
                maxrate=maxrate,
                bufsize=bufsize,
                level=h264_level(w, h, fps, maxrate=maxrate, bufsize=bufsize),
            )
        )
    return tuple(rungs)


def apply_caps(rungs: tuple[Rung, ...], caps: dict[str, int], fps: Fraction) -> tuple[Rung, ...]:
    """`rungs` restricted to the ids of `caps`, each at its cap as the average bit/s (maxrate
    1.5x and bufsize 2x of it, the level recomputed). A cap naming no rung is ignored, and an
    empty choice keeps the rungs as they are (never a title without video)."""
    out = []
    for r in rungs:
        if r.id not in caps:
            continue
        bitrate = max(MIN_VIDEO_BITRATE, int(caps[r.id]))
        maxrate = _round_to(bitrate * MAXRATE_FACTOR, 1000)
        bufsize = _round_to(bitrate * BUFSIZE_FACTOR, 1000)
        level = h264_level(r.width, r.height, fps, maxrate=maxrate, bufsize=bufsize)
        out.append(dataclasses.replace(r, video_bitrate=bitrate, maxrate=maxrate, bufsize=bufsize, level=level))
    return tuple(out) or rungs


def av1_copies(rungs: tuple[Rung, ...], heights: Iterable[int], fps: Fraction) -> tuple[Rung, ...]:
    """An AV1 rung beside each H.264 rung "v{height}" of `heights`, highest first."""
    wanted = {f"v{h}" for h in heights}
    out = []
    for r in rungs:
        if r.id not in wanted or r.codec != H264:
            continue
        bitrate = _round_to(r.video_bitrate * AV1_BITRATE_FACTOR, 1000)
        maxrate = _round_to(bitrate * MAXRATE_FACTOR, 1000)
        out.append(
            Rung(
                id=r.id + AV1_SUFFIX,
                width=r.width,
                height=r.height,
                video_bitrate=bitrate,
                maxrate=maxrate,
                bufsize=_round_to(bitrate * BUFSIZE_FACTOR, 1000),
                profile=AV1_PROFILE,
                level=av1_level(r.width, r.height, fps, maxrate=maxrate),
                codec=AV1,
            )
        )
    return tuple(out)


def parse_av1_heights(text: str | Iterable[str | int]) -> tuple[int, ...]:
    """Rung heights from "720,1080" (or its parts), highest first, each once; ValueError for
    anything but whole numbers from 100 to 4320."""
    parts = text.split(",") if isinstance(text, str) else [str(p) for p in text]
    heights = set()
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if not part.isdigit() or not 100 <= int(part) <= 4320:
            raise ValueError(f"{part!r} is not a rung height (a whole number such as 720)")
        heights.add(int(part))
    return tuple(sorted(heights, reverse=True))


def output_fps(video: VideoStream, max_fps: Fraction) -> Fraction:
    """The constant output frame rate: the source's, decimated by a whole factor to <= max."""
    src = source_fps(video)
    divisor = max(1, math.ceil(src / max_fps))
    return src / divisor


def source_fps(video: VideoStream) -> Fraction:
    fps: Fraction | None = None
    try:
        fps = Fraction(video.fps_fraction)
    except (ValueError, ZeroDivisionError, TypeError):
        pass
    if not fps or fps <= 0:
        fps = Fraction(video.fps).limit_denominator(1001) if video.fps > 0 else FALLBACK_FPS
    tolerance = 0.05 if video.variable_frame_rate else 0.005
    nearest = min(STANDARD_FPS, key=lambda s: abs(s - fps))
    if abs(nearest - fps) / nearest <= tolerance:
        return nearest
    return fps.limit_denominator(1001)


# H.264 Table A-1: (level_idc, MaxMBPS, MaxFS, MaxDpbMbs, MaxBR kbit/s, MaxCPB kbit).
# Starts at 3.0: everything below is smaller than our smallest useful rung anyway.
_LEVELS: tuple[tuple[int, int, int, int, int, int], ...] = (
    (30, 40_500, 1_620, 8_100, 10_000, 10_000),
    (31, 108_000, 3_600, 18_000, 14_000, 14_000),
    (32, 216_000, 5_120, 20_480, 20_000, 20_000),
    (40, 245_760, 8_192, 32_768, 20_000, 25_000),
    (41, 245_760, 8_192, 32_768, 50_000, 62_500),
    (42, 522_240, 8_704, 34_816, 50_000, 62_500),
    (50, 589_824, 22_080, 110_400, 135_000, 135_000),
    (51, 983_040, 36_864, 184_320, 240_000, 240_000),
    (52, 2_073_600, 36_864, 184_320, 240_000, 240_000),
)
_HIGH_BR_FACTOR = 1.25  # Table A-2: cpbBrVclFactor 1250 for High vs 1000 for Baseline/Main
_DPB_FRAMES = 4  # room for x264's references + B-pyramid up to preset "medium"


def h264_level(width: int, height: int, fps: Fraction, *, maxrate: int, bufsize: int) -> int:
    """The lowest H.264 level (level_idc) whose Table A-1 limits hold this stream."""
    w_mbs, h_mbs = math.ceil(width / 16), math.ceil(height / 16)
    frame_mbs = w_mbs * h_mbs
    for level, max_mbps, max_fs, max_dpb, max_br, max_cpb in _LEVELS:
        side = math.isqrt(8 * max_fs)  # A.3.1 (f): neither side above sqrt(8 * MaxFS) MBs
        if (
            frame_mbs <= max_fs
            and w_mbs <= side
            and h_mbs <= side
            and frame_mbs * fps <= max_mbps
            and frame_mbs * _DPB_FRAMES <= max_dpb
            and maxrate <= max_br * 1000 * _HIGH_BR_FACTOR
            and bufsize <= max_cpb * 1000 * _HIGH_BR_FACTOR
        ):
            return level
    return _LEVELS[-1][0]


# AV1 Annex A.3: (seq_level_idx, MaxPicSize, MaxHSize, MaxVSize, MaxDisplayRate, main tier
# MaxBitrate in bit/s). 2.2, 2.3, 3.2, 3.3 and 4.2, 4.3 are reserved.
_AV1_LEVELS: tuple[tuple[int, int, int, int, int, int], ...] = (
    (0, 147_456, 2_048, 1_152, 4_423_680, 1_500_000),
    (1, 278_784, 2_816, 1_584, 8_363_520, 3_000_000),
    (4, 665_856, 4_352, 2_448, 19_975_680, 6_000_000),
    (5, 1_065_024, 5_504, 3_096, 31_950_720, 10_000_000),
    (8, 2_359_296, 6_144, 3_456, 70_778_880, 12_000_000),
    (9, 2_359_296, 6_144, 3_456, 141_557_760, 20_000_000),
    (12, 8_912_896, 8_192, 4_352, 267_386_880, 30_000_000),
    (13, 8_912_896, 8_192, 4_352, 534_773_760, 40_000_000),
    (14, 8_912_896, 8_192, 4_352, 1_069_547_520, 60_000_000),
    (15, 8_912_896, 8_192, 4_352, 1_069_547_520, 60_000_000),
    (16, 35_651_584, 16_384, 8_704, 1_069_547_520, 60_000_000),
)


def av1_level(width: int, height: int, fps: Fraction, *, maxrate: int) -> int:
    """The lowest AV1 seq_level_idx (main tier) whose Annex A limits hold this stream."""
    for level, max_pic, max_h, max_v, max_rate, max_br in _AV1_LEVELS:
        if (
            width * height <= max_pic
            and width <= max_h
            and height <= max_v
            and width * height * fps <= max_rate
            and maxrate <= max_br
        ):
            return level
    return _AV1_LEVELS[-1][0]


def av1_codecs(level: int, bit_depth: int = 8) -> str:
    """RFC 6381 string of an AV1 rung (AV1 Codec ISO Media File Format Binding, "Codecs
    Parameter String"): av01.P.LLT.DD, profile 0 (main), seq_level_idx, tier M, bit depth."""
    return f"av01.0.{level:02d}M.{bit_depth:02d}"


def plan_audio(streams: tuple[AudioStream, ...], overrides: dict[int, str]) -> tuple[AudioPlan, ...]:
    """One stereo rendition per source audio stream, plus a 5.1 one beside each surround
    stream; the source's default stream (else the first) is the default rendition."""
    default = next((i for i, s in enumerate(streams) if s.default), 0)
    plans: list[AudioPlan] = []
    for order, stream in enumerate(streams):
        language = overrides.get(order) or languages.to_bcp47(stream.language)
        name = stream.title or languages.display_name(language)
        if language == languages.UNDETERMINED and not stream.title:
            name = "Main" if order == 0 else f"Audio {order + 1}"
        plans.append(AudioPlan(id=f"a{order}", source_index=stream.index, language=language, name=name,
                               default=order == default))  # fmt: skip
        if stream.channels >= SURROUND_CHANNELS:
            plans.append(
                AudioPlan(
                    id=f"a{order}{SURROUND_SUFFIX}",
                    source_index=stream.index,
                    language=language,
                    name=f"{name} 5.1",
                    bitrate=SURROUND_BITRATE,
                    channels=SURROUND_CHANNELS,
                )
            )
    return tuple(plans)


def _bitrate_for_pixels(pixels: int) -> float:
    """Average bit/s by pixel count, linear between the table's 16:9 sizes."""
    points = sorted((_even(h * 16 / 9) * h, rate) for h, rate in STANDARD_RUNGS)
    if pixels <= points[0][0]:
        return max(MIN_VIDEO_BITRATE, points[0][1] * pixels / points[0][0])
    for (p0, r0), (p1, r1) in itertools.pairwise(points):
        if pixels <= p1:
            return r0 + (r1 - r0) * (pixels - p0) / (p1 - p0)
    p_top, r_top = points[-1]
    return r_top * pixels / p_top


def _even(x: float) -> int:
    return max(2, 2 * round(x / 2))


def _even_at_most(x: float, limit: int) -> int:
    return max(2, min(_even(x), limit - limit % 2))


def _round_to(x: float, step: int) -> int:
    return int(round(x / step) * step)


def _fraction_str(f: Fraction) -> str:
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"
