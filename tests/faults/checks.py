"""What must hold after any fault, read from the real state (Postgres and the bucket
directly, the processes from the kernel), each check failing with the evidence."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import asyncpg

from media import keys as media_keys
from packager.model import Presentation
from tests.faults.flows import Outcome
from tests.faults.harness import RECOVERY_S, REQUEST_BOUND_S, Proc, Stack


def sql(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """One query on a direct connection (never through a fault proxy)."""

    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


def title_row(stack: Stack, title_id: str) -> asyncpg.Record:
    rows = sql(
        stack.world.database_url,
        "SELECT id::text, status, current_version, failure_reason FROM catalog.titles WHERE id = $1",
        title_id,
    )
    assert rows, f"title {title_id} is not in the catalog"
    return rows[0]


def job_rows(stack: Stack, title_id: str) -> list[asyncpg.Record]:
    return sql(
        stack.world.database_url,
        "SELECT id, status, attempts, progress, worker_id, error"
        " FROM jobs.transcode_jobs WHERE title_id = $1 ORDER BY id",
        title_id,
    )


def stored_versions(stack: Stack, title_id: str) -> set[str]:
    """Version prefixes present in storage under titles/{id}/ (the uploaded poster aside)."""
    prefix = media_keys.title_prefix(title_id)
    out = set()
    for key in stack.keys(prefix):
        rest = key[len(prefix) :]
        if "/" in rest:
            out.add(rest.split("/", 1)[0])
    return out


def model_names(model: Presentation) -> list[str]:
    """Every object name (relative to the version) the model references."""
    names: list[str] = []
    for r in model.renditions:
        names += r.object_names()
    return names


def assert_complete_version(stack: Stack, title_id: str, version: str, *, progressive_ok: bool = False) -> None:
    """The version's model is stored and every object it references is there. With
    `progressive_ok`, a model still marked progressive (a playable title whose encode runs:
    the origin waits for what is not made yet) passes with the objects made so far."""
    present = set(stack.keys(media_keys.version_prefix(title_id, version)))
    model_key = media_keys.model_key(title_id, version)
    assert model_key in present, f"title {title_id}: current version {version} has no {media_keys.MODEL_NAME}"
    model = Presentation.from_json(stack.get_object(model_key))
    if model.progressive:
        assert progressive_ok, f"title {title_id} version {version}: the model is still the prediction"
        return
    missing = [n for n in model_names(model) if media_keys.object_key(title_id, version, n) not in present]
    assert not missing, f"title {title_id} version {version}: {len(missing)} referenced objects missing: {missing[:5]}"


def assert_published_once(stack: Stack, title_id: str) -> None:
    """Ready, pointing at one complete version, the only version in storage, made by exactly
    one finished job and no job left queued or running."""
    row = title_row(stack, title_id)
    jobs = job_rows(stack, title_id)
    assert row["status"] == "ready", f"title {title_id} is {row['status']} ({row['failure_reason']}); jobs: {jobs}"
    version = row["current_version"]
    assert version, f"title {title_id} is ready without a version"
    versions = stored_versions(stack, title_id)
    assert versions == {version}, f"title {title_id}: published {version}, storage holds versions {sorted(versions)}"
    assert_complete_version(stack, title_id, version)
    done = [j for j in jobs if j["status"] == "done"]
    live = [j for j in jobs if j["status"] in ("queued", "running")]
    assert len(done) == 1 and not live, f"title {title_id}: jobs {[dict(j) for j in jobs]}"


def assert_not_half_published(stack: Stack, title_ids: Iterable[str]) -> None:
    """Whatever state each title is in, what it points at is whole: a ready title's version
    is complete, a playable one's has its model (the origin waits for the segments still
    being made); a title with no version yet has nothing a viewer could be sent to."""
    for title_id in title_ids:
        row = title_row(stack, title_id)
        if row["current_version"]:
            assert_complete_version(stack, title_id, row["current_version"], progressive_ok=row["status"] == "playable")
        assert row["status"] != "ready" or row["current_version"], f"title {title_id} ready with no version"


def assert_no_leaked_objects(stack: Stack, title_ids: Iterable[str]) -> None:
    """Every object in the stack's storage belongs somewhere: a title's source, its current
    version, its uploaded poster. No orphan version prefix, no stray temporary object."""
    wanted = set(title_ids)
    current = {tid: title_row(stack, tid)["current_version"] for tid in wanted}
    leaked = []
    for key in stack.keys():
        parts = key.split("/")
        if parts[0] == media_keys.SOURCES and len(parts) == 3 and parts[2].startswith("original"):
            continue
        if parts[0] == media_keys.TITLES and len(parts) >= 3:
            tid = parts[1]
            if tid not in current:
                current[tid] = title_row(stack, tid)["current_version"]
            if key == media_keys.uploaded_poster_key(tid) or (current[tid] and parts[2] == current[tid]):
                continue
        leaked.append(key)
    assert not leaked, f"{len(leaked)} leaked objects in storage, e.g. {leaked[:5]}"


def assert_no_temp_files(stack: Stack) -> None:
    """Nothing left in the workers' work dir once no job runs."""
    left = stack.work_entries()
    assert not left, f"temporary files left in {stack.data_dir / 'work'}: {left}"


def assert_running(procs: Iterable[Proc]) -> None:
    dead = [(p.name, p.popen.returncode, p.tail(8)) for p in procs if not p.alive()]
    assert not dead, "processes exited: " + "\n".join(f"{n} (exit {rc}):\n{tail}" for n, rc, tail in dead)


# ---- the load loop's outcomes ----------------------------------------------------------------


def _is_json_error(outcome: Outcome) -> bool:
    try:
        body = json.loads(outcome.body)
    except (ValueError, TypeError):
        return False
    err = body.get("error") if isinstance(body, dict) else None
    return isinstance(err, dict) and isinstance(err.get("code"), str) and isinstance(err.get("message"), str)


def describe(o: Outcome) -> str:
    return (
        f"{o.op} {o.method} {o.path} at +{o.started:.1f}s took {o.duration:.1f}s -> "
        f"{o.status if o.status is not None else o.error} {o.body[:160]!r}"
    )


def assert_load_outcomes(outcomes: list[Outcome], *, back_at: float) -> None:
    """No 500 ever; every failure a JSON 503 with Retry-After; no request longer than the
    documented bound; everything succeeds from RECOVERY_S after the dependency came back.
    `back_at` is when it came back, on the outcomes' clock."""
    assert outcomes, "the load loop sent no request"
    broken: dict[str, list[str]] = {}
    for o in outcomes:
        rules = []
        if o.duration > REQUEST_BOUND_S:
            rules.append(f"hung beyond {REQUEST_BOUND_S:g} s")
        if not o.ok:
            if o.status is None:
                rules.append("no HTTP answer")
            elif o.status != 503:
                rules.append(f"status {o.status}, not 503")
            else:
                if not o.retry_after:
                    rules.append("503 without Retry-After")
                if not _is_json_error(o):
                    rules.append("503 without the JSON error shape")
            if o.started >= back_at + RECOVERY_S:
                rules.append(f"still failing {RECOVERY_S:g} s or more after the dependency returned")
        for rule in rules:
            broken.setdefault(rule, []).append(describe(o))
    report = [
        f"{rule}: {len(examples)} requests, e.g.\n  " + "\n  ".join(examples[:4]) for rule, examples in broken.items()
    ]
    assert not broken, f"of {len(outcomes)} requests:\n" + "\n".join(report)


def assert_history_kept(stack: Stack, acked: dict[str, tuple[str, int]], attempted: dict[str, list[int]]) -> None:
    """Every history write that got a 2xx is in the database (positions in milliseconds): per viewer, the stored
    position is the last acknowledged one, or a later one that was sent (a write whose answer
    was lost may have landed) but never an earlier one."""
    lost = []
    for user_id, (title_id, position) in acked.items():
        rows = sql(
            stack.world.database_url,
            "SELECT position_s FROM catalog.history WHERE user_id = $1 AND title_id = $2",
            user_id,
            title_id,
        )
        stored = rows[0]["position_s"] if rows else None
        later = [p for p in attempted[user_id] if p >= position]
        if stored is None or round(stored * 1000) not in later:
            lost.append(f"user {user_id}: acknowledged position {position / 1000} s, database has {stored}")
    assert not lost, "history writes lost:\n" + "\n".join(lost)
