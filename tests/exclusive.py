"""Tests marked `exclusive` run alone when the suite runs in parallel (`pytest -n 2`).

They measure time to the tens of milliseconds (the watch party's sync between two players):
another test's ffmpeg on the other core would move their figures. Every other test runs
beside any other.

Across pytest-xdist's worker processes this is a readers-writer lock on two files: a test
holds `run` shared, an exclusive test holds it alone. An exclusive test first takes `gate`,
which a test must pass to take `run`, so the other worker's next test waits at the gate
instead of overtaking it. The lock is taken outside pytest-timeout's timer (this hook wraps
setup, call and teardown first), so a test's time limit never counts the wait."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import IO

import pytest

MARKER = "exclusive"


def _lock_dir() -> Path | None:
    """A folder shared by this run's workers; None when the suite is not split across them."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run_id or not os.environ.get("PYTEST_XDIST_WORKER"):
        return None
    folder = Path(tempfile.gettempdir()) / f"streamflix-tests-{run_id}"
    folder.mkdir(exist_ok=True)
    return folder


def _open(folder: Path, name: str) -> IO[bytes]:
    return open(folder / name, "ab")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: runs alone when the suite runs in parallel (tests/exclusive.py)")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    folder = _lock_dir()
    if folder is None:
        yield
        return
    with _open(folder, "gate") as gate, _open(folder, "run") as run:
        if item.get_closest_marker(MARKER):
            fcntl.flock(gate, fcntl.LOCK_EX)
            fcntl.flock(run, fcntl.LOCK_EX)
        else:
            fcntl.flock(gate, fcntl.LOCK_SH)
            fcntl.flock(run, fcntl.LOCK_SH)
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(run, fcntl.LOCK_UN)
            fcntl.flock(gate, fcntl.LOCK_UN)
