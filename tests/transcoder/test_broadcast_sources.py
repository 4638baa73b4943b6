"""Broadcast-style sources through the real ingest + worker + ffmpeg: timestamps that start
at 3600 s (MPEG-TS, MP4 and Matroska), audio and video that start at different times, a
probe stored by an older model, and interlaced pictures. The published segments are checked
with ffprobe: they start at 0, last as long as the source really does, stay in sync, and
carry no combing."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from catalog import titles
from media import keys
from media.backend import open_storage
from media.probe import probe
from media.probe_model import PROBE_MODEL
from media.storage import Storage
from packager.model import Presentation, Rendition
from server.settings import Settings
from tests.transcoder.jobs_support import (  # noqa: F401 (fixtures)
    ingest_and_run,
    job_of,
    make_worker,
    pool,
    storage,
)
from tests.transcoder.test_ingest_cli import download_version, run_cli
from transcoder import sources
from transcoder.ingest import ingest

pytestmark = pytest.mark.slow

OFFSET_S = 3600
SECONDS = 4
BAR = "white:s=24x360"  # a bar crossing the picture at 800 px/s: 16 px between two fields


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, capture_output=True, timeout=120)


def ffprobe(path: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)], check=True, capture_output=True
    ).stdout
    return json.loads(out)


def offset_clip(out: Path, *, video_at: float = 0.0, audio_at: float = 0.0, seconds: float = SECONDS) -> Path:
    """A 320x180 clip with a 440 Hz tone whose timestamps start at OFFSET_S; `video_at` /
    `audio_at` start one stream that much later than the other (an -itsoffset on its input)."""
    ffmpeg(
        *(["-itsoffset", str(video_at)] if video_at else []),
        "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={seconds - video_at}",
        *(["-itsoffset", str(audio_at)] if audio_at else []),
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds - audio_at}",
        "-map", "0", "-map", "1", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac",
        "-output_ts_offset", str(OFFSET_S), str(out),
    )  # fmt: skip
    return out


def interlaced_clip(out: Path, codec: str) -> Path:
    """640x360 25i, top field first: a white bar moving at 800 px/s, sampled 50 times a
    second and woven two samples to a frame, so every frame is combed."""
    encoder = {
        "h264": ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", "-x264-params", "tff=1"],
        "mpeg2": ["-c:v", "mpeg2video", "-q:v", "2", "-top", "1"],
    }[codec]
    ffmpeg(
        "-f", "lavfi", "-i", "color=black:s=640x360:r=50:d=3",
        "-f", "lavfi", "-i", f"color={BAR}:r=50:d=3",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
        "-filter_complex", "[0][1]overlay=x='mod(t*800,616)':y=0:shortest=1,"
        "tinterlace=interleave_top,fieldorder=tff[v]",
        "-map", "[v]", "-map", "2", "-flags", "+ilme+ildct", *encoder, "-c:a", "aac", str(out),
    )  # fmt: skip
    return out


def combing(path: Path, *, width: int, height: int, frames: int = 10, seek_s: float | None = 0.5) -> float:
    """Mean absolute luma difference between neighbouring lines. The bar is vertical, so a
    progressive frame has none; a woven frame shows it at two places on alternate lines."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", *(["-ss", str(seek_s)] if seek_s is not None else []),
         "-i", str(path), "-frames:v", str(frames),
         "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    size = width * height
    assert raw and len(raw) % size == 0
    total = 0
    for f in range(0, len(raw), size):
        frame = raw[f : f + size]
        for y in range(height - 1):
            upper, lower = frame[y * width : (y + 1) * width], frame[(y + 1) * width : (y + 2) * width]
            total += sum(abs(a - b) for a, b in zip(upper, lower, strict=True))
    return total / (len(raw) // size * (height - 1) * width)


def joined(folder: Path, r: Rendition) -> Path:
    """init + every segment of one published rendition, as one file ffprobe reads."""
    target = folder / f"{r.id}-joined.mp4"
    with target.open("wb") as fh:
        fh.write((folder / r.init_name).read_bytes())
        for n in range(r.start_number, r.start_number + len(r.segments)):
            fh.write((folder / r.segment_name(n)).read_bytes())
    return target


def loudness_db(path: Path, start_s: float, end_s: float) -> float:
    """The peak level (dBFS) of the audio between two instants of the output timeline."""
    err = subprocess.run(
        ["ffmpeg", "-v", "info", "-nostats", "-i", str(path), "-af",
         f"atrim={start_s}:{end_s},volumedetect", "-f", "null", "-"],
        check=True, capture_output=True, text=True,
    ).stderr  # fmt: skip
    match = re.search(r"max_volume: (-?[\d.]+|-inf) dB", err)
    assert match, err
    return float(match.group(1)) if match.group(1) != "-inf" else -200.0


async def published(storage: Storage, title_id: str, version: str | None, dest: Path) -> Presentation:
    assert version is not None
    return await download_version(storage, title_id, version, dest)


def starts_at_zero_and_lasts(folder: Path, model: Presentation, seconds: float) -> None:
    """Every rendition's first segment decodes from 0 (tfdt in the model, first packet by
    ffprobe) and lasts as long as the source really does."""
    for r in (*model.video, *model.audio):  # the download is one progressive file, tested apart
        assert r.start_time == 0, f"{r.id} tfdt starts at {r.start_time}"
        data = ffprobe(joined(folder, r), "-show_entries", "packet=pts_time,dts_time:format=duration")
        first = min(float(p["pts_time"]) for p in data["packets"][:8])
        # Within a frame of 0, not 3600: ffprobe honours the init segment's edit list, where
        # the muxer puts a 21 ms empty edit on video (the AAC priming delay), as on any title.
        assert first == pytest.approx(0, abs=0.03), f"{r.id} first pts {first}"
        assert float(data["format"]["duration"]) == pytest.approx(seconds, abs=0.15), r.id
        assert r.duration_s == pytest.approx(seconds, abs=0.15), r.id


# ---- start offsets ------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["ts", "mp4", "mkv"])
def test_a_source_starting_at_3600_s_is_ready_on_a_timeline_from_0(
    ext: str,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = offset_clip(tmp_path / f"offset.{ext}")
    probed = asyncio.run(probe(str(source)))
    assert probed.start_time_s == pytest.approx(OFFSET_S, abs=1.5)  # MPEG-TS adds its 1.4 s
    assert probed.duration_s == pytest.approx(SECONDS, abs=0.1)  # not the 3604 s end time

    code, out, err = run_cli(
        monkeypatch, capsys, settings, "ingest", str(source), "--title", f"Capture {ext}", "--wait"
    )
    assert code == 0, err
    title_id = out.strip()
    code, out, err = run_cli(monkeypatch, capsys, settings, "titles", "show", title_id, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["status"] == "ready", shown
    assert shown["duration_s"] == pytest.approx(SECONDS, abs=0.15)
    shift = f"timeline shifted by {-probed.start_time_s:.1f} s"
    assert shown["source_adjustments"] == [shift]
    code, out, _ = run_cli(monkeypatch, capsys, settings, "titles", "show", title_id)
    assert code == 0 and re.search(rf"^source\s+{re.escape(shift)}$", out, re.M), out

    stored = open_storage(settings.storage_url, settings.s3_endpoint_url)
    model = asyncio.run(published(stored, title_id, shown["version"], tmp_path / "out"))
    assert model.extra["source_adjustments"] == [shift]
    starts_at_zero_and_lasts(tmp_path / "out", model, SECONDS)


@pytest.mark.parametrize(
    ("late", "adjustment"),
    [
        pytest.param("audio", "audio padded with", id="audio-starts-1s-late"),
        pytest.param("video", "video held on its first frame for", id="video-starts-1s-late"),
    ],
)
async def test_streams_starting_apart_both_start_at_0_in_sync(
    late: str, adjustment: str, pool: asyncpg.Pool, storage: Storage, settings: Settings, tmp_path: Path
) -> None:
    source = offset_clip(tmp_path / "apart.ts", **{f"{late}_at": 1.0})
    title = await ingest_and_run(pool, storage, settings, source)
    assert title.status == "ready", title.failure_reason
    model = await published(storage, title.id, title.current_version, tmp_path / "out")
    adjusted = model.extra["source_adjustments"]
    assert adjusted[0].startswith("timeline shifted by -3601.4 s") and adjusted[1].startswith(adjustment), adjusted
    starts_at_zero_and_lasts(tmp_path / "out", model, SECONDS)
    audio = joined(tmp_path / "out", model.audio[0])
    if late == "audio":
        # The tone begins 1 s in, as in the source: silence before, the tone after.
        assert loudness_db(audio, 0, 0.9) < -60
        assert loudness_db(audio, 1.1, 2) > -30
    else:
        assert loudness_db(audio, 0, 0.9) > -30


async def test_a_probe_stored_by_an_older_model_is_probed_again(
    pool: asyncpg.Pool, storage: Storage, settings: Settings, tmp_path: Path
) -> None:
    """The first attempt's probe is reused by later attempts; one stored before start
    offsets were understood (the 3604 s end time as the duration) is not trusted."""
    source = offset_clip(tmp_path / "old.mp4")
    fresh = (await probe(str(source))).to_dict()
    old = {k: v for k, v in fresh.items() if k not in ("model", "start_time_s")}
    old["duration_s"] = OFFSET_S + SECONDS
    old["video"] = {k: v for k, v in fresh["video"].items() if k not in ("start_time_s", "field_order")}
    old["audio"] = [{k: v for k, v in a.items() if k != "start_time_s"} for a in fresh["audio"]]

    title = await ingest(
        pool,
        storage,
        source=str(source),
        work_dir=settings.work_dir,
        title="Old probe",
        max_source_bytes=settings.max_source_bytes,
    )
    async with pool.acquire() as conn:
        await sources.set_probe(conn, title.id, old)
    await asyncio.wait_for(make_worker(pool, storage, settings, title_id=title.id).run(once=True), 120)
    async with pool.acquire() as conn:
        done = await titles.get_title(conn, title.id)
        stored = await sources.get_probe(conn, title.id)
    assert done.status == "ready", done.failure_reason
    assert done.duration_s == pytest.approx(SECONDS, abs=0.15)
    assert stored is not None and stored["model"] == PROBE_MODEL
    assert stored["duration_s"] == pytest.approx(SECONDS, abs=0.1)


# ---- interlaced ---------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["h264", "mpeg2"])
async def test_an_interlaced_source_is_deinterlaced_in_every_rung_and_the_poster(
    codec: str, pool: asyncpg.Pool, storage: Storage, settings: Settings, tmp_path: Path
) -> None:
    source = interlaced_clip(tmp_path / f"interlaced-{codec}.{'mp4' if codec == 'h264' else 'ts'}", codec)
    probed = await probe(str(source))
    assert probed.video is not None and probed.video.field_order == "tt" and probed.video.interlaced
    assert combing(source, width=640, height=360) > 8  # the metric sees the source's combing

    title = await ingest_and_run(pool, storage, settings, source)
    assert title.status == "ready", title.failure_reason
    out = tmp_path / "out"
    model = await published(storage, title.id, title.current_version, out)
    assert model.extra["source_adjustments"][-1] == "deinterlaced (tff)"
    [rung] = model.video  # 640x360: one rung at the source's size, so no scaling blurs the test
    assert (rung.width, rung.height, rung.frame_rate) == (640, 360, "25")  # send_frame: 25, not 50
    video = joined(out, rung)
    stream = ffprobe(video, "-show_entries", "stream=field_order,avg_frame_rate")["streams"][0]
    assert stream["field_order"] == "progressive" and stream["avg_frame_rate"] == "25/1"
    assert combing(video, width=640, height=360) < 2
    assert combing(out / keys.POSTER_NAME, width=640, height=360, frames=1, seek_s=None) < 2
