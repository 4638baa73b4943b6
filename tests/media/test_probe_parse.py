"""The ffprobe JSON parser, from literal ffprobe output: no ffmpeg needed."""

from __future__ import annotations

import pytest

from media.errors import ProbeError
from media.probe_model import Probe, StaleProbe
from media.probe_parse import (
    bit_depth_of,
    field_order_of,
    is_variable_frame_rate,
    parse_probe,
    parse_rate,
    rotation_of,
    timeline,
)


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        pytest.param({}, 0, id="none"),
        pytest.param(
            {"side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]}, 90, id="phone-portrait"
        ),
        pytest.param({"side_data_list": [{"side_data_type": "Display Matrix", "rotation": 90}]}, 270, id="matrix-90"),
        pytest.param(
            {"side_data_list": [{"side_data_type": "Display Matrix", "rotation": -180}]}, 180, id="matrix-180"
        ),
        pytest.param({"side_data_list": [{"side_data_type": "Display Matrix", "rotation": 180}]}, 180, id="matrix+180"),
        pytest.param(
            {"side_data_list": [{"side_data_type": "Display Matrix", "rotation": -89.98}]}, 90, id="matrix-rounding"
        ),
        pytest.param({"tags": {"rotate": "90"}}, 90, id="tag-90"),
        pytest.param({"tags": {"rotate": "-90"}}, 270, id="tag-negative"),
        pytest.param({"tags": {"rotate": "450"}}, 90, id="tag-over-360"),
        pytest.param({"tags": {"rotate": "junk"}}, 0, id="tag-junk"),
        pytest.param(
            {"tags": {"rotate": "90"}, "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]},
            90,
            id="both-agree",
        ),
    ],
)
def test_rotation(stream: dict, expected: int) -> None:
    assert rotation_of(stream) == expected


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        pytest.param({"pix_fmt": "yuv420p"}, 8, id="yuv420p"),
        pytest.param({"pix_fmt": "yuv420p10le"}, 10, id="yuv420p10le"),
        pytest.param({"pix_fmt": "yuv422p12be"}, 12, id="yuv422p12be"),
        pytest.param({"pix_fmt": "p010le"}, 10, id="p010le"),
        pytest.param({"pix_fmt": "gray10le"}, 10, id="gray10le"),
        pytest.param({"pix_fmt": "yuv420p", "bits_per_raw_sample": "8"}, 8, id="raw-8"),
        pytest.param({"pix_fmt": "rgb24", "bits_per_raw_sample": "10"}, 10, id="raw-only"),
        pytest.param({}, 8, id="unknown"),
    ],
)
def test_bit_depth(stream: dict, expected: int) -> None:
    assert bit_depth_of(stream) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("25/1", 25.0), ("30000/1001", 30000 / 1001), ("0/0", 0.0), ("N/A", 0.0), (None, 0.0), ("-1/1", 0.0)],
)
def test_parse_rate(text: str | None, expected: float) -> None:
    assert parse_rate(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("r", "avg", "vfr"),
    [
        pytest.param(25.0, 25.0, False, id="same"),
        pytest.param(30000 / 1001, 29.97, False, id="rounding"),
        pytest.param(60.0, 29.97, True, id="vfr-phone"),
        pytest.param(25.0, 0.0, False, id="unknown-avg"),
    ],
)
def test_variable_frame_rate_rule(r: float, avg: float, vfr: bool) -> None:
    assert is_variable_frame_rate(r, avg) is vfr


def test_parse_no_streams() -> None:
    with pytest.raises(ProbeError, match="no video or audio stream"):
        parse_probe({"format": {"format_name": "srt"}, "streams": [{"codec_type": "subtitle"}]}, "x.srt")


def test_parse_elementary_stream_without_average_rate() -> None:
    p = parse_probe(
        {
            "format": {"format_name": "h264", "size": "10"},
            "streams": [
                {"index": 0, "codec_type": "video", "codec_name": "h264", "width": 64, "height": 48,
                 "r_frame_rate": "25/1", "avg_frame_rate": "0/0", "pix_fmt": "yuv420p"},
                {"index": 1, "codec_type": "subtitle", "codec_name": "mov_text", "tags": {"LANGUAGE": "ger"}},
            ],
        }
    )  # fmt: skip
    assert p.video is not None
    assert (p.video.fps, p.video.fps_fraction, p.video.variable_frame_rate) == (25.0, "25/1", False)
    assert p.duration_s == 0.0 and p.bit_rate is None
    assert p.extra["subtitles"] == [{"index": 1, "codec": "mov_text", "language": "ger"}]


# ---- timeline: start offsets and the real length ----------------------------------------

_V = {"codec_type": "video", "index": 0, "width": 320, "height": 180, "r_frame_rate": "25/1"}
_A = {"codec_type": "audio", "index": 1, "channels": 2, "sample_rate": "48000"}


def _streams(v: dict, a: dict) -> list[dict]:
    return [{**_V, **v}, {**_A, **a}]


@pytest.mark.parametrize(
    ("fmt", "video", "audio", "start", "duration"),
    [
        pytest.param(
            {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "start_time": "0.000000", "duration": "4.032000"},
            {"start_time": "0.000000", "duration": "4.000000"},
            {"start_time": "0.000000", "duration": "4.032000"},
            0.0,
            4.032,
            id="mp4-from-0",
        ),
        pytest.param(
            {"format_name": "mpegts", "start_time": "3601.378667", "duration": "4.021333"},
            {"start_time": "3601.400000", "duration": "4.000000"},
            {"start_time": "3601.378667", "duration": "3.840000"},
            3601.378667,
            4.021333,
            id="ts-3600-duration-is-a-length",
        ),
        pytest.param(
            {"format_name": "mpegts", "start_time": "1.400000", "duration": "4.021333"},
            {"start_time": "1.421333", "duration": "4.000000"},
            {"start_time": "1.400000", "duration": "3.840000"},
            1.4,
            4.021333,
            id="ts-muxer-1.4s",
        ),
        pytest.param(
            {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "start_time": "3599.978000", "duration": "3604.000000"},
            {"start_time": "3600.000000", "duration": "4.000000"},
            {"start_time": "3599.978000", "duration": "4.021333"},
            3599.978,
            4.022,
            id="mp4-3600-duration-is-the-end",
        ),
        pytest.param(
            {"format_name": "matroska,webm", "start_time": "3599.979000", "duration": "3604.000000"},
            {"start_time": "3600.000000", "duration": "N/A"},
            {"start_time": "3599.979000"},
            3599.979,
            4.021,
            id="mkv-3600-no-stream-durations",
        ),
        pytest.param(
            {"format_name": "mpegts", "start_time": "3601.4", "duration": "6.0"},
            {"start_time": "3601.4"},
            {"start_time": "3602.4"},
            3601.4,
            6.0,
            id="ts-no-stream-durations-is-a-length",
        ),
        pytest.param(
            {"format_name": "matroska,webm", "duration": "5.0"},
            {"start_time": "N/A"},
            {},
            0.0,
            5.0,
            id="no-start-times",
        ),
        pytest.param(
            {"format_name": "mpegts", "start_time": "10.0"},
            {"start_time": "10.0", "duration": "N/A"},
            {"start_time": "10.0", "duration": "3.0"},
            10.0,
            3.0,
            id="no-format-duration",
        ),
    ],
)
def test_timeline(fmt: dict, video: dict, audio: dict, start: float, duration: float) -> None:
    assert timeline(fmt, _streams(video, audio)) == (pytest.approx(start), pytest.approx(duration, abs=1e-6))
    p = parse_probe({"format": fmt, "streams": _streams(video, audio)})
    assert (p.start_time_s, p.duration_s) == (pytest.approx(start), pytest.approx(duration, abs=1e-6))


def test_stream_start_times_are_kept() -> None:
    p = parse_probe(
        {
            "format": {"format_name": "mpegts", "start_time": "3601.4", "duration": "6.0"},
            "streams": _streams({"start_time": "3601.400000"}, {"start_time": "3602.378667"}),
        }
    )
    assert p.video is not None and p.video.start_time_s == 3601.4
    assert p.audio[0].start_time_s == 3602.378667


@pytest.mark.parametrize(
    ("value", "order", "interlaced"),
    [
        pytest.param("progressive", "progressive", False, id="progressive"),
        pytest.param(None, "unknown", False, id="absent"),
        pytest.param("unknown", "unknown", False, id="unknown"),
        pytest.param("tt", "tt", True, id="tt"),
        pytest.param("bb", "bb", True, id="bb"),
        pytest.param("TB", "tb", True, id="tb-upper-case"),
        pytest.param("bt", "bt", True, id="bt"),
    ],
)
def test_field_order(value: str | None, order: str, interlaced: bool) -> None:
    stream = {**_V, "field_order": value} if value is not None else dict(_V)
    assert field_order_of(stream) == order
    video = parse_probe({"format": {"duration": "1"}, "streams": [stream]}).video
    assert video is not None and (video.field_order, video.interlaced) == (order, interlaced)


def test_stored_probe_round_trips_and_an_older_one_is_refused() -> None:
    p = parse_probe(
        {
            "format": {"format_name": "mpegts", "start_time": "1.4", "duration": "2"},
            "streams": [{**_V, "field_order": "tt", "start_time": "1.4", "duration": "2"}],
        }
    )
    assert Probe.from_dict(p.to_dict()) == p
    old = p.to_dict()
    del old["model"], old["start_time_s"]
    with pytest.raises(StaleProbe):
        Probe.from_dict(old)
