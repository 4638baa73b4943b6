"""Typed ffprobe result. Stored with the title (JSON) so nothing probes a source twice.

`media.probe.probe(path)` fills it from ffprobe; this module is pure data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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


@dataclass(frozen=True)
class Probe:
    format_name: str
    duration_s: float
    size_bytes: int
    bit_rate: int | None
    video: VideoStream | None
    audio: tuple[AudioStream, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Probe:
        video = VideoStream(**data["video"]) if data.get("video") else None
        audio = tuple(AudioStream(**a) for a in data.get("audio", ()))
        return cls(**{**data, "video": video, "audio": audio})
