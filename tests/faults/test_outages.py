"""Each dependency taken away for STREAMFLIX_TEST_FAULT_S (20 s) under a steady load of
viewers, while a worker transcodes a title: Postgres, Redis and storage stopped (their proxy
down), and storage hung (its proxy frozen).

Asserted for each: no 500 ever; every failure a JSON 503 with Retry-After; no request longer
than the documented 16 s; everything succeeds again within 5 s of the dependency's return; no
acknowledged history write lost; no half-published title; no leaked object; the server and
worker processes still running. Every check runs and all failures are reported together."""

from __future__ import annotations

import asyncio
import functools
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults import checks
from tests.faults.flows import Load, make_viewers, outage, stream_urls
from tests.faults.harness import FAULT_S, RECOVERY_S, Stack, wait_for

pytestmark = [pytest.mark.fault, pytest.mark.slow]

HEALTHY_BEFORE_S = 2.0
# after the dependency returns: the recovery allowance, then requests that must all succeed
AFTER_S = RECOVERY_S + 3.0
# the in-flight title finishes within this after the outage (its job may have been retried)
FINISH_S = 120


def _outages(stack: Stack) -> dict[str, tuple[Callable[[], None], Callable[[], None]]]:
    return {
        "postgres-down": (stack.pg.down, stack.pg.up),
        "redis-down": (stack.redis.down, stack.redis.up),
        "storage-down": (stack.s3.down, stack.s3.up),
        "storage-frozen": (stack.s3.freeze, stack.s3.up),
    }


@pytest.mark.parametrize("scenario", ["postgres-down", "redis-down", "storage-down", "storage-frozen"])
def test_outage_under_load(stack: Stack, clip_factory: Callable[..., Path], scenario: str) -> None:
    worker = stack.start_worker()
    server = stack.start_server()
    # a ready title to stream, and viewers with playback URLs for it
    ready_id = stack.ingest(clip_factory(seconds=20, width=640, height=360), f"Playing {secrets.token_hex(3)}")
    wait_for(
        lambda: checks.title_row(stack, ready_id)["status"] == "ready",
        60,
        lambda: f"title not ready: {checks.job_rows(stack, ready_id)}\n{worker.tail()}",
        0.2,
    )
    viewers = asyncio.run(make_viewers(server.url))
    urls = asyncio.run(stream_urls(server.url, viewers[0], ready_id))
    # a title the worker is transcoding when the dependency goes
    busy_id = stack.ingest(clip_factory(seconds=30, width=854, height=480), f"In flight {secrets.token_hex(3)}")

    fault, heal = _outages(stack)[scenario]
    load = Load(server.url, viewers, ready_id, urls)
    back_at = asyncio.run(outage(load, fault, heal, before_s=HEALTHY_BEFORE_S, fault_s=FAULT_S, after_s=AFTER_S))

    failures: list[str] = []

    def check(name: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except AssertionError as exc:
            failures.append(f"[{name}] {exc}")

    check("processes", lambda: checks.assert_running([server.proc, worker]))
    check("requests", lambda: checks.assert_load_outcomes(load.outcomes, back_at=back_at))
    check("history", lambda: checks.assert_history_kept(stack, load.acked, {v.user_id: v.attempted for v in viewers}))
    check("half-published", lambda: checks.assert_not_half_published(stack, [ready_id, busy_id]))
    check(
        "in-flight title",
        lambda: wait_for(
            lambda: checks.title_row(stack, busy_id)["status"] in ("ready", "failed"),
            FINISH_S,
            lambda: f"title {busy_id} not finished: {checks.job_rows(stack, busy_id)}\n{worker.tail()}",
            0.5,
        ),
    )
    for title_id in (ready_id, busy_id):
        check(f"published {title_id}", functools.partial(checks.assert_published_once, stack, title_id))
    check("leaks", lambda: checks.assert_no_leaked_objects(stack, [ready_id, busy_id]))
    check("temp files", lambda: checks.assert_no_temp_files(stack))
    check("processes after", lambda: checks.assert_running([server.proc, worker]))
    summary = ", ".join(
        f"{op} {sum(o.ok for o in mine)}/{len(mine)} ok, slowest {max(o.duration for o in mine):.1f}s"
        for op in dict.fromkeys(o.op for o in load.outcomes)
        for mine in [[o for o in load.outcomes if o.op == op]]
    )
    print(f"{scenario}: {len(load.outcomes)} requests ({summary}); dependency back at +{back_at:.1f}s")
    assert not failures, f"{scenario}: {len(failures)} checks failed\n" + "\n\n".join(failures)
