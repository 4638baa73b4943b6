"""`streamflix demo [SOURCE] [--host H] [--port P]`: the quickstart.

Migrates, makes a sample clip with ffmpeg unless SOURCE is given, ingests it and transcodes it
in process (with progress) unless a ready demo title is already there, creates or resets the
demo viewer account, then serves and prints the URL and the login. Safe to run again: the
title is reused, the account's password is reset each run (it is printed, never stored).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from auth import users
from server.commands._args import positive_int
from server.settings import Settings

NAME = "demo"
HELP = "quickstart: sample title, server, login"

DEMO_TITLE = "StreamFlix Demo (testsrc2)"
DEMO_EMAIL = "demo@streamflix.local"
SAMPLE_SECONDS = 20


def make_sample(path: Path) -> Path:
    """A 20 s 1280x720 test pattern with a tone (libx264 + AAC), made once per data dir."""
    if path.is_file() and path.stat().st_size > 0:
        return path
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise RuntimeError("ffmpeg is not installed (scripts/setup.sh installs it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.mp4")
    subprocess.run(
        [
            ffmpeg,
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=1280x720:rate=30:duration={SAMPLE_SECONDS}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate=48000:duration={SAMPLE_SECONDS}",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "60",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-shortest",
            str(tmp),
        ],
        check=True,
        capture_output=True,
    )
    tmp.replace(path)
    return path


async def prepare(settings: Settings, source: str | None) -> tuple[str, str]:
    """Returns (title id, demo password)."""
    from catalog import titles
    from server.commands._runtime import open_runtime
    from server.commands.ingest import wait_for_title
    from server.migrate import migrate
    from transcoder.ingest import ingest

    applied = await migrate(settings.database_url)
    for name in applied:
        print(f"applied {name}", flush=True)
    async with open_runtime(settings) as (pool, storage):
        title_id = None
        if source is None:
            # Reuse the demo title from an earlier run (ready, or still to be finished).
            async with pool.acquire() as conn:
                earlier = [t for t in await titles.find_by_name(conn, DEMO_TITLE) if t.status != "failed"]
            title_id = earlier[0].id if earlier else None
        if title_id is None:
            if source is None:
                print("making a 20 s sample clip with ffmpeg ...", flush=True)
                source = str(make_sample(Path(settings.data_dir) / "demo" / "sample.mp4"))
            title = await ingest(
                pool,
                storage,
                source=source,
                title=DEMO_TITLE if source.endswith("sample.mp4") else Path(source).stem,
                year=2024,
                genres=["demo"],
                description="A generated test pattern: proof that the whole pipeline plays.",
                max_source_bytes=settings.max_source_bytes,
                work_dir=settings.work_dir,
                max_attempts=settings.job_max_attempts,
                s3_endpoint_url=settings.s3_endpoint_url,
            )
            title_id = title.id
            print(f"ingested {source} as title {title_id}", flush=True)
        async with pool.acquire() as conn:
            status = (await titles.get_title(conn, title_id)).status
        if status != "ready":
            print("transcoding (in process) ...", flush=True)
        # a bar only on a terminal: redrawn lines are noise in a log file
        title = await wait_for_title(settings, pool, storage, title_id, bar=sys.stderr if sys.stderr.isatty() else None)
        if title.status != "ready":
            raise RuntimeError(f"the demo title failed to transcode: {title.failure_reason or 'unknown reason'}")
        password = secrets.token_urlsafe(12)
        async with pool.acquire() as conn:
            user = await users.find_by_email(conn, DEMO_EMAIL)
            if user is None:
                await users.create_user(conn, email=DEMO_EMAIL, password=password, display_name="Demo viewer")
            else:
                await users.set_password(conn, user.id, password)
    return title_id, password


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", nargs="?", help="a video to use instead of a generated sample")
    parser.add_argument("--host")
    parser.add_argument("--port", type=positive_int)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from server.commands import serve

    title_id, password = asyncio.run(prepare(settings, getattr(args, "source", None)))
    url = settings.public_url or f"http://{settings.host}:{settings.port}/"
    print(
        "\n"
        f"  StreamFlix is ready: open {url}\n"
        f"  log in as {DEMO_EMAIL} / {password}\n"
        f"  demo title: {title_id}\n"
        "  (Ctrl-C stops the server)\n",
        flush=True,
    )
    args.workers = 1
    return serve.run(args, settings)
