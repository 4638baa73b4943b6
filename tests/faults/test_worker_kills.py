"""`kill -9` of a `streamflix worker` in each phase of a job (probe, encode, upload, publish),
then a fresh worker on the same machine finishes the title: ready, exactly one published
version, nothing leaked (no orphan version prefix, no temporary file, no orphan process)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults import checks
from tests.faults.flows import PHASES, kill_in_phase
from tests.faults.harness import Stack, pid_alive, wait_for

pytestmark = [pytest.mark.fault, pytest.mark.slow]

# Long enough to hit each phase; 854x480 gives two rungs (480, 360) and audio, so a version
# is some 90 objects at 2 s segments, and an encode of several heartbeats.
CLIP_S = 60
# A few MB rather than 24: below the 16 MB multipart threshold, so ingest's upload is one PUT
# (setting the scene is not the scenario).
SMALL = ["-b:v", "600k"]
# A fresh worker takes the job over once the dead one's lease runs out, then transcodes.
FINISH_S = 120


@pytest.mark.parametrize("phase", PHASES)
def test_worker_killed_then_fresh_worker_finishes(stack: Stack, clip_factory: Callable[..., Path], phase: str) -> None:
    clip = clip_factory(seconds=CLIP_S, width=854, height=480, extra=SMALL)
    worker = stack.start_worker(slow_probe_s=2 if phase == "probe" else 0)
    title_id = stack.ingest(clip, f"Killed in {phase} {secrets.token_hex(3)}")

    def progress() -> float:
        rows = checks.job_rows(stack, title_id)
        if not rows or rows[-1]["status"] != "running":
            raise AssertionError(f"the job left the worker before the {phase} phase was seen: {rows}")
        return float(rows[-1]["progress"])

    evidence, children = kill_in_phase(stack, worker, title_id, phase, progress)
    print(f"killed in {phase}: {evidence}; children {children}")
    row = checks.title_row(stack, title_id)
    if phase == "probe":
        probe = checks.sql(
            stack.world.database_url, "SELECT probe FROM jobs.title_sources WHERE title_id = $1", title_id
        )
        assert not probe or probe[0]["probe"] is None, "killed in probe, but the probe was already stored"
    assert row["status"] != "ready", f"killed in {phase} ({evidence}) but the title was already ready"

    # The dead worker's ffmpeg/ffprobe must not outlive it (they would keep writing).
    wait_for(
        lambda: not [pid for pid in children if pid_alive(pid)],
        5,
        lambda: f"children of the killed worker still running: {[p for p in children if pid_alive(p)]}",
    )
    # Whatever the kill left, what a viewer could be sent to is whole.
    checks.assert_not_half_published(stack, [title_id])

    fresh = stack.start_worker()
    wait_for(
        lambda: checks.title_row(stack, title_id)["status"] in ("ready", "failed"),
        FINISH_S,
        lambda: f"title {title_id} not finished: {checks.job_rows(stack, title_id)}\n{fresh.tail()}",
        0.5,
    )
    checks.assert_running([fresh])
    checks.assert_published_once(stack, title_id)
    checks.assert_no_leaked_objects(stack, [title_id])
    # the fresh worker is idle (the title is done): the dead attempt's work dir is gone too
    checks.assert_no_temp_files(stack)
