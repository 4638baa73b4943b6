"""`streamflix demo SOURCE` as a user runs it: a real subprocess on a throwaway database, a
temporary data dir and a free port. It must print the URL and a login, and that login must
play: log in over HTTP, ask for playback URLs, fetch the master playlist, a media playlist and
a segment. SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

import m3u8
import pytest

from tests.conftest import REDIS_URL, _drop, _dsn_for
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 120


@pytest.fixture
def throwaway_database():
    name = f"sf_demo_{os.getpid()}_{secrets.token_hex(3)}"
    yield _dsn_for(name)  # `demo` migrates, which creates it
    asyncio.run(_drop(name))


def _request(method: str, url: str, body: dict | None = None, bearer: str | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read()


@pytest.mark.slow
def test_demo_prints_a_login_that_plays(tmp_path, clip_factory, throwaway_database):
    clip = clip_factory(seconds=2, width=320, height=180)
    port = free_port()
    env = {
        **os.environ,
        "STREAMFLIX_DATABASE_URL": throwaway_database,
        "STREAMFLIX_REDIS_URL": REDIS_URL,
        "STREAMFLIX_REDIS_PREFIX": f"sfdemo:{secrets.token_hex(4)}:",
        "STREAMFLIX_DATA_DIR": str(tmp_path / "var"),
        "STREAMFLIX_SECRET_KEY": "demo-test-" + secrets.token_hex(16),
        "STREAMFLIX_X264_PRESET": "ultrafast",
    }
    for name in ("STREAMFLIX_STORAGE_URL", "STREAMFLIX_PUBLIC_URL", "STREAMFLIX_HOST", "STREAMFLIX_PORT"):
        env.pop(name, None)
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "demo", str(clip), "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        url = login = None
        while url is None or login is None:
            assert proc.poll() is None, f"demo exited {proc.returncode}: {err_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, out_path.read_text()[-2000:]
            text = out_path.read_text()
            u = re.search(r"open (http://\S+)", text)
            m = re.search(r"log in as (\S+) / (\S+)", text)
            url, login = (u.group(1) if u else None), (m.groups() if m else None)
            time.sleep(0.2)
        assert url == f"http://127.0.0.1:{port}/"
        email, password = login
        # The URL is printed just before the socket opens: wait for it to answer.
        while True:
            try:
                assert _request("GET", urljoin(url, "/healthz"))[0] == 200
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, err_path.read_text()[-2000:]
                time.sleep(0.2)
        [title_id] = re.findall(r"demo title: (\S+)", out_path.read_text())

        status, body = _request("POST", urljoin(url, "/api/v1/auth/login"), {"email": email, "password": password})
        assert status == 200
        access = json.loads(body)["access_token"]
        status, body = _request("POST", urljoin(url, f"/api/v1/titles/{title_id}/playback"), {}, bearer=access)
        assert status == 200
        hls_url = urljoin(url, json.loads(body)["hls_url"])
        status, body = _request("GET", hls_url)
        assert status == 200
        master = m3u8.loads(body.decode())
        assert master.playlists
        media_url = urljoin(hls_url, master.playlists[0].uri)
        status, body = _request("GET", media_url)
        media = m3u8.loads(body.decode())
        assert status == 200 and media.segments
        status, body = _request("GET", urljoin(media_url, media.segments[0].uri))
        assert status == 200 and body[4:8] in (b"styp", b"moof")

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, err_path.read_text()[-2000:]
        # The JSON access log (flushed in batches, and at stop) never holds a secret.
        after_banner = out_path.read_text().split("log in as", 1)[1].split("\n", 1)[1]
        assert '"route":"/stream/' in after_banner
        for secret in (password, access, hls_url.split("token=")[1]):
            assert secret not in after_banner + err_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
