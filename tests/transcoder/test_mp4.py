"""Box parsing: on real ffmpeg output, and on hand-built boxes for the paths ffmpeg does not
take (defaults from tfhd/trex, 64-bit sizes, a non-keyframe start)."""

from __future__ import annotations

import struct

import pytest

from tests.transcoder.conftest import Encoded, ffprobe_json
from transcoder import mp4


def box(btype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), btype) + payload


def full(btype: bytes, version: int, flags: int, body: bytes) -> bytes:
    return box(btype, struct.pack(">I", (version << 24) | flags) + body)


def test_init_segments_of_a_real_encode(ladder720: Encoded) -> None:
    out = ladder720.out_dir
    video = mp4.parse_init((out / "v720" / "init.mp4").read_bytes())
    assert video.handler == "vide"
    assert video.codec.startswith("avc1.")
    assert (video.width, video.height) == (1280, 720)
    (stream,) = ffprobe_json(out / "v720" / "init.mp4", "-show_streams")["streams"]
    assert stream["time_base"] == f"1/{video.timescale}"

    audio = mp4.parse_init((out / "a0" / "init.mp4").read_bytes())
    assert (audio.handler, audio.codec, audio.timescale) == ("soun", "mp4a.40.2", 48000)
    assert (audio.channels, audio.sample_rate) == (2, 48000)


def test_media_segments_of_a_real_encode(ladder720: Encoded) -> None:
    folder = ladder720.out_dir / "v480"
    init = mp4.parse_init((folder / "init.mp4").read_bytes())
    first = mp4.parse_segment((folder / "1.m4s").read_bytes(), init.defaults)
    second = mp4.parse_segment((folder / "2.m4s").read_bytes(), init.defaults)
    assert (first.sample_count, second.sample_count) == (120, 60)  # 4 s + 2 s at 30 fps
    assert first.duration == 4 * init.timescale and second.duration == 2 * init.timescale
    assert second.base_decode_time == first.base_decode_time + first.duration
    assert first.first_sample_is_sync and second.first_sample_is_sync
    assert mp4.segment_starts_with_keyframe(folder / "2.m4s")


def test_avc_codec_string() -> None:
    assert mp4.avc_codec_string(bytes([1, 0x64, 0x00, 0x28, 0xFF])) == "avc1.640028"
    assert mp4.avc_codec_string(bytes([1, 0x42, 0xC0, 0x1E, 0xFF])) == "avc1.42c01e"
    with pytest.raises(mp4.Mp4Error):
        mp4.avc_codec_string(b"\x00")


@pytest.mark.parametrize(
    "asc, expected",
    [
        pytest.param(bytes([0x11, 0x90]), "mp4a.40.2", id="aac-lc"),
        pytest.param(bytes([0x2B, 0x8A, 0x08, 0x00]), "mp4a.40.5", id="he-aac"),
    ],
)
def test_mp4a_codec_string(asc: bytes, expected: str) -> None:
    dsi = bytes([0x05, len(asc)]) + asc
    dcd_body = bytes([0x40, 0x15]) + bytes(11) + dsi
    dcd = bytes([0x04, len(dcd_body)]) + dcd_body
    es_body = b"\x00\x01\x00" + dcd + bytes([0x06, 0x01, 0x02])
    es = bytes([0x03, 0x80, 0x80, 0x80, len(es_body)]) + es_body  # 4-byte expandable size
    assert mp4.mp4a_codec_string(es) == expected


def _segment(
    *, tfhd_flags: int, tfhd_body: bytes, trun_flags: int, trun_body: bytes, tfdt_version: int = 1, base: int = 90_000
) -> bytes:
    tfdt_body = struct.pack(">Q" if tfdt_version else ">I", base)
    traf = box(
        b"traf",
        full(b"tfhd", 0, tfhd_flags, struct.pack(">I", 1) + tfhd_body)
        + full(b"tfdt", tfdt_version, 0, tfdt_body)
        + full(b"trun", 0, trun_flags, trun_body),
    )
    return box(b"styp", b"msdh\x00\x00\x00\x00") + box(b"moof", traf) + box(b"mdat", b"xx")


def test_key_sample_range_of_a_real_encode(ladder720: Encoded, tmp_path) -> None:
    """The recorded range holds exactly the key frame: init + the segment up to its end
    decodes to one frame, a keyframe, the size of the first sample ffprobe reports."""
    folder = ladder720.out_dir / "v480"
    init_bytes = (folder / "init.mp4").read_bytes()
    init = mp4.parse_init(init_bytes)
    for name in ("1.m4s", "2.m4s"):
        data = (folder / name).read_bytes()
        info = mp4.parse_segment(data, init.defaults)
        assert info.key_offset is not None and info.key_size is not None
        cut = tmp_path / f"cut-{name}.mp4"
        cut.write_bytes(init_bytes + data[: info.key_offset + info.key_size])
        frames = ffprobe_json(cut, "-show_frames", "-select_streams", "v:0")["frames"]
        assert len(frames) == 1 and frames[0]["key_frame"] == 1
        whole = tmp_path / f"whole-{name}.mp4"
        whole.write_bytes(init_bytes + data)
        packets = ffprobe_json(whole, "-show_packets", "-select_streams", "v:0")["packets"]
        first = min(packets, key=lambda pk: int(pk["pos"]))
        assert (int(first["pos"]) - len(init_bytes), int(first["size"])) == (info.key_offset, info.key_size)


@pytest.mark.parametrize(
    ("tfhd_flags", "tfhd_body", "trun_flags", "trun_body", "expected"),
    [
        # default-base-is-moof, data_offset 100 from the moof, per-sample durations and sizes
        pytest.param(0x020000, b"", 0x301, struct.pack(">IiIIII", 2, 100, 10, 7, 10, 5), (100, 7), id="trun-sizes"),
        # the size from tfhd's default_sample_size (0x10)
        pytest.param(0x020010, struct.pack(">I", 9), 0x001, struct.pack(">Ii", 1, 100), (100, 9), id="tfhd-size"),
        # no data_offset: the layout is implicit, left unknown
        pytest.param(0x020000, b"", 0x200, struct.pack(">II", 1, 7), None, id="no-data-offset"),
        # a range past the segment's end
        pytest.param(0x020000, b"", 0x201, struct.pack(">IiI", 1, 100, 10**6), None, id="past-the-end"),
    ],
)
def test_key_sample_range_from_hand_built_boxes(tfhd_flags, tfhd_body, trun_flags, trun_body, expected) -> None:
    seg = _segment(tfhd_flags=tfhd_flags, tfhd_body=tfhd_body, trun_flags=trun_flags, trun_body=trun_body)
    seg += b"\0" * 200  # sample bytes after the moof (offsets count from the moof's start, at 16)
    info = mp4.parse_segment(seg)
    got = None if info.key_offset is None else (info.key_offset - 16, info.key_size)
    assert got == expected


def test_segment_with_per_sample_durations_and_first_sample_flags() -> None:
    # trun: sample-duration present (0x100), first-sample-flags present (0x04).
    body = struct.pack(">II", 3, 0) + struct.pack(">III", 1000, 1001, 999)
    seg = _segment(tfhd_flags=0, tfhd_body=b"", trun_flags=0x104, trun_body=body)
    info = mp4.parse_segment(seg)
    assert (info.base_decode_time, info.duration, info.sample_count) == (90_000, 3000, 3)
    assert info.first_sample_is_sync


def test_segment_durations_from_tfhd_defaults_and_non_sync_start() -> None:
    # tfhd: default-sample-duration (0x08) and default-sample-flags (0x20) = non-sync.
    tfhd = struct.pack(">II", 512, mp4.SAMPLE_IS_NON_SYNC)
    seg = _segment(
        tfhd_flags=0x28, tfhd_body=tfhd, trun_flags=0, trun_body=struct.pack(">I", 4), tfdt_version=0, base=7
    )
    info = mp4.parse_segment(seg)
    assert (info.base_decode_time, info.duration, info.sample_count) == (7, 2048, 4)
    assert not info.first_sample_is_sync


def test_segment_durations_from_trex_defaults() -> None:
    seg = _segment(tfhd_flags=0, tfhd_body=b"", trun_flags=0, trun_body=struct.pack(">I", 10))
    info = mp4.parse_segment(seg, mp4.TrackDefaults(sample_duration=1024, sample_flags=0))
    assert info.duration == 10240 and info.first_sample_is_sync


def test_largesize_and_size_zero_boxes() -> None:
    large = struct.pack(">I4sQ", 1, b"free", 16 + 3) + b"abc"
    last = struct.pack(">I4s", 0, b"mdat") + b"rest"
    boxes = list(mp4.iter_boxes(large + last))
    assert [(b.type, b.payload - b.start, b.end - b.start) for b in boxes] == [(b"free", 16, 19), (b"mdat", 8, 12)]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(struct.pack(">I4s", 100, b"moof"), id="overlong"),
        pytest.param(struct.pack(">I4s", 4, b"moof"), id="shorter-than-header"),
        pytest.param(box(b"free", b"") + b"\x00\x00", id="trailing-bytes"),
    ],
)
def test_malformed_boxes(data: bytes) -> None:
    with pytest.raises(mp4.Mp4Error):
        list(mp4.iter_boxes(data))


def test_segment_without_moof_is_an_error() -> None:
    with pytest.raises(mp4.Mp4Error):
        mp4.parse_segment(box(b"mdat", b"x"))


def _offsets(seg: bytes) -> tuple[int, list[int]]:
    """(trun version, composition offsets) of a segment built by `_segment`."""
    trun = mp4.find(seg, "moof/traf/trun")
    assert trun is not None
    layout = mp4.trun_layout(seg, trun)
    return layout.version, mp4.composition_offsets(seg, layout)


def test_presented_from_decode_time() -> None:
    # x264's B-frame delay: the first frame (the IDR) is presented two frames (1024 ticks
    # at 15360) after its decode time; frames shown before a later P frame get smaller offsets.
    seg = _segment(
        tfhd_flags=0, tfhd_body=b"", trun_flags=0x800, trun_body=struct.pack(">I4I", 4, 1024, 1024, 2048, 512)
    )
    moved = mp4.present_from_decode_time(seg)
    assert len(moved) == len(seg)
    assert _offsets(seg) == (0, [1024, 1024, 2048, 512])
    assert _offsets(moved) == (1, [0, 0, 1024, -512])  # version 1: signed offsets
    assert mp4.parse_segment(moved) == mp4.parse_segment(seg)  # decode times and durations unchanged
    assert mp4.present_from_decode_time(moved) is moved  # done once


@pytest.mark.parametrize(
    ("trun_flags", "trun_body"),
    [
        pytest.param(0x100, struct.pack(">III", 2, 512, 512), id="no-offsets"),  # audio, or no B-frames
        pytest.param(0x800, struct.pack(">III", 2, 0, 512), id="first-offset-zero"),
    ],
)
def test_segments_already_presented_from_decode_time_are_left_alone(trun_flags: int, trun_body: bytes) -> None:
    seg = _segment(tfhd_flags=0, tfhd_body=b"", trun_flags=trun_flags, trun_body=trun_body)
    assert mp4.present_from_decode_time(seg) is seg


def test_a_truncated_trun_is_an_error() -> None:
    seg = _segment(tfhd_flags=0, tfhd_body=b"", trun_flags=0x800, trun_body=struct.pack(">II", 5, 1024))
    with pytest.raises(mp4.Mp4Error):
        mp4.present_from_decode_time(seg)
