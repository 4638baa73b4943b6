"""The system under test as real processes: `streamflix serve` and `streamflix worker`
subprocesses whose Postgres, Redis and S3 connections each go through a FaultProxy this
harness owns. The shared services stay up; a scenario takes a dependency away by calling
`.down()` or `.freeze()` on its proxy, and gives it back with `.up()`.

The test itself looks at the real state (Postgres, the moto bucket) directly, never through
the proxies, so its checks see the truth whatever the proxies do.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.faultproxy import FaultProxy
from tests.support import free_port

# How long each outage lasts (STREAMFLIX_TEST_FAULT_S overrides it, e.g. 5 for a quick run).
FAULT_S = float(os.environ.get("STREAMFLIX_TEST_FAULT_S", "20"))
# The documented bound on any request while a dependency is away (docs/testing.md): a
# request gets its answer, a 503 at worst, within this many seconds.
REQUEST_BOUND_S = 16.0
# Once the dependency is back, requests succeed again within this many seconds.
RECOVERY_S = 5.0
# Job lease of the worker processes: short, so a fresh worker takes over a killed one's job
# within seconds (the heartbeat renews it every lease/3).
LEASE_S = 6
# 2 s segments (a multiple of the 2 s GOP): more objects per version, a longer upload.
SEGMENT_S = 2
STREAMFLIX = str(Path(sys.executable).with_name("streamflix"))


@dataclass
class World:
    """What a group of scenarios shares: a migrated database of its own and a bucket on the
    session's moto server, both reached directly (no proxy)."""

    database_url: str
    redis_url: str
    s3_endpoint: str
    bucket: str

    def s3(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1")


class Proc:
    """One `streamflix` subprocess, its output in a log file (a pipe nobody drains would
    block it), in a session of its own so tear-down reaches its children too."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def children(self) -> list[tuple[int, str]]:
        """(pid, command name) of this process's direct children, from /proc."""
        return [(pid, _comm(pid)) for pid in _children(self.pid)]

    def kill9(self) -> None:
        """`kill -9` this process (only it: its children are left to what the code arranged)."""
        os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM, then SIGKILL of the whole session after `timeout`; the exit status."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._kill_session()
        try:
            return self.popen.wait(10)
        finally:
            self._log.close()

    def _kill_session(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            out += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:
            continue
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone: it holds nothing but its exit status)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


class Stack:
    """Proxies in front of Postgres, Redis and S3, the environment that points `streamflix`
    processes at them, and the processes started from it (stopped by `close()`)."""

    def __init__(self, world: World, base: Path) -> None:
        self.world = world
        self.base = base
        self.data_dir = base / "var"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.storage_prefix = f"fault-{secrets.token_hex(4)}"
        self.redis_prefix = f"sffault:{secrets.token_hex(4)}:"
        self.pg = FaultProxy.in_front_of(world.database_url, 5432).start()
        self.redis = FaultProxy.in_front_of(world.redis_url, 6379).start()
        self.s3 = FaultProxy.in_front_of(world.s3_endpoint, 80).start()
        self.procs: list[Proc] = []
        self.env = {
            **os.environ,
            "STREAMFLIX_DATABASE_URL": self.pg.route(world.database_url),
            "STREAMFLIX_REDIS_URL": self.redis.route(world.redis_url),
            "STREAMFLIX_REDIS_PREFIX": self.redis_prefix,
            "STREAMFLIX_STORAGE_URL": f"s3://{world.bucket}/{self.storage_prefix}",
            "STREAMFLIX_S3_ENDPOINT_URL": self.s3.route(world.s3_endpoint),
            "STREAMFLIX_DATA_DIR": str(self.data_dir),
            "STREAMFLIX_SECRET_KEY": "fault-" + secrets.token_hex(16),
            "STREAMFLIX_X264_PRESET": "ultrafast",
            "STREAMFLIX_JOB_LEASE_S": str(LEASE_S),
            "STREAMFLIX_SEGMENT_DURATION_S": str(SEGMENT_S),
            # one client address for every virtual viewer: per-IP limits would trip
            "STREAMFLIX_RATE_LIMIT_API_PER_MIN": "0",
            "STREAMFLIX_RATE_LIMIT_LOGIN_PER_MIN": "0",
            "STREAMFLIX_RATE_LIMIT_LOGIN_ACCOUNT_PER_MIN": "0",
            "STREAMFLIX_RATE_LIMIT_REGISTER_PER_MIN": "0",
            "STREAMFLIX_RATE_LIMIT_REGISTER_ACCOUNT_PER_MIN": "0",
        }
        for name in ("STREAMFLIX_PUBLIC_URL", "STREAMFLIX_HOST", "STREAMFLIX_PORT", "STREAMFLIX_CONFIG"):
            self.env.pop(name, None)

    @property
    def proxies(self) -> dict[str, FaultProxy]:
        return {"postgres": self.pg, "redis": self.redis, "storage": self.s3}

    # ---- processes --------------------------------------------------------------------

    def _start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        env = {**self.env, **(env or {})}
        proc = Proc(name, [STREAMFLIX, *args], env, self.base / f"{name}-{len(self.procs)}.log")
        self.procs.append(proc)
        return proc

    def start_worker(self, *, slow_probe_s: float = 0) -> Proc:
        """A `streamflix worker`. `slow_probe_s`: its ffprobe waits that long before running
        (the real ffprobe, behind a shell shim first on its PATH), so the probe phase, a few
        tens of milliseconds otherwise, can be seen and hit from outside."""
        if not slow_probe_s:
            return self._start("worker", "worker")
        real = shutil.which("ffprobe")
        assert real, "ffprobe is not installed"
        shim_dir = self.base / "slow-ffprobe"
        shim_dir.mkdir(exist_ok=True)
        shim = shim_dir / "ffprobe"
        shim.write_text(f'#!/bin/sh\nsleep {slow_probe_s:g}\nexec {real} "$@"\n')
        shim.chmod(0o755)
        return self._start("worker", "worker", env={"PATH": f"{shim_dir}:{os.environ.get('PATH', '')}"})

    def start_server(self) -> Server:
        port = free_port()
        proc = self._start("serve", "serve", "--host", "127.0.0.1", "--port", str(port))
        server = Server(proc, f"http://127.0.0.1:{port}")
        server.wait_ready()
        return server

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [STREAMFLIX, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def ingest(self, clip: Path, title: str) -> str:
        """Register `clip` (uploaded to storage, job queued); the new title's id."""
        done = self.cli("ingest", str(clip), "--title", title, "--year", "2024", "--genre", "fault", "--json")
        assert done.returncode == 0, f"ingest failed: {done.stderr.strip()}"
        return str(json.loads(done.stdout)["id"])

    def close(self) -> None:
        for p in self.proxies.values():
            p.up()
        for proc in self.procs:
            proc.stop()
        for p in self.proxies.values():
            p.close()

    # ---- direct views of the real state -----------------------------------------------

    def keys(self, under: str = "") -> list[str]:
        """Every object key in this stack's storage prefix (relative to it), from moto directly."""
        s3 = self.world.s3()
        prefix = f"{self.storage_prefix}/{under}"
        out: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.world.bucket, Prefix=prefix):
            out += [o["Key"][len(self.storage_prefix) + 1 :] for o in page.get("Contents", [])]
        return out

    def get_object(self, key: str) -> bytes:
        s3 = self.world.s3()
        return bytes(s3.get_object(Bucket=self.world.bucket, Key=f"{self.storage_prefix}/{key}")["Body"].read())

    def work_entries(self) -> list[str]:
        work = self.data_dir / "work"
        return sorted(p.name for p in work.iterdir()) if work.is_dir() else []


class Server:
    def __init__(self, proc: Proc, url: str) -> None:
        self.proc = proc
        self.url = url

    def wait_ready(self, timeout: float = 60) -> None:
        """Until /readyz answers 200 (every dependency reachable)."""
        wait_for(
            lambda: _status(self.url + "/readyz") == 200, timeout, lambda: f"server not ready:\n{self.proc.tail()}"
        )


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait_for(cond: Callable[[], Any], timeout: float, why: Callable[[], str], interval: float = 0.1) -> Any:
    """Poll `cond` until it returns something truthy (returned); AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {why()}")
        time.sleep(interval)
