"""The CLI against an unreachable Postgres (tests/faultproxy.py in front of it), as real
processes: `ingest --wait` says once that it waits and then finishes; every other command
fails with one `error:` line, no traceback and no asyncpg warning. And `titles retry`."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.cli import main
from server.settings import Settings
from tests.faultproxy import FaultProxy
from tests.transcoder.jobs_support import cli_env

REPO = Path(__file__).resolve().parents[2]
UNKNOWN = "8d7bd5a1-0000-4000-8000-000000000000"


@pytest.fixture
def pg_proxy(database_url: str) -> Iterator[FaultProxy]:
    with FaultProxy.in_front_of(database_url, 5432) as proxy:
        yield proxy


@pytest.fixture
def proxied(settings: Settings, pg_proxy: FaultProxy) -> Settings:
    return dataclasses.replace(settings, database_url=pg_proxy.route(settings.database_url))


def cli(settings: Settings, *argv: str, stdin: bytes = b"", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "server.cli", *argv],
        env=cli_env(settings),
        cwd=REPO,
        input=stdin,
        capture_output=True,
        timeout=timeout,
    )
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["migrate"], id="migrate"),
        pytest.param(["titles", "list"], id="titles-list"),
        pytest.param(["titles", "show", UNKNOWN], id="titles-show"),
        pytest.param(["titles", "delete", UNKNOWN], id="titles-delete"),
        pytest.param(["titles", "retry", UNKNOWN], id="titles-retry"),
        pytest.param(["users", "list"], id="users-list"),
        pytest.param(["users", "create", "x@example.com", "--password-stdin"], id="users-create"),
        pytest.param(["users", "prune"], id="users-prune"),
        pytest.param(["ingest", "{clip}", "--title", "Never"], id="ingest"),
        pytest.param(["ingest", "{clip}", "--title", "Never", "--wait"], id="ingest-wait"),
    ],
)
def test_every_command_says_the_database_is_unreachable_in_one_line(
    argv: list[str], proxied: Settings, pg_proxy: FaultProxy, clip_factory: Callable[..., Path]
) -> None:
    pg_proxy.down()
    argv = [a.replace("{clip}", str(clip_factory(seconds=1))) for a in argv]
    done = cli(proxied, *argv, stdin=b"a long enough password\n")
    assert done.returncode == 1, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"streamflix {argv[0]}: error: ")
    assert "database" in lines[0] and "unreachable" in lines[0] or "cannot connect to the database" in lines[0]
    assert "Traceback" not in done.stderr and "asyncpg" not in done.stderr


def test_ingest_wait_waits_out_an_outage(
    proxied: Settings, pg_proxy: FaultProxy, clip_factory: Callable[..., Path]
) -> None:
    clip = clip_factory(seconds=20, width=1280, height=720, audio=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "ingest", str(clip), "--title", "Through an outage", "--wait"],
        env=cli_env(proxied, STREAMFLIX_JOB_LEASE_S="2"),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        title_id = proc.stdout.readline().decode().strip()  # printed once the title is registered
        uuid.UUID(title_id)
        time.sleep(1)  # the in-process worker has claimed it and is encoding
        pg_proxy.down()
        time.sleep(4)
        assert proc.poll() is None, proc.stderr.read().decode()
        os.set_blocking(proc.stderr.fileno(), False)
        during = (proc.stderr.read() or b"").decode()
        pg_proxy.up()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, during + err.decode()
    stderr = during + err.decode()
    assert stderr.splitlines() == ["streamflix: the database is unreachable; waiting for it (Ctrl-C to stop waiting)"]


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Settings, *argv: str
) -> tuple[int, str, str]:
    for k, v in cli_env(settings).items():
        if k.startswith("STREAMFLIX_"):
            monkeypatch.setenv(k, v)
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_titles_retry(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("not a video\n" * 20)
    code, out, _ = run_cli(monkeypatch, capsys, settings, "ingest", str(bogus), "--title", "Bogus", "--wait")
    assert code == 1
    title_id = out.strip()

    code, out, err = run_cli(monkeypatch, capsys, settings, "titles", "retry", title_id)
    assert (code, err) == (0, "")
    assert out.startswith(f"queued {title_id} again as job #")
    code, out, _ = run_cli(monkeypatch, capsys, settings, "titles", "show", title_id)
    assert "pending" in out and "attempt 0/" in out

    code, out, err = run_cli(monkeypatch, capsys, settings, "titles", "retry", title_id)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("streamflix titles: error: ")
    assert "is pending, not failed" in err
    code, out, err = run_cli(monkeypatch, capsys, settings, "titles", "retry", UNKNOWN)
    assert code == 1 and err.count("\n") == 1 and "no title" in err
