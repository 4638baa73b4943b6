"""Subtitle renditions of a title: the source's embedded text streams plus the sidecar files
given at ingest, each cut into one WebVTT file per video segment and uploaded under the
version (`t0/1.vtt`, ...).

They are made before the encode (they need only the source and the predicted timeline, whose
segment durations are exact), joined to the predicted model and carried over into the
measured one. A stream or file that cannot be used is skipped with a log line and named in
the model's `extra["subtitles_skipped"]`: subtitles never fail a title. Bitmap streams (PGS,
DVB, DVD) cannot become WebVTT without OCR and are skipped the same way.

Sidecars are stored by ingest under the source's prefix (`sources/{id}/subtitles/`), already
validated and converted to WebVTT, with their options in `subtitles.json` beside them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import accumulate
from pathlib import Path
from typing import Any

from media import keys
from media.errors import ObjectNotFound
from media.probe import input_name, input_options, unsigned
from media.storage import Storage
from media.subtitles import Cue, SubtitleError, check_size, normalize_language, parse, segment, to_webvtt, validate
from packager.model import Presentation, Rendition, Segment
from transcoder.runner import run_captured

log = logging.getLogger("streamflix.subtitles")

TEXT_CODECS = frozenset({"mov_text", "subrip", "srt", "ass", "ssa", "webvtt", "text"})
BITMAP_CODECS = frozenset({"hdmv_pgs_subtitle", "dvb_subtitle", "dvd_subtitle", "xsub", "dvb_teletext"})
TIMESCALE = 1000
CODECS = "wvtt"  # RFC 6381 name of WebVTT; the model needs one, HLS CODECS leaves it out
EXTRACT_TIMEOUT_S = 120.0
SKIPPED = "subtitles_skipped"
WEBVTT_TYPE = "text/vtt; charset=utf-8"

LANGUAGE_NAMES = {
    "ar": "العربية", "cs": "Čeština", "da": "Dansk", "de": "Deutsch", "el": "Ελληνικά", "en": "English",
    "es": "Español", "fi": "Suomi", "fr": "Français", "he": "עברית", "hi": "हिन्दी", "hu": "Magyar",
    "it": "Italiano", "ja": "日本語", "ko": "한국어", "nl": "Nederlands", "no": "Norsk", "pl": "Polski",
    "pt": "Português", "ro": "Română", "ru": "Русский", "sv": "Svenska", "tr": "Türkçe", "uk": "Українська",
    "zh": "中文", "und": "Unknown",
}  # fmt: skip


@dataclass(frozen=True)
class Track:
    """One subtitle track to publish: its cues and how players should present it."""

    cues: tuple[Cue, ...]
    language: str
    name: str
    forced: bool = False
    sdh: bool = False
    origin: str = ""  # "stream 2", "sidecar film.fr.srt": for log lines and `extra`


def display_name(language: str, *, forced: bool = False, sdh: bool = False, title: str | None = None) -> str:
    """A menu label: the stream's own title if it has one, else the language's own name."""
    name = (title or "").strip() or LANGUAGE_NAMES.get(language.split("-")[0], language)
    if forced and "forced" not in name.lower():
        name += " (forced)"
    if sdh and "sdh" not in name.lower():
        name += " (SDH)"
    return name


# ---- sidecars (ingest side) -----------------------------------------------------------------

SIDECAR_FLAGS = ("forced", "sdh")


def read_sidecar(spec: str) -> Track:
    """`LANG:PATH[:forced][:sdh]` -> a validated track (the file read and checked now, so a bad
    one is refused before anything is stored or queued). Raises `SubtitleError`."""
    language, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise SubtitleError("bad_option", f"expected LANG:PATH[:forced][:sdh], got {spec!r}")
    flags: set[str] = set()
    while True:
        head, _, last = rest.rpartition(":")
        if head and last.lower() in SIDECAR_FLAGS:
            flags.add(last.lower())
            rest = head
        else:
            break
    language = normalize_language(language)
    path = Path(rest)
    try:
        check_size(path.stat().st_size)  # a huge file is refused before it is read
        data = path.read_bytes()
    except OSError as exc:
        raise SubtitleError("unreadable", f"cannot read {rest}: {exc.strerror or exc}") from None
    try:
        cues = parse(data)
    except SubtitleError as exc:
        raise SubtitleError(exc.code, f"{rest}: {exc.message}") from None
    forced, sdh = "forced" in flags, "sdh" in flags
    return Track(
        tuple(cues), language, display_name(language, forced=forced, sdh=sdh), forced, sdh, f"sidecar {path.name}"
    )


def sidecar_prefix(title_id: str) -> str:
    return keys.source_prefix(title_id) + "subtitles/"


def sidecar_index_key(title_id: str) -> str:
    return sidecar_prefix(title_id) + "subtitles.json"


async def store_sidecars(storage: Storage, title_id: str, tracks: Sequence[Track]) -> None:
    """Beside the source, so whichever worker takes the job reads them."""
    index = []
    for n, track in enumerate(tracks):
        key = f"{sidecar_prefix(title_id)}{n}.vtt"
        await storage.put_bytes(key, to_webvtt(track.cues).encode(), WEBVTT_TYPE)
        index.append(
            {"key": key, "language": track.language, "name": track.name, "forced": track.forced, "sdh": track.sdh}
        )
    if index:
        await storage.put_bytes(sidecar_index_key(title_id), json.dumps(index).encode(), "application/json")


async def load_sidecars(storage: Storage, title_id: str) -> list[Track]:
    try:
        index = json.loads(await storage.get_bytes(sidecar_index_key(title_id)))
    except ObjectNotFound:
        return []
    tracks = []
    for item in index:
        cues = parse(await storage.get_bytes(item["key"]))
        tracks.append(
            Track(tuple(cues), item["language"], item["name"], item["forced"], item["sdh"], f"sidecar {item['key']}")
        )
    return tracks


# ---- embedded streams ---------------------------------------------------------------------


async def _run(argv: list[str]) -> tuple[int, bytes, bytes]:
    try:
        return await run_captured(argv, timeout_s=EXTRACT_TIMEOUT_S)
    except TimeoutError:
        return -9, b"", b"timed out"  # killed (SIGKILL), as runner.run_captured leaves it


async def subtitle_streams(source: str, *, ffprobe: str = "ffprobe") -> list[dict[str, Any]]:
    """The source's subtitle streams in order (`0:s:N` is the N-th): codec, tags, disposition."""
    code, out, err = await _run(
        [ffprobe, "-v", "error", *input_options(source), "-select_streams", "s", "-show_streams", "-of", "json"]
        + [input_name(source)]
    )
    if code != 0:
        log.warning("cannot list subtitle streams: %s", unsigned(err.decode(errors="replace")).strip()[-200:])
        return []
    streams: list[dict[str, Any]] = json.loads(out or b"{}").get("streams", [])
    return streams


async def embedded_tracks(
    source: str, *, ffmpeg: str = "ffmpeg", ffprobe: str = "ffprobe"
) -> tuple[list[Track], list[str]]:
    """Text streams as tracks; the second list says what was skipped and why."""
    tracks: list[Track] = []
    skipped: list[str] = []
    for n, stream in enumerate(await subtitle_streams(source, ffprobe=ffprobe)):
        codec = stream.get("codec_name", "?")
        tags = stream.get("tags") or {}
        disposition = stream.get("disposition") or {}
        origin = f"stream 0:s:{n} ({codec})"
        if codec not in TEXT_CODECS:
            why = "bitmap subtitles need OCR" if codec in BITMAP_CODECS else "not a text subtitle codec"
            log.info("subtitles: %s skipped: %s", origin, why)
            skipped.append(f"{origin}: {why}")
            continue
        code, out, err = await _run(
            [ffmpeg, "-nostdin", "-v", "error", *input_options(source), "-i", input_name(source)]
            + ["-map", f"0:s:{n}", "-f", "webvtt", "-"]
        )
        try:
            if code != 0:
                reason = unsigned(err.decode(errors="replace")).strip()[-200:]
                raise SubtitleError("extract_failed", reason or "ffmpeg failed")
            cues = parse(out)
            try:
                language = normalize_language(tags.get("language") or "und")
            except SubtitleError:
                language = "und"
        except SubtitleError as exc:
            log.warning("subtitles: %s skipped: %s", origin, exc)
            skipped.append(f"{origin}: {exc}")
            continue
        forced = bool(disposition.get("forced"))
        sdh = bool(disposition.get("hearing_impaired"))
        name = display_name(language, forced=forced, sdh=sdh, title=tags.get("title"))
        tracks.append(Track(tuple(cues), language, name, forced, sdh, origin))
    return tracks, skipped


# ---- renditions ---------------------------------------------------------------------------


def video_boundaries(p: Presentation) -> tuple[list[Fraction], list[int]] | None:
    """Segment edges in seconds and durations in ms of the timeline subtitles follow: the
    first video rendition's (the audio's for an audio-only title)."""
    timeline = (p.video or p.audio or (None,))[0]
    if timeline is None:
        return None
    ticks = list(accumulate([timeline.start_time] + [s.duration for s in timeline.segments]))
    edges = [Fraction(t, timeline.timescale) for t in ticks]
    ms = [round(e * TIMESCALE) for e in edges]
    return edges, [b - a for a, b in zip(ms, ms[1:], strict=False)]


async def publish_tracks(
    storage: Storage, p: Presentation, tracks: Sequence[Track], *, first_index: int = 0
) -> tuple[list[Rendition], list[str]]:
    """Upload each track's segments under the version of `p`; renditions `t{first_index}`, ..."""
    timeline = video_boundaries(p)
    if timeline is None or not tracks:
        return [], []
    edges, durations = timeline
    renditions: list[Rendition] = []
    skipped: list[str] = []
    default_taken = any(r.default for r in p.subtitles)
    for track in tracks:
        try:
            validate(track.cues, allow_overlap=True, duration_s=float(edges[-1]))
        except SubtitleError as exc:
            log.warning("subtitles: %s skipped: %s", track.origin, exc)
            skipped.append(f"{track.origin}: {exc}")
            continue
        rid = f"t{first_index + len(renditions)}"
        files = [f.encode() for f in segment(track.cues, edges)]
        for number, data in enumerate(files, start=1):
            await storage.put_bytes(keys.object_key(p.title_id, p.version, f"{rid}/{number}.vtt"), data, WEBVTT_TYPE)
        sizes = [len(f) for f in files]
        total_s = sum(durations) / TIMESCALE
        peak = max(size * 8 * TIMESCALE // max(d, 1) for size, d in zip(sizes, durations, strict=True))
        # A forced track is the one players show unasked (HLS DEFAULT=YES, DASH Role main).
        default = track.forced and not default_taken
        default_taken = default_taken or default
        renditions.append(
            Rendition(
                id=rid,
                kind="subtitles",
                codecs=CODECS,
                bandwidth_peak=max(peak, 1),
                bandwidth_avg=max(round(sum(sizes) * 8 / total_s) if total_s else 1, 1),
                timescale=TIMESCALE,
                segments=tuple(Segment(d, s) for d, s in zip(durations, sizes, strict=True)),
                language=track.language,
                name=track.name,
                default=default,
                forced=track.forced,
                sdh=track.sdh,
            )
        )
    return renditions, skipped


async def add_subtitles(
    storage: Storage,
    predicted: Presentation,
    source: Path | str,
    *,
    embedded: bool = True,
    ffmpeg: str = "ffmpeg",
    ffprobe: str = "ffprobe",
) -> Presentation:
    """`predicted` with the title's subtitle renditions joined (embedded streams first, then
    sidecars). Never raises for a bad track; a storage failure does raise (a retry redoes it).
    `embedded=False`: the source's probe found no subtitle stream, so the source is not read
    again to list them (an ffprobe start, about 0.1 s before the first segment can begin)."""
    tracks, skipped = await embedded_tracks(str(source), ffmpeg=ffmpeg, ffprobe=ffprobe) if embedded else ([], [])
    try:
        sidecars = await load_sidecars(storage, predicted.title_id)
    except SubtitleError as exc:
        log.warning("subtitles: stored sidecars unreadable: %s", exc)
        sidecars, skipped = [], [*skipped, f"sidecars: {exc}"]
    renditions, more = await publish_tracks(storage, predicted, [*tracks, *sidecars])
    extra = dict(predicted.extra)
    if skipped or more:
        extra[SKIPPED] = [*skipped, *more]
    return dataclasses.replace(predicted, renditions=(*predicted.renditions, *renditions), extra=extra)


def carry_over(predicted: Presentation, measured: Presentation) -> Presentation:
    """The measured model with the predicted one's subtitle renditions (made before the encode,
    aligned with the same exact video timeline) and their skip list."""
    subs = predicted.subtitles
    if not subs and SKIPPED not in predicted.extra:
        return measured
    extra = dict(measured.extra)
    if SKIPPED in predicted.extra:
        extra[SKIPPED] = predicted.extra[SKIPPED]
    kept = tuple(r for r in measured.renditions if r.kind != "subtitles")
    return dataclasses.replace(measured, renditions=(*kept, *subs), extra=extra)
