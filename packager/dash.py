"""DASH MPD (ISO/IEC 23009-1) rendered from the rendition model. Pure: values in, text out.

One static Period; SegmentTemplate + SegmentTimeline addressing (`$RepresentationID$`,
`$Number$`) over the same CMAF segments the HLS playlists list. Built with ElementTree so
every attribute value (a token query's `&`, a name) is XML-escaped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from fractions import Fraction
from itertools import accumulate

from packager.checks import check_presentation
from packager.errors import InvalidUri, PresentationIncomplete
from packager.model import SEGMENT_EXTS, Presentation, Rendition
from packager.timing import parse_frame_rate, seconds, xs_duration
from packager.uris import UriBuilder

MPD_NS = "urn:mpeg:dash:schema:mpd:2011"
PROFILE_LIVE = "urn:mpeg:dash:profile:isoff-live:2011"
# ISO/IEC 23009-1 4th edition's CMAF profile. Only claimed when the caller
# says the segments are CMAF-conformant (`cmfc` brand), which the model cannot tell.
PROFILE_CMAF = "urn:mpeg:dash:profile:cmaf:2019"
ROLE_SCHEME = "urn:mpeg:dash:role:2011"
# ISO/IEC 23001-8 (CICP) ChannelConfiguration, the scheme DASH-IF IOP 6.3.3.2 asks for with
# AAC: 2 is stereo, 6 is 5.1. Channel counts without a CICP value use the older 23003-3
# scheme, whose value is the count itself.
CHANNELS_SCHEME = "urn:mpeg:mpegB:cicp:ChannelConfiguration"
CHANNELS_COUNT_SCHEME = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"
CICP_CHANNELS: dict[int, int] = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 8: 12}
# DASH-IF IOP v4.3 6.2.6: an image AdaptationSet of tiled thumbnails, its grid as the value.
THUMBNAIL_TILE_SCHEME = "http://dashif.org/thumbnail_tile"


def render_mpd(p: Presentation, uri: UriBuilder, *, cmaf: bool = False) -> str:
    """A static MPD: a video AdaptationSet (one Representation per rung) and one audio
    AdaptationSet per language and channel count (stereo and 5.1 of one language are not
    seamlessly switchable, so they are separate sets a player offers as separate tracks).

    A progressive model (segments still being encoded, timeline complete) is static too: every
    segment is listed with its exact duration; @bandwidth is the encoder's cap until the
    measured model replaces it.

    Raises `PresentationIncomplete` while `p.complete` is False: a static MPD promises the
    whole presentation (ISO/IEC 23009-1 5.3.1.2, @type), and a growing one needs a dynamic MPD with
    wall-clock availability times that the model does not carry. HLS serves that phase.
    """
    check_presentation(p)
    if not p.complete:
        raise PresentationIncomplete(f"title {p.title_id} version {p.version} is still publishing")
    init_template, media_template = uri.dash_init_template(), uri.dash_media_template()
    for template in (init_template, media_template):
        # 5.3.9.4.4: '$' opens an identifier. Ids are [a-z0-9_-] and UriBuilder refuses '$' in
        # base and query (tokens are base64url/hex), so any other '$' is a bug: fail loudly.
        stripped = template.replace("$RepresentationID$", "").replace("$Number$", "")
        if "$" in stripped:
            raise InvalidUri(f"stray '$' in DASH template {template!r}")

    # A download is one whole-title "segment" no player buffers, and a sprite sheet spans a
    # minute of thumbnails no player needs to play: neither sets minBufferTime.
    streamed = [r for r in p.renditions if r.kind not in ("download", "image")] or list(p.renditions)
    ends = [_boundaries(r)[-1] for r in streamed]
    longest_segment = max(seconds(s.duration, r.timescale) for r in streamed for s in r.segments)
    mpd = ET.Element(
        "MPD",
        {
            "xmlns": MPD_NS,
            "type": "static",
            "profiles": ",".join([PROFILE_LIVE, PROFILE_CMAF] if cmaf else [PROFILE_LIVE]),
            "mediaPresentationDuration": xs_duration(max(ends)),
            # 5.3.1.2: with @bandwidth as each Representation's peak per-segment rate, one
            # longest segment of buffer is enough to play on at that rate without stalling.
            "minBufferTime": xs_duration(longest_segment),
        },
    )
    period = ET.SubElement(mpd, "Period", {"id": "0", "start": "PT0S"})
    templates = (init_template, media_template)
    set_id = 0
    for family, reps in _by_codec_family(p.video).items():
        _video_set(period, set_id, reps, templates, priority=VIDEO_PRIORITY.get(family))
        set_id += 1
    default = next((a for a in p.audio if a.default), p.audio[0] if p.audio else None)
    for (lang, _channels), group in _by_language(p.audio).items():
        _audio_set(period, set_id, lang, group, any(a is default for a in group), templates)
        set_id += 1
    text_template = uri.dash_media_template(SEGMENT_EXTS["subtitles"])
    for r in p.subtitles:
        _text_set(period, set_id, r, text_template)
        set_id += 1
    image_template = uri.dash_media_template(SEGMENT_EXTS["image"])
    for r in p.images:
        _image_set(period, set_id, r, image_template)
        set_id += 1
    ET.indent(mpd, "  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(mpd, encoding="unicode") + "\n"


def _by_codec_family(video: tuple[Rendition, ...]) -> dict[str, tuple[Rendition, ...]]:
    """Video renditions by codec family ("avc1", "av01"), in first-seen order: a player can
    switch seamlessly only within one decoder, so each family is its own AdaptationSet
    (DASH-IF IOP v4.3 3.2.13: one codec per video AdaptationSet)."""
    groups: dict[str, list[Rendition]] = {}
    for r in video:
        groups.setdefault(r.codecs.split(".", 1)[0], []).append(r)
    return {family: tuple(reps) for family, reps in groups.items()}


def _video_set(
    period: ET.Element,
    set_id: int,
    video: tuple[Rendition, ...],
    templates: tuple[str, str],
    *,
    priority: int | None = None,
) -> None:
    reps = sorted(video, key=lambda r: (r.bandwidth_peak, r.height or 0, r.id))
    attrs = _set_attrs(set_id, "video", "video/mp4", reps)
    if priority is not None:
        # ISO/IEC 23009-1 5.3.3.2 @selectionPriority (default 1): a hint to start on AV1
        # (the same pictures for fewer bits) where it decodes; a player without AV1 skips
        # the set whatever its priority.
        attrs["selectionPriority"] = str(priority)
    widths = [r.width for r in reps if r.width]
    heights = [r.height for r in reps if r.height]
    rates = [r.frame_rate for r in reps if r.frame_rate]
    if widths:
        attrs["maxWidth"] = str(max(widths))
    if heights:
        attrs["maxHeight"] = str(max(heights))
    if rates:
        attrs["maxFrameRate"] = _frame_rate(max(rates, key=parse_frame_rate))
    aset = ET.SubElement(period, "AdaptationSet", attrs)
    shared = _shared_timeline(reps)
    if shared:
        _segment_template(aset, reps[0], templates)
    for r in reps:
        rep_attrs = {"id": r.id, "codecs": r.codecs, "bandwidth": str(r.bandwidth_peak)}
        if r.width and r.height:
            rep_attrs |= {"width": str(r.width), "height": str(r.height)}
        if r.frame_rate:
            rep_attrs["frameRate"] = _frame_rate(r.frame_rate)
        # The transcoder scales every rung to square pixels (setsar=1).
        rep_attrs["sar"] = "1:1"
        rep = ET.SubElement(aset, "Representation", rep_attrs)
        if not shared:
            _segment_template(rep, r, templates)


# Per codec family, where not the default 1.
VIDEO_PRIORITY = {"av01": 2}


def _audio_set(
    period: ET.Element,
    set_id: int,
    lang: str,
    group: list[Rendition],
    is_default: bool,
    templates: tuple[str, str],
) -> None:
    reps = sorted(group, key=lambda r: (r.bandwidth_peak, r.id))
    attrs = _set_attrs(set_id, "audio", "audio/mp4", reps)
    attrs["lang"] = lang
    aset = ET.SubElement(period, "AdaptationSet", attrs)
    name = next((r.name for r in reps if r.name), None)
    if name:
        # 5.3.7.2 (4th ed.): a Label is what a player's track menu shows; schema order puts
        # it (a RepresentationBase element) before the AdaptationSet's own Role.
        ET.SubElement(aset, "Label").text = name
    # 5.8.5.5: Role "main" marks the track a player picks when nothing else decides (the
    # DASH twin of HLS DEFAULT=YES); every other language or layout is an "alternate".
    ET.SubElement(aset, "Role", {"schemeIdUri": ROLE_SCHEME, "value": "main" if is_default else "alternate"})
    shared = _shared_timeline(reps)
    if shared:
        _segment_template(aset, reps[0], templates)
    for r in reps:
        rep_attrs = {"id": r.id, "codecs": r.codecs, "bandwidth": str(r.bandwidth_peak)}
        if r.sample_rate:
            rep_attrs["audioSamplingRate"] = str(r.sample_rate)
        rep = ET.SubElement(aset, "Representation", rep_attrs)
        if r.channels:
            # Schema order: RepresentationBase descriptors come before SegmentTemplate.
            ET.SubElement(rep, "AudioChannelConfiguration", _channel_configuration(r.channels))
        if not shared:
            _segment_template(rep, r, templates)


def _text_set(period: ET.Element, set_id: int, r: Rendition, media_template: str) -> None:
    """One AdaptationSet per subtitle rendition: segmented plain WebVTT (text/vtt), one file
    per video segment, addressed like the media (no initialization segment)."""
    attrs = {"id": str(set_id), "contentType": "text", "mimeType": "text/vtt", "lang": r.language or "und"}
    aset = ET.SubElement(period, "AdaptationSet", attrs)
    # 5.8.5.5: "subtitle" (translation), "caption" (SDH: also describes sounds), and the
    # DASH-IF "forced-subtitle" role; "main" marks the one a player may show unasked.
    role = "caption" if r.sdh else "forced-subtitle" if r.forced else "subtitle"
    ET.SubElement(aset, "Role", {"schemeIdUri": ROLE_SCHEME, "value": role})
    if r.default:
        ET.SubElement(aset, "Role", {"schemeIdUri": ROLE_SCHEME, "value": "main"})
    if r.name:
        ET.SubElement(aset, "Label").text = r.name
    rep = ET.SubElement(aset, "Representation", {"id": r.id, "bandwidth": str(max(r.bandwidth_peak, 1))})
    tmpl = ET.SubElement(
        rep,
        "SegmentTemplate",
        {"timescale": str(r.timescale), "media": media_template, "startNumber": str(r.start_number)},
    )
    timeline = ET.SubElement(tmpl, "SegmentTimeline")
    for i, (duration, repeat) in enumerate(_runs([s.duration for s in r.segments])):
        s_attrs = {"t": str(r.start_time)} if i == 0 else {}
        s_attrs["d"] = str(duration)
        if repeat:
            s_attrs["r"] = str(repeat)
        ET.SubElement(timeline, "S", s_attrs)


def _image_set(period: ET.Element, set_id: int, r: Rendition, media_template: str) -> None:
    """DASH-IF IOP v4.3 6.2.6: thumbnails as an image AdaptationSet of JPEG sprite sheets,
    each sheet one segment of `tile_duration` x its tile count, its grid in an
    EssentialProperty (a player that does not know the scheme ignores the whole set)."""
    columns, rows = r.grid
    aset = ET.SubElement(period, "AdaptationSet", {"id": str(set_id), "contentType": "image", "mimeType": "image/jpeg"})
    rep = ET.SubElement(
        aset,
        "Representation",
        {
            "id": r.id,
            "bandwidth": str(max(r.bandwidth_peak, 1)),
            "width": str(r.width),
            "height": str(r.height),
        },
    )
    # Schema order: RepresentationBase descriptors come before SegmentTemplate.
    ET.SubElement(rep, "EssentialProperty", {"schemeIdUri": THUMBNAIL_TILE_SCHEME, "value": f"{columns}x{rows}"})
    ET.SubElement(
        rep,
        "SegmentTemplate",
        {
            "timescale": str(r.timescale),
            "media": media_template,
            "duration": str((r.tile_duration or 0) * columns * rows),
            "startNumber": str(r.start_number),
        },
    )


def _set_attrs(set_id: int, content_type: str, mime: str, reps: list[Rendition]) -> dict[str, str]:
    return {
        "id": str(set_id),
        "contentType": content_type,
        "mimeType": mime,
        # 5.3.3.2: true only if segment boundaries line up in time across Representations
        # (the transcoder aligns keyframes; this checks the model instead of trusting it).
        "segmentAlignment": "true" if _aligned(reps) else "false",
        # Every segment starts with an IDR / a sync sample (SAP type 1).
        "startWithSAP": "1",
    }


def _segment_template(parent: ET.Element, r: Rendition, templates: tuple[str, str]) -> None:
    init_template, media_template = templates
    tmpl = ET.SubElement(
        parent,
        "SegmentTemplate",
        {
            "timescale": str(r.timescale),
            "initialization": init_template,
            "media": media_template,
            "startNumber": str(r.start_number),
        },
    )
    timeline = ET.SubElement(tmpl, "SegmentTimeline")
    for i, (duration, repeat) in enumerate(_runs([s.duration for s in r.segments])):
        s_attrs = {"t": str(r.start_time)} if i == 0 else {}
        s_attrs["d"] = str(duration)
        if repeat:
            s_attrs["r"] = str(repeat)
        ET.SubElement(timeline, "S", s_attrs)


def _runs(durations: list[int]) -> list[tuple[int, int]]:
    """Run-length compression for <S d r>: r counts repeats after the first (5.3.9.6)."""
    runs: list[tuple[int, int]] = []
    for d in durations:
        if runs and runs[-1][0] == d:
            runs[-1] = (d, runs[-1][1] + 1)
        else:
            runs.append((d, 0))
    return runs


def _shared_timeline(reps: list[Rendition]) -> bool:
    """One SegmentTemplate on the AdaptationSet serves all when their timelines are identical."""

    def key(r: Rendition) -> tuple[object, ...]:
        return (r.timescale, r.start_number, r.start_time, tuple(s.duration for s in r.segments))

    return all(key(r) == key(reps[0]) for r in reps[1:])


def _boundaries(r: Rendition) -> list[Fraction]:
    edges = accumulate([r.start_time] + [s.duration for s in r.segments])
    return [seconds(t, r.timescale) for t in edges]


def _aligned(reps: list[Rendition]) -> bool:
    # Alignment is in time, not numbering (a rendition may start at another number).
    first = _boundaries(reps[0])
    return all(_boundaries(r) == first for r in reps[1:])


def _frame_rate(text: str) -> str:
    """The MPD schema's FrameRateType is "N" or "N/D": "29.97" becomes "2997/100", exactly."""
    rate = parse_frame_rate(text)
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


def _channel_configuration(channels: int) -> dict[str, str]:
    if channels in CICP_CHANNELS:
        return {"schemeIdUri": CHANNELS_SCHEME, "value": str(CICP_CHANNELS[channels])}
    return {"schemeIdUri": CHANNELS_COUNT_SCHEME, "value": str(channels)}


def _by_language(audio: tuple[Rendition, ...]) -> dict[tuple[str, int], list[Rendition]]:
    """Audio renditions grouped by (language, channel count), in first-seen order."""
    groups: dict[tuple[str, int], list[Rendition]] = {}
    for a in audio:
        groups.setdefault((a.language or "und", a.channels or 0), []).append(a)
    return groups
