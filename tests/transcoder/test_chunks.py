"""The chunked encode (`transcoder.chunks`) against the one-pass encode, with real ffmpeg:
the same segments tick for tick, a prediction that equals the measurement, no quality dip
at chunk boundaries, segments reported while ffmpeg still runs."""

from __future__ import annotations

import array
import asyncio
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from media.probe import probe
from media.probe_model import Probe, VideoStream
from packager.model import Presentation
from tests.transcoder.test_runner import running_with
from transcoder import chunks, mp4
from transcoder.errors import TranscodeError
from transcoder.ladder import Ladder, plan_ladder
from transcoder.pipeline import check_presentation, transcode
from transcoder.readback import scan_rendition
from transcoder.tasks import plan_tasks

S = 2  # seconds per segment: several segments from a few seconds of clip


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, capture_output=True, timeout=120)


@dataclass
class Chunked:
    source: Path
    probe: Probe
    ladder: Ladder
    ends: chunks.SourceEnds
    predicted: Presentation
    assembled: Presentation
    results: list[dict[str, Any]]
    dirs: list[Path]  # one out_dir per task
    rectangles: list[tuple[tuple[str, ...], int, int]]


def rectangles(ladder: Ladder, total: int, k: int) -> list[tuple[tuple[str, ...], int, int]]:
    """The design's split: (lowest, [1,1]), (lowest, [2,k]), (others, [1,k]), then chunks of
    k segments over every rung."""
    ids = tuple(r.id for r in ladder.rungs)
    lowest, others = ids[-1:], ids[:-1]
    first_k = min(k, total)
    rects = [(lowest, 1, 1)]
    if first_k > 1:
        rects.append((lowest, 2, first_k - 1))
    if others:
        rects.append((others, 1, first_k))
    n = first_k + 1
    while n <= total:
        count = min(k, total - n + 1)
        rects.append((ids, n, count))
        n += count
    return rects


async def chunked_encode(source: Path, work: Path, *, k: int = 2, preset: str = "ultrafast") -> Chunked:
    p = await probe(str(source))
    ladder = plan_ladder(p, segment_s=S)
    ends = await chunks.measure_source_ends(str(source), p)
    predicted = chunks.predict_presentation(p, ladder, title_id="t", version="v1", end_s=ends, preset=preset)
    results, dirs, rects = [], [], []
    if ladder.audio:
        out = work / "audio"
        task = await chunks.encode_audio_task(str(source), p, ladder, out, preset=preset, end_s=ends)
        results.append(task.to_result())
        dirs.append(out)
    if ladder.rungs:
        total = len(predicted.video[0].segments)
        rects = rectangles(ladder, total, k)
        for ids, first, count in rects:
            out = work / f"video-{'-'.join(ids)}-{first}"
            task = await chunks.encode_video_task(
                str(source), p, ladder, out, rendition_ids=ids, first=first, count=count, total=total, preset=preset
            )
            results.append(task.to_result())
            dirs.append(out)
    assembled = chunks.assemble_presentation(ladder, results, title_id="t", version="v1", probe=p)
    return Chunked(source, p, ladder, ends, predicted, assembled, results, dirs, rects)


def timeline(presentation: Presentation) -> dict[str, tuple]:
    """Per rendition everything but sizes and bitrates."""
    return {
        r.id: (
            r.kind,
            r.codecs,
            r.timescale,
            r.start_time,
            r.start_number,
            tuple(s.duration for s in r.segments),
            r.width,
            r.height,
            r.frame_rate,
            r.language,
            r.name,
            r.channels,
            r.sample_rate,
            r.default,
        )
        for r in presentation.renditions
    }


# ---- a clip as 3 video chunks + audio equals the one-pass encode --------------------------


@pytest.fixture(scope="module")
def two_rungs(clip_factory: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Chunked, Path]:
    """854x480 (v480 + v360) 30 fps, 5.3 s: 3 segments of 2 s, the last 1.3 s; chunks of one
    segment, so three chunks (the first split in rectangles) and two chunk boundaries."""
    source = clip_factory(seconds=5.3, width=854, height=480, fps=30)
    work = tmp_path_factory.mktemp("chunks")
    chunked = asyncio.run(chunked_encode(source, work / "chunked", k=1, preset="veryfast"))
    reference = work / "onepass"
    asyncio.run(
        transcode(str(source), chunked.probe, reference, title_id="t", version="v1", segment_s=S, preset="veryfast")
    )
    return chunked, reference


def test_chunks_add_up_to_the_one_pass_encode(two_rungs: tuple[Chunked, Path]) -> None:
    chunked, reference = two_rungs
    assert [r.id for r in chunked.ladder.rungs] == ["v480", "v360"]
    assert len(chunked.rectangles) == 4, "the first chunk split in two rectangles, then two chunks"
    check_presentation(chunked.assembled, expected_duration_s=chunked.probe.duration_s)
    for rid in chunked.ladder.rendition_ids:
        one_pass = scan_rendition(reference / rid)
        mine: dict[int, tuple[mp4.SegmentInfo, int]] = {}
        inits: set[bytes] = set()
        for out in chunked.dirs:
            folder = out / rid
            if not folder.is_dir():
                continue
            inits.add((folder / "init.mp4").read_bytes())
            init = mp4.parse_init((folder / "init.mp4").read_bytes())
            for seg in folder.glob("*.m4s"):
                data = seg.read_bytes()
                assert int(seg.stem) not in mine, f"{rid}/{seg.name} written by two tasks"
                info = mp4.parse_segment(data, init.defaults)
                mfhd = mp4.find(data, "moof/mfhd")
                assert mfhd is not None
                mine[int(seg.stem)] = (info, int.from_bytes(data[mfhd.payload + 4 : mfhd.payload + 8], "big"))
        assert len(inits) == 1, f"{rid}: every task writes the same init bytes"
        assert sorted(mine) == list(range(1, len(one_pass.segments) + 1)), rid
        for n, ref in enumerate(one_pass.segments, start=1):
            info, sequence = mine[n]
            assert (info.base_decode_time, info.duration, info.sample_count) == (
                ref.base_decode_time,
                ref.duration,
                ref.sample_count,
            ), f"{rid}/{n}.m4s"
            assert sequence == n
            if rid.startswith("v"):
                assert info.first_sample_is_sync, f"{rid}/{n}.m4s starts with a keyframe"
        assert chunked.assembled.rendition(rid).codecs == one_pass.init.codec  # type: ignore[union-attr]  # rendition(rid) is there: asserted above


def test_inits_made_ahead_are_the_bytes_every_task_writes(two_rungs: tuple[Chunked, Path], tmp_path: Path) -> None:
    chunked, _ = two_rungs
    made = asyncio.run(
        chunks.encode_inits(
            str(chunked.source), chunked.ladder, tmp_path / "inits", rendition_ids=["v360", "v480"], preset="veryfast"
        )
    )
    assert sorted(made) == ["v360", "v480"]
    for rid, path in made.items():
        written = {(out / rid / "init.mp4").read_bytes() for out in chunked.dirs if (out / rid).is_dir()}
        assert written == {path.read_bytes()}, f"{rid}: the init made ahead differs from the tasks' init"
    with pytest.raises(ValueError, match="not video renditions"):
        asyncio.run(chunks.encode_inits(str(chunked.source), chunked.ladder, tmp_path / "x", rendition_ids=["a0"]))


def test_prediction_of_the_two_rung_clip(two_rungs: tuple[Chunked, Path]) -> None:
    chunked, _ = two_rungs
    assert timeline(chunked.predicted) == timeline(chunked.assembled)
    _bounds_hold(chunked)


def _bounds_hold(chunked: Chunked) -> None:
    assert chunked.predicted.progressive and not chunked.assembled.progressive
    check_presentation(chunked.predicted)  # aligned boundaries before anything is encoded
    for predicted in chunked.predicted.renditions:
        measured = chunked.assembled.rendition(predicted.id)
        assert measured is not None
        assert all(s.size == 0 for s in predicted.segments)
        assert predicted.bandwidth_peak >= measured.bandwidth_peak, predicted.id
    assert chunked.predicted.duration_s == chunked.assembled.duration_s
    assert chunked.predicted.extra == chunked.assembled.extra  # source adjustments


# ---- the prediction equals the measurement for awkward sources ---------------------------


def _offset_ts(out: Path) -> Path:
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=5",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=5",
        "-map", "0", "-map", "1", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac",
        "-output_ts_offset", "3600", str(out),
    )  # fmt: skip
    return out


def _late_audio(out: Path) -> Path:
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=5",
        "-itsoffset", "1", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=4",
        "-map", "0", "-map", "1", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac", str(out),
    )  # fmt: skip
    return out


def _wav_44k(out: Path) -> Path:
    """PCM at 44.1 kHz: no codec frames, resampled to 48 kHz."""
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=3.3", "-c:a", "pcm_s16le", str(out))
    return out


SOURCES: dict[str, Callable[[Callable[..., Path], Path], Path]] = {
    "30fps": lambda clips, _: clips(seconds=3.3, width=320, height=180, fps=30),
    "29.97fps": lambda clips, _: clips(seconds=4.5, width=320, height=180, fps=30000 / 1001),
    "25fps_4.3s": lambda clips, _: clips(seconds=4.3, width=320, height=180, fps=25),
    "1s": lambda clips, _: clips(seconds=1, width=320, height=180, fps=25),
    "starts_at_3600s_ts": lambda _, tmp: _offset_ts(tmp / "offset.ts"),
    "audio_1s_late_44k": lambda _, tmp: _late_audio(tmp / "late.mp4"),
    "audio_only": lambda clips, _: clips(seconds=4.3, video=False, suffix=".m4a"),
    "audio_only_wav_44k": lambda _, tmp: _wav_44k(tmp / "tone.wav"),
    "video_only": lambda clips, _: clips(seconds=3.5, width=320, height=180, fps=30, audio=False),
}


@pytest.mark.parametrize("name", list(SOURCES))
def test_prediction_equals_the_assembled_measurement(
    name: str, clip_factory: Callable[..., Path], tmp_path: Path
) -> None:
    source = SOURCES[name](clip_factory, tmp_path)
    chunked = asyncio.run(chunked_encode(source, tmp_path / "out", k=2))
    assert timeline(chunked.predicted) == timeline(chunked.assembled), name
    _bounds_hold(chunked)
    check_presentation(chunked.assembled, expected_duration_s=chunked.probe.duration_s)
    assert chunked.ends.method == "tail"
    if chunked.ladder.rungs:
        assert len(chunked.predicted.video[0].segments) == chunked.rectangles[-1][1] + chunked.rectangles[-1][2] - 1


def test_a_truncated_source_is_measured_by_a_full_demux(clip_factory: Callable[..., Path], tmp_path: Path) -> None:
    whole = tmp_path / "faststart.mp4"
    ffmpeg(
        "-i",
        str(clip_factory(seconds=8, width=320, height=180, fps=25)),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        str(whole),
    )
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    p = asyncio.run(probe(str(cut)))
    ends = asyncio.run(chunks.measure_source_ends(str(cut), p))
    assert ends.method == "demux"
    assert ends.video_s is not None and 2.0 < ends.video_s < p.duration_s - 1


# ---- quality at chunk boundaries ---------------------------------------------------------


def test_no_quality_dip_at_chunk_boundaries(two_rungs: tuple[Chunked, Path], tmp_path: Path) -> None:
    """Per-frame SSIM of the chunked v360 against the source scaled to 640x360: the first
    frame of each chunk (a fresh encoder) is no worse than the frames in between, and every
    frame is the source's frame at that instant (a frame off would show as a dip)."""
    chunked, _ = two_rungs
    joined = tmp_path / "v360.mp4"
    segments: dict[int, Path] = {}
    init = None
    for out in chunked.dirs:
        folder = out / "v360"
        if folder.is_dir():
            init = folder / "init.mp4"
            segments.update({int(p.stem): p for p in folder.glob("*.m4s")})
    assert init is not None
    with joined.open("wb") as f:
        f.write(init.read_bytes())
        for n in sorted(segments):
            f.write(segments[n].read_bytes())
    stats = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(joined), "-i", str(chunked.source), "-lavfi",
         "[1:v]scale=640:360,setsar=1[ref];[0:v][ref]ssim=stats_file=-", "-f", "null", "-"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    ssim = [float(m) for m in re.findall(r"All:([0-9.]+)", stats)]
    per_segment = chunks.segment_frames(chunked.ladder)
    v360 = chunked.assembled.rendition("v360")
    assert v360 is not None
    assert len(ssim) == sum(seg.duration for seg in v360.segments) // 512  # 512 ticks a frame at 30 fps
    starts = {(first - 1) * per_segment for ids, first, _ in chunked.rectangles if "v360" in ids and first > 1}
    assert starts, "the clip has chunk boundaries"
    boundary = [ssim[i] for i in starts]
    middle = sorted(ssim[i] for i in range(len(ssim)) if all(abs(i - s) > 2 for s in starts | {0}))
    median = middle[len(middle) // 2]
    assert min(boundary) >= median - 0.01, (boundary, median)
    assert min(ssim) > 0.9


# ---- audio in parts ------------------------------------------------------------------------


def _pcm(files: list[Path], joined: Path) -> array.array:
    with joined.open("wb") as f:
        for path in files:
            f.write(path.read_bytes())
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(joined), "-f", "f32le", "-ac", "1", "-"],
        check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip
    samples = array.array("f")
    samples.frombytes(raw)
    return samples


def test_audio_in_parts_equals_the_whole_encode(clip_factory: Callable[..., Path], tmp_path: Path) -> None:
    """A 30 s clip's audio as 4 parts of 4 x 2 s (the frame grid at 2 s and 48 kHz) against one
    encode of the whole timeline: the same segments (numbers, tfdt, sample counts: the
    prediction's), the same init bytes, and decoded samples that differ by no more than the
    encoder's own rounding, with nothing at all at the part boundaries (no click)."""
    source = clip_factory(seconds=30, width=160, height=90, fps=10)
    p = asyncio.run(probe(str(source)))
    ladder = plan_ladder(p, segment_s=S)
    assert ladder.audio is not None
    rid, rate = ladder.audio.id, ladder.audio.sample_rate
    ends = asyncio.run(chunks.measure_source_ends(str(source), p))
    predicted = chunks.predict_presentation(p, ladder, title_id="t", version="v1", end_s=ends)
    total = len(predicted.video[0].segments)
    part = chunks.audio_part_size(ladder, 4)
    assert (part, chunks.audio_preroll_segments(S, rate)) == (4, 4)
    specs = [s for s in plan_tasks((), rid, total, 8, audio_part_segments=part)]
    assert len(specs) == 4

    whole = asyncio.run(chunks.encode_audio_task(str(source), p, ladder, tmp_path / "whole", end_s=ends))
    parts = [
        asyncio.run(
            chunks.encode_audio_task(
                str(source), p, ladder, tmp_path / f"part{i}", end_s=ends, first=s.first, count=s.count, total=total
            )
        )
        for i, s in enumerate(specs)
    ]
    for s, out in zip(specs, parts, strict=True):
        numbers = [seg.number for seg in out.renditions[rid].segments]
        assert numbers[0] == s.first and (s is specs[-1] or numbers == list(range(s.first, s.last + 1)))
    mine = {seg.number: seg for out in parts for seg in out.renditions[rid].segments}
    reference = {seg.number: seg for seg in whole.renditions[rid].segments}
    assert sorted(mine) == sorted(reference)
    assert [(n, mine[n].start, mine[n].duration) for n in sorted(mine)] == [
        (n, reference[n].start, reference[n].duration) for n in sorted(reference)
    ]
    assert [seg.duration for seg in predicted.audio[0].segments] == [reference[n].duration for n in sorted(reference)]
    init = (tmp_path / "whole" / rid / "init.mp4").read_bytes()
    assert all((tmp_path / f"part{i}" / rid / "init.mp4").read_bytes() == init for i in range(len(specs)))
    # the pre- and post-roll segments are gone from the parts' folders
    for i, s in enumerate(specs):
        left = sorted(int(q.stem) for q in (tmp_path / f"part{i}" / rid).glob("*.m4s"))
        assert left[0] == s.first and (s is specs[-1] or left[-1] == s.last), (i, left)

    a = _pcm(
        [tmp_path / "whole" / rid / "init.mp4"] + [reference[n].path for n in sorted(reference)], tmp_path / "a.mp4"
    )
    b = _pcm([tmp_path / "part0" / rid / "init.mp4"] + [mine[n].path for n in sorted(mine)], tmp_path / "b.mp4")
    assert len(a) == len(b) > 29 * rate
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 0.01
    step = max(abs(a[i] - a[i - 1]) for i in range(1, len(a)))
    for s in specs[1:]:
        at = (s.first - 1) * S * rate + chunks.AAC_PRIMING  # the track starts with the priming frame
        near = range(at - 2048, at + 2048)
        assert max(abs(a[i] - b[i]) for i in near) < 0.001, s
        assert max(abs(b[i] - b[i - 1]) for i in near) <= step * 1.05, s


def test_the_audio_a_player_starts_with_yields_the_cores_after_its_first_segment(tmp_path: Path) -> None:
    """`then_nice`: full CPU priority until the first segment is out (a player starts with
    it), then the given niceness. The source arrives slowly through a FIFO, so the segments
    come out one by one while ffmpeg runs."""
    source = tmp_path / "tone.wav"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=16", "-ar", "48000", str(source)],
        check=True,
    )
    p = asyncio.run(probe(str(source)))
    ladder = plan_ladder(p, segment_s=S)
    data = source.read_bytes()
    fifo = tmp_path / "slow.wav"
    os.mkfifo(fifo)

    def feed() -> None:  # 16 s of sound in about 1.6 s
        with open(fifo, "wb") as fh:
            step = len(data) // 16 + 1
            for i in range(0, len(data), step):
                fh.write(data[i : i + step])
                fh.flush()
                time.sleep(0.1)

    seen: list[tuple[int, list[int]]] = []

    async def on_segment(_rid: str, number: int | None, _path: Path) -> None:
        if number is not None:
            seen.append((number, [os.getpriority(os.PRIO_PROCESS, pid) for pid in running_with(str(tmp_path))]))

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        out = asyncio.run(
            chunks.encode_audio_task(str(fifo), p, ladder, tmp_path / "out", on_segment=on_segment, then_nice=7)
        )
    finally:
        feeder.join(10)
    assert ladder.audio is not None
    numbers = [seg.number for seg in out.renditions[ladder.audio.id].segments]
    assert numbers[0] == 1 and len(numbers) >= 8, numbers  # 16 s in 2 s segments
    assert seen[0] == (1, [0]), seen  # the first segment at the worker's own priority
    later = [nices for number, nices in seen[2:] if nices]  # while ffmpeg still ran
    assert later and all(nices == [7] for nices in later), seen


def test_an_audio_part_must_start_on_the_frame_grid(clip_factory: Callable[..., Path], tmp_path: Path) -> None:
    source = clip_factory(seconds=30, width=160, height=90, fps=10)
    p = asyncio.run(probe(str(source)))
    ladder = plan_ladder(p, segment_s=S)
    with pytest.raises(ValueError, match="frame grid"):
        asyncio.run(chunks.encode_audio_task(str(source), p, ladder, tmp_path, first=3, count=4, total=15))


def test_a_title_whose_audio_starts_late_keeps_one_audio_task(
    clip_factory: Callable[..., Path], tmp_path: Path
) -> None:
    """Parts seek into the audio; audio padded from 0 (it starts after the video) and a
    broadcast capture's offset timeline are handled by the whole-timeline encode only."""
    from transcoder.worker import audio_parts

    async def parts(source: Path) -> int:
        p = await probe(str(source))
        ladder = plan_ladder(p, segment_s=S)
        ends = await chunks.measure_source_ends(str(source), p)
        predicted = chunks.predict_presentation(p, ladder, title_id="t", version="v1", end_s=ends)
        return audio_parts(ladder, p, ends, predicted, len(predicted.video[0].segments), 1)

    assert asyncio.run(parts(clip_factory(seconds=4, width=160, height=90, fps=10))) == 4  # the grid at 2 s
    assert asyncio.run(parts(_offset_ts(tmp_path / "offset.ts"))) == 0
    assert asyncio.run(parts(_late_audio(tmp_path / "late.mp4"))) == 0


def test_audio_part_sizes() -> None:
    assert chunks.audio_grid_segments(4, 48_000) == 2
    assert chunks.audio_grid_segments(2, 48_000) == 4
    assert chunks.audio_grid_segments(6, 48_000) == 4  # 288000 = 281.25 frames
    assert chunks.audio_grid_segments(4, 44_100) == 64
    assert chunks.audio_preroll_segments(4, 48_000) == 2  # 8 s
    assert chunks.audio_preroll_segments(2, 48_000) == 4


# ---- segments are reported while ffmpeg runs ---------------------------------------------


def test_segments_are_reported_while_ffmpeg_runs(clip_factory: Callable[..., Path], tmp_path: Path) -> None:
    source = clip_factory(seconds=8, width=640, height=360, fps=30)
    p = asyncio.run(probe(str(source)))
    ladder = plan_ladder(p, segment_s=S)
    out = tmp_path / "task"
    calls: list[tuple[str, int | None, bool]] = []

    def on_segment(rid: str, number: int | None, path: Path) -> None:
        assert path.is_file()
        # temp_file: the last segment gets its name only when ffmpeg finishes it.
        calls.append((rid, number, (out / rid / "4.m4s").exists()))

    result = asyncio.run(
        chunks.encode_video_task(
            str(source), p, ladder, out, rendition_ids=["v360"], first=1, count=4, total=4,
            preset="veryfast", on_segment=on_segment,
        )
    )  # fmt: skip
    assert [(r, n) for r, n, _ in calls] == [("v360", None)] + [("v360", n) for n in range(1, 5)]
    assert calls[0][2] is False, "the init and first segment are reported before the encode ends"
    assert calls[1][2] is False
    assert [s.number for s in result.renditions["v360"].segments] == [1, 2, 3, 4]


# ---- pure parts --------------------------------------------------------------------------


def test_segment_grid_in_frames() -> None:
    def ladder(fps: str) -> Ladder:
        return Ladder(rungs=(), audios=(), fps=fps, gop_frames=round(2 * float(eval(fps))), segment_s=4)

    assert chunks.segment_frames(ladder("30")) == 120
    assert chunks.segment_frames(ladder("30000/1001")) == 120  # 4.004 s
    assert chunks.segment_frames(ladder("25")) == 100
    assert chunks.chunk_start_s(ladder("30000/1001"), 3) == "8.008"
    assert chunks.chunk_start_s(ladder("25"), 2) == "4"
    assert chunks.video_timescale(chunks.Fraction(30)) == 15360
    assert chunks.video_timescale(chunks.Fraction(30000, 1001)) == 30000


def _result(rid: str, segs: list[list[Any]], handler: str = "vide") -> dict[str, Any]:
    init = {"handler": handler, "codec": "avc1.64001e", "timescale": 100, "width": 2, "height": 2}
    return {"renditions": [{"id": rid, "kind": "video", "init": init, "segments": segs}]}


def test_assembly_refuses_gaps_duplicates_and_missing_keyframes() -> None:
    video = VideoStream(
        index=0, codec="h264", width=320, height=180, fps=25.0, fps_fraction="25/1", rotation=0,
        pix_fmt="yuv420p", bit_depth=8, variable_frame_rate=False,
    )  # fmt: skip
    ladder = plan_ladder(Probe(format_name="mp4", duration_s=6, size_bytes=1, bit_rate=None, video=video), segment_s=2)
    rid = ladder.rungs[0].id
    good = [_result(rid, [[1, 200, 10, 0, True]]), _result(rid, [[2, 200, 10, 200, True], [3, 100, 5, 400, True]])]
    assembled = chunks.assemble_presentation(ladder, good, title_id="t", version="v")
    assert [s.duration for s in assembled.renditions[0].segments] == [200, 200, 100]
    with pytest.raises(TranscodeError, match="missing"):
        chunks.assemble_presentation(ladder, good[1:], title_id="t", version="v")
    with pytest.raises(TranscodeError, match="twice"):
        chunks.assemble_presentation(ladder, [*good, _result(rid, [[3, 100, 5, 400, True]])], title_id="t", version="v")
    with pytest.raises(TranscodeError, match="keyframe"):
        chunks.assemble_presentation(
            ladder,
            [good[0], _result(rid, [[2, 200, 10, 200, False], [3, 100, 5, 400, True]])],
            title_id="t",
            version="v",
        )
    with pytest.raises(TranscodeError, match="starts at tick"):
        chunks.assemble_presentation(
            ladder, [good[0], _result(rid, [[2, 200, 10, 0, True], [3, 100, 5, 200, True]])], title_id="t", version="v"
        )


def test_shift_segment_moves_tfdt_sidx_and_mfhd(two_rungs: tuple[Chunked, Path]) -> None:
    chunked, reference = two_rungs
    data = (reference / "v360" / "2.m4s").read_bytes()
    before = mp4.parse_segment(data)
    moved = mp4.shift_segment(data, delta=1000, sequence_number=7)
    after = mp4.parse_segment(moved)
    assert len(moved) == len(data)
    assert after.base_decode_time == before.base_decode_time + 1000
    assert after.duration == before.duration
    mfhd = mp4.find(moved, "moof/mfhd")
    assert mfhd is not None and int.from_bytes(moved[mfhd.payload + 4 : mfhd.payload + 8], "big") == 7
    with pytest.raises(mp4.Mp4Error):
        mp4.shift_segment(data, delta=-(10**12), sequence_number=1)


def _presentation_times(data: bytes, defaults: mp4.TrackDefaults) -> tuple[int, list[int]]:
    """(tfdt, each sample's presentation time) of a one-trun segment, from its own boxes."""
    tfhd = mp4.find(data, "moof/traf/tfhd")
    trun = mp4.find(data, "moof/traf/trun")
    assert tfhd is not None and trun is not None
    base = mp4.parse_segment(data, defaults).base_decode_time
    default_duration, _ = mp4._tfhd_defaults(data, tfhd, defaults)
    layout = mp4.trun_layout(data, trun)
    offsets = mp4.composition_offsets(data, layout) or [0] * layout.count
    duration_at = layout.fields.get(mp4.TRUN_DURATION)
    times, dts = [], base
    for i, offset in enumerate(offsets):
        times.append(dts + offset)
        if duration_at is None:
            dts += default_duration
        else:
            dts += int.from_bytes(data[layout.entries + i * layout.stride + duration_at :][:4], "big")
    return base, times


def test_video_segments_are_presented_from_their_decode_time(two_rungs: tuple[Chunked, Path]) -> None:
    """Every player puts a rendition's segment n at the same instant: its first frame (the
    IDR) is presented at the segment's decode time, with no edit list in the init to apply
    (Chromium applies only some, hls.js none), so a player that drops to another rung after
    a seek asks for the segment that holds the seek's target there."""
    chunked, _ = two_rungs
    seen_reordered = False
    for out in chunked.dirs:
        for rid in ("v480", "v360"):
            folder = out / rid
            if not folder.is_dir():
                continue
            init_bytes = (folder / "init.mp4").read_bytes()
            assert mp4.find(init_bytes, "moov/trak/edts") is None, f"{folder}: init has an edit list"
            init = mp4.parse_init(init_bytes)
            for seg in sorted(folder.glob("*.m4s")):
                base, times = _presentation_times(seg.read_bytes(), init.defaults)
                assert times[0] == min(times) == base, f"{rid}/{seg.name}: first frame at {times[0]}, tfdt {base}"
                seen_reordered |= times != sorted(times)
    assert seen_reordered, "the encode has B-frames (frames presented out of decode order)"
