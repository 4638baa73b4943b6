"""ISO BMFF (fMP4/CMAF) box parsing for the read-back: pure functions over bytes.

Only what the rendition model needs, read straight from the boxes (ISO/IEC 14496-12), which is
exact where ffprobe reports rounded values: the RFC 6381 codec string from the sample entry
(avcC / av1C / esds), the track timescale (mdhd), and per media segment the decode start (tfdt),
the duration (sum of trun sample durations, falling back to tfhd then trex defaults),
whether the first sample is a sync sample, and where that first (key) sample's bytes are.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Boxes whose payload is a list of child boxes.
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf", b"edts", b"dinf", b"udta"}
# ISO/IEC 14496-12 8.8.3.1: sample_is_non_sync_sample is bit 16 of the sample flags.
SAMPLE_IS_NON_SYNC = 0x0001_0000


class Mp4Error(ValueError):
    """Malformed or unexpected box structure."""


@dataclass(frozen=True)
class Box:
    type: bytes
    start: int  # offset of the box header
    payload: int  # offset of the payload (after size/type/largesize)
    end: int  # offset just past the box


@dataclass(frozen=True)
class TrackDefaults:
    """trex defaults (moov/mvex/trex), used when a fragment leaves a field out."""

    sample_duration: int = 0
    sample_flags: int = 0


@dataclass(frozen=True)
class InitInfo:
    handler: str  # "vide" / "soun"
    codec: str  # RFC 6381, "avc1.64001f" / "mp4a.40.2"
    timescale: int
    track_id: int
    defaults: TrackDefaults
    width: int | None = None
    height: int | None = None
    channels: int | None = None
    sample_rate: int | None = None


@dataclass(frozen=True)
class SegmentInfo:
    base_decode_time: int  # tfdt of the first fragment, in timescale ticks
    duration: int  # ticks, sum over every fragment's samples
    sample_count: int
    first_sample_is_sync: bool
    # The first sample's bytes in the segment (offset, size): for a video segment its key
    # frame, which an HLS I-frame playlist addresses. None when the boxes do not say.
    key_offset: int | None = None
    key_size: int | None = None


def iter_boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """The boxes laid end to end in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, btype = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise Mp4Error("truncated largesize box header")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:  # box extends to the end of its container
            size = end - pos
        if size < header or pos + size > end:
            raise Mp4Error(f"box {btype!r} at {pos} has bad size {size}")
        yield Box(btype, pos, pos + header, pos + size)
        pos += size
    if pos != end:
        raise Mp4Error(f"{end - pos} trailing bytes at {pos}")


def find(data: bytes, path: str, start: int = 0, end: int | None = None) -> Box | None:
    """The first box at a slash-separated path, e.g. "moov/trak/mdia/mdhd"."""
    boxes = find_all(data, path, start, end)
    return next(iter(boxes), None)


def find_all(data: bytes, path: str, start: int = 0, end: int | None = None) -> list[Box]:
    first, _, rest = path.partition("/")
    found = []
    for box in iter_boxes(data, start, end):
        if box.type != first.encode():
            continue
        if not rest:
            found.append(box)
        else:
            found.extend(find_all(data, rest, box.payload, box.end))
    return found


def _require(data: bytes, path: str, start: int = 0, end: int | None = None) -> Box:
    box = find(data, path, start, end)
    if box is None:
        raise Mp4Error(f"no {path} box")
    return box


def _full_box(data: bytes, box: Box) -> tuple[int, int, int]:
    """(version, flags, offset of the body) of a FullBox."""
    (vf,) = struct.unpack_from(">I", data, box.payload)
    return vf >> 24, vf & 0xFFFFFF, box.payload + 4


# ---- init segment ------------------------------------------------------------------------


def parse_init(data: bytes) -> InitInfo:
    """The single track of a CMAF init segment."""
    trak = _require(data, "moov/trak")
    mdia = _require(data, "mdia", trak.payload, trak.end)
    handler = _handler(data, _require(data, "hdlr", mdia.payload, mdia.end))
    timescale = _mdhd_timescale(data, _require(data, "mdhd", mdia.payload, mdia.end))
    track_id = _tkhd_track_id(data, _require(data, "tkhd", trak.payload, trak.end))
    stsd = _require(data, "minf/stbl/stsd", mdia.payload, mdia.end)
    _, _, body = _full_box(data, stsd)
    entries = list(iter_boxes(data, body + 4, stsd.end))  # skip entry_count
    if not entries:
        raise Mp4Error("empty stsd")
    entry = entries[0]

    defaults = TrackDefaults()
    for trex in find_all(data, "moov/mvex/trex"):
        _, _, b = _full_box(data, trex)
        tid, _desc, dur, _size, flags = struct.unpack_from(">IIIII", data, b)
        if tid == track_id:
            defaults = TrackDefaults(sample_duration=dur, sample_flags=flags)

    if entry.type in (b"avc1", b"avc3"):
        # VisualSampleEntry: 6 reserved, 2 data_reference_index, 16 pre_defined/reserved,
        # width, height, then 50 more bytes before the child boxes (14496-12 12.1.3).
        width, height = struct.unpack_from(">HH", data, entry.payload + 24)
        avcc = _require(data, "avcC", entry.payload + 78, entry.end)
        return InitInfo(
            handler=handler,
            codec=avc_codec_string(data[avcc.payload : avcc.end], entry.type.decode()),
            timescale=timescale,
            track_id=track_id,
            defaults=defaults,
            width=width,
            height=height,
        )
    if entry.type == b"av01":
        width, height = struct.unpack_from(">HH", data, entry.payload + 24)
        av1c = _require(data, "av1C", entry.payload + 78, entry.end)
        return InitInfo(
            handler=handler,
            codec=av1_codec_string(data[av1c.payload : av1c.end]),
            timescale=timescale,
            track_id=track_id,
            defaults=defaults,
            width=width,
            height=height,
        )
    if entry.type == b"mp4a":
        # AudioSampleEntry: 6 reserved, 2 data_reference_index, 8 reserved, channelcount,
        # samplesize, 4 reserved, samplerate 16.16, then child boxes (14496-12 12.2.3).
        channels = struct.unpack_from(">H", data, entry.payload + 16)[0]
        sample_rate = struct.unpack_from(">I", data, entry.payload + 24)[0] >> 16
        esds = _require(data, "esds", entry.payload + 28, entry.end)
        return InitInfo(
            handler=handler,
            codec=mp4a_codec_string(data[esds.payload + 4 : esds.end]),
            timescale=timescale,
            track_id=track_id,
            defaults=defaults,
            channels=channels,
            sample_rate=sample_rate,
        )
    raise Mp4Error(f"unsupported sample entry {entry.type!r}")


def avc_codec_string(avcc: bytes, fourcc: str = "avc1") -> str:
    """RFC 6381 3.3: avc1.PPCCLL from AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3):
    AVCProfileIndication, profile_compatibility (the constraint flags), AVCLevelIndication."""
    if len(avcc) < 4 or avcc[0] != 1:
        raise Mp4Error("bad avcC")
    return f"{fourcc}.{avcc[1]:02x}{avcc[2]:02x}{avcc[3]:02x}"


def av1_codec_string(av1c: bytes) -> str:
    """The AV1 ISOBMFF binding's codecs parameter, av01.P.LLT.DD, from the
    AV1CodecConfigurationRecord: marker and version (0x81), then seq_profile (3 bits) and
    seq_level_idx_0 (5), then seq_tier_0, high_bitdepth, twelve_bit (1 bit each, ...).
    The optional fields after DD are left out: they are only needed when not the defaults."""
    if len(av1c) < 4 or av1c[0] != 0x81:
        raise Mp4Error("bad av1C")
    profile, level = av1c[1] >> 5, av1c[1] & 0x1F
    tier = "H" if av1c[2] & 0x80 else "M"
    high, twelve = bool(av1c[2] & 0x40), bool(av1c[2] & 0x20)
    depth = 12 if high and twelve else 10 if high else 8
    return f"av01.{profile}.{level:02d}{tier}.{depth:02d}"


def mp4a_codec_string(es_descriptor: bytes) -> str:
    """RFC 6381 3.3: mp4a.OO.A, OO the objectTypeIndication (hex), A the audio object type
    from the AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1); AAC-LC is mp4a.40.2."""
    oti = None
    aot = None
    for tag, body in _descriptors(es_descriptor, 0, len(es_descriptor)):
        if tag != 0x03:  # ES_DescrTag
            continue
        es_id_flags = body[2]
        pos = 3
        if es_id_flags & 0x80:
            pos += 2
        if es_id_flags & 0x40:
            pos += 1 + body[pos]
        if es_id_flags & 0x20:
            pos += 2
        for tag2, dcd in _descriptors(body, pos, len(body)):
            if tag2 != 0x04:  # DecoderConfigDescrTag
                continue
            oti = dcd[0]
            for tag3, dsi in _descriptors(dcd, 13, len(dcd)):
                if tag3 == 0x05 and dsi:  # DecSpecificInfoTag
                    aot = dsi[0] >> 3
                    if aot == 31 and len(dsi) >= 2:  # escape: 6 more bits
                        aot = 32 + (((dsi[0] & 0x07) << 3) | (dsi[1] >> 5))
    if oti is None:
        raise Mp4Error("esds without a DecoderConfigDescriptor")
    return f"mp4a.{oti:02x}" + (f".{aot}" if aot else "")


def _descriptors(data: bytes, pos: int, end: int) -> Iterator[tuple[int, bytes]]:
    while pos + 2 <= end:
        tag = data[pos]
        pos += 1
        size = 0
        for _ in range(4):  # expandable size: 7 bits per byte, high bit = more
            b = data[pos]
            pos += 1
            size = (size << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        yield tag, data[pos : pos + size]
        pos += size


def _handler(data: bytes, hdlr: Box) -> str:
    _, _, body = _full_box(data, hdlr)
    return data[body + 4 : body + 8].decode("latin-1")


def _mdhd_timescale(data: bytes, mdhd: Box) -> int:
    version, _, body = _full_box(data, mdhd)
    return struct.unpack_from(">I", data, body + (16 if version == 1 else 8))[0]


def _tkhd_track_id(data: bytes, tkhd: Box) -> int:
    version, _, body = _full_box(data, tkhd)
    return struct.unpack_from(">I", data, body + (16 if version == 1 else 8))[0]


# ---- media segments ----------------------------------------------------------------------


def parse_segment(data: bytes, defaults: TrackDefaults = TrackDefaults()) -> SegmentInfo:
    """Timing of one media segment (one or more moof+mdat pairs of a single track)."""
    moofs = [b for b in iter_boxes(data) if b.type == b"moof"]
    if not moofs:
        raise Mp4Error("media segment without a moof")
    base_time: int | None = None
    duration = 0
    count = 0
    first_sync: bool | None = None
    try:
        key = _first_sample_range(data, moofs[0])
    except struct.error:  # a box shorter than its flags say: the range is unknown
        key = None
    for moof in moofs:
        for traf in find_all(data, "traf", moof.payload, moof.end):
            tfhd = _require(data, "tfhd", traf.payload, traf.end)
            def_dur, def_flags = _tfhd_defaults(data, tfhd, defaults)
            tfdt = find(data, "tfdt", traf.payload, traf.end)
            if base_time is None and tfdt is not None:
                version, _, body = _full_box(data, tfdt)
                fmt = ">Q" if version == 1 else ">I"
                base_time = struct.unpack_from(fmt, data, body)[0]
            for trun in find_all(data, "trun", traf.payload, traf.end):
                d, n, sync = _trun(data, trun, def_dur, def_flags)
                duration += d
                count += n
                if first_sync is None and n:
                    first_sync = sync
    return SegmentInfo(
        base_decode_time=base_time or 0,
        duration=duration,
        sample_count=count,
        first_sample_is_sync=bool(first_sync),
        key_offset=key[0] if key else None,
        key_size=key[1] if key else None,
    )


# A trun sample entry's fields, in their order, each present when its flag is set
# (ISO/IEC 14496-12 8.8.8.1): duration, size, flags, composition time offset.
TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_COMPOSITION = 0x100, 0x200, 0x400, 0x800


@dataclass(frozen=True)
class TrunLayout:
    """Where a `trun`'s fields are: `data_offset` and `first_sample_flags` (absolute offsets,
    None when absent), then `count` sample entries of `stride` bytes from `entries`, each
    holding the fields of `fields` (flag -> offset within the entry)."""

    version: int
    count: int
    data_offset: int | None
    first_sample_flags: int | None
    entries: int
    stride: int
    fields: dict[int, int]


def trun_layout(data: bytes, trun: Box) -> TrunLayout:
    """The layout of `trun`; Mp4Error when its entries run past the box."""
    version, flags, pos = _full_box(data, trun)
    (count,) = struct.unpack_from(">I", data, pos)
    pos += 4
    data_offset = first_flags = None
    if flags & 0x01:
        data_offset, pos = pos, pos + 4
    if flags & 0x04:
        first_flags, pos = pos, pos + 4
    fields: dict[int, int] = {}
    for flag in (TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_COMPOSITION):
        if flags & flag:
            fields[flag] = 4 * len(fields)
    stride = 4 * len(fields)
    if pos + stride * count > trun.end:
        raise Mp4Error("truncated trun")
    return TrunLayout(version, count, data_offset, first_flags, pos, stride, fields)


def _first_sample_range(data: bytes, moof: Box) -> tuple[int, int] | None:
    """(offset, size) of the first sample of the first traf's first trun of `moof`.

    ISO/IEC 14496-12 8.8.7.1 / 8.8.8.1: a sample's data lies at the base data offset (tfhd's
    base_data_offset when present, else the moof's first byte: default-base-is-moof, or the
    first traf's implicit base) plus the trun's data_offset; its size is the trun's per-sample
    size, else tfhd's default_sample_size. None when the boxes leave it unknown or the range
    falls outside the segment."""
    traf = find(data, "traf", moof.payload, moof.end)
    if traf is None:
        return None
    tfhd = find(data, "tfhd", traf.payload, traf.end)
    trun = find(data, "trun", traf.payload, traf.end)
    if tfhd is None or trun is None:
        return None
    _, tf_flags, pos = _full_box(data, tfhd)
    pos += 4  # track_ID
    base = moof.start
    if tf_flags & 0x01:
        (base,) = struct.unpack_from(">Q", data, pos)
        pos += 8
    if tf_flags & 0x02:
        pos += 4  # sample_description_index
    if tf_flags & 0x08:
        pos += 4  # default_sample_duration
    size: int | None = struct.unpack_from(">I", data, pos)[0] if tf_flags & 0x10 else None
    layout = trun_layout(data, trun)
    if not layout.count or layout.data_offset is None:
        return None  # no samples, or data laid out implicitly: not worth guessing
    (data_offset,) = struct.unpack_from(">i", data, layout.data_offset)
    if TRUN_SIZE in layout.fields:
        (size,) = struct.unpack_from(">I", data, layout.entries + layout.fields[TRUN_SIZE])
    offset = base + data_offset
    if not size or offset < moof.end or offset + size > len(data):
        return None
    return offset, size


def _tfhd_defaults(data: bytes, tfhd: Box, defaults: TrackDefaults) -> tuple[int, int]:
    _, flags, pos = _full_box(data, tfhd)
    pos += 4  # track_ID
    if flags & 0x01:
        pos += 8  # base_data_offset
    if flags & 0x02:
        pos += 4  # sample_description_index
    dur, sample_flags = defaults.sample_duration, defaults.sample_flags
    if flags & 0x08:
        (dur,) = struct.unpack_from(">I", data, pos)
        pos += 4
    if flags & 0x10:
        pos += 4  # default_sample_size
    if flags & 0x20:
        (sample_flags,) = struct.unpack_from(">I", data, pos)
    return dur, sample_flags


def _trun(data: bytes, trun: Box, def_dur: int, def_flags: int) -> tuple[int, int, bool]:
    """(total duration, sample count, first sample is a sync sample) of one trun."""
    layout = trun_layout(data, trun)
    dur = layout.fields.get(TRUN_DURATION)
    if dur is None:
        total = def_dur * layout.count
    else:
        total = sum(
            struct.unpack_from(">I", data, layout.entries + i * layout.stride + dur)[0] for i in range(layout.count)
        )
    first_sample_flags = def_flags
    if layout.first_sample_flags is not None:
        (first_sample_flags,) = struct.unpack_from(">I", data, layout.first_sample_flags)
    elif layout.count and TRUN_FLAGS in layout.fields:
        (first_sample_flags,) = struct.unpack_from(">I", data, layout.entries + layout.fields[TRUN_FLAGS])
    return total, layout.count, not (first_sample_flags & SAMPLE_IS_NON_SYNC)


# ---- files -------------------------------------------------------------------------------


def segment_starts_with_keyframe(path: str | Path, init_path: str | Path | None = None) -> bool:
    """True when the segment's first sample is a sync sample (an IDR frame for H.264).

    `init_path` supplies trex defaults for segments whose fragments leave the flags out; by
    default the `init.mp4` beside the segment is used when it exists.
    """
    path = Path(path)
    init = Path(init_path) if init_path else path.with_name("init.mp4")
    defaults = parse_init(init.read_bytes()).defaults if init.exists() else TrackDefaults()
    return parse_segment(path.read_bytes(), defaults).first_sample_is_sync


# ---- rewriting a chunk's segment onto the title's timeline ------------------------------


def shift_segment(data: bytes, *, delta: int, sequence_number: int) -> bytes:
    """`data` (a media segment) with every time moved `delta` ticks later and its fragments
    numbered from `sequence_number`: each traf's `tfdt` baseMediaDecodeTime, each `sidx`
    earliest_presentation_time and each `mfhd` sequence_number.

    A chunk task's encoder starts its timeline at 0 and numbers fragments from 1; this puts
    its segments where the one-pass encode of the whole title would have them. Sizes do not
    change (a version 0 field that would overflow 32 bits raises `Mp4Error`), so data offsets
    stay valid.
    """
    out = bytearray(data)
    seq = sequence_number
    for box in iter_boxes(data):
        if box.type == b"sidx":
            version, _, body = _full_box(data, box)
            pos = body + 8  # reference_ID, timescale
            _add_at(out, pos, delta, 8 if version == 1 else 4, "sidx")
        elif box.type == b"moof":
            mfhd = _require(data, "mfhd", box.payload, box.end)
            struct.pack_into(">I", out, mfhd.payload + 4, seq)
            seq += 1
            for traf in find_all(data, "traf", box.payload, box.end):
                tfdt = find(data, "tfdt", traf.payload, traf.end)
                if tfdt is None:
                    raise Mp4Error("fragment without a tfdt")
                version, _, body = _full_box(data, tfdt)
                _add_at(out, body, delta, 8 if version == 1 else 4, "tfdt")
    return bytes(out)


def present_from_decode_time(data: bytes) -> bytes:
    """`data` (a media segment that starts with its first presented frame, as every segment
    that starts with an IDR frame) with every sample's composition offset lowered by the first
    sample's, so the segment is presented from its decode time (`tfdt`) on.

    An encoder with B-frames gives its first frame a composition offset of its reordering
    delay (two frames for x264's defaults), and the muxer hides it with an edit list in the
    init segment. Players do not agree on edit lists: Chromium applies only a single edit
    with a media time, hls.js reads none and places a segment by its samples' times. Offsets
    counted from the first frame (a version 1 `trun`, signed, the CMAF way) need no edit
    list: every player puts segment `n`'s first frame at the timeline's `n`th boundary.

    Sizes do not change. A segment without composition offsets, or whose first sample's is
    already 0, comes back as it was.
    """
    runs: list[tuple[Box, TrunLayout]] = [
        (trun, layout)
        for trun in find_all(data, "moof/traf/trun")
        if TRUN_COMPOSITION in (layout := trun_layout(data, trun)).fields
    ]
    offsets = [composition_offsets(data, layout) for _, layout in runs]
    first = next((o[0] for o in offsets if o), 0)
    if not first:
        return data
    out = bytearray(data)
    for (trun, layout), values in zip(runs, offsets, strict=True):
        at = layout.entries + layout.fields[TRUN_COMPOSITION]
        for i, value in enumerate(values):
            value -= first
            if not -(1 << 31) <= value < 1 << 31:
                raise Mp4Error(f"composition offset {value} does not fit a signed 32-bit field")
            struct.pack_into(">i", out, at + i * layout.stride, value)
        out[trun.payload] = 1  # trun version 1: signed offsets
    return bytes(out)


def composition_offsets(data: bytes, layout: TrunLayout) -> list[int]:
    """Each sample's composition time offset in a trun (signed in version 1), [] without them."""
    at = layout.fields.get(TRUN_COMPOSITION)
    if at is None:
        return []
    fmt = ">i" if layout.version == 1 else ">I"
    return [struct.unpack_from(fmt, data, layout.entries + i * layout.stride + at)[0] for i in range(layout.count)]


def _add_at(buf: bytearray, pos: int, delta: int, width: int, what: str) -> None:
    fmt = ">Q" if width == 8 else ">I"
    (value,) = struct.unpack_from(fmt, buf, pos)
    value += delta
    if value < 0 or value >= 1 << (8 * width):
        raise Mp4Error(f"{what} time {value} does not fit its {8 * width}-bit field")
    struct.pack_into(fmt, buf, pos, value)
