"""Shared fixtures: a fresh migrated Postgres database per test session, a random Redis key
prefix, the full aiohttp app, and generated media clips. Real services, no fakes."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from server.migrate import migrate
from server.settings import Settings
from tests.support import EdgeTestServer, free_port

pytest_plugins = ["tests.exclusive"]


def _admin_dsn() -> str:
    if "STREAMFLIX_TEST_ADMIN_DSN" in os.environ:
        return os.environ["STREAMFLIX_TEST_ADMIN_DSN"]
    # scripts/setup.sh leaves a DSN here when the local Postgres needs a password
    saved = Path(__file__).resolve().parent.parent / "var" / "database_url"
    if saved.is_file():
        return saved.read_text().strip().rsplit("/", 1)[0] + "/postgres"
    return "postgresql://postgres@127.0.0.1:5432/postgres"


ADMIN_DSN = _admin_dsn()
REDIS_URL = os.environ.get("STREAMFLIX_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test gets a node id of its own. schemathesis names each generated operation's
    test only in `name` ("test_api_conforms_to_spec[GET /api/v1/titles]"); under pytest 9 all
    of them shared one id, and pytest-xdist, which hands tests to its workers by id, ran one."""
    seen: dict[str, int] = {}
    for item in items:
        seen[item.nodeid] = seen.get(item.nodeid, 0) + 1
    for item in items:
        node_id: Any = getattr(item, "_id", None)  # pytest 9 builds the id from originalname + params
        if seen[item.nodeid] > 1 and item.name.endswith("]") and node_id is not None and node_id.params is None:
            item._id = node_id.with_params(item.name.split("[", 1)[1][:-1])


def _dsn_for(dbname: str) -> str:
    return ADMIN_DSN.rsplit("/", 1)[0] + "/" + dbname


async def _drop(dbname: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def database_url() -> Any:
    """A database of our own for this test session, created by `migrate` and dropped after."""
    dbname = f"sf_test_{os.getpid()}_{secrets.token_hex(3)}"
    dsn = _dsn_for(dbname)
    asyncio.run(migrate(dsn))
    yield dsn
    asyncio.run(_drop(dbname))


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    return f"sftest:{secrets.token_hex(4)}:"


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("streamflix")


@pytest.fixture
def settings(database_url: str, redis_prefix: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own data dir and file storage, the session's database."""
    data_dir = tmp_path / "var"
    return Settings.load(
        env={},
        overrides={
            "database_url": database_url,
            "redis_url": REDIS_URL,
            "redis_prefix": redis_prefix,
            "data_dir": str(data_dir),
            "secret_key": "test-secret-" + redis_prefix,
            "x264_preset": "ultrafast",
            # Every test connects from 127.0.0.1 and shares the session's Redis prefix: per-IP
            # limits would trip across unrelated tests. Rate-limit tests set their own.
            "rate_limit_api_per_min": 0,
            "rate_limit_login_per_min": 0,
            "rate_limit_register_per_min": 0,
            "rate_limit_reset_per_min": 0,
        },
    )


@pytest.fixture
def aiohttp_client(aiohttp_client: Any) -> Any:
    """pytest-aiohttp's fixture, but an Application is served as `streamflix serve` serves it
    (EdgeTestServer: the stream fast path in front of aiohttp). Pass an aiohttp TestServer to
    test aiohttp's path alone."""
    from aiohttp import web

    async def go(app_or_server: Any, **kwargs: Any) -> Any:
        if isinstance(app_or_server, web.Application):
            app_or_server = EdgeTestServer(app_or_server, **kwargs.pop("server_kwargs", None) or {})
        return await aiohttp_client(app_or_server, **kwargs)

    return go


@pytest.fixture
async def app_client(aiohttp_client: Any, settings: Settings) -> Any:
    from server.app import create_app

    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def pg(database_url: str) -> Any:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def user_token(app_client: Any) -> dict[str, str]:
    """A registered, logged-in viewer: {"email", "password", "access_token", ...}."""
    email = f"viewer-{secrets.token_hex(4)}@example.com"
    password = "correct horse battery"
    r = await app_client.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert r.status == 201, await r.text()
    r = await app_client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert r.status == 200, await r.text()
    body = await r.json()
    return {"email": email, "password": password, **body}


def _ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if not path:
        pytest.fail("ffmpeg is not installed: run `make test`, which installs it")
    return path


@pytest.fixture(scope="session")
def clip_factory(session_tmp: Path) -> Callable[..., Path]:
    """Make (once per session) a small generated clip:

    clip_factory(seconds=4, width=640, height=360, fps=25, audio=True, video=True,
                 pix_fmt="yuv420p", extra=[...], suffix=".mp4")
    """
    cache: dict[tuple, Path] = {}
    clips = session_tmp / "clips"
    clips.mkdir(exist_ok=True)

    def make(
        seconds: float = 4,
        width: int = 640,
        height: int = 360,
        fps: float = 25,
        audio: bool = True,
        video: bool = True,
        pix_fmt: str = "yuv420p",
        extra: list[str] | tuple[str, ...] = (),
        suffix: str = ".mp4",
    ) -> Path:
        key = (seconds, width, height, fps, audio, video, pix_fmt, tuple(extra), suffix)
        if key in cache:
            return cache[key]
        out = clips / f"clip_{len(cache)}_{width}x{height}_{seconds}s{suffix}"
        args = [_ffmpeg(), "-v", "error", "-y"]
        if video:
            args += ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"]
        if audio:
            args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
        if video:
            args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", pix_fmt, "-g", str(int(fps * 2))]
        if audio:
            args += ["-c:a", "aac", "-b:a", "96k"]
        args += list(extra) + [str(out)]
        subprocess.run(args, check=True, capture_output=True)
        cache[key] = out
        return out

    return make


# ---- S3: moto's standalone server over real HTTP ------------------------------------

_DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Start `python -m moto.server` on a free port; yield its endpoint URL.

    Also points the AWS_* variables at dummy credentials for the session, so boto3 never
    reaches for real ones.
    """
    saved = {k: os.environ.get(k) for k in _DUMMY_AWS}
    os.environ.update(_DUMMY_AWS)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # moto logs every request: a file, not a pipe nobody drains (a full pipe blocks it).
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")
                raise RuntimeError(f"moto_server exited with {proc.returncode}: {err[-2000:]}")
            try:
                # moto's own health route; any HTTP answer means it is serving.
                urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer on {url} within 30 s") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---- a title that went through the real ingest + worker ------------------------------------


@pytest.fixture
async def ready_title(settings: Settings, clip_factory: Callable[..., Path]) -> dict[str, Any]:
    """A 6 s 640x360 clip with audio, ingested and transcoded by the real ingest and worker
    code into the test's file storage. Returns {"id", "version", "settings"}."""
    from tests.support import ingest_and_transcode

    clip = clip_factory(seconds=6, width=640, height=360)
    title = await ingest_and_transcode(
        settings,
        clip,
        title=f"Ready {secrets.token_hex(3)}",
        year=2024,
        genres=["test"],
        description="A generated test clip.",
    )
    assert title.status == "ready", f"ready_title failed: {title.failure_reason}"
    return {"id": title.id, "version": title.current_version, "settings": settings}
