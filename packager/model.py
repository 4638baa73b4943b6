"""The rendition model: everything the packager needs to describe one title version.

Written by the transcoder as JSON (the last object of a version, so its presence means the
version is complete), read by the server, rendered by `packager.hls` / `packager.dash`.

Storage layout of a version (keys relative to the version prefix, see `media.keys`):
    model.json
    {rendition.id}/init.mp4            video and audio (fMP4/CMAF)
    {rendition.id}/{number}.m4s        number = start_number, start_number + 1, ...
    {rendition.id}/{number}.vtt        subtitles: one WebVTT file per segment, no init
    {rendition.id}/{number}.jpg        image (thumbnails): one JPEG sprite sheet per segment
    {rendition.id}/thumbnails.vtt      image: the WebVTT index, rendered per viewer (not stored)
    {rendition.id}/iframes.m3u8        video: the HLS I-frame playlist, rendered (not stored)
    {rendition.id}/download.mp4        download: one progressive MP4, no segments served

Segment timing is kept in integer ticks of each rendition's timescale so DASH timelines are
exact and EXTINF values are derived, never accumulated floats. Segment start times are the sum
of the preceding durations from `start_time` (derived from the model, not from one ffmpeg
process's counters, so a title can later be stitched from chunks).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

MODEL_VERSION = 1
INIT_NAME = "init.mp4"
SEGMENT_EXT = ".m4s"
DOWNLOAD_NAME = "download.mp4"

Kind = Literal["video", "audio", "subtitles", "image", "download"]
KINDS: tuple[str, ...] = ("video", "audio", "subtitles", "image", "download")
# The file name extension of a rendition's segments, by kind.
SEGMENT_EXTS: dict[str, str] = {
    "video": SEGMENT_EXT,
    "audio": SEGMENT_EXT,
    "subtitles": ".vtt",
    "image": ".jpg",
    "download": ".mp4",
}


@dataclass(frozen=True)
class Segment:
    duration: int  # ticks of the rendition's timescale
    size: int  # bytes
    # video: the byte range of the segment's first (key) sample inside the segment file, read
    # from its first moof/trun; an HLS I-frame playlist points at bytes 0 to its end (the moof
    # that describes it, then the sample). None in models written before it was recorded.
    key_offset: int | None = None
    key_size: int | None = None

    @property
    def key_end(self) -> int | None:
        """Bytes from the segment's start through its key sample, when they are known."""
        if self.key_offset is None or self.key_size is None:
            return None
        return self.key_offset + self.key_size


@dataclass(frozen=True)
class Rendition:
    id: str  # path-safe: [a-z0-9_-]+, e.g. "v1080", "a0"
    kind: Kind
    codecs: str  # RFC 6381: "avc1.640028", "mp4a.40.2"
    bandwidth_peak: int  # bits/s, the highest per-segment rate measured from segment sizes
    bandwidth_avg: int  # bits/s, total bits / total duration
    timescale: int
    segments: tuple[Segment, ...]
    start_number: int = 1
    start_time: int = 0  # ticks; presentation time of the first segment
    # video
    width: int | None = None
    height: int | None = None
    frame_rate: str | None = None  # "30", "30000/1001"
    # audio
    language: str | None = None  # BCP 47 ("en", "und")
    name: str | None = None
    channels: int | None = None
    sample_rate: int | None = None
    default: bool = False
    # subtitles: forced (only the lines translating foreign speech or signs; a player shows
    # them unasked) and SDH (captions that also describe sounds, for deaf or hard-of-hearing
    # viewers). Both default False so model.json files written before them still load.
    forced: bool = False
    sdh: bool = False
    # image (thumbnails): each segment is one sprite sheet of `tiles` ("5x5": columns x rows)
    # thumbnails, each standing for `tile_duration` ticks from the sheet's start, left to
    # right then top to bottom; `width`/`height` are the whole sheet's (DASH-IF IOP 6.2.6).
    # The last sheet may hold fewer (its segment is shorter). None for every other kind.
    tiles: str | None = None
    tile_duration: int | None = None

    @property
    def init_name(self) -> str:
        return f"{self.id}/{INIT_NAME}"

    @property
    def segment_ext(self) -> str:
        return SEGMENT_EXTS[self.kind]

    def segment_name(self, number: int) -> str:
        if self.kind == "download":
            return f"{self.id}/{DOWNLOAD_NAME}"  # its one segment is the whole file
        return f"{self.id}/{number}{self.segment_ext}"

    @property
    def has_init(self) -> bool:
        return self.kind in ("video", "audio")

    def object_names(self) -> list[str]:
        """Every object (relative to the version) this rendition references: its init
        segment when its kind has one, then its segments."""
        names = [self.init_name] if self.has_init else []
        return names + [self.segment_name(self.start_number + i) for i in range(len(self.segments))]

    @property
    def duration_s(self) -> float:
        return sum(s.duration for s in self.segments) / self.timescale

    def segment_seconds(self) -> list[float]:
        return [s.duration / self.timescale for s in self.segments]

    @property
    def grid(self) -> tuple[int, int]:
        """(columns, rows) of an image rendition's sheets; (1, 1) when it has no `tiles`."""
        if not self.tiles:
            return (1, 1)
        columns, _, rows = self.tiles.partition("x")
        return int(columns), int(rows)

    @property
    def has_iframes(self) -> bool:
        """A video rendition whose every segment knows its key sample's byte range."""
        return self.kind == "video" and all(s.key_end is not None for s in self.segments)


@dataclass(frozen=True)
class Presentation:
    title_id: str
    version: str
    duration_s: float
    segment_target_s: int  # the nominal segment duration the encoder was asked for
    renditions: tuple[Rendition, ...]
    # False while a title is still being published segment by segment (an EVENT playlist);
    # True once the last segment is in (VOD, EXT-X-ENDLIST, static MPD).
    complete: bool = True
    # True while the version is still being encoded chunk by chunk: the timeline is complete
    # (every segment is listed with its exact duration, playlists are VOD), but some segments
    # are not in storage yet, and bitrates are the encoder's caps, not measurements. A request
    # for a missing segment waits for it. The last chunk replaces the model with a measured
    # one where this is False.
    progressive: bool = False
    model_version: int = MODEL_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def video(self) -> tuple[Rendition, ...]:
        return tuple(r for r in self.renditions if r.kind == "video")

    @property
    def audio(self) -> tuple[Rendition, ...]:
        return tuple(r for r in self.renditions if r.kind == "audio")

    @property
    def subtitles(self) -> tuple[Rendition, ...]:
        return tuple(r for r in self.renditions if r.kind == "subtitles")

    @property
    def images(self) -> tuple[Rendition, ...]:
        return tuple(r for r in self.renditions if r.kind == "image")

    @property
    def downloads(self) -> tuple[Rendition, ...]:
        return tuple(r for r in self.renditions if r.kind == "download")

    def rendition(self, rendition_id: str) -> Rendition | None:
        for r in self.renditions:
            if r.id == rendition_id:
                return r
        return None

    # ---- JSON ---------------------------------------------------------------------------

    def to_json(self) -> str:
        data = asdict(self)
        for r in data["renditions"]:
            # A segment's optional fields are left out when unknown: a long title's model
            # stays small, and one without them reads as before.
            r["segments"] = [{k: v for k, v in s.items() if v is not None} for s in r["segments"]]
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Presentation:
        data = json.loads(text)
        if data.get("model_version") != MODEL_VERSION:
            raise ValueError(f"unsupported rendition model version {data.get('model_version')!r}")
        renditions = tuple(
            Rendition(**{**r, "segments": tuple(Segment(**s) for s in r["segments"])}) for r in data["renditions"]
        )
        return cls(**{**data, "renditions": renditions})
