"""`streamflix ingest SOURCE --title T ... [--wait | --wait-playable] [--json]`.

Prints the new title's id (its JSON with `--json`). With `--wait` it returns only when the
title is ready (exit 0) or failed (exit 1, the reason on stderr), running a worker in-process
that claims this title's job: SKIP LOCKED lets it share the queue safely with real workers,
so whichever gets there first transcodes, and if a worker already has it this just waits.
Its progress bar says once when the title became `playable` (a player can start while the
rest is encoded). `--wait-playable` is the same but returns (exit 0) as soon as the title is
`playable` or `ready`: its in-process worker then stops and gives back what it was doing, and
the server's workers finish the encode (with none running, the title stays playable until one
starts).
While Postgres is unreachable it says so once on stderr and waits for it (so does the worker
inside it); every other command that cannot reach the database fails with one error line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from typing import Any, TextIO

import asyncpg

from catalog import titles
from catalog.titles import Title
from media import languages
from media.storage import Storage
from media.subtitles import SubtitleError
from server.api.links import poster_url
from server.commands._args import non_negative_int, positive_int
from server.commands._runtime import open_runtime
from server.commands.worker import make_worker, stop_on_signals
from server.settings import Settings
from transcoder import jobs
from transcoder.errors import BadIngestOption
from transcoder.failures import is_database_outage
from transcoder.ingest import ingest
from transcoder.ladder import parse_av1_heights
from transcoder.subtitles import Track, read_sidecar
from transcoder.worker import Worker

NAME = "ingest"
HELP = "register a title and queue its transcode"

POLL_S = 0.25
OUTAGE_POLL_MAX_S = 5.0
WAITING_LINE = "streamflix: the database is unreachable; waiting for it (Ctrl-C to stop waiting)"
BAR_WIDTH = 30


def credit(text: str) -> dict[str, str]:
    """An argparse type: `NAME[:ROLE[:CHARACTER]]` -> a credit as transcoder.ingest takes it."""
    name, _, rest = text.partition(":")
    role, _, character = rest.partition(":")
    if not name.strip():
        raise argparse.ArgumentTypeError(f"a credit needs a name: {text!r}")
    fields = {"name": name.strip(), "role": role.strip(), "character": character.strip()}
    return {k: v for k, v in fields.items() if v}


def audio_lang(text: str) -> tuple[int, str]:
    """An argparse type: `INDEX=LANG` (audio stream order from 0, a language code such as
    `en`, `eng` or `fre`) -> (index, BCP 47 tag)."""
    index, sep, code = text.partition("=")
    if not sep or not index.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected INDEX=LANG (e.g. 0=en), not {text!r}")
    tag = languages.known(code)
    if tag is None:
        raise argparse.ArgumentTypeError(f"unknown language code {code.strip()!r} (use e.g. en, fr, eng, fre, und)")
    return int(index), tag


def av1_heights(text: str) -> tuple[int, ...]:
    """An argparse type: "720,1080" -> the rung heights that get an AV1 copy."""
    try:
        return parse_av1_heights(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def subtitle(text: str) -> Track:
    """An argparse type: `LANG:PATH[:forced][:sdh]`, read and validated at once (exit 2)."""
    try:
        return read_sidecar(text)
    except SubtitleError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="a local file, s3:// or http(s):// URL")
    parser.add_argument("--title", required=True)
    parser.add_argument("--kind", choices=("movie", "episode"), default=None)
    parser.add_argument("--series")
    parser.add_argument("--season", type=non_negative_int)
    parser.add_argument("--episode", type=non_negative_int)
    parser.add_argument("--year", type=positive_int)
    parser.add_argument("--genre", action="append", default=[])
    parser.add_argument("--description", default="")
    parser.add_argument(
        "--credit",
        action="append",
        default=[],
        type=credit,
        metavar="NAME[:ROLE[:CHARACTER]]",
        help='cast or crew, repeatable: --credit "Keanu Reeves:actor:Neo"',
    )
    parser.add_argument(
        "--audio-lang",
        action="append",
        default=[],
        type=audio_lang,
        metavar="INDEX=LANG",
        help="the language of an audio stream (0 = the first), repeatable: --audio-lang 0=en --audio-lang 1=fr",
    )
    parser.add_argument(
        "--subtitle",
        action="append",
        default=[],
        type=subtitle,
        metavar="LANG:PATH[:forced][:sdh]",
        help="a sidecar subtitle file (SubRip, WebVTT, ASS/SSA), repeatable: --subtitle fr:film.fr.srt",
    )
    parser.add_argument(
        "--av1",
        type=av1_heights,
        default=None,
        metavar="HEIGHTS",
        help='rung heights that also get an AV1 copy, e.g. "720,1080" ("" for none); '
        "replaces STREAMFLIX_AV1_RUNGS for this title",
    )
    wait = parser.add_mutually_exclusive_group()
    wait.add_argument("--wait", action="store_true", help="return when the title is ready or failed")
    wait.add_argument(
        "--wait-playable",
        action="store_true",
        help="return as soon as the title plays (playable or ready) or failed; workers finish the encode",
    )
    parser.add_argument("--json", action="store_true")


class TitleFailed(Exception):
    code = "title_failed"


def title_json(title: Title) -> dict[str, Any]:
    return {**title.to_json(poster_url), "version": title.current_version}


def progress_line(percent: float, status: str, attempts: int = 0) -> str:
    filled = int(BAR_WIDTH * max(0.0, min(100.0, percent)) / 100)
    retry = f" (attempt {attempts})" if attempts > 1 else ""
    return f"\r[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {percent:5.1f}% {status}{retry}\x1b[K"


def playable_line(elapsed_s: float) -> str:
    """The bar's one permanent line when the title became playable (the bar goes on below)."""
    return f"\rplayable after {elapsed_s:.1f} s: a player can start, more qualities are still being encoded\x1b[K\n"


def job_percent(worker: Worker, job: jobs.Job | None) -> float:
    """The in-process worker's own progress when it has the job, else the job row's."""
    if job is None:
        return 0.0
    local = worker.local_progress(job.title_id)
    return float(local if local is not None else job.progress)


async def wait_for_title(
    settings: Settings,
    pool: asyncpg.Pool,
    storage: Storage,
    title_id: str,
    *,
    bar: TextIO | None = None,
    until_playable: bool = False,
) -> Title:
    """Transcode in-process (or watch another worker do it) until the title is ready or failed
    (`until_playable`: or playable, which a ready title also is)."""
    worker = make_worker(settings, pool, storage, title_id=title_id)
    runner = asyncio.create_task(worker.run())
    outage_wait_s: float | None = None  # set while the database is unreachable
    told = False
    started = time.monotonic()
    said_playable = False
    try:
        with stop_on_signals(worker.stop):
            while True:
                try:
                    async with pool.acquire() as conn:
                        title = await titles.get_title(conn, title_id)
                        job = (await jobs.progress_for(conn, [title_id])).get(title_id)
                except Exception as exc:
                    if not is_database_outage(exc):
                        raise
                    if not told:
                        told = True
                        print(("\n" if bar is not None else "") + WAITING_LINE, file=sys.stderr, flush=True)
                    if runner.done():
                        runner.result()
                        raise KeyboardInterrupt from None  # stopped by a signal
                    outage_wait_s = min(OUTAGE_POLL_MAX_S, (outage_wait_s or POLL_S) * 2)
                    await asyncio.sleep(outage_wait_s)
                    continue
                outage_wait_s = None
                live = job is not None and job.status in ("queued", "running")
                if until_playable and title.status in ("playable", "ready"):
                    if bar is not None:
                        percent = 100.0 if title.status == "ready" else job_percent(worker, job)
                        bar.write(progress_line(percent, title.status))
                    return title
                if title.status == "playable" and not said_playable:
                    said_playable = True
                    if bar is not None:
                        bar.write(playable_line(time.monotonic() - started))
                if title.status in ("ready", "failed") and not live:
                    if bar is not None and title.status == "ready":
                        bar.write(progress_line(100.0, "ready"))
                    return title
                if runner.done():
                    runner.result()  # a crash of the in-process worker surfaces here
                    raise KeyboardInterrupt  # stopped by a signal
                if bar is not None and job is not None:
                    status = "queued" if job.status == "queued" else title.status
                    bar.write(progress_line(job_percent(worker, job), status, job.attempts))
                    bar.flush()
                await asyncio.sleep(POLL_S)
    finally:
        worker.stop()
        await asyncio.wait({runner})
        if bar is not None:
            bar.write("\n")
            bar.flush()


async def _ingest(
    settings: Settings, args: argparse.Namespace, pool: asyncpg.Pool, storage: Storage, audio_languages: dict[int, str]
) -> Title:
    return await ingest(
        pool,
        storage,
        source=args.source,
        title=args.title,
        kind=args.kind,
        series=args.series,
        season=args.season,
        episode=args.episode,
        year=args.year,
        genres=args.genre,
        description=args.description,
        credits=args.credit,
        max_source_bytes=settings.max_source_bytes,
        work_dir=settings.work_dir,
        max_attempts=settings.job_max_attempts,
        s3_endpoint_url=settings.s3_endpoint_url,
        audio_languages=audio_languages,
        subtitles=args.subtitle,
        av1_heights=args.av1,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    logger = logging.getLogger("streamflix")
    level = logger.level
    if not getattr(args, "debug", False):
        # stdout/stderr carry the result (and a bar on a terminal), not the worker's log: its
        # "job failed"/"will retry" warnings would make a failure two lines (it is one).
        # The reason still reaches stderr as the one error line; retries show in the bar.
        logger.setLevel(logging.ERROR)
    try:
        return asyncio.run(_run(settings, args))
    finally:
        logger.setLevel(level)  # run in-process (tests, an embedding program): leave it as found


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    audio_languages = dict(args.audio_lang)
    if len(audio_languages) != len(args.audio_lang):
        print("streamflix ingest: error: --audio-lang: an audio stream is named twice", file=sys.stderr)
        return 2
    async with open_runtime(settings, pool_size=8) as (pool, storage):
        try:
            title = await _ingest(settings, args, pool, storage, audio_languages)
        except BadIngestOption as exc:
            print(f"streamflix ingest: error: {exc}", file=sys.stderr)
            return 2
        if not args.json:
            print(title.id, flush=True)
        if args.wait or args.wait_playable:
            # A bar only for a person watching; logs and pipes get just the result.
            bar = sys.stderr if sys.stderr.isatty() else None
            title = await wait_for_title(settings, pool, storage, title.id, bar=bar, until_playable=args.wait_playable)
        if args.json:
            print(json.dumps(title_json(title), indent=2), flush=True)
        if title.status == "failed":
            raise TitleFailed(f"title {title.id} failed: {title.failure_reason or 'unknown reason'}")
    return 0
