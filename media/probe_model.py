"""Typed ffprobe result. Stored with the title (JSON) so nothing probes a source twice.

`media.probe.probe(path)` fills it from ffprobe; this module is pure data.

`PROBE_MODEL` numbers the stored shape. A stored probe from an older shape (which, for
instance, kept a broadcast capture's end time as its duration and knew nothing of start
offsets or field order) is refused by `Probe.from_dict` with `StaleProbe`, so the caller
probes the source again instead of misreading it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# 2: start offsets (container and per stream), the real duration, the video field order.
PROBE_MODEL = 2
# ffprobe field_order values that mean the picture is made of two fields.
INTERLACED_FIELD_ORDERS = frozenset({"tt", "bb", "tb", "bt"})
# `Probe.extra` key of the source's subtitle streams (index, codec, language), when it has any.
SUBTITLE_STREAMS = "subtitles"


class StaleProbe(ValueError):
    """A stored probe from an older `PROBE_MODEL`: probe the source again."""


@dataclass(frozen=True)
class VideoStream:
    index: int
    codec: str  # ffprobe codec_name: "h264", "hevc", "prores", ...
    width: int  # coded width, before rotation
    height: int
    fps: float  # average frame rate (avg_frame_rate), 0.0 when unknown
    fps_fraction: str  # "30000/1001" as reported
    rotation: int  # degrees, normalised to 0/90/180/270 (display matrix / rotate tag)
    pix_fmt: str  # "yuv420p", "yuv420p10le", "yuv422p", ...
    bit_depth: int  # 8, 10, 12
    variable_frame_rate: bool  # r_frame_rate != avg_frame_rate
    bit_rate: int | None = None
    start_time_s: float = 0.0  # ffprobe start_time: where this stream begins in the source's timeline
    field_order: str = "unknown"  # ffprobe field_order: progressive, tt, bb, tb, bt or unknown

    @property
    def interlaced(self) -> bool:
        return self.field_order in INTERLACED_FIELD_ORDERS

    @property
    def display_width(self) -> int:
        return self.height if self.rotation in (90, 270) else self.width

    @property
    def display_height(self) -> int:
        return self.width if self.rotation in (90, 270) else self.height


@dataclass(frozen=True)
class AudioStream:
    index: int
    codec: str
    channels: int
    sample_rate: int
    language: str  # ISO 639 tag from the stream, "und" when absent
    bit_rate: int | None = None
    title: str | None = None
    start_time_s: float = 0.0  # ffprobe start_time of this stream
    default: bool = False  # disposition "default": the source's own choice of audio track


@dataclass(frozen=True)
class Probe:
    format_name: str
    duration_s: float  # the real length: from the earliest stream start to the latest end
    size_bytes: int
    bit_rate: int | None
    video: VideoStream | None
    audio: tuple[AudioStream, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    start_time_s: float = 0.0  # the container's start_time (the earliest stream start)
    model: int = PROBE_MODEL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Probe:
        """Raises `StaleProbe` for a probe stored by an older model (re-probe it)."""
        if data.get("model") != PROBE_MODEL:
            raise StaleProbe(f"stored probe model {data.get('model')!r}, current {PROBE_MODEL}")
        video = VideoStream(**data["video"]) if data.get("video") else None
        audio = tuple(AudioStream(**a) for a in data.get("audio", ()))
        return cls(**{**data, "video": video, "audio": audio})
