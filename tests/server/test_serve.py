"""`streamflix serve --workers 2`: a real subprocess, two processes answering on one port,
a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]


def _env(settings) -> dict[str, str]:
    return {
        **os.environ,
        "STREAMFLIX_DATABASE_URL": settings.database_url,
        "STREAMFLIX_REDIS_URL": settings.redis_url,
        "STREAMFLIX_REDIS_PREFIX": settings.redis_prefix,
        "STREAMFLIX_DATA_DIR": settings.data_dir,
        "STREAMFLIX_SECRET_KEY": settings.secret_key,
    }


def test_two_workers_share_one_port(settings, tmp_path):
    port = free_port()
    out = open(tmp_path / "stdout", "w+b")
    err = open(tmp_path / "stderr", "w+b")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env=_env(settings),
        stdout=out,
        stderr=err,
    )
    try:
        deadline = time.monotonic() + 60
        pids: set[int] = set()
        while len(pids) < 2:
            assert proc.poll() is None, (tmp_path / "stderr").read_text()[-2000:]
            assert time.monotonic() < deadline, f"saw pids {pids} only"
            try:
                # A new connection each time: the kernel spreads them over the listeners.
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    pids.add(json.loads(r.read())["pid"])
            except OSError:
                time.sleep(0.2)
        assert proc.pid not in pids  # the supervisor only supervises
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        for pid in pids:  # the workers went with it
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        log = (tmp_path / "stdout").read_text()
        assert f"serving on http://127.0.0.1:{port} with 2 workers" in log
        # Access lines are JSON, one per request.
        lines = [line for line in log.splitlines() if line.startswith("{")]
        assert lines and all(json.loads(line)["route"] == "/healthz" for line in lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
