"""tests/exclusive.py, in a real two-process pytest-xdist run: a test marked `exclusive`
never overlaps another test, and the others do run side by side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SUITE = """
import json, os, time
from pathlib import Path

import pytest

LOG = Path(os.environ["SPANS_DIR"])


def _span(name, seconds):
    start = time.monotonic()
    time.sleep(seconds)
    (LOG / f"{name}.json").write_text(json.dumps([start, time.monotonic()]))


@pytest.mark.parametrize("n", range(6))
def test_side_by_side(n):
    _span(f"plain-{n}", 0.4)


@pytest.mark.exclusive
@pytest.mark.parametrize("n", range(2))
def test_alone(n):
    _span(f"alone-{n}", 0.6)
"""


def test_an_exclusive_test_runs_alone_and_the_others_together(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    # two files: loadfile hands each worker one, so both kinds are in flight at once
    (suite / "test_a.py").write_text(textwrap.dedent(SUITE))
    (suite / "test_b.py").write_text(textwrap.dedent(SUITE).replace("plain-", "b-plain-").replace("alone-", "b-alone-"))
    spans = tmp_path / "spans"
    spans.mkdir()
    env = {**os.environ, "SPANS_DIR": str(spans), "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.exclusive"]
        + ["-n", "2", "--dist", "loadfile", "--rootdir", str(suite), str(suite)],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    got = {p.stem: json.loads(p.read_text()) for p in spans.glob("*.json")}
    assert len(got) == 16, sorted(got)
    for name, (start, end) in got.items():
        if "alone" not in name:
            continue
        overlapping = [o for o, (s, e) in got.items() if o != name and s < end and e > start]
        assert not overlapping, f"{name} ran beside {overlapping}"
    plain = [got[n] for n in got if "plain" in n]
    assert any(s < e2 and e > s2 for i, (s, e) in enumerate(plain) for (s2, e2) in plain[i + 1 :]), (
        "no two plain tests ran at once: the run was not parallel"
    )
