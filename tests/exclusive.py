"""Tests marked `exclusive` run alone when the suite runs in parallel (`pytest -n 2`).

They measure time to the tens of milliseconds (the watch party's sync between two players):
another test's ffmpeg on the other core would move their figures. Every other test runs
beside any other.

Across pytest-xdist's worker processes this is a readers-writer lock on two files, in a
folder the controller makes for the run and removes after it. A test holds `run` shared, an
exclusive test holds it alone. An exclusive test first takes `gate`, which a test must pass
to take `run`, so the other worker's next test waits at the gate instead of overtaking it.
The lock is taken outside pytest-timeout's timer (this hook wraps setup, call and teardown
first), so a test's time limit never counts the wait."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import IO

import pytest

MARKER = "exclusive"
LOCKS_ENV = "STREAMFLIX_TEST_LOCKS"


def _lock_dir() -> Path | None:
    """The folder the controller made for this run's workers; None outside a worker."""
    folder = os.environ.get(LOCKS_ENV)
    if not folder or not os.environ.get("PYTEST_XDIST_WORKER"):
        return None
    return Path(folder)


def _open(folder: Path, name: str) -> IO[bytes]:
    return open(folder / name, "ab")


def _is_controller(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: runs alone when the suite runs in parallel (tests/exclusive.py)")
    if _is_controller(config):
        # the workers it starts inherit the environment; a nested run makes its own folder
        os.environ[LOCKS_ENV] = tempfile.mkdtemp(prefix="streamflix-test-locks-")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _is_controller(config) and LOCKS_ENV in os.environ:
        shutil.rmtree(os.environ.pop(LOCKS_ENV), ignore_errors=True)


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
