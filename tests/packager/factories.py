"""Sample rendition models for tests (reusable by other packages' tests).

Durations are given in seconds and converted to exact ticks; audio segments follow AAC's
1024-sample frames, so they wobble around the video boundaries as real encodes do.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from packager.model import Presentation, Rendition, Segment

VIDEO_TIMESCALE = 15360  # ffmpeg's mp4 muxer default for 30 fps
AUDIO_TIMESCALE = 48000
AAC_FRAME = 1024

# (id, width, height, codecs, peak bit/s, average bit/s)
LADDER = (
    ("v1080", 1920, 1080, "avc1.640028", 6_200_000, 4_800_000),
    ("v720", 1280, 720, "avc1.64001f", 3_400_000, 2_700_000),
    ("v480", 854, 480, "avc1.64001e", 1_600_000, 1_250_000),
    ("v360", 640, 360, "avc1.64001e", 900_000, 700_000),
)


def ticks(durations_s, timescale: int) -> list[int]:
    """Exact ticks per segment; raises if a duration is not a whole number of ticks."""
    out = []
    for d in durations_s:
        t = Fraction(str(d)) * timescale
        if t.denominator != 1:
            raise ValueError(f"{d} s is not a whole number of 1/{timescale} ticks")
        out.append(int(t))
    return out


def segments(tick_durations, bitrate: int = 1_000_000, timescale: int = VIDEO_TIMESCALE) -> tuple[Segment, ...]:
    return tuple(Segment(duration=d, size=d * bitrate // timescale // 8) for d in tick_durations)


def video(
    rid: str = "v720",
    width: int = 1280,
    height: int = 720,
    *,
    codecs: str = "avc1.64001f",
    peak: int = 3_400_000,
    avg: int = 2_700_000,
    durations_s=(4, 4, 4, 4, 2.5),
    timescale: int = VIDEO_TIMESCALE,
    frame_rate: str | None = "30",
    start_number: int = 1,
    start_time: int = 0,
) -> Rendition:
    return Rendition(
        id=rid,
        kind="video",
        codecs=codecs,
        bandwidth_peak=peak,
        bandwidth_avg=avg,
        timescale=timescale,
        segments=segments(ticks(durations_s, timescale), avg, timescale),
        start_number=start_number,
        start_time=start_time,
        width=width,
        height=height,
        frame_rate=frame_rate,
    )


def aac_ticks(durations_s) -> list[int]:
    """Audio segment durations cut at the AAC frame nearest each video boundary."""
    out, edge_s, edge_frames = [], Fraction(0), 0
    for d in durations_s:
        edge_s += Fraction(str(d))
        frames = round(edge_s * AUDIO_TIMESCALE / AAC_FRAME)
        out.append((frames - edge_frames) * AAC_FRAME)
        edge_frames = frames
    return out


def audio(
    rid: str = "a0",
    *,
    language: str | None = "en",
    name: str | None = "English",
    peak: int = 132_000,
    avg: int = 128_000,
    durations_s=(4, 4, 4, 4, 2.5),
    channels: int | None = 2,
    sample_rate: int | None = AUDIO_TIMESCALE,
    default: bool = False,
    codecs: str = "mp4a.40.2",
    start_number: int = 1,
) -> Rendition:
    return Rendition(
        id=rid,
        kind="audio",
        codecs=codecs,
        bandwidth_peak=peak,
        bandwidth_avg=avg,
        timescale=AUDIO_TIMESCALE,
        segments=segments(aac_ticks(durations_s), avg, AUDIO_TIMESCALE),
        start_number=start_number,
        language=language,
        name=name,
        channels=channels,
        sample_rate=sample_rate,
        default=default,
    )


def presentation(*renditions: Rendition, complete: bool = True, segment_target_s: int = 4) -> Presentation:
    longest = max((r.duration_s for r in renditions if r.timescale > 0), default=0.0)
    return Presentation(
        title_id="t1",
        version="v1",
        duration_s=longest,
        segment_target_s=segment_target_s,
        renditions=tuple(renditions),
        complete=complete,
    )


def ladder_video(durations_s=(4, 4, 4, 4, 2.5), **kw) -> tuple[Rendition, ...]:
    return tuple(
        video(rid, w, h, codecs=c, peak=peak, avg=avg, durations_s=durations_s, **kw)
        for rid, w, h, c, peak, avg in LADDER
    )


# ---- the golden presentations ----------------------------------------------------------


def ladder() -> Presentation:
    """1080/720/480/360 + one English stereo AAC track, 18.5 s in 4 s segments."""
    return presentation(*ladder_video(), audio())


def video_only() -> Presentation:
    return presentation(*ladder_video()[1:4:2])  # v720, v360


def audio_only() -> Presentation:
    """A podcast-like title: two languages, the second marked default."""
    return presentation(
        audio("a0", language="en", name="English", peak=132_000, avg=128_000),
        audio("a1", language="fr", name="Français", peak=68_000, avg=64_000, default=True),
    )


MIXED_S = (4.004, 4.004, 3.9, 4.5, 4.004, 1.001)


def mixed_durations() -> Presentation:
    """NTSC 30000/1001 with irregular cuts: 4.004 / 3.9 / a 4.5 s that rounds half up to 5."""
    return presentation(
        video("v720", 1280, 720, durations_s=MIXED_S, timescale=30000, frame_rate="30000/1001"),
        video(
            "v360",
            640,
            360,
            codecs="avc1.64001e",
            peak=900_000,
            avg=700_000,
            durations_s=MIXED_S,
            timescale=30000,
            frame_rate="30000/1001",
        ),
        audio(durations_s=MIXED_S),
    )


def event() -> Presentation:
    """The fast first pass: lowest rung only, still publishing, 2.002 s segments so far."""
    return presentation(
        video(
            "v360",
            640,
            360,
            codecs="avc1.64001e",
            peak=900_000,
            avg=700_000,
            durations_s=(2.002, 2.002, 2.002),
            timescale=30000,
            frame_rate="30000/1001",
        ),
        audio(durations_s=(2.002, 2.002, 2.002)),
        complete=False,
    )


def with_key_samples(r: Rendition, header: int = 800) -> Rendition:
    """`r` with each segment's key sample recorded: after a `header`-byte moof, a third of it."""
    return replace(
        r, segments=tuple(replace(s, key_offset=header, key_size=max(1, s.size // 3 - header)) for s in r.segments)
    )


def thumbnails(
    duration_s=18.5, *, interval_s: int = 2, tiles: str = "5x5", tile_w: int = 160, tile_h: int = 90, rid: str = "th"
) -> Rendition:
    """Sprite sheets of `tiles` thumbnails every `interval_s` over `duration_s` (ms ticks)."""
    columns, rows = (int(n) for n in tiles.split("x"))
    full = interval_s * 1000 * columns * rows
    total = int(Fraction(str(duration_s)) * 1000)
    durations = [full] * (total // full) + ([total % full] if total % full else [])
    return Rendition(
        id=rid,
        kind="image",
        codecs="jpeg",
        bandwidth_peak=40_000,
        bandwidth_avg=30_000,
        timescale=1000,
        segments=tuple(Segment(duration=d, size=60_000) for d in durations),
        width=tile_w * columns,
        height=tile_h * rows,
        tiles=tiles,
        tile_duration=interval_s * 1000,
    )


def trickplay() -> Presentation:
    """Two rungs whose segments know their key samples, one audio track, thumbnails."""
    v720, v360 = (with_key_samples(r) for r in ladder_video()[1:4:2])
    return presentation(v720, v360, audio(), thumbnails())


GOLDEN = {
    "ladder": ladder,
    "video_only": video_only,
    "audio_only": audio_only,
    "mixed": mixed_durations,
    "event": event,
    "trickplay": trickplay,
}
