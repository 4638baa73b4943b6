"""Runs one ffmpeg argv: progress, a wall-clock limit, and no orphan process.

The only module of the package that starts a process. ffmpeg must have been given
`-progress pipe:1 -nostats` (as `transcoder.command` does): stdout then carries key=value
blocks ending in `progress=continue|end`, and stderr only log lines, of which the tail is kept
for a one-line failure reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import inspect
import os
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable

from transcoder.errors import TranscodeError, TranscodeTimeout

ProgressCallback = Callable[[float], "Awaitable[None] | None"]

STDERR_TAIL_LINES = 50
TERM_GRACE_S = 3.0
# Generic last words of ffmpeg that say nothing about the cause.
_GENERIC = ("conversion failed", "exiting normally", "received signal", "press [q]")


async def run_ffmpeg(
    args: list[str],
    *,
    duration_s: float,
    on_progress: ProgressCallback | None = None,
    timeout_s: float | None = None,
    nice: int = 0,
    on_start: Callable[[int], None] | None = None,
) -> None:
    """Run ffmpeg to completion, reporting 0..100 % through `on_progress` (sync or async).

    Raises `TranscodeTimeout` after `timeout_s` of wall-clock time and `TranscodeError` (with
    the most telling of ffmpeg's last stderr lines) on a non-zero exit. On timeout or
    cancellation ffmpeg gets SIGTERM, then SIGKILL after a short grace, and is awaited before
    this returns or re-raises. Should this process itself die, the kernel kills ffmpeg
    (`die_with_parent`). `nice` > 0 runs ffmpeg at that lower CPU priority (bulk work that
    must yield the cores to what a viewer waits for); `on_start` gets ffmpeg's pid once it
    runs (`renice` it later).
    """
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_child_setup(nice),
    )
    if on_start is not None:
        on_start(proc.pid)
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    try:
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(
                _read_progress(proc.stdout, duration_s, on_progress),
                _read_stderr(proc.stderr, tail),
            )
            returncode = await proc.wait()
    except TimeoutError:
        await _stop(proc)
        raise TranscodeTimeout(f"ffmpeg ran longer than {timeout_s:g} s and was stopped") from None
    except BaseException:  # cancellation, or an exception from on_progress
        await _stop(proc)
        raise
    if returncode != 0:
        raise TranscodeError(f"ffmpeg failed ({_exit_status(returncode)}): {failure_reason(tail)}")
    await _report(on_progress, 100.0)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Looked up once here: dlopen in a forked child of a threaded process can deadlock.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


async def run_captured(
    argv: list[str], *, timeout_s: float, keep_stdout: bool = True, nice: int = 0
) -> tuple[int, bytes, bytes]:
    """Run a short process (an ffprobe, a remux) to its end within `timeout_s`: its exit
    code, stdout (b"" unless `keep_stdout`) and stderr. Timed out (TimeoutError) or
    cancelled, the process is killed and reaped first: never an orphan. `nice` > 0 runs it
    at that lower CPU priority."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE if keep_stdout else asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_child_setup(nice),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.shield(proc.wait())
    return proc.returncode or 0, out or b"", err or b""


async def run_quiet(argv: list[str], *, timeout_s: float, what: str, nice: int = 0) -> None:
    """Run a short ffmpeg without progress (a remux, a sprite sheet) to its end within
    `timeout_s` (at CPU priority `nice`); a failure is a RuntimeError naming `what` with the
    tail of its stderr. Timed out or cancelled, the process is killed and reaped: never an
    orphan."""
    code, _, err = await run_captured(argv, timeout_s=timeout_s, keep_stdout=False, nice=nice)
    if code != 0:
        raise RuntimeError(f"ffmpeg {what} failed: {err.decode(errors='replace').strip()[-300:]}")


def renice(pid: int, nice: int) -> None:
    """Lower a running ffmpeg's CPU priority to `nice` (a no-op when it has already exited)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.setpriority(os.PRIO_PROCESS, pid, nice)


def _child_setup(nice: int) -> Callable[[], None]:
    def setup() -> None:
        if nice > 0:
            os.nice(nice)
        die_with_parent()

    return setup


def die_with_parent() -> None:
    """preexec_fn: the kernel sends ffmpeg SIGKILL when the worker dies, even by SIGKILL
    (prctl(2) PR_SET_PDEATHSIG). ffmpeg ignores SIGPIPE, so a closed progress pipe alone
    would not stop it. Linux only; elsewhere a no-op."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def parse_progress_time_s(key: str, value: str) -> float | None:
    """Seconds of output written, from one `-progress` line, or None if it says nothing."""
    # out_time_ms is microseconds too (a long-standing ffmpeg misnomer), kept as a fallback.
    if key in ("out_time_us", "out_time_ms"):
        try:
            return max(0.0, int(value) / 1_000_000)
        except ValueError:  # "N/A" before the first frame
            return None
    return None


def failure_reason(lines: deque[str] | list[str]) -> str:
    """The most telling of ffmpeg's last stderr lines, as one line."""
    cleaned = [" ".join(line.split()) for line in lines]
    cleaned = [line for line in cleaned if line]
    telling = [line for line in cleaned if not line.lower().startswith(_GENERIC)]
    for line in reversed(telling):
        if "error" in line.lower() or "invalid" in line.lower() or "no such" in line.lower():
            return line
    if telling:
        return telling[-1]
    return cleaned[-1] if cleaned else "no error output"


async def _read_progress(
    stream: asyncio.StreamReader | None, duration_s: float, on_progress: ProgressCallback | None
) -> None:
    if stream is None:
        return
    last = -1.0
    async for raw in stream:
        key, sep, value = raw.decode("utf-8", "replace").strip().partition("=")
        if not sep:
            continue
        t: float | None = duration_s if key == "progress" and value == "end" else parse_progress_time_s(key, value)
        if t is None or duration_s <= 0:
            continue
        percent = min(99.9, 100.0 * t / duration_s)  # 100 only once ffmpeg has exited 0
        if percent >= last + 0.1:
            last = percent
            await _report(on_progress, percent)


async def _read_stderr(stream: asyncio.StreamReader | None, tail: deque[str]) -> None:
    if stream is None:
        return
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # a line over the reader's limit: drop what was buffered
            continue
        if not raw:
            return
        tail.append(raw.decode("utf-8", "replace").rstrip())


async def _report(on_progress: ProgressCallback | None, percent: float) -> None:
    if on_progress is None:
        return
    result = on_progress(percent)
    if inspect.isawaitable(result):
        await result


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, SIGKILL after a grace, then reap: never leave ffmpeg running or a zombie."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.shield(asyncio.wait_for(proc.wait(), TERM_GRACE_S))
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    # Shielded so that a second cancellation cannot leave the child unreaped.
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(proc.wait())


def _exit_status(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit {returncode}"
