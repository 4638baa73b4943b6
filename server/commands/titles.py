"""`streamflix titles list|show|delete|retry|downloads`: the catalog from the shell.

`retry ID` puts a failed title back in the queue with fresh attempts (after the cause of its
failure is fixed: storage credentials, a bucket, a bug); a worker picks it up as usual.
`downloads ID on|off` lets viewers download the title as one MP4, or not (docs/tracks.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

import asyncpg

from catalog import titles
from catalog.titles import Title
from media import keys
from media.errors import StorageError
from media.storage import Storage
from packager.model import Presentation
from server.api.links import poster_url
from server.commands._args import add_action
from server.commands._runtime import open_runtime
from server.settings import Settings
from transcoder import jobs, per_title
from transcoder.adjustments import SOURCE_ADJUSTMENTS
from transcoder.remove import remove_title
from transcoder.retry import retry_title

log = logging.getLogger("streamflix.titles")

NAME = "titles"
HELP = "the catalog from the shell"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="titles_command", required=True, metavar="ACTION")
    p = add_action(actions, "list")
    p.add_argument("--json", action="store_true")
    p = add_action(actions, "show")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p = add_action(actions, "delete")
    p.add_argument("id")
    p = add_action(actions, "retry", help="queue a failed title again, with fresh attempts")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p = add_action(actions, "downloads", help="let viewers download a title as one MP4 (on), or not (off)")
    p.add_argument("id")
    p.add_argument("state", choices=("on", "off"))


def _json(title: Title, job: jobs.Job | None) -> dict[str, Any]:
    out = {**title.to_json(poster_url), "version": title.current_version}
    if job is not None:
        out["job"] = {k: job.to_json()[k] for k in ("id", "status", "progress", "attempts", "error")}
    return out


def _status(title: Title, job: jobs.Job | None) -> str:
    # playable: its first version plays while the rest is encoded ("playable 40%")
    live = job is not None and job.status in ("queued", "running")
    if title.status in ("pending", "processing", "playable") and live and job is not None:
        return f"{title.status} {job.progress:.0f}%"
    if title.status == "failed" and title.failure_reason:
        return f"failed: {title.failure_reason}"
    return title.status


async def list_titles(pool: asyncpg.Pool, as_json: bool) -> int:
    async with pool.acquire() as conn:
        items = await titles.list_titles(conn)
        progress = await jobs.progress_for(conn, [t.id for t in items if t.kind != "series"])
    if as_json:
        print(json.dumps({"items": [_json(t, progress.get(t.id)) for t in items]}, indent=2))
        return 0
    for t in items:
        label = t.title
        if t.kind == "episode":
            label = f"{t.title} (S{t.season_number:02d}E{t.episode_number:02d})"
        year = f" ({t.year})" if t.year and t.kind != "episode" else ""
        print(f"{t.id}  {t.kind:<7}  {_status(t, progress.get(t.id)):<14}  {label}{year}")
    return 0


async def model_extra(storage: Storage, t: Title) -> dict[str, Any] | None:
    """The published version's model's `extra`; None when unknown: no version yet, or
    storage not answering (the rest of the title is still worth showing)."""
    if not t.current_version:
        return None
    try:
        raw = await storage.get_bytes(keys.model_key(t.id, t.current_version))
        return Presentation.from_json(raw).extra
    except (StorageError, ValueError) as exc:
        log.warning("cannot read the rendition model of %s: %s", t.id, exc)
        return None


def source_adjustments(extra: dict[str, Any] | None) -> list[str] | None:
    """What the encode changed about the source; None when unknown (see `model_extra`, or a
    version published before the list was recorded)."""
    value = (extra or {}).get(SOURCE_ADJUSTMENTS)
    return [str(v) for v in value] if isinstance(value, list) else None


def ladder_record(extra: dict[str, Any] | None) -> dict[str, Any] | None:
    """How the published version's ladder was chosen: a per-title ladder's measurements and
    caps, {"mode": "fixed"} for the table's; None when no version is readable."""
    if extra is None:
        return None
    record = extra.get(per_title.RECORD_KEY)
    return record if isinstance(record, dict) else {"mode": per_title.FIXED}


def ladder_line(record: dict[str, Any] | None) -> str | None:
    """`ladder_record` in one line: "per-title (probe 0.41 s, bpp 0.012-0.020): v1080 1250 kb/s
    (table 5000), v480 dropped, ..."."""
    if record is None:
        return None
    if record.get("mode") != per_title.PER_TITLE:
        return "fixed" + (f" (per-title probe failed: {record['error']})" if record.get("error") else "")
    bpps = [float(s["bpp"]) for s in record.get("samples", [])]
    probe = record.get("probe") or {}
    if record.get("pending"):
        return "per-title (being chosen)"
    if probe.get("skipped"):
        head = f"per-title ({probe['skipped']})"
    else:
        head = f"per-title (probe {probe.get('seconds', 0):.2f} s"
        head += f", bpp {min(bpps):.3f}-{max(bpps):.3f})" if bpps else ")"
    parts = []
    for r in record.get("rungs", []):
        if r.get("kept"):
            parts.append(f"{r['id']} {int(r['bitrate']) // 1000} kb/s (table {int(r['fixed_bitrate']) // 1000})")
        else:
            parts.append(f"{r['id']} dropped")
    return head + ": " + ", ".join(parts)


async def show_title(pool: asyncpg.Pool, storage: Storage, title_id: str, as_json: bool) -> int:
    async with pool.acquire() as conn:
        t = await titles.get_title(conn, title_id)
        job = (await jobs.progress_for(conn, [t.id])).get(t.id)
    extra = await model_extra(storage, t)
    adjusted = source_adjustments(extra)
    ladder = ladder_record(extra)
    if as_json:
        print(json.dumps({**_json(t, job), SOURCE_ADJUSTMENTS: adjusted, "ladder": ladder}, indent=2))
        return 0
    rows = [
        ("id", t.id),
        ("kind", t.kind),
        ("title", t.title),
        ("year", t.year),
        ("genres", ", ".join(t.genres)),
        ("status", _status(t, job)),
        ("duration", f"{t.duration_s:.1f} s" if t.duration_s else None),
        ("version", t.current_version),
        ("source", None if adjusted is None else "; ".join(adjusted) or "used as it is"),
        ("ladder", ladder_line(ladder)),
        ("series", t.series_id),
        ("season", t.season_number),
        ("episode", t.episode_number),
        ("downloads", "on" if t.downloads_enabled else "off"),
        ("description", t.description),
    ]
    if job is not None:
        rows.append(
            (
                "job",
                f"#{job.id} {job.status}, attempt {job.attempts}/{job.max_attempts}"
                + (f", last error: {job.error}" if job.error else ""),
            )
        )
    for name, value in rows:
        if value not in (None, ""):
            print(f"{name:<12}{value}")
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(settings, args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    async with open_runtime(settings) as (pool, storage):
        if args.titles_command == "list":
            return await list_titles(pool, args.json)
        if args.titles_command == "show":
            return await show_title(pool, storage, args.id, args.json)
        if args.titles_command == "delete":
            ids = await remove_title(pool, storage, args.id)
            extra = f" and {len(ids) - 1} episode(s)" if len(ids) > 1 else ""
            print(f"deleted {ids[0]}{extra}", file=sys.stdout)
            return 0
        if args.titles_command == "retry":
            job = await retry_title(pool, args.id, max_attempts=settings.job_max_attempts)
            if args.json:
                print(json.dumps(job.to_json(), indent=2))
            else:
                print(f"queued {job.title_id} again as job #{job.id} ({job.max_attempts} attempts)")
            return 0
        if args.titles_command == "downloads":
            async with pool.acquire() as conn:
                t = await titles.update_title(conn, args.id, {"downloads_enabled": args.state == "on"})
            print(f"downloads {args.state} for {t.id} ({t.title})")
            return 0
    raise AssertionError(args.titles_command)
