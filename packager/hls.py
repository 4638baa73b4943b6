"""HLS playlists (RFC 8216) rendered from the rendition model. Pure: values in, text out."""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction

from packager.checks import check_presentation, find_rendition
from packager.errors import InvalidPresentation, RenditionNotFound
from packager.model import Presentation, Rendition
from packager.timing import decimal, parse_frame_rate, round_half_up, seconds
from packager.uris import UriBuilder

AUDIO_GROUP = "aud"
SUBTITLES_GROUP = "subs"
# Apple's HLS authoring spec: SDH subtitles carry both characteristics.
SDH_CHARACTERISTICS = "public.accessibility.describes-spoken-dialog,public.accessibility.describes-music-and-sound"

# RFC 8216 section 7: EXT-X-MAP in a Media Playlist without EXT-X-I-FRAMES-ONLY needs version 6
# (floating-point EXTINF needs 3). Every media playlist here has an EXT-X-MAP (fMP4/CMAF).
MEDIA_VERSION = 6
# Nothing in the multivariant playlist itself needs more than version 1, but section 4.3.1.2
# makes EXT-X-VERSION cover "its associated media": the fMP4 media playlists need 6, so a
# client that stops below 6 cannot play any variant anyway. Same number in both keeps it simple.
MULTIVARIANT_VERSION = MEDIA_VERSION


def render_multivariant(p: Presentation, uri: UriBuilder) -> str:
    """The multivariant (master) playlist: one audio group, one variant per video rung.

    Video-only titles have no AUDIO group; audio-only titles list their audio renditions as
    the variants themselves.

    A progressive model's bitrates are the encoder's caps, not measurements: BANDWIDTH is that
    cap (bandwidth_peak, which RFC 8216 4.3.4.2 allows to be an upper bound) and
    AVERAGE-BANDWIDTH, optional and a measurement, is left out until the measured model.
    """
    check_presentation(p)
    video, audio, subs = p.video, p.audio, p.subtitles
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{MULTIVARIANT_VERSION}",
        # RFC 8216 4.3.5.1: every segment starts with a keyframe (the transcoder's contract).
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    if subs:
        lines += _subtitles_media_lines(subs, uri)
    # RFC 8216 4.3.4.2: a variant names the subtitles group it may be played with.
    subs_attr = [f'SUBTITLES="{SUBTITLES_GROUP}"'] if subs else []
    if not video:
        for r in _by_bandwidth(audio):
            attrs = [f"BANDWIDTH={r.bandwidth_peak}"]
            if not p.progressive:
                attrs.append(f"AVERAGE-BANDWIDTH={r.bandwidth_avg}")
            attrs.append(f'CODECS="{r.codecs}"')
            attrs += subs_attr
            lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), uri.media_playlist(r.id)]
        return "\n".join(lines) + "\n"

    if audio:
        lines += _audio_media_lines(audio, uri)
    # RFC 8216 4.3.4.2: BANDWIDTH is the largest sum of peak rates of any playable combination
    # of renditions, AVERAGE-BANDWIDTH the same for average rates: so the highest audio's.
    audio_peak = max((a.bandwidth_peak for a in audio), default=0)
    audio_avg = max((a.bandwidth_avg for a in audio), default=0)
    # RFC 8216 4.3.4.2: CODECS lists every format in the variant, alternate renditions included.
    audio_codecs = _unique(a.codecs for a in audio)
    for r in _by_bandwidth(video):
        attrs = [f"BANDWIDTH={r.bandwidth_peak + audio_peak}"]
        if not p.progressive:
            attrs.append(f"AVERAGE-BANDWIDTH={r.bandwidth_avg + audio_avg}")
        attrs.append('CODECS="{}"'.format(",".join(_unique([r.codecs, *audio_codecs]))))
        if r.width and r.height:
            attrs.append(f"RESOLUTION={r.width}x{r.height}")
        if r.frame_rate:
            # RFC 8216 4.3.4.2: FRAME-RATE is rounded to three decimal places.
            attrs.append(f"FRAME-RATE={decimal(parse_frame_rate(r.frame_rate), 3, trim=False)}")
        if audio:
            attrs.append(f'AUDIO="{AUDIO_GROUP}"')
        attrs += subs_attr
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), uri.media_playlist(r.id)]
    if not p.progressive:
        lines += [_iframe_stream_inf(r, uri) for r in _by_bandwidth(video) if r.has_iframes]
    return "\n".join(lines) + "\n"


def _iframe_stream_inf(r: Rendition, uri: UriBuilder) -> str:
    # RFC 8216 4.3.4.3: the EXT-X-STREAM-INF attributes that apply to an I-frame playlist,
    # and URI. Its bandwidth is the I-frames' own: each key sample's bytes over the time it
    # stands for (its segment), the peak and the mean of that.
    peak, avg = iframe_bandwidth(r)
    attrs = [f"BANDWIDTH={peak}", f"AVERAGE-BANDWIDTH={avg}", f'CODECS="{r.codecs}"']
    if r.width and r.height:
        attrs.append(f"RESOLUTION={r.width}x{r.height}")
    attrs.append(f'URI="{uri.iframe_playlist(r.id)}"')
    return "#EXT-X-I-FRAME-STREAM-INF:" + ",".join(attrs)


def iframe_bandwidth(r: Rendition) -> tuple[int, int]:
    """(peak, average) bit/s of rendition `r`'s I-frame playlist."""
    ends = [s.key_end or 0 for s in r.segments]
    rates = [Fraction(e * 8 * r.timescale, s.duration) for e, s in zip(ends, r.segments, strict=True)]
    total = Fraction(sum(ends) * 8 * r.timescale, sum(s.duration for s in r.segments))
    return math.ceil(max(rates)), math.ceil(total)


def render_iframes(p: Presentation, rendition_id: str, uri: UriBuilder) -> str:
    """The I-frame playlist of a video rendition (RFC 8216 4.3.3.6): one entry per segment,
    the byte range from the segment's start (its moof) through its key sample, in the very
    segments the media playlist lists. Only for a measured model whose segments recorded
    their key samples (`Rendition.has_iframes`)."""
    check_presentation(p)
    r = find_rendition(p, rendition_id)
    if not r.has_iframes or p.progressive:
        raise RenditionNotFound(f"rendition {rendition_id!r} of title {p.title_id} has no I-frame playlist")
    durations = [seconds(s.duration, r.timescale) for s in r.segments]
    lines = [
        "#EXTM3U",
        # RFC 8216 section 7: EXT-X-I-FRAMES-ONLY needs 4, EXT-X-MAP with it 5; 6 as elsewhere.
        f"#EXT-X-VERSION:{MEDIA_VERSION}",
        f"#EXT-X-TARGETDURATION:{target_duration(durations, p)}",
        f"#EXT-X-MEDIA-SEQUENCE:{r.start_number}",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-I-FRAMES-ONLY",
        f'#EXT-X-MAP:URI="{uri.init(r)}"',
    ]
    for number, (segment, duration) in enumerate(zip(r.segments, durations, strict=True), start=r.start_number):
        # RFC 8216 4.3.2.1: in an I-frame playlist EXTINF is the time until the next I-frame
        # (the segment's length: each starts with one); 4.3.2.2 the byte range, offset 0.
        lines += [f"#EXTINF:{decimal(duration)},", f"#EXT-X-BYTERANGE:{segment.key_end}@0", uri.segment(r, number)]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def render_media(p: Presentation, rendition_id: str, uri: UriBuilder) -> str:
    """The media playlist of one rendition: VOD when `p.complete`, else a growing EVENT."""
    check_presentation(p)
    r = find_rendition(p, rendition_id)
    if r.kind in ("image", "download"):
        # Thumbnails have their WebVTT index (packager.thumbnails), a download its one file.
        raise RenditionNotFound(f"rendition {rendition_id!r} of title {p.title_id} has no media playlist")
    durations = [seconds(s.duration, r.timescale) for s in r.segments]
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{MEDIA_VERSION}",
        f"#EXT-X-TARGETDURATION:{target_duration(durations, p)}",
        # RFC 8216 4.3.3.2: the sequence number of the first segment; our numbers are the
        # file names, so the two stay equal (start_number, start_number + 1, ...).
        f"#EXT-X-MEDIA-SEQUENCE:{r.start_number}",
        # RFC 8216 4.3.3.5: EVENT playlists only grow; VOD never changes.
        f"#EXT-X-PLAYLIST-TYPE:{'VOD' if p.complete else 'EVENT'}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    if r.kind != "subtitles":
        # WebVTT segments stand alone: no initialization section (RFC 8216 3.5).
        lines.append(f'#EXT-X-MAP:URI="{uri.init(r)}"')
    for number, duration in enumerate(durations, start=r.start_number):
        # RFC 8216 4.3.2.1: decimal-floating-point seconds (version >= 3), exact from ticks.
        lines += [f"#EXTINF:{decimal(duration)},", uri.segment(r, number)]
    if p.complete:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def target_duration(durations: list[Fraction], p: Presentation) -> int:
    """RFC 8216 4.3.3.1: every EXTINF rounded to the nearest integer must be <= this.

    "Nearest" is taken half up (4.5 -> 5), so the bound holds for a player rounding either way.
    An EVENT playlist must not change its target duration while it grows (RFC 8216 6.2.1), so
    it is floored at the encoder's nominal segment duration, which later segments should not
    exceed.
    """
    target = max(round_half_up(d) for d in durations)
    if not p.complete:
        target = max(target, p.segment_target_s)
    if target < 1:
        # A sub-half-second-only playlist would say 0; a zero target duration is meaningless.
        target = 1
    return target


def _audio_media_lines(audio: tuple[Rendition, ...], uri: UriBuilder) -> list[str]:
    # RFC 8216 4.3.4.1.1: at most one DEFAULT=YES per group; AUTOSELECT=YES is required
    # alongside it. The first rendition marked default wins, else the first one.
    default = next((a for a in audio if a.default), audio[0])
    names: set[str] = set()
    lines = []
    for a in audio:
        name = _quoted(a.name or a.language or a.id)
        # RFC 8216 4.3.4.1.1: every member of a group has a different NAME.
        if name in names:
            name = f"{name} ({a.id})"
        names.add(name)
        attrs = [
            "TYPE=AUDIO",
            f'GROUP-ID="{AUDIO_GROUP}"',
            f'NAME="{name}"',
        ]
        if a.language:
            attrs.append(f'LANGUAGE="{_quoted(a.language)}"')
        attrs += [f"DEFAULT={'YES' if a is default else 'NO'}", "AUTOSELECT=YES"]
        if a.channels:
            attrs.append(f'CHANNELS="{a.channels}"')
        attrs.append(f'URI="{uri.media_playlist(a.id)}"')
        lines.append("#EXT-X-MEDIA:" + ",".join(attrs))
    return lines


def _subtitles_media_lines(subs: tuple[Rendition, ...], uri: UriBuilder) -> list[str]:
    # RFC 8216 4.3.4.1: DEFAULT=YES only where the model says so (forced subtitles at ingest):
    # a subtitle track shown unasked is wrong for everyone else. At most one per group.
    default = next((s for s in subs if s.default), None)
    names: set[str] = set()
    lines = []
    for s in subs:
        name = _quoted(s.name or s.language or s.id)
        if name in names:
            name = f"{name} ({s.id})"
        names.add(name)
        attrs = ["TYPE=SUBTITLES", f'GROUP-ID="{SUBTITLES_GROUP}"', f'NAME="{name}"']
        if s.language:
            attrs.append(f'LANGUAGE="{_quoted(s.language)}"')
        # RFC 8216 4.3.4.1: AUTOSELECT must be YES when DEFAULT is; FORCED only on SUBTITLES.
        attrs += [f"DEFAULT={'YES' if s is default else 'NO'}", "AUTOSELECT=YES"]
        attrs.append(f"FORCED={'YES' if s.forced else 'NO'}")
        if s.sdh:
            attrs.append(f'CHARACTERISTICS="{SDH_CHARACTERISTICS}"')
        attrs.append(f'URI="{uri.media_playlist(s.id)}"')
        lines.append("#EXT-X-MEDIA:" + ",".join(attrs))
    return lines


def _quoted(text: str) -> str:
    """RFC 8216 4.2: a quoted-string cannot hold '"', CR or LF; names come from source tags."""
    cleaned = text.replace('"', "'").replace("\r", " ").replace("\n", " ").strip()
    if not cleaned:
        raise InvalidPresentation(f"empty name or language {text!r}")
    return cleaned


def _by_bandwidth(renditions: tuple[Rendition, ...]) -> list[Rendition]:
    # Ascending and fully ordered so the text is deterministic (cacheable, golden-testable).
    # Players choose by measured bandwidth; those that start on the first listed variant
    # (AVPlayer before iOS 13, or with startsOnFirstEligibleVariant) start low and fast.
    return sorted(renditions, key=lambda r: (r.bandwidth_peak, r.bandwidth_avg, r.height or 0, r.id))


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
