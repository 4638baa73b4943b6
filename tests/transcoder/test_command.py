"""The ffmpeg argv, checked without running ffmpeg."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from media.probe_model import AudioStream, Probe, VideoStream
from transcoder.command import build_ffmpeg_args
from transcoder.ladder import Ladder, plan_ladder

OUT = Path("/work/out")


def _probe(video: bool = True, audio: bool = True, rotation: int = 0, field_order: str = "progressive") -> Probe:
    v = (
        VideoStream(
            index=0,
            codec="h264",
            width=1920,
            height=1080,
            fps=30.0,
            fps_fraction="30/1",
            rotation=rotation,
            pix_fmt="yuv420p10le",
            bit_depth=10,
            variable_frame_rate=False,
            field_order=field_order,
        )
        if video
        else None
    )
    a = (AudioStream(index=2, codec="aac", channels=6, sample_rate=44100, language="eng"),) if audio else ()
    return Probe(format_name="mp4", duration_s=60.0, size_bytes=1, bit_rate=None, video=v, audio=a)


def _opt(args: list[str], name: str) -> str:
    assert args.count(name) == 1, f"{name} appears {args.count(name)} times"
    return args[args.index(name) + 1]


@pytest.fixture
def ladder() -> Ladder:
    return plan_ladder(_probe())


@pytest.fixture
def args(ladder: Ladder) -> list[str]:
    return build_ffmpeg_args("/media/in.mov", ladder, OUT, preset="veryfast")


def test_one_input_decoded_once(args: list[str]) -> None:
    assert args[0] == "ffmpeg"
    assert args.count("-i") == 1
    assert _opt(args, "-i") == "file:/media/in.mov"
    graph = _opt(args, "-filter_complex")
    assert graph.count("[0:0]") == 1, "the source video enters the graph once"
    assert "noautorotate" not in " ".join(args), "ffmpeg applies the rotation once, on decode"


def test_url_source_is_passed_as_is(ladder: Ladder) -> None:
    args = build_ffmpeg_args("https://example.com/a.mp4", ladder, OUT)
    assert _opt(args, "-i") == "https://example.com/a.mp4"


def test_fps_once_then_split_into_every_rung(args: list[str], ladder: Ladder) -> None:
    graph = _opt(args, "-filter_complex")
    assert re.search(r"\[0:0\]fps=fps=30:start_time=0\[\w+\];\[\w+\]split=4\[", graph)
    assert graph.count("]fps=") == 1
    assert graph.count("split=") == 1
    for rung in ladder.rungs:
        assert f"scale=h={rung.height}:w={rung.width}[" in graph
    assert graph.count("setsar=1") == 4
    assert graph.count("format=yuv420p") == 4


def test_every_rung_encoded_with_aligned_keyframes(args: list[str], ladder: Ladder) -> None:
    assert _opt(args, "-c:v") == "libx264"
    assert _opt(args, "-preset:v") == "veryfast"
    assert _opt(args, "-pix_fmt:v") == "yuv420p"
    assert _opt(args, "-g:v") == "60"
    assert _opt(args, "-keyint_min:v") == "60"
    assert _opt(args, "-sc_threshold:v") == "0"
    assert _opt(args, "-x264-params:v") == "keyint=60:min-keyint=60:scenecut=0"
    for i, rung in enumerate(ladder.rungs):
        assert _opt(args, f"-b:v:{i}") == str(rung.video_bitrate)
        assert _opt(args, f"-maxrate:v:{i}") == str(rung.maxrate)
        assert _opt(args, f"-bufsize:v:{i}") == str(rung.bufsize)
        assert _opt(args, f"-profile:v:{i}") == "high"
        assert _opt(args, f"-level:v:{i}") == rung.level_name
    maps = [args[i + 1] for i, a in enumerate(args) if a == "-map"]
    assert len(maps) == 5
    graph = _opt(args, "-filter_complex")
    assert maps[-1] in graph and "[0:2]aresample=" in graph, "audio: exactly the first audio stream, by index"


def test_audio_encoded_once_as_its_own_rendition(args: list[str]) -> None:
    assert _opt(args, "-c:a") == "aac"
    assert _opt(args, "-b:a") == "128000"
    assert _opt(args, "-ac") == "2"
    assert _opt(args, "-ar") == "48000"
    assert _opt(args, "-metadata:s:a:0") == "language=eng"
    assert _opt(args, "-var_stream_map") == ("v:0,name:v1080 v:1,name:v720 v:2,name:v480 v:3,name:v360 a:0,name:a0")


def test_cmaf_segments_in_the_model_layout(args: list[str]) -> None:
    assert _opt(args, "-f") == "hls"
    assert _opt(args, "-hls_segment_type") == "fmp4"
    assert _opt(args, "-hls_time") == "4"
    assert _opt(args, "-hls_playlist_type") == "vod"
    assert _opt(args, "-hls_flags") == "independent_segments"
    assert _opt(args, "-hls_fmp4_init_filename") == "%v/init.mp4"
    assert _opt(args, "-hls_segment_filename") == "/work/out/%v/%d.m4s"
    assert _opt(args, "-hls_start_number_source") == "generic"
    assert _opt(args, "-start_number") == "1"
    assert args[-1] == "/work/out/%v.m3u8"


def test_progress_on_stdout(args: list[str]) -> None:
    assert _opt(args, "-progress") == "pipe:1"
    assert "-nostats" in args
    assert "-nostdin" in args


def test_single_rung_needs_no_split_and_a_literal_init_name() -> None:
    tiny = Probe(
        format_name="mp4",
        duration_s=5.0,
        size_bytes=1,
        bit_rate=None,
        video=VideoStream(
            index=0,
            codec="h264",
            width=320,
            height=240,
            fps=25.0,
            fps_fraction="25/1",
            rotation=0,
            pix_fmt="yuv420p",
            bit_depth=8,
            variable_frame_rate=False,
        ),
    )
    args = build_ffmpeg_args("in.mp4", plan_ladder(tiny), OUT)
    assert "split" not in _opt(args, "-filter_complex")
    # hlsenc only expands %v in the init name when there are several variants.
    assert _opt(args, "-hls_fmp4_init_filename") == "v240/init.mp4"
    assert _opt(args, "-var_stream_map") == "v:0,name:v240"


def test_audio_only() -> None:
    args = build_ffmpeg_args("in.m4a", plan_ladder(_probe(video=False)), OUT)
    assert "-filter_complex" not in args
    assert "-c:v" not in args
    assert _opt(args, "-map") == "0:2"
    assert _opt(args, "-var_stream_map") == "a:0,name:a0"
    assert _opt(args, "-hls_fmp4_init_filename") == "a0/init.mp4"


def test_video_only() -> None:
    args = build_ffmpeg_args("in.mp4", plan_ladder(_probe(audio=False)), OUT)
    assert "-c:a" not in args
    assert "a:0" not in _opt(args, "-var_stream_map")


def test_rotated_source_scales_to_display_size() -> None:
    args = build_ffmpeg_args("in.mp4", plan_ladder(_probe(rotation=90)), OUT)
    assert "scale=h=1920:w=1080[" in _opt(args, "-filter_complex")


def test_preset_and_threads(ladder: Ladder) -> None:
    args = build_ffmpeg_args("in.mp4", ladder, OUT, preset="ultrafast", threads=2, ffmpeg_bin="/usr/bin/ffmpeg")
    assert args[0] == "/usr/bin/ffmpeg"
    assert _opt(args, "-preset:v") == "ultrafast"
    assert _opt(args, "-threads") == "2"


def test_timeline_starts_at_zero_for_video_and_audio(args: list[str]) -> None:
    """A source whose streams start apart (or at 3600 s) gets both padded to 0: the first
    picture held, silence before the first sample (the fMP4 muxer would start each at 0)."""
    graph = _opt(args, "-filter_complex")
    assert graph.count("start_time=0") == 1 and "]fps=fps=30:start_time=0[" in graph
    assert re.search(r"\[0:2\]aresample=async=1:first_pts=0\[(\w+)\]", graph)
    audio_label = re.search(r"\[0:2\]aresample=[^\[]*\[(\w+)\]", graph)
    assert audio_label and f"[{audio_label.group(1)}]" in args  # the padded audio is what is encoded
    assert "-copyts" not in args  # ffmpeg subtracts the source's start time


@pytest.mark.parametrize("order", ["tt", "bb", "tb", "bt"])
def test_interlaced_source_is_deinterlaced_before_fps_and_scaling(order: str) -> None:
    ladder = plan_ladder(_probe(field_order=order))
    assert ladder.deinterlace == order
    graph = _opt(build_ffmpeg_args("/media/in.ts", ladder, OUT), "-filter_complex")
    assert graph.count("bwdif") == 1
    assert re.search(r"^\[0:0\]bwdif=deint=all:mode=send_frame:parity=auto\[(\w+)\];\[\1\]fps=", graph)
    assert graph.index("bwdif") < graph.index("fps=") < graph.index("split=") < graph.index("scale=")
    assert ladder.fps == "30"  # send_frame: one frame per frame, the rate is kept


@pytest.mark.parametrize("order", ["progressive", "unknown"])
def test_progressive_source_is_not_deinterlaced(order: str) -> None:
    ladder = plan_ladder(_probe(field_order=order))
    assert ladder.deinterlace is None
    assert "bwdif" not in _opt(build_ffmpeg_args("/media/in.mp4", ladder, OUT), "-filter_complex")
