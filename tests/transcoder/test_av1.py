"""Optional AV1 rungs beside H.264: planning, the codec string, the task plan, the ffmpeg
argv, the manifests, and a real chunked encode of a tiny clip (libsvtav1) whose AV1
segments start on keyframes at the H.264 rung's segment boundaries."""

from __future__ import annotations

import asyncio
import json
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest

from media import keys
from media.backend import open_storage
from media.probe import probe
from media.probe_model import Probe, VideoStream
from packager.dash import render_mpd
from packager.hls import AUDIO_GROUP, render_multivariant
from packager.model import Presentation
from packager.uris import UriBuilder
from server.settings import ConfigError, Settings
from tests.packager.factories import audio, presentation, video
from tests.transcoder.test_ingest_cli import run_cli
from transcoder import chunks, download, mp4, tasks, thumbnails
from transcoder.command import build_chunk_args, build_ffmpeg_args
from transcoder.ladder import AV1, av1_codecs, av1_level, parse_av1_heights, plan_ladder
from transcoder.pipeline import check_presentation

S = 2  # seconds per segment: two segments from a 4 s clip


def _probe(width: int, height: int, fps: str = "30") -> Probe:
    v = VideoStream(
        index=0,
        codec="h264",
        width=width,
        height=height,
        fps=float(Fraction(fps)),
        fps_fraction=fps,
        rotation=0,
        pix_fmt="yuv420p",
        bit_depth=8,
        variable_frame_rate=False,
    )
    return Probe(format_name="mov,mp4", duration_s=60.0, size_bytes=1, bit_rate=1, video=v, audio=())


# ---- planning ------------------------------------------------------------------------------


def test_av1_copies_of_the_asked_heights_only_where_the_source_fills_them() -> None:
    ladder = plan_ladder(_probe(1280, 720), av1_heights=(1080, 720, 360))
    assert [r.id for r in ladder.rungs] == ["v720", "v480", "v360", "v720-av1", "v360-av1"]
    assert [r.id for r in ladder.h264_rungs] == ["v720", "v480", "v360"]
    v720, av1 = ladder.rungs[0], ladder.rungs[3]
    assert av1.codec == AV1 and (av1.width, av1.height) == (v720.width, v720.height)
    assert av1.video_bitrate == round(v720.video_bitrate * 0.6 / 1000) * 1000
    assert av1.maxrate == round(av1.video_bitrate * 1.5 / 1000) * 1000
    assert av1.level == 5 and av1.level_name == "3.1"
    assert plan_ladder(_probe(1280, 720)).av1_rungs == ()


@pytest.mark.parametrize(
    ("size", "fps", "level"),
    [
        ((320, 180), 30, 0),  # 2.0
        ((640, 360), 30, 1),  # 2.1: 230k samples > 2.0's 147k
        ((854, 480), 30, 4),  # 3.0: 410k samples > 2.1's 279k
        ((1280, 720), 30, 5),  # 3.1: 27.6 M samples/s > 3.0's 20 M
        ((1920, 1080), 30, 8),  # 4.0
        ((1920, 1080), 60, 9),  # 4.1
        ((3840, 2160), 30, 12),  # 5.0
    ],
)
def test_av1_level_is_the_lowest_that_holds_the_rung(size: tuple[int, int], fps: int, level: int) -> None:
    assert av1_level(*size, Fraction(fps), maxrate=1_000_000) == level


def test_codec_string_from_the_level_and_from_an_av1c_box() -> None:
    assert av1_codecs(8) == "av01.0.08M.08"
    assert av1_codecs(0) == "av01.0.00M.08"
    # marker/version, profile 0 level 5, tier 0 8-bit 4:2:0 (as SVT-AV1 writes it)
    assert mp4.av1_codec_string(bytes([0x81, 0x05, 0x0D, 0x00])) == "av01.0.05M.08"
    # profile 1, level 13, high tier, 10-bit
    assert mp4.av1_codec_string(bytes([0x81, 0x2D, 0xC0, 0x00])) == "av01.1.13H.10"
    with pytest.raises(mp4.Mp4Error):
        mp4.av1_codec_string(bytes([0x01, 0x05, 0x0D, 0x00]))


def test_heights_setting_and_flag_parse_and_refuse_garbage(tmp_path: Path) -> None:
    assert parse_av1_heights("720, 1080,720") == (1080, 720)
    assert parse_av1_heights("") == ()
    for bad in ("720p", "-1", "50", "1080,x"):
        with pytest.raises(ValueError, match="is not a rung height"):
            parse_av1_heights(bad)
    assert Settings(data_dir=str(tmp_path), secret_key="k", av1_rungs=("720", "1080")).av1_heights == (1080, 720)
    with pytest.raises(ConfigError, match="STREAMFLIX_AV1_RUNGS"):
        Settings(data_dir=str(tmp_path), secret_key="k", av1_rungs=("720p",))


# ---- tasks and the ffmpeg argv -------------------------------------------------------------


def test_av1_rungs_are_their_own_chunks_after_the_h264_work() -> None:
    specs = tasks.plan_tasks(["v720", "v360"], "a0", 5, 2, av1_ids=["v720-av1"])
    h264 = [s for s in specs if s.kind == "video" and "v720-av1" not in s.renditions]
    av1 = [s for s in specs if "v720-av1" in s.renditions]
    assert all(s.renditions == ("v720-av1",) for s in av1)
    assert [(s.first, s.count) for s in av1] == [(1, 2), (3, 2), (5, 1)]
    cells = [(r, s.first + i) for s in specs for r in s.renditions for i in range(s.count)]
    assert len(cells) == len(set(cells)) == 5 * 4  # every (rendition, segment) once, audio included
    order = sorted(specs, key=lambda s: (s.priority, s.first))
    # Each AV1 chunk runs after every H.264 task of the same segments, and never before the
    # first playable segment or the rest of the first chunk.
    for a in av1:
        for h in h264:
            if h.first <= a.last and a.first <= h.last:
                assert order.index(h) < order.index(a)
        assert a.priority >= tasks.PRIORITY_CHUNKS  # bulk: runs nice


def test_av1_chunk_argv_is_libsvtav1_with_the_fixed_closed_gop(clip_probe: Probe) -> None:
    ladder = plan_ladder(clip_probe, segment_s=S, av1_heights=(180,))
    args = build_chunk_args(
        "in.mp4", ladder, Path("out"), rendition_ids=["v180-av1"], start_s="0", frames=60, start_number=1
    )
    joined = " ".join(args)
    assert "-c:v libsvtav1" in joined and "libx264" not in joined and "x264-params" not in joined
    assert "-g:v 60" in joined
    assert "-svtav1-params:v:0 irefresh-type=2:scd=0:level=20" in joined
    assert "-maxrate:v:0" in joined and "-bufsize:v:0" in joined
    # One pass with both codecs: each stream gets its own encoder.
    both = " ".join(build_ffmpeg_args("in.mp4", ladder, Path("out")))
    assert "-c:v:0 libx264" in both and "-c:v:1 libsvtav1" in both and "-x264-params:v:0" in both


# ---- manifests -----------------------------------------------------------------------------


def _with_av1():
    return presentation(
        video("v720", codecs="avc1.64001f", peak=3_400_000, avg=2_700_000),
        video("v360", 640, 360, codecs="avc1.64001e", peak=900_000, avg=700_000),
        video("v720-av1", codecs="av01.0.05M.08", peak=2_000_000, avg=1_600_000),
        audio("a0", default=True),
    )


def test_hls_lists_av1_variants_with_their_codecs_and_the_same_audio() -> None:
    text = render_multivariant(_with_av1(), UriBuilder())
    infs = [line for line in text.splitlines() if line.startswith("#EXT-X-STREAM-INF")]
    assert len(infs) == 3
    [av1] = [i for i in infs if "av01" in i]
    assert 'CODECS="av01.0.05M.08,mp4a.40.2"' in av1 and "RESOLUTION=1280x720" in av1
    # Every variant, AV1 or H.264, plays the one audio group.
    assert all(f'AUDIO="{AUDIO_GROUP}"' in i for i in infs)


def test_dash_puts_av1_in_its_own_video_adaptation_set() -> None:
    p = _with_av1()
    mpd = ET.fromstring(render_mpd(p, UriBuilder()))
    ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
    sets = [s for s in mpd.iterfind(".//d:AdaptationSet", ns) if s.get("contentType") == "video"]
    assert len(sets) == 2
    codecs = [{r.get("codecs") for r in s.iterfind("d:Representation", ns)} for s in sets]
    assert codecs == [{"avc1.64001f", "avc1.64001e"}, {"av01.0.05M.08"}]
    assert sets[0].get("selectionPriority") is None and sets[1].get("selectionPriority") == "2"
    # Same segment timeline in both sets.
    timelines = [[(x.get("d"), x.get("r")) for x in s.iterfind(".//d:S", ns)] for s in sets]
    assert timelines[0] == timelines[1] and timelines[0]
    assert len({s.get("id") for s in mpd.iterfind(".//d:AdaptationSet", ns)}) == 3


# ---- a real encode -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(clip_factory: Callable[..., Path]) -> Path:
    return clip_factory(seconds=4, width=320, height=180, fps=30, audio=False)


@pytest.fixture(scope="module")
def clip_probe(clip: Path) -> Probe:
    return asyncio.run(probe(str(clip)))


def _keyframe_times(init: Path, segment: Path, work: Path) -> tuple[list[float], int]:
    """Key packet times and the packet count of init + segment played alone (decoded)."""
    whole = work / f"{segment.parent.name}-{segment.stem}.mp4"
    whole.write_bytes(init.read_bytes() + segment.read_bytes())
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time,key_frame",
         "-of", "csv=p=0", str(whole)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()  # fmt: skip
    frames = [line.split(",") for line in out]
    return [float(t) for k, t in frames if k == "1"], len(frames)


def test_av1_chunks_start_on_keyframes_at_the_h264_segment_boundaries(
    clip: Path, clip_probe: Probe, tmp_path: Path
) -> None:
    async def run():
        ladder = plan_ladder(clip_probe, segment_s=S, av1_heights=(180,))
        assert [r.id for r in ladder.rungs] == ["v180", "v180-av1"]
        ends = await chunks.measure_source_ends(str(clip), clip_probe)
        predicted = chunks.predict_presentation(
            clip_probe, ladder, title_id="t", version="v1", end_s=ends, preset="veryfast"
        )
        total = len(predicted.video[0].segments)
        specs = tasks.plan_tasks(["v180"], None, total, 1, av1_ids=["v180-av1"])
        results = []
        for i, s in enumerate(specs):
            out = await chunks.encode_video_task(
                str(clip), clip_probe, ladder, tmp_path / f"task{i}", rendition_ids=list(s.renditions),
                first=s.first, count=s.count, total=total, preset="veryfast",
            )  # fmt: skip
            results.append(out.to_result())
        return ladder, predicted, chunks.assemble_presentation(ladder, results, title_id="t", version="v1")

    ladder, predicted, assembled = asyncio.run(run())
    check_presentation(assembled)
    h264, av1 = assembled.rendition("v180"), assembled.rendition("v180-av1")
    assert h264 is not None and av1 is not None
    # The codec string from the init's av1C is the one the prediction advertised.
    assert av1.codecs == "av01.0.00M.08" == predicted.rendition("v180-av1").codecs
    assert (av1.width, av1.height, av1.timescale) == (320, 180, h264.timescale)
    assert len(av1.segments) == len(h264.segments) == 2
    assert [s.duration for s in av1.segments] == [s.duration for s in h264.segments]
    # The progressive BANDWIDTH (a VBV bound from -maxrate/-bufsize) holds for what SVT-AV1 wrote.
    assert 0 < av1.bandwidth_peak <= predicted.rendition("v180-av1").bandwidth_peak
    # Each AV1 segment decodes alone, starting with a key frame, with the next key frame
    # exactly one GOP (2 s) later, as in the H.264 rung.
    start = 0.0
    for n, seg in enumerate(av1.segments, start=1):
        task_dir = next(tmp_path.glob(f"task*/v180-av1/{n}.m4s")).parent
        keys, count = _keyframe_times(task_dir / "init.mp4", task_dir / f"{n}.m4s", tmp_path)
        assert count == 60
        assert keys == [pytest.approx(start)]
        start += seg.duration / av1.timescale


# ---- the setting and the ingest flag, through the CLI and the real worker --------------------


def _cli_model(settings: Settings, title: dict) -> Presentation:
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    raw = asyncio.run(storage.get_bytes(keys.object_key(title["id"], title["version"], keys.MODEL_NAME)))
    return Presentation.from_json(raw)


def test_setting_and_flag_through_the_cli(
    settings: Settings,
    clip_factory: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    clip = clip_factory(seconds=4, width=320, height=180, fps=30)
    monkeypatch.setenv("STREAMFLIX_AV1_RUNGS", "1080,180")  # 1080: more than the source has, skipped
    code, out, err = run_cli(monkeypatch, capsys, settings, "ingest", str(clip), "--title", "AV1", "--wait", "--json")
    assert code == 0, err
    model = _cli_model(settings, json.loads(out))
    h264, av1 = model.video
    assert (h264.id, h264.codecs[:5], av1.id, av1.codecs) == ("v180", "avc1.", "v180-av1", "av01.0.00M.08")
    assert [s.duration for s in av1.segments] == [s.duration for s in h264.segments]
    assert av1.bandwidth_avg < h264.bandwidth_avg
    # The download stays H.264 (every device plays it).
    [download] = model.downloads
    assert download.codecs.startswith("avc1")

    # `--av1 ""` turns the setting off for one title.
    code, out, err = run_cli(
        monkeypatch, capsys, settings, "ingest", str(clip), "--title", "No AV1", "--av1", "", "--wait", "--json"
    )
    assert code == 0, err
    assert [r.id for r in _cli_model(settings, json.loads(out)).video] == ["v180"]


def test_a_bad_av1_flag_is_a_usage_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_cli(monkeypatch, capsys, settings, "ingest", "x.mp4", "--title", "X", "--av1", "720p")
    assert exit_.value.code == 2
    [line] = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert line == "streamflix ingest: error: argument --av1: '720p' is not a rung height (a whole number such as 720)"


def test_download_and_thumbnails_are_made_from_h264() -> None:
    def ids(p: Presentation) -> tuple[str | None, str | None]:
        d, t = download.pick_video(p), thumbnails.pick_video(p)
        return (d.id if d else None), (t.id if t else None)

    assert ids(_with_av1()) == ("v720", "v360")
    cheap_av1 = presentation(
        video("v360", 640, 360, codecs="avc1.64001e", peak=900_000, avg=700_000),
        video("v360-av1", 640, 360, codecs="av01.0.01M.08", peak=500_000, avg=400_000),
    )
    assert ids(cheap_av1) == ("v360", "v360")
