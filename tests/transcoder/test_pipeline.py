"""End to end: generated clip -> probe -> transcode -> files + rendition model, checked with
ffprobe and our own box parser."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest

from media.probe_model import Probe
from packager.model import Presentation, Rendition
from tests.transcoder.conftest import Encoded, ffprobe_json, joined
from transcoder import mp4
from transcoder.errors import SourceRejected, TranscodeError
from transcoder.pipeline import check_presentation, transcode

H264_PROFILES = {66: {"Baseline", "Constrained Baseline"}, 77: {"Main"}, 100: {"High"}}


def boundaries(r: Rendition) -> list[Fraction]:
    t, edges = r.start_time, [Fraction(r.start_time, r.timescale)]
    for s in r.segments:
        t += s.duration
        edges.append(Fraction(t, r.timescale))
    return edges


def test_ladder_renditions(ladder720: Encoded) -> None:
    p = ladder720.presentation
    assert [r.id for r in p.renditions] == ["v720", "v480", "v360", "a0"]
    assert [(r.width, r.height) for r in p.video] == [(1280, 720), (854, 480), (640, 360)]
    assert all(r.frame_rate == "30" for r in p.video)
    assert p.segment_target_s == 4
    assert p.duration_s == pytest.approx(6.0, abs=0.05)
    (a,) = p.audio
    assert (a.codecs, a.channels, a.sample_rate, a.language, a.default) == ("mp4a.40.2", 2, 48000, "und", True)


def test_out_dir_holds_exactly_the_model_files(ladder720: Encoded) -> None:
    p = ladder720.presentation
    expected = set()
    for r in p.renditions:
        expected.add(r.init_name)
        expected.update(r.segment_name(r.start_number + i) for i in range(len(r.segments)))
    found = {str(f.relative_to(ladder720.out_dir)) for f in ladder720.out_dir.rglob("*") if f.is_file()}
    assert found == expected


def test_every_segment_starts_with_a_keyframe(ladder720: Encoded) -> None:
    for r in ladder720.presentation.video:
        folder = ladder720.out_dir / r.id
        for n in range(1, len(r.segments) + 1):
            assert mp4.segment_starts_with_keyframe(folder / f"{n}.m4s"), f"{r.id}/{n}.m4s"
        # The same, seen by ffprobe: a keyframe packet at every segment's start time.
        packets = ffprobe_json(
            joined(ladder720.out_dir, r.id, len(r.segments)),
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts,flags",
        )["packets"]
        key_pts = {int(pk["pts"]) for pk in packets if "K" in pk["flags"]}
        first_pts = min(int(pk["pts"]) for pk in packets)
        starts = [b * r.timescale for b in boundaries(r)[:-1]]
        offset = first_pts - starts[0]  # presentation offset of the B-frame delay
        assert {int(s) + offset for s in starts} <= key_pts


def test_segment_boundaries_identical_across_rungs(ladder720: Encoded) -> None:
    video = ladder720.presentation.video
    reference = boundaries(video[0])
    assert [float(x) for x in reference] == pytest.approx([0, 4, 6], abs=1e-9)
    for r in video[1:]:
        assert boundaries(r) == reference
    (a,) = ladder720.presentation.audio
    assert abs(len(a.segments) - len(video[0].segments)) <= 1
    assert a.segment_seconds() == pytest.approx([4, 2], abs=0.05)


def test_codec_strings_match_ffprobe(ladder720: Encoded) -> None:
    p = ladder720.presentation
    for r in p.renditions:
        (stream,) = ffprobe_json(joined(ladder720.out_dir, r.id, len(r.segments)), "-show_streams")["streams"]
        if r.kind == "video":
            fourcc, _, hexpart = r.codecs.partition(".")
            assert fourcc == "avc1"
            assert stream["profile"] in H264_PROFILES[int(hexpart[0:2], 16)]
            assert int(hexpart[4:6], 16) == stream["level"]
            assert (stream["width"], stream["height"]) == (r.width, r.height)
            assert stream["pix_fmt"] == "yuv420p"
            assert stream["r_frame_rate"] == "30/1"
            assert "side_data_list" not in stream
        else:
            assert stream["codec_name"] == "aac" and stream["profile"] == "LC"
            assert r.codecs == "mp4a.40.2"
            assert stream["channels"] == 2 and stream["sample_rate"] == "48000"
        assert int(stream["time_base"].split("/")[1]) == r.timescale


def test_bitrates_measured_from_segment_sizes(ladder720: Encoded) -> None:
    for r in ladder720.presentation.renditions:
        assert all(s.size > 0 for s in r.segments)
        assert r.bandwidth_peak >= r.bandwidth_avg > 0
        total = sum(s.size for s in r.segments) * 8 / r.duration_s
        assert r.bandwidth_avg == pytest.approx(total, abs=1)
        sizes = [(ladder720.out_dir / r.segment_name(n)).stat().st_size for n in range(1, len(r.segments) + 1)]
        assert sizes == [s.size for s in r.segments]
    v = ladder720.presentation.video
    assert v[0].bandwidth_avg > v[1].bandwidth_avg > v[2].bandwidth_avg


def test_model_round_trips_json(ladder720: Encoded) -> None:
    p = ladder720.presentation
    assert Presentation.from_json(p.to_json()) == p


def test_progress_reported_up_to_100(ladder720: Encoded) -> None:
    progress = ladder720.progress
    assert progress and progress[-1] == 100.0
    assert progress == sorted(progress)


def test_rotated_phone_clip_is_upright_without_rotation(encode: Callable[..., Encoded]) -> None:
    e = encode("rotated", seconds=2, width=640, height=360, fps=30, remux=("-metadata:s:v:0", "rotate=90"))
    assert e.probe.video is not None and e.probe.video.rotation in (90, 270)
    (v,) = e.presentation.video
    assert (v.id, v.width, v.height) == ("v360", 360, 640)
    (stream,) = ffprobe_json(joined(e.out_dir, v.id, len(v.segments)), "-show_streams")["streams"]
    assert (stream["width"], stream["height"]) == (360, 640)
    assert "side_data_list" not in stream and "rotate" not in stream.get("tags", {})


def test_10bit_422_source_becomes_8bit_420(encode: Callable[..., Encoded]) -> None:
    e = encode("10bit422", seconds=2, width=640, height=360, fps=25, pix_fmt="yuv422p10le", preset="veryfast")
    (v,) = e.presentation.video
    (stream,) = ffprobe_json(joined(e.out_dir, v.id, len(v.segments)), "-show_streams", "-select_streams", "v")[
        "streams"
    ]
    assert stream["pix_fmt"] == "yuv420p"
    assert stream["profile"] == "High"
    assert v.codecs.startswith("avc1.64")


def test_production_preset_gives_high_profile_8bit_420(encode: Callable[..., Encoded]) -> None:
    """The tests encode at ultrafast, which x264 signals as Constrained Baseline; production
    (Settings.x264_preset) is veryfast: an ordinary 8-bit source must come out as High."""
    from server.settings import Settings

    assert Settings.__dataclass_fields__["x264_preset"].default == "veryfast"
    e = encode("veryfast8bit", seconds=2, width=320, height=180, fps=25, audio=False, preset="veryfast")
    (v,) = e.presentation.video
    (stream,) = ffprobe_json(joined(e.out_dir, v.id, len(v.segments)), "-show_streams", "-select_streams", "v")[
        "streams"
    ]
    assert (stream["profile"], stream["pix_fmt"]) == ("High", "yuv420p")
    assert stream.get("bits_per_raw_sample", "8") == "8"
    assert v.codecs.startswith("avc1.64") and int(v.codecs[9:11], 16) == stream["level"]


def test_120fps_source_is_capped_at_60(encode: Callable[..., Encoded]) -> None:
    e = encode("120fps", seconds=2, width=320, height=180, fps=120, audio=False)
    (v,) = e.presentation.video
    assert v.frame_rate == "60"
    (stream,) = ffprobe_json(joined(e.out_dir, v.id, len(v.segments)), "-show_streams")["streams"]
    assert stream["r_frame_rate"] == "60/1"
    frames = sum(
        mp4.parse_segment((e.out_dir / v.segment_name(n)).read_bytes()).sample_count
        for n in range(1, len(v.segments) + 1)
    )
    assert frames == 120


def test_audio_only_source_is_an_audio_only_title(encode: Callable[..., Encoded]) -> None:
    e = encode("audio-only", seconds=3, video=False, suffix=".m4a")
    assert [r.id for r in e.presentation.renditions] == ["a0"]
    assert e.presentation.duration_s == pytest.approx(3.0, abs=0.1)


def test_video_only_source_has_no_audio_rendition(encode: Callable[..., Encoded]) -> None:
    e = encode("video-only", seconds=2, width=320, height=240, fps=25, audio=False)
    assert [r.id for r in e.presentation.renditions] == ["v240"]


def test_1s_clip_is_one_segment(encode: Callable[..., Encoded]) -> None:
    e = encode("1s", seconds=1, width=320, height=180, fps=25)
    assert [len(r.segments) for r in e.presentation.renditions] == [1, 1]


async def test_source_without_streams_is_rejected(tmp_path: Path) -> None:
    empty = Probe(format_name="mp4", duration_s=1.0, size_bytes=10, bit_rate=None, video=None)
    with pytest.raises(SourceRejected, match="neither a video nor an audio"):
        await transcode(str(tmp_path / "x.mp4"), empty, tmp_path / "out", title_id="t", version="v")


async def test_retry_reuses_the_work_dir(ladder720: Encoded, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "v720").mkdir(parents=True)
    (out / "v720" / "99.m4s").write_bytes(b"stale")  # from a dead attempt
    (out / "stale.m3u8").write_text("#EXTM3U")
    p = await transcode(str(ladder720.source), ladder720.probe, out, title_id="t", version="v2", preset="ultrafast")
    assert len(p.video[0].segments) == 2
    assert not (out / "v720" / "99.m4s").exists() and not (out / "stale.m3u8").exists()


async def test_unreadable_source_fails_with_one_line(ladder720: Encoded, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 1000)
    with pytest.raises(TranscodeError) as info:
        await transcode(str(junk), ladder720.probe, tmp_path / "out", title_id="t", version="v", preset="ultrafast")
    assert "\n" not in str(info.value)
    assert "invalid data" in str(info.value).lower()


def test_misaligned_rungs_are_refused(ladder720: Encoded) -> None:
    p = ladder720.presentation
    v0, v1 = p.video[0], p.video[1]
    shifted = Rendition(
        **{
            **v1.__dict__,
            "segments": (type(v1.segments[0])(duration=v1.segments[0].duration + 1, size=1), *v1.segments[1:]),
        }
    )
    broken = Presentation(**{**p.__dict__, "renditions": (v0, shifted, *p.renditions[2:])})
    with pytest.raises(TranscodeError, match="boundaries"):
        check_presentation(broken)


def test_truncated_output_is_refused(ladder720: Encoded) -> None:
    with pytest.raises(TranscodeError, match="truncated"):
        check_presentation(ladder720.presentation, expected_duration_s=60.0)


@pytest.mark.parametrize(
    ("title", "language", "name"),
    [
        pytest.param("Director's commentary", "en", "Director's commentary", id="stream-title"),
        pytest.param(None, "fr", "fr", id="language"),
        pytest.param(None, "und", "Main", id="untagged"),
    ],
)
def test_audio_name_shown_in_players(title, language, name):
    from transcoder.readback import audio_name

    assert audio_name(title, language) == name
