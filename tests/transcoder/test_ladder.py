"""Ladder planning: a pure function of the probe, so a table of sources and expectations."""

from __future__ import annotations

from fractions import Fraction

import pytest

from media.probe_model import AudioStream, Probe, VideoStream
from transcoder.errors import SourceRejected
from transcoder.ladder import h264_level, plan_ladder


def video(
    width=1920, height=1080, fps="30/1", rotation=0, pix_fmt="yuv420p", bit_depth=8, vfr=False, index=0
) -> VideoStream:
    num, _, den = fps.partition("/")
    return VideoStream(
        index=index,
        codec="h264",
        width=width,
        height=height,
        fps=float(Fraction(int(num), int(den or 1))),
        fps_fraction=fps,
        rotation=rotation,
        pix_fmt=pix_fmt,
        bit_depth=bit_depth,
        variable_frame_rate=vfr,
    )


AUDIO = (
    AudioStream(index=1, codec="aac", channels=6, sample_rate=44100, language="fra", title="Français"),
    AudioStream(index=2, codec="aac", channels=2, sample_rate=48000, language="eng"),
)


def probe(v: VideoStream | None = None, audio=AUDIO, duration_s=10.0) -> Probe:
    return Probe(format_name="mov,mp4", duration_s=duration_s, size_bytes=1000, bit_rate=None, video=v, audio=audio)


@pytest.mark.parametrize(
    "source, sizes, fps, gop",
    [
        pytest.param(
            video(1920, 1080),
            [("v1080", 1920, 1080), ("v720", 1280, 720), ("v480", 854, 480), ("v360", 640, 360)],
            "30",
            60,
            id="1080p",
        ),
        pytest.param(
            video(3840, 2160, fps="24000/1001"),
            [
                ("v2160", 3840, 2160),
                ("v1440", 2560, 1440),
                ("v1080", 1920, 1080),
                ("v720", 1280, 720),
                ("v480", 854, 480),
                ("v360", 640, 360),
            ],
            "24000/1001",
            48,
            id="4k",
        ),
        pytest.param(
            video(1919, 1079),
            [("v1078", 1918, 1078), ("v720", 1280, 720), ("v480", 854, 480), ("v360", 640, 360)],
            "30",
            60,
            id="1919x1079",
        ),
        pytest.param(
            video(1920, 1080, rotation=90),
            [("v1080", 1080, 1920), ("v720", 720, 1280), ("v480", 480, 854), ("v360", 360, 640)],
            "30",
            60,
            id="rotated-phone-90",
        ),
        pytest.param(
            video(1920, 1080, rotation=180),
            [("v1080", 1920, 1080), ("v720", 1280, 720), ("v480", 854, 480), ("v360", 640, 360)],
            "30",
            60,
            id="rotated-180",
        ),
        pytest.param(
            video(1920, 1080, pix_fmt="yuv420p10le", bit_depth=10),
            [("v1080", 1920, 1080), ("v720", 1280, 720), ("v480", 854, 480), ("v360", 640, 360)],
            "30",
            60,
            id="10-bit",
        ),
        pytest.param(
            video(1280, 720, fps="120/1"),
            [("v720", 1280, 720), ("v480", 854, 480), ("v360", 640, 360)],
            "60",
            120,
            id="120fps-halved",
        ),
        pytest.param(
            video(1280, 720, fps="120000/1001"),
            [("v720", 1280, 720), ("v480", 854, 480), ("v360", 640, 360)],
            "60000/1001",
            120,
            id="119.88fps-halved",
        ),
        pytest.param(
            video(1280, 720, fps="2997/100"),
            [("v720", 1280, 720), ("v480", 854, 480), ("v360", 640, 360)],
            "30000/1001",
            60,
            id="29.97-rounded-in-container",
        ),
        pytest.param(
            video(1280, 720, fps="2950/100", vfr=True),
            [("v720", 1280, 720), ("v480", 854, 480), ("v360", 640, 360)],
            "30000/1001",
            60,
            id="vfr-average-snapped",
        ),
        pytest.param(video(320, 240, fps="25/1"), [("v240", 320, 240)], "25", 50, id="240p-tiny"),
        pytest.param(video(321, 181), [("v180", 320, 180)], "30", 60, id="odd-tiny"),
        pytest.param(
            video(1920, 804, fps="24/1"),
            [("v1080", 1920, 804), ("v720", 1280, 536), ("v480", 854, 358), ("v360", 640, 268)],
            "24",
            48,
            id="scope-2.39",
        ),
        pytest.param(
            video(1440, 1080),
            [("v1080", 1440, 1080), ("v720", 960, 720), ("v480", 640, 480), ("v360", 480, 360)],
            "30",
            60,
            id="4:3",
        ),
        pytest.param(
            video(7680, 4320),
            [
                ("v2160", 3840, 2160),
                ("v1440", 2560, 1440),
                ("v1080", 1920, 1080),
                ("v720", 1280, 720),
                ("v480", 854, 480),
                ("v360", 640, 360),
            ],
            "30",
            60,
            id="8k-capped",
        ),
        pytest.param(
            video(1000, 562), [("v480", 854, 480), ("v360", 640, 360)], "30", 60, id="near-480-no-native-rung"
        ),
    ],
)
def test_rungs(source: VideoStream, sizes, fps, gop) -> None:
    ladder = plan_ladder(probe(source))
    assert [(r.id, r.width, r.height) for r in ladder.rungs] == sizes
    assert ladder.fps == fps
    assert ladder.gop_frames == gop
    assert ladder.segment_s == 4
    assert ladder.video_source_index == source.index
    disp_w, disp_h = source.display_width, source.display_height
    for r in ladder.rungs:
        assert r.width % 2 == 0 and r.height % 2 == 0
        assert r.width <= disp_w and r.height <= disp_h, "never upscale"
        assert abs(r.width / r.height - disp_w / disp_h) < 0.01, "aspect ratio kept"
        assert r.profile == "high"
        assert 0 < r.video_bitrate < r.maxrate < r.bufsize
    bitrates = [r.video_bitrate for r in ladder.rungs]
    assert bitrates == sorted(bitrates, reverse=True)


@pytest.mark.parametrize(
    "source, expected",
    [
        pytest.param(
            video(1920, 1080), {"v1080": 5_000_000, "v720": 3_000_000, "v480": 1_200_000, "v360": 700_000}, id="30fps"
        ),
        pytest.param(
            video(1920, 1080, fps="60/1"),
            {"v1080": 7_500_000, "v720": 4_500_000, "v480": 1_800_000, "v360": 1_050_000},
            id="60fps-x1.5",
        ),
    ],
)
def test_bitrates(source: VideoStream, expected: dict[str, int]) -> None:
    assert {r.id: r.video_bitrate for r in plan_ladder(probe(source)).rungs} == expected


@pytest.mark.parametrize(
    "w, h, fps, level",
    [
        pytest.param(640, 360, 30, 30, id="360p30-3.0"),
        pytest.param(854, 480, 30, 31, id="480p30-3.1"),
        pytest.param(1280, 720, 30, 31, id="720p30-3.1"),
        pytest.param(1280, 720, 60, 32, id="720p60-3.2"),
        pytest.param(1920, 1080, 30, 40, id="1080p30-4.0"),
        pytest.param(1920, 1080, 60, 42, id="1080p60-4.2"),
        pytest.param(3840, 2160, 30, 51, id="2160p30-5.1"),
        pytest.param(3840, 2160, 60, 52, id="2160p60-5.2"),
    ],
)
def test_h264_level(w: int, h: int, fps: int, level: int) -> None:
    assert h264_level(w, h, Fraction(fps), maxrate=5_000_000, bufsize=10_000_000) == level


def test_audio_from_first_stream_keeps_language_as_bcp47() -> None:
    ladder = plan_ladder(probe(video()))
    a = ladder.audio
    assert a is not None
    assert (a.id, a.source_index, a.language, a.name, a.default) == ("a0", 1, "fr", "Français", True)
    assert (a.codec, a.bitrate, a.channels, a.sample_rate) == ("aac", 128_000, 2, 48_000)
    assert ladder.rendition_ids == ("v1080", "v720", "v480", "v360", "a0", "a0-51", "a1")


def test_every_audio_stream_is_a_rendition_and_surround_keeps_a_51_copy() -> None:
    ladder = plan_ladder(probe(video()))
    got = [(a.id, a.source_index, a.language, a.name, a.channels, a.bitrate, a.default) for a in ladder.audios]
    assert got == [
        ("a0", 1, "fr", "Français", 2, 128_000, True),
        ("a0-51", 1, "fr", "Français 5.1", 6, 384_000, False),
        ("a1", 2, "en", "English", 2, 128_000, False),
    ]
    assert all((a.codec, a.sample_rate) == ("aac", 48_000) for a in ladder.audios)


def test_the_sources_default_stream_is_the_default_rendition() -> None:
    streams = (
        AudioStream(index=1, codec="aac", channels=2, sample_rate=48000, language="eng"),
        AudioStream(index=2, codec="aac", channels=2, sample_rate=48000, language="ger", default=True),
    )
    ladder = plan_ladder(probe(video(), audio=streams))
    assert [(a.id, a.language, a.default) for a in ladder.audios] == [("a0", "en", False), ("a1", "de", True)]
    assert ladder.audio is not None and ladder.audio.id == "a1"


def test_audio_languages_override_by_stream_order_and_untagged_is_und() -> None:
    streams = (
        AudioStream(index=1, codec="aac", channels=2, sample_rate=48000, language="und"),
        AudioStream(index=2, codec="aac", channels=2, sample_rate=48000, language=""),
        AudioStream(index=3, codec="aac", channels=2, sample_rate=48000, language="eng"),
    )
    ladder = plan_ladder(probe(video(), audio=streams), audio_languages={0: "it"})
    assert [(a.language, a.name) for a in ladder.audios] == [("it", "Italiano"), ("und", "Audio 2"), ("en", "English")]


def test_audio_only_is_a_ladder_without_rungs() -> None:
    ladder = plan_ladder(probe(None))
    assert ladder.rungs == ()
    assert ladder.audio is not None and ladder.audio.id == "a0"
    assert ladder.fps is None and ladder.gop_frames == 0
    assert ladder.rendition_ids == ("a0", "a0-51", "a1")


def test_video_only_has_no_audio() -> None:
    ladder = plan_ladder(probe(video(1280, 720), audio=()))
    assert ladder.audio is None
    assert ladder.rendition_ids == ("v720", "v480", "v360")


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(probe(None, audio=()), id="no-streams"),
        pytest.param(probe(video(), duration_s=0.0), id="zero-duration"),
        pytest.param(probe(video(0, 0)), id="no-size"),
    ],
)
def test_rejected(source: Probe) -> None:
    with pytest.raises(SourceRejected) as info:
        plan_ladder(source)
    assert info.value.code == "source_rejected"
    assert "\n" not in str(info.value)


def test_segment_duration_is_a_parameter_and_a_multiple_of_the_gop() -> None:
    assert plan_ladder(probe(video()), segment_s=6).segment_s == 6
    with pytest.raises(ValueError):
        plan_ladder(probe(video()), segment_s=3)


def test_max_fps_parameter() -> None:
    assert plan_ladder(probe(video(fps="50/1")), max_fps=30).fps == "25"
