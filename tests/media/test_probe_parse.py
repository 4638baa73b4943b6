"""The ffprobe JSON parser, from literal ffprobe output: no ffmpeg needed."""

from __future__ import annotations

import pytest

from media.errors import ProbeError
from media.probe_parse import bit_depth_of, is_variable_frame_rate, parse_probe, parse_rate, rotation_of


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
