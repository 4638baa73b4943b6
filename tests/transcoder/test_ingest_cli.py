"""`streamflix ingest --wait` end to end through the CLI entry point, on the file and the S3
backends, with the stored output checked by ffprobe; `titles list/show/delete`; sources from
http:// and s3:// URLs; the one-line errors."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pty
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from media import keys
from media.backend import open_storage
from media.storage import Storage
from media.storage_s3 import S3Storage
from packager.model import Presentation, Rendition
from server.cli import main
from server.settings import Settings
from tests.transcoder.jobs_support import cli_env
from transcoder.mp4 import segment_starts_with_keyframe


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Settings, *argv: str
) -> tuple[int, str, str]:
    for k, v in cli_env(settings).items():
        if k.startswith(("STREAMFLIX_", "AWS_")):
            monkeypatch.setenv(k, v)
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def s3_settings(settings: Settings, endpoint: str) -> Settings:
    bucket = f"sf-{uuid.uuid4().hex[:12]}"
    s = dataclasses.replace(settings, storage_url=f"s3://{bucket}/media", s3_endpoint_url=endpoint)
    st = open_storage(s.storage_url, endpoint)
    assert isinstance(st, S3Storage)
    asyncio.run(st.create_bucket())
    return s


async def download_version(storage: Storage, title_id: str, version: str, dest: Path) -> Presentation:
    prefix = keys.version_prefix(title_id, version)
    for obj in await storage.list(prefix):
        path = dest / obj.key[len(prefix) :]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(await storage.get_bytes(obj.key))
    return Presentation.from_json((dest / keys.MODEL_NAME).read_bytes())


def keyframe_times(joined: Path) -> tuple[list[float], dict[str, Any]]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,flags:stream=width,height,codec_name,profile,pix_fmt",
            "-of",
            "json",
            str(joined),
        ],
        check=True,
        capture_output=True,
    ).stdout
    data = json.loads(out)
    keys_ = [float(p["pts_time"]) for p in data["packets"] if "K" in p.get("flags", "")]
    return keys_, data["streams"][0]


def height_of(r: Rendition) -> int:
    """A video rendition's height, which the model always records."""
    assert r.height is not None, f"video rendition {r.id} has no height"
    return r.height


def check_stored_output(storage: Storage, title: dict[str, Any], tmp: Path, *, heights: list[int]) -> None:
    """ffprobe the published version: the rungs, a keyframe at the start of every segment,
    identical boundaries across rungs, bitrates in the model."""
    model = asyncio.run(download_version(storage, title["id"], title["version"], tmp))
    video = sorted(model.video, key=lambda r: -height_of(r))
    assert [r.height for r in video] == heights
    assert [r.id for r in model.audio] == ["a0"]
    boundaries = None
    for r in video:
        assert r.bandwidth_avg > 0 and r.bandwidth_peak >= r.bandwidth_avg
        # H.264 (x264 ultrafast signals Constrained Baseline; veryfast gives High, avc1.64)
        assert r.codecs.startswith("avc1.")
        edges = [Fraction(r.start_time, r.timescale)]
        for s in r.segments:
            edges.append(edges[-1] + Fraction(s.duration, r.timescale))
        if boundaries is None:
            boundaries = edges
        assert edges == boundaries, f"{r.id} boundaries differ"
        joined = tmp / f"{r.id}-joined.mp4"
        with joined.open("wb") as fh:
            fh.write((tmp / r.init_name).read_bytes())
            for n in range(r.start_number, r.start_number + len(r.segments)):
                seg = tmp / r.segment_name(n)
                assert segment_starts_with_keyframe(seg, tmp / r.init_name), f"{seg} starts without a keyframe"
                fh.write(seg.read_bytes())
        kf, stream = keyframe_times(joined)
        assert (stream["width"], stream["height"]) == (r.width, r.height)
        assert stream["codec_name"] == "h264" and stream["pix_fmt"] == "yuv420p"
        offset = kf[0] - float(edges[0])  # the edit list's presentation delay
        for edge in edges[:-1]:  # ffprobe agrees: a keyframe where every segment starts
            assert any(abs(t - offset - float(edge)) < 0.002 for t in kf), f"{r.id}: no keyframe at {float(edge)}"
    a0 = model.audio[0]
    assert a0.codecs == "mp4a.40.2" and a0.bandwidth_avg > 0
    assert abs(model.duration_s - 10) < 0.5
    asyncio.run(storage.head(keys.poster_key(title["id"], title["version"])))


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_ingest_wait_1080p_end_to_end(
    backend: str,
    settings: Settings,
    clip_factory: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    if backend == "s3":
        settings = s3_settings(settings, request.getfixturevalue("s3_server"))
    clip = clip_factory(seconds=10, width=1920, height=1080, fps=25)
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        settings,
        "ingest",
        str(clip),
        "--title",
        f"E2E {backend}",
        "--genre",
        "Test",
        "--year",
        "2024",
        "--wait",
        "--json",
    )
    assert code == 0, err
    assert err == ""  # not a terminal: nothing but the result
    title = json.loads(out)
    assert title["status"] == "ready" and title["version"]
    assert title["genres"] == ["test"] and title["year"] == 2024
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    check_stored_output(storage, title, tmp_path / "stored", heights=[1080, 720, 480, 360])
    if backend == "s3":
        seg = asyncio.run(storage.head(keys.object_key(title["id"], title["version"], "v720/1.m4s")))
        init = asyncio.run(storage.head(keys.object_key(title["id"], title["version"], "v720/init.mp4")))
        poster = asyncio.run(storage.head(keys.poster_key(title["id"], title["version"])))
        assert (seg.content_type, init.content_type, poster.content_type) == (
            "video/iso.segment",
            "video/mp4",
            "image/jpeg",
        )
    # the source is kept for re-encodes; nothing else beside the one version
    assert [o.key for o in asyncio.run(storage.list(keys.source_prefix(title["id"])))] == [
        keys.source_key(title["id"], ".mp4")
    ]
    assert not list(settings.work_dir.glob("job-*"))


def test_titles_list_show_delete(
    settings: Settings,
    clip_factory: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clip = clip_factory(seconds=2, width=320, height=180)
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        settings,
        "ingest",
        str(clip),
        "--title",
        "Pilot",
        "--series",
        "CLI Show",
        "--season",
        "1",
        "--episode",
        "1",
        "--wait",
        "--credit",
        "Ann Actor:actor:Hero",
        "--credit",
        "Dee Rector:director",
    )
    assert code == 0, err
    episode_id = out.strip()
    uuid.UUID(episode_id)

    code, out, _ = run_cli(monkeypatch, capsys, settings, "titles", "show", episode_id, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["kind"] == "episode" and shown["status"] == "ready"
    assert shown["credits"] == [
        {"name": "Ann Actor", "role": "actor", "character": "Hero"},
        {"name": "Dee Rector", "role": "director"},
    ]
    assert shown["job"]["status"] == "done" and shown["job"]["attempts"] == 1
    series_id = shown["series_id"]

    code, out, _ = run_cli(monkeypatch, capsys, settings, "titles", "list")
    assert code == 0 and episode_id in out and "Pilot (S01E01)" in out
    code, out, _ = run_cli(monkeypatch, capsys, settings, "titles", "list", "--json")
    ids = {t["id"] for t in json.loads(out)["items"]}
    assert {episode_id, series_id} <= ids

    # duplicate episode: one line, exit 1, nothing left behind
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        settings,
        "ingest",
        str(clip),
        "--title",
        "Pilot again",
        "--series",
        "cli show",
        "--season",
        "1",
        "--episode",
        "1",
    )
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "season 1 episode 1 already exists" in err

    storage = open_storage(settings.storage_url)
    assert asyncio.run(storage.list(keys.title_prefix(episode_id)))
    code, out, err = run_cli(monkeypatch, capsys, settings, "titles", "delete", series_id)
    assert code == 0 and "1 episode" in out
    assert asyncio.run(storage.list(keys.title_prefix(episode_id))) == []
    assert asyncio.run(storage.list(keys.source_prefix(episode_id))) == []
    for gone in (episode_id, series_id, str(uuid.uuid4()), "not-an-id"):
        code, out, err = run_cli(monkeypatch, capsys, settings, "titles", "show", gone)
        assert code == 1 and err.count("\n") == 1 and "no title" in err
    code, _, err = run_cli(monkeypatch, capsys, settings, "titles", "delete", episode_id)
    assert code == 1 and "no title" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        pytest.param(["/no/such/file.mp4"], "source not found: /no/such/file.mp4", id="missing"),
        pytest.param([".", "--wait"], "source is not a regular file", id="directory"),
        pytest.param(["x.mp4", "--season", "1"], "only apply to --kind episode", id="movie-with-season"),
        pytest.param(["x.mp4", "--kind", "episode"], "an episode needs --series", id="episode-without-series"),
        pytest.param(["ftp://host/x.mp4"], "unsupported source", id="ftp"),
    ],
)
def test_ingest_usage_errors_are_one_line(
    argv: list[str],
    message: str,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(monkeypatch, capsys, settings, "ingest", *argv, "--title", "X")
    assert code == 1 and out == ""
    assert err.startswith("streamflix ingest: error: ") and err.count("\n") == 1
    assert message in err


def test_ingest_wait_reports_a_failed_title(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("these are not the frames you are looking for\n" * 20)
    code, out, err = run_cli(monkeypatch, capsys, settings, "ingest", str(bogus), "--title", "Bogus", "--wait")
    assert code == 1
    title_id = out.strip()
    uuid.UUID(title_id)
    assert err.count("\n") == 1
    assert f"title {title_id} failed: source rejected: " in err


async def test_ingest_from_http_and_s3_urls(
    settings: Settings,
    clip_factory: Callable[..., Path],
    aiohttp_server: Any,
    s3_server: str,
) -> None:
    import boto3
    from aiohttp import web

    from tests.transcoder.jobs_support import ingest_and_run
    from transcoder.ingest import SourceTooLarge, SourceUnavailable, ingest

    clip = clip_factory(seconds=2, width=320, height=180)
    data = clip.read_bytes()

    async def serve(request: web.Request) -> web.StreamResponse:
        if request.path == "/missing.mp4":
            raise web.HTTPNotFound()
        if request.path == "/chunked.mp4":  # no Content-Length: the cap is enforced while reading
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for i in range(0, len(data), 8192):
                await resp.write(data[i : i + 8192])
            await resp.write_eof()
            return resp
        return web.Response(body=data, content_type="video/mp4")

    app = web.Application()
    app.router.add_get("/{name}", serve)
    server = await aiohttp_server(app)
    import asyncpg

    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    storage = open_storage(settings.storage_url)
    try:
        title = await ingest_and_run(pool, storage, settings, server.make_url("/clip.mp4"))
        assert title.status == "ready"
        with pytest.raises(SourceUnavailable, match="HTTP 404"):
            await ingest(
                pool,
                storage,
                source=str(server.make_url("/missing.mp4")),
                title="x",
                max_source_bytes=10**9,
                work_dir=settings.work_dir,
            )
        for path in ("/clip.mp4", "/chunked.mp4"):
            with pytest.raises(SourceTooLarge, match="limit"):
                await ingest(
                    pool,
                    storage,
                    source=str(server.make_url(path)),
                    title="x",
                    max_source_bytes=len(data) // 2,
                    work_dir=settings.work_dir,
                )

        bucket = f"src-{uuid.uuid4().hex[:10]}"
        client = boto3.client("s3", endpoint_url=s3_server)
        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="in/clip.mp4", Body=data)
        title = await ingest_and_run(pool, storage, settings, f"s3://{bucket}/in/clip.mp4", s3_endpoint_url=s3_server)
        assert title.status == "ready"
        with pytest.raises(SourceUnavailable, match="source not found"):
            await ingest(
                pool,
                storage,
                source=f"s3://{bucket}/nope.mp4",
                title="x",
                max_source_bytes=10**9,
                work_dir=settings.work_dir,
                s3_endpoint_url=s3_server,
            )
        with pytest.raises(SourceTooLarge):
            await ingest(
                pool,
                storage,
                source=f"s3://{bucket}/in/clip.mp4",
                title="x",
                max_source_bytes=100,
                work_dir=settings.work_dir,
                s3_endpoint_url=s3_server,
            )
    finally:
        await storage.close()
        await pool.close()
    assert not any(settings.work_dir.iterdir())  # downloads cleaned up


REPO = Path(__file__).resolve().parents[2]


def cli_process(settings: Settings, *argv: str, stderr: int) -> subprocess.Popen[bytes]:
    """`streamflix ...` as a real process: the logging set-up of `main` applies unchanged."""
    return subprocess.Popen(
        [sys.executable, "-m", "server.cli", *argv],
        env=cli_env(settings),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )


def test_wait_failure_is_one_line_on_stderr_of_a_real_process(settings: Settings, tmp_path: Path) -> None:
    # In-process tests run under pytest's log capture; here the worker's own "job failed"
    # warning would reach stderr as a second line if the command did not keep it quiet.
    bogus = tmp_path / "notes.mp4"
    bogus.write_bytes(os.urandom(64 * 1024))
    proc = cli_process(settings, "ingest", str(bogus), "--title", "Bogus", "--wait", stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    title_id = out.decode().strip()
    uuid.UUID(title_id)
    lines = err.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"streamflix ingest: error: title {title_id} failed: source rejected: ")
    assert not any(settings.work_dir.glob("job-*"))


def test_wait_shows_a_progress_bar_on_a_terminal(
    settings: Settings,
    clip_factory: Callable[..., Path],
) -> None:
    clip = clip_factory(seconds=4, width=320, height=180)
    master, slave = pty.openpty()
    try:
        proc = cli_process(settings, "ingest", str(clip), "--title", "Bar", "--wait", stderr=slave)
    finally:
        os.close(slave)
    tty = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            tty += chunk
        out, _ = proc.communicate(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, tty
    uuid.UUID(out.decode().strip())  # stdout keeps just the result
    text = tty.decode()
    frames = [f for f in text.split("\r") if f.startswith("[")]
    assert frames, text
    assert all(len(f) >= 32 and f[31] == "]" for f in frames), frames  # [ + 30 cells + ]
    assert frames[-1].startswith("[" + "#" * 30 + "] 100.0% ready")
    assert text.endswith("\n")  # the bar's line is closed for the shell prompt


def test_progress_bar_line() -> None:
    from server.commands.ingest import progress_line

    line = progress_line(50, "processing", attempts=2)
    assert line.startswith("\r[" + "#" * 15 + "-" * 15 + "]  50.0% processing (attempt 2)")
    assert progress_line(100, "ready").startswith("\r[" + "#" * 30 + "] 100.0% ready")
