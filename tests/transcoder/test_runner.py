"""The ffmpeg runner: progress, failure reasons, the wall-clock limit, no orphan process."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.transcoder.jobs_support import task_row
from transcoder import runner, tasks
from transcoder.errors import TranscodeError, TranscodeTimeout
from transcoder.runner import failure_reason, parse_progress_time_s, run_ffmpeg
from transcoder.worker import BULK_NICE, audio_then_nice, bulk_nice

HEAD = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning", "-nostats", "-progress", "pipe:1"]


def endless(token: str, realtime: bool = True) -> list[str]:
    """An ffmpeg that would run forever; `token` makes it findable in /proc."""
    return [
        *HEAD,
        *(["-re"] if realtime else []),
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x90:rate=25",
        "-metadata",
        f"comment={token}",
        "-f",
        "null",
        "-",
    ]


def running_with(token: str) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if token.encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            pass  # exited while we looked
    return pids


@pytest.mark.parametrize(
    "key, value, seconds",
    [
        pytest.param("out_time_us", "2500000", 2.5, id="us"),
        pytest.param("out_time_ms", "2500000", 2.5, id="ms-is-really-us"),
        pytest.param("out_time_us", "N/A", None, id="not-yet"),
        pytest.param("out_time_us", "-23220", 0.0, id="negative-clamped"),
        pytest.param("frame", "12", None, id="other-key"),
    ],
)
def test_parse_progress(key: str, value: str, seconds: float | None) -> None:
    assert parse_progress_time_s(key, value) == seconds


@pytest.mark.parametrize(
    "lines, reason",
    [
        pytest.param(
            ["in.mp4: Invalid data found when processing input"],
            "in.mp4: Invalid data found when processing input",
            id="last-line",
        ),
        pytest.param(
            ["[h264 @ 0x1] error while decoding MB 3 4", "Conversion failed!"],
            "[h264 @ 0x1] error while decoding MB 3 4",
            id="skips-generic",
        ),
        pytest.param(
            ["Error opening output file x", "  some   trailing   note  "],
            "Error opening output file x",
            id="prefers-an-error-line",
        ),
        pytest.param([], "no error output", id="silent"),
    ],
)
def test_failure_reason(lines: list[str], reason: str) -> None:
    assert failure_reason(lines) == reason


async def test_progress_reaches_100() -> None:
    seen: list[float] = []

    async def on_progress(p: float) -> None:
        seen.append(p)

    args = [*HEAD, "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=3", "-f", "null", "-"]
    await run_ffmpeg(args, duration_s=3.0, on_progress=on_progress, timeout_s=30)
    assert seen[-1] == 100.0
    assert seen == sorted(seen) and all(0 <= p <= 100 for p in seen)


async def test_sync_progress_callback() -> None:
    seen: list[float] = []
    args = [*HEAD, "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=1", "-f", "null", "-"]
    await run_ffmpeg(args, duration_s=1.0, on_progress=seen.append, timeout_s=30)
    assert seen[-1] == 100.0


async def test_failure_is_one_line(tmp_path: Path) -> None:
    args = [*HEAD, "-i", str(tmp_path / "missing.mp4"), "-f", "null", "-"]
    with pytest.raises(TranscodeError) as info:
        await run_ffmpeg(args, duration_s=1.0, on_progress=None, timeout_s=30)
    message = str(info.value)
    assert "\n" not in message
    assert "No such file or directory" in message and "exit 1" in message
    assert info.value.code == "transcode_failed"


async def test_timeout_stops_ffmpeg() -> None:
    token = uuid.uuid4().hex
    started = time.monotonic()
    with pytest.raises(TranscodeTimeout) as info:
        await run_ffmpeg(endless(token), duration_s=60.0, on_progress=None, timeout_s=1.0)
    assert time.monotonic() - started < 1.0 + runner.TERM_GRACE_S + 2
    assert info.value.code == "transcode_timeout"
    assert isinstance(info.value, TranscodeError)
    assert running_with(token) == []


async def test_cancellation_kills_ffmpeg() -> None:
    token = uuid.uuid4().hex
    progressed = asyncio.Event()
    task = asyncio.create_task(
        run_ffmpeg(
            endless(token, realtime=False),
            duration_s=3600.0,
            on_progress=lambda p: progressed.set(),
            timeout_s=60,
        )
    )
    await asyncio.wait_for(progressed.wait(), 20)
    assert len(running_with(token)) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert running_with(token) == []


@pytest.mark.parametrize("nice", [0, 10])
async def test_nice_lowers_ffmpegs_cpu_priority(nice: int) -> None:
    """Bulk chunks yield the cores: their ffmpeg runs at the niceness asked, ours unchanged."""
    token = uuid.uuid4().hex
    progressed = asyncio.Event()
    task = asyncio.create_task(
        run_ffmpeg(endless(token), duration_s=3600.0, on_progress=lambda p: progressed.set(), timeout_s=60, nice=nice)
    )
    try:
        await asyncio.wait_for(progressed.wait(), 20)
        (pid,) = running_with(token)
        assert os.getpriority(os.PRIO_PROCESS, pid) == os.getpriority(os.PRIO_PROCESS, 0) + nice
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_only_bulk_chunks_and_parts_run_nicer() -> None:
    """What a player starts with (audio, the first segment) or a viewer waits for (a bumped
    task) keeps full priority; the rest is bulk."""
    plan = tasks.plan_tasks(total=30, video_ids=("v1080", "v360"), audio_ids=("a0",), chunk_segments=8)
    by_first = {(s.kind, s.first, s.renditions): s for s in plan}

    def made(spec: tasks.TaskSpec, priority: int) -> tasks.Task:
        return task_row(
            kind=spec.kind,
            renditions=spec.renditions,
            first_number=spec.first,
            segment_count=spec.count,
            priority=priority,
        )

    niceness = {key: bulk_nice(made(s, s.priority)) for key, s in by_first.items()}
    assert niceness[("audio", 1, ("a0",))] == 0
    assert niceness[("video", 1, ("v360",))] == 0  # a player starts with it
    # the rest of the first chunk is bulk too: a seek's bumped cells must not wait behind it
    assert niceness[("video", 2, ("v360",))] == BULK_NICE
    assert niceness[("video", 1, ("v1080",))] == BULK_NICE
    assert niceness[("video", 9, ("v1080", "v360"))] == BULK_NICE
    assert bulk_nice(made(by_first[("video", 9, ("v1080", "v360"))], 0)) == 0  # bumped by a viewer
    # A long title's audio in parts: the first is what a player starts with, the rest is bulk
    # work until a viewer's seek bumps one.
    parts = tasks.plan_tasks(
        total=90, video_ids=("v1080", "v360"), audio_ids=("a0",), chunk_segments=8, audio_part_segments=30
    )
    audio = sorted((s for s in parts if s.kind == "audio"), key=lambda s: s.first)
    assert [s.first for s in audio] == [1, 31, 61]
    assert [bulk_nice(made(s, s.priority)) for s in audio] == [0, BULK_NICE, BULK_NICE]
    assert bulk_nice(made(audio[2], 0)) == 0
    # The first part yields the cores once its first segment is out; the others, and a part
    # a viewer's seek bumped, keep the priority they started with.
    assert [audio_then_nice(made(s, s.priority)) for s in audio] == [BULK_NICE, None, None]
    assert audio_then_nice(made(audio[2], 0)) is None
    assert audio_then_nice(made(by_first[("audio", 1, ("a0",))], 1)) == BULK_NICE  # one task: the whole audio
    assert audio_then_nice(made(by_first[("video", 1, ("v360",))], 1)) is None


async def test_sigterm_ignored_then_sigkill(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "TERM_GRACE_S", 0.3)
    token = uuid.uuid4().hex
    stubborn = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('out_time_us=1000000', flush=True); time.sleep(60)",
        token,
    ]
    started = time.monotonic()
    with pytest.raises(TranscodeTimeout):
        await run_ffmpeg(stubborn, duration_s=10.0, on_progress=None, timeout_s=0.5)
    assert time.monotonic() - started < 5
    assert running_with(token) == []


async def test_run_quiet_names_the_failure_and_leaves_no_process(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"^ffmpeg remux failed: .*No such file"):
        await runner.run_quiet(
            ["ffmpeg", "-hide_banner", "-v", "error", "-i", str(tmp_path / "absent.mp4"), "-f", "null", "-"],
            timeout_s=30,
            what="remux",
        )
    # past its time limit the process is killed and reaped, never left behind
    marker = tmp_path / "marker"
    with pytest.raises(TimeoutError):
        await runner.run_quiet(["sh", "-c", f"echo $$ > {marker}; exec sleep 30"], timeout_s=0.5, what="sprites")
    pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
