"""Bad and awkward input, through the real ingest + worker: each source ends `ready` and
correct, or `failed` with a one-line reason (or is refused by ingest with one), with no worker
crash, nothing half-published visible, and the work dir cleaned.

Audio-only sources become audio-only titles (one AAC rendition, no poster): HLS and DASH both
describe audio-only presentations, and a podcast or an album is a fair thing to stream.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from catalog.errors import DuplicateEpisode
from media import keys
from media.storage import Storage
from packager.model import Presentation, Rendition
from server.settings import Settings
from tests.transcoder.jobs_support import (  # noqa: F401 (fixtures)
    ingest_and_run,
    job_of,
    pool,
    storage,
    stored_keys,
    work_dirs,
)
from transcoder.ingest import SourceTooLarge, SourceUnavailable


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, capture_output=True)


def lavfi_clip(
    out: Path,
    *,
    size: str = "320x180",
    seconds: float = 2,
    rate: int = 25,
    audio: bool = True,
    video: bool = True,
    vcodec: tuple[str, ...] = ("-c:v", "libx264", "-preset", "ultrafast"),
    pix_fmt: str = "yuv420p",
    extra: tuple[str, ...] = (),
) -> Path:
    args: list[str] = []
    if video:
        args += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    if video:
        args += [*vcodec, "-pix_fmt", pix_fmt, "-g", str(rate * 2)]
    if audio:
        args += ["-c:a", "aac"]
    ffmpeg(*args, *extra, str(out))
    return out


@dataclass(frozen=True)
class Expect:
    status: str  # "ready", "failed" or "refused" (ingest raises)
    reason: str = ""  # substring of the failure reason / error
    heights: tuple[int, ...] | None = None  # video rung heights, highest first
    audio: bool = True
    portrait: bool = False
    segments: int | None = None
    error: type[BaseException] | None = None
    kw: dict = field(default_factory=dict)


def random_bytes(tmp: Path) -> Path:
    p = tmp / "random.mp4"
    p.write_bytes(os.urandom(256 * 1024))
    return p


def text_file(tmp: Path) -> Path:
    p = tmp / "readme.mp4"
    p.write_text("This is a text file with a video extension.\n" * 50)
    return p


def zero_bytes(tmp: Path) -> Path:
    p = tmp / "empty.mp4"
    p.touch()
    return p


def cut_in_half(tmp: Path, faststart: bool) -> Path:
    whole = lavfi_clip(tmp / "whole.mp4", seconds=4, extra=("-movflags", "+faststart") if faststart else ())
    data = whole.read_bytes()
    p = tmp / "half.mp4"
    p.write_bytes(data[: len(data) // 2])
    return p


def rotated(tmp: Path) -> Path:
    plain = lavfi_clip(tmp / "landscape.mp4", size="640x360")
    # ffmpeg 5.1 writes the display matrix from the rotate tag only on a stream copy
    ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(tmp / "phone.mp4"))
    return tmp / "phone.mp4"


def vfr(tmp: Path) -> Path:
    # keep 5 frames of every 10 with their original timestamps: gaps, so variable frame rate
    return lavfi_clip(tmp / "vfr.mp4", seconds=3, extra=("-vf", "select='lt(mod(n\\,10)\\,5)'", "-fps_mode", "vfr"))


CASES = [
    pytest.param(
        lambda t: t / "missing.mp4", Expect("refused", "source not found", error=SourceUnavailable), id="missing-file"
    ),
    pytest.param(random_bytes, Expect("failed", "source rejected"), id="random-bytes"),
    pytest.param(text_file, Expect("failed", "source rejected"), id="text-named-mp4"),
    pytest.param(zero_bytes, Expect("failed", "zero-length file"), id="zero-bytes"),
    pytest.param(lambda t: cut_in_half(t, False), Expect("failed", "moov atom not found"), id="mp4-cut-in-half"),
    # the header (first in the file) is whole, the media ends at about half: ready at its real
    # length, one segment (its 4 s header says two), the change listed as an adjustment
    pytest.param(
        lambda t: cut_in_half(t, True), Expect("ready", heights=(180,), segments=1), id="faststart-mp4-cut-in-half"
    ),
    pytest.param(lambda t: lavfi_clip(t / "audio.m4a", video=False), Expect("ready", heights=()), id="audio-only"),
    pytest.param(
        lambda t: lavfi_clip(t / "silent.mp4", audio=False),
        Expect("ready", heights=(180,), audio=False),
        id="video-only",
    ),
    pytest.param(
        lambda t: lavfi_clip(t / "odd.mp4", size="1919x1079", pix_fmt="yuv444p", seconds=1, audio=False),
        Expect("ready", heights=(1078, 720, 480, 360), audio=False),
        id="1919x1079",
    ),
    pytest.param(rotated, Expect("ready", heights=(640,), portrait=True), id="rotated-phone-clip"),
    pytest.param(
        lambda t: lavfi_clip(t / "ten.mp4", pix_fmt="yuv420p10le"), Expect("ready", heights=(180,)), id="10-bit"
    ),
    pytest.param(lambda t: lavfi_clip(t / "422.mp4", pix_fmt="yuv422p"), Expect("ready", heights=(180,)), id="4:2:2"),
    pytest.param(vfr, Expect("ready", heights=(180,)), id="variable-frame-rate"),
    pytest.param(
        lambda t: lavfi_clip(t / "short.mp4", seconds=1), Expect("ready", heights=(180,), segments=1), id="1s-clip"
    ),
    pytest.param(
        lambda t: lavfi_clip(t / "big.mp4"),
        Expect("refused", "limit (max_source_bytes)", error=SourceTooLarge, kw={"max_source_bytes": 1000}),
        id="over-the-size-cap",
    ),
]


def frame_size(r: Rendition) -> tuple[int, int]:
    """A video rendition's width and height, which the model always records."""
    assert r.width is not None and r.height is not None, f"video rendition {r.id} has no frame size"
    return r.width, r.height


@pytest.mark.parametrize("make, expect", CASES)
async def test_bad_input(
    make: Callable[[Path], Path],
    expect: Expect,
    settings: Settings,
    pool: asyncpg.Pool,
    storage: Storage,
    tmp_path: Path,
) -> None:
    source = make(tmp_path)
    if expect.status == "refused":
        assert expect.error is not None, "a refused case names the error ingest raises"
        with pytest.raises(expect.error) as info:
            await ingest_and_run(pool, storage, settings, source, **expect.kw)
        assert expect.reason in str(info.value) and "\n" not in str(info.value)
        assert work_dirs(settings) == []
        return

    title = await ingest_and_run(pool, storage, settings, source)  # the worker returned: no crash
    assert work_dirs(settings) == []
    job = await job_of(pool, title.id)
    if expect.status == "failed":
        assert title.status == "failed", title
        assert title.failure_reason and "\n" not in title.failure_reason
        assert expect.reason in title.failure_reason
        assert job.status == "failed"
        assert await stored_keys(storage, title.id) == []  # nothing half-published
        assert title.current_version is None
        return

    assert title.status == "ready", title.failure_reason
    assert title.current_version is not None
    assert job.status == "done" and job.attempts == 1
    keys_ = await stored_keys(storage, title.id)
    assert {k.split("/")[2] for k in keys_} == {title.current_version}
    model = Presentation.from_json(await storage.get_bytes(keys.model_key(title.id, title.current_version)))
    video = sorted(model.video, key=lambda r: -frame_size(r)[1])
    assert tuple(r.height for r in video) == expect.heights
    for r in video:
        width, height = frame_size(r)
        assert width % 2 == 0 and height % 2 == 0
        assert (width < height) == expect.portrait
        if expect.segments is not None:
            assert len(r.segments) == expect.segments
    assert bool(model.audio) == expect.audio
    has_poster = keys.poster_key(title.id, title.current_version) in keys_
    assert has_poster == bool(video)  # no poster for audio-only


async def test_duplicate_episode_is_refused_and_leaves_nothing(
    settings: Settings,
    pool: asyncpg.Pool,
    storage: Storage,
    tmp_path: Path,
) -> None:
    from transcoder.ingest import ingest

    clip = lavfi_clip(tmp_path / "ep.mp4", seconds=1)
    series = f"Dup Show {os.getpid()}-{tmp_path.name}"
    first = await ingest(
        pool,
        storage,
        source=str(clip),
        title="Ep 1",
        series=series,
        season=1,
        episode=1,
        max_source_bytes=10**9,
        work_dir=settings.work_dir,
    )
    before = await storage.list(keys.SOURCES + "/")
    with pytest.raises(DuplicateEpisode, match="season 1 episode 1 already exists"):
        await ingest(
            pool,
            storage,
            source=str(clip),
            title="Ep 1 again",
            series=series.upper(),
            season=1,
            episode=1,
            max_source_bytes=10**9,
            work_dir=settings.work_dir,
        )
    assert await storage.list(keys.SOURCES + "/") == before  # the second upload was removed
    async with pool.acquire() as conn:
        n = await conn.fetchval("SELECT count(*) FROM catalog.titles WHERE series_id = $1::uuid", first.series_id)
        series_rows = await conn.fetchval(
            "SELECT count(*) FROM catalog.titles WHERE kind = 'series' AND lower(title) = lower($1)", series
        )
    assert (n, series_rows) == (1, 1)
    assert work_dirs(settings) == []
