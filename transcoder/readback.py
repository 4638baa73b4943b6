"""Read the encoder's output back into the rendition model (`packager.model.Presentation`).

Everything the packager states about a rendition is measured from the files, not assumed
from what ffmpeg was asked for: the codec string from the init segment's sample entry, the
timescale from mdhd, each segment's exact duration (ticks) from its moof and its size from
the file, and the peak/average bitrates from those sizes and durations (the Apple HLS
authoring spec 1.x wants BANDWIDTH and AVERAGE-BANDWIDTH measured, within 10%).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from packager.model import INIT_NAME, SEGMENT_EXT, Presentation, Rendition, Segment
from transcoder import mp4
from transcoder.errors import TranscodeError
from transcoder.ladder import Ladder


@dataclass(frozen=True)
class ScannedRendition:
    init: mp4.InitInfo
    segments: tuple[mp4.SegmentInfo, ...]
    sizes: tuple[int, ...]


async def read_back(out_dir: Path, ladder: Ladder, *, title_id: str, version: str) -> Presentation:
    """The Presentation for the renditions of `ladder` found under `out_dir`.

    Raises `TranscodeError` when a rendition is missing, has no segments or a gap in its
    numbering, a box cannot be parsed, or a video segment does not start with a keyframe.
    """
    return await asyncio.to_thread(_read_back, Path(out_dir), ladder, title_id, version)


def _read_back(out_dir: Path, ladder: Ladder, title_id: str, version: str) -> Presentation:
    renditions: list[Rendition] = []
    for rung in ladder.rungs:
        scan = scan_rendition(out_dir / rung.id)
        if scan.init.handler != "vide":
            raise TranscodeError(f"{rung.id}: init segment holds a {scan.init.handler!r} track")
        for number, seg in enumerate(scan.segments, start=1):
            if not seg.first_sample_is_sync:
                raise TranscodeError(f"{rung.id}/{number}{SEGMENT_EXT} does not start with a keyframe")
        renditions.append(
            _rendition(
                rung.id,
                "video",
                scan,
                width=scan.init.width or rung.width,
                height=scan.init.height or rung.height,
                frame_rate=ladder.fps,
            )
        )
    if ladder.audio:
        a = ladder.audio  # the one-pass encode makes the default audio only
        scan = scan_rendition(out_dir / a.id)
        if scan.init.handler != "soun":
            raise TranscodeError(f"{a.id}: init segment holds a {scan.init.handler!r} track")
        renditions.append(
            _rendition(
                a.id,
                "audio",
                scan,
                language=a.language,
                name=audio_name(a.name, a.language),
                channels=scan.init.channels or a.channels,
                sample_rate=scan.init.sample_rate or a.sample_rate,
                default=True,
            )
        )
    if not renditions:
        raise TranscodeError("ladder has no renditions")
    main = renditions[0]  # the top video rung, or the audio of an audio-only title
    return Presentation(
        title_id=title_id,
        version=version,
        duration_s=round(main.duration_s, 6),
        segment_target_s=ladder.segment_s,
        renditions=tuple(renditions),
    )


def scan_rendition(folder: Path) -> ScannedRendition:
    """Parse `folder/init.mp4` and `folder/1.m4s, 2.m4s, ...` (numbered without gaps)."""
    init_path = folder / INIT_NAME
    if not init_path.is_file():
        raise TranscodeError(f"{folder.name}: no {INIT_NAME} was written")
    numbers = sorted(int(p.stem) for p in folder.glob(f"*{SEGMENT_EXT}") if p.stem.isdigit())
    if not numbers:
        raise TranscodeError(f"{folder.name}: no media segments were written")
    if numbers != list(range(1, len(numbers) + 1)):
        raise TranscodeError(f"{folder.name}: segment numbers are not 1..{len(numbers)}")
    try:
        init = mp4.parse_init(init_path.read_bytes())
        segments, sizes = [], []
        for n in numbers:
            data = (folder / f"{n}{SEGMENT_EXT}").read_bytes()
            segments.append(mp4.parse_segment(data, init.defaults))
            sizes.append(len(data))
    except mp4.Mp4Error as exc:
        raise TranscodeError(f"{folder.name}: unreadable output ({exc})") from exc
    return ScannedRendition(init, tuple(segments), tuple(sizes))


def _rendition(rendition_id: str, kind: Literal["video", "audio"], scan: ScannedRendition, **fields) -> Rendition:
    timescale = scan.init.timescale
    durations = [s.duration for s in scan.segments]
    if timescale <= 0 or any(d <= 0 for d in durations):
        raise TranscodeError(f"{rendition_id}: segment with no duration")
    peak = max(size * 8 * timescale / d for size, d in zip(scan.sizes, durations, strict=True))
    avg = sum(scan.sizes) * 8 * timescale / sum(durations)
    return Rendition(
        id=rendition_id,
        kind=kind,
        codecs=scan.init.codec,
        bandwidth_peak=math.ceil(peak),
        bandwidth_avg=math.ceil(avg),
        timescale=timescale,
        segments=tuple(
            Segment(
                duration=d,
                size=s,
                key_offset=info.key_offset if kind == "video" else None,
                key_size=info.key_size if kind == "video" else None,
            )
            for d, s, info in zip(durations, scan.sizes, scan.segments, strict=True)
        ),
        start_number=1,
        start_time=scan.segments[0].base_decode_time,
        **fields,
    )


def audio_name(title: str | None, language: str) -> str:
    """What a player's audio menu shows (HLS NAME): the stream's own title, else its
    language tag, else "Main" rather than the bare "und" of an untagged source."""
    if title:
        return title
    return language if language and language != "und" else "Main"
