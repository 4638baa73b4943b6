"""Run Debian's nginx from a generated config: free port, `-p` prefix, `daemon off`, pid and
logs in a temp dir. Used by the parity test (nginx serving the same file) and the CDN test
(nginx with proxy_cache in front of the origin)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import free_port

NGINX = "/usr/sbin/nginx"


def nginx_or_skip() -> str:
    if not os.path.exists(NGINX):
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed: scripts/setup.sh installs it")
        pytest.skip("nginx is not installed")
    return NGINX


class Nginx:
    def __init__(self, prefix: Path, http_block: str) -> None:
        self.prefix = prefix
        self.port = free_port()
        prefix.mkdir(parents=True, exist_ok=True)
        # As root, nginx's workers would become `nobody` and could not read pytest's 0700 dirs.
        user = "user root;" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"    {name}_temp_path {prefix}/tmp_{name};"
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.conf = prefix / "nginx.conf"
        self.conf.write_text(
            f"""{user}
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 1024; }}
http {{
{temp}
    access_log {prefix}/access.log;
{http_block.replace("PORT", str(self.port))}
}}
"""
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        nginx = nginx_or_skip()
        self.proc = subprocess.Popen(
            [nginx, "-p", str(self.prefix), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.prefix / "stderr.log", "wb"),
        )
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(self.prefix / 'stderr.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx did not start within 15 s") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)
