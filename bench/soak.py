"""Benchmark (not a test): a long mixed load, watching for leaks and errors.

    .venv/bin/python bench/soak.py [--minutes 10] [--viewers 40] [--users 8] [--ingest-every 150]

Starts `streamflix serve` (one process) and `streamflix worker`, with their own data dir and
file storage under var/bench/soak/ (the database is the configured one; the source clip is
cached there too), ingests one small title, then for `--minutes` runs, from one client process
on 127.0.0.1:

- viewers: each fetches a playback URL from the API, then the playlists and the next segment
  every second (cycling through the title), and the media playlist again now and then;
- browsers: the catalog (`/titles`, a title page), search and suggest;
- signed-in users: history writes (`PUT /me/history/{id}`), continue-watching, favorites,
  and a fresh login every few seconds (rate limits are off: they are not what is watched);
- an ingest of the same small clip every `--ingest-every` seconds, which the worker transcodes
  while all this goes on (titles made by the soak are deleted at the end).

Every minute it prints, for the server and the worker process: resident memory (VmRSS) and
open file descriptors, with the requests and errors of that minute. Targets: both flat after
the warm-up minute (the summary prints the change from the end of minute 1 to the end), and
0 errors (a status other than expected, a reset, a timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import free_port, wait_http  # noqa: E402

CACHE = ROOT / "var" / "bench" / "soak"
SECRET = "bench-soak-secret-key"
PASSWORD = "soak-bench-password"
CLIP_S = 12


def env_for(database_url: str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "STREAMFLIX_DATA_DIR": str(CACHE / "var"),
        "STREAMFLIX_STORAGE_URL": "file://" + str(CACHE / "media"),
        "STREAMFLIX_SECRET_KEY": SECRET,
        "STREAMFLIX_DATABASE_URL": database_url,
        "STREAMFLIX_PORT": str(port),
        "STREAMFLIX_X264_PRESET": "ultrafast",
        "STREAMFLIX_RATE_LIMIT_LOGIN_PER_MIN": "0",
        "STREAMFLIX_RATE_LIMIT_LOGIN_ACCOUNT_PER_MIN": "0",
        "STREAMFLIX_RATE_LIMIT_API_PER_MIN": "0",
    }


def streamflix(env: dict[str, str], *args: str, stdin: str | None = None, check: bool = True) -> str:
    out = subprocess.run(
        [str(ROOT / ".venv/bin/streamflix"), *args], env=env, input=stdin, capture_output=True, text=True, timeout=900
    )
    if check and out.returncode != 0:
        raise RuntimeError(f"streamflix {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def clip() -> Path:
    source = CACHE / "clip-360p.mp4"
    if not source.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=25:duration={CLIP_S}"]
            + ["-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=48000:duration={CLIP_S}"]
            + [
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "50",
                "-c:a",
                "aac",
                "-shortest",
                str(source) + ".tmp.mp4",
            ],
            check=True,
            timeout=600,
        )
        os.replace(str(source) + ".tmp.mp4", source)
    return source


def proc_stats(pid: int) -> tuple[float, int]:
    """(VmRSS in MB, open descriptors) of one process."""
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration):
        return float("nan"), -1


class Load:
    """The client side: counters per minute, errors by kind."""

    def __init__(self, base: str, title_id: str, emails: list[str], deadline: float) -> None:
        self.base = base
        self.title_id = title_id
        self.emails = emails
        self.deadline = deadline
        self.requests = 0
        self.errors: dict[str, int] = {}
        self.minute_errors = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.minute_errors += 1

    async def call(self, s: Any, method: str, path: str, expect: int = 200, **kw: Any) -> Any:
        import aiohttp

        url = path if path.startswith("http") else self.base + path
        try:
            async with s.request(method, url, **kw) as r:
                body = await r.read()
                self.requests += 1
                if r.status != expect:
                    self.error(f"{method} {path.split('?')[0][:40]} -> {r.status}")
                    return None
                ctype = r.headers.get("Content-Type", "")
                return json.loads(body) if ctype.startswith("application/json") else body
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.error(f"{method} {path.split('?')[0][:40]}: {type(exc).__name__}")
            return None

    async def login(self, s: Any, email: str) -> str | None:
        r = await self.call(s, "POST", "/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        return None if r is None else str(r["access_token"])

    async def viewer(self, s: Any) -> None:
        token = await self.login(s, random.choice(self.emails))
        if token is None:
            return
        pb = await self.call(
            s, "POST", f"/api/v1/titles/{self.title_id}/playback", headers={"Authorization": f"Bearer {token}"}
        )
        if pb is None:
            return
        master = pb["hls_url"] if pb["hls_url"].startswith("http") else self.base + pb["hls_url"]
        text = await self.call(s, "GET", master)
        if text is None:
            return
        base = master.rsplit("/", 1)[0]
        media_uri = next(ln for ln in text.decode().splitlines() if ln and not ln.startswith("#"))
        media = f"{base}/{media_uri}"
        body = await self.call(s, "GET", media)
        if body is None:
            return
        lines = body.decode().splitlines()
        mbase = media.rsplit("/", 1)[0]
        segs = [f"{mbase}/{ln}" for ln in lines if ln and not ln.startswith("#")]
        i = random.randrange(len(segs))
        while time.monotonic() < self.deadline:
            await self.call(s, "GET", segs[i % len(segs)])
            i += 1
            if i % 10 == 0:
                await self.call(s, "GET", media)
            await asyncio.sleep(1.0)

    async def browser(self, s: Any) -> None:
        words = ["soak", "bench", "clip", "film", "sine", "test"]
        while time.monotonic() < self.deadline:
            await self.call(s, "GET", "/api/v1/titles?limit=20")
            await self.call(s, "GET", f"/api/v1/titles/{self.title_id}")
            q = random.choice(words)
            await self.call(s, "GET", f"/api/v1/search?q={q}")
            await self.call(s, "GET", f"/api/v1/search/suggest?q={q[:2]}")
            await asyncio.sleep(1.0)

    async def member(self, s: Any, email: str) -> None:
        token = await self.login(s, email)
        n = 0
        while time.monotonic() < self.deadline:
            if token is None or n % 10 == 9:
                token = await self.login(s, email)  # a fresh session now and then
                if token is None:
                    await asyncio.sleep(2.0)
                    continue
            auth = {"Authorization": f"Bearer {token}"}
            await self.call(
                s, "PUT", f"/api/v1/me/history/{self.title_id}", 204, headers=auth, json={"position_s": n % CLIP_S}
            )
            await self.call(s, "GET", "/api/v1/me/continue-watching", headers=auth)
            await self.call(s, "PUT", f"/api/v1/me/favorites/{self.title_id}", 204, headers=auth)
            await self.call(s, "GET", "/api/v1/me/favorites", headers=auth)
            n += 1
            await asyncio.sleep(1.0)


async def drive(
    args: argparse.Namespace, base: str, title_id: str, emails: list[str], pids: dict[str, int], env: dict[str, str]
) -> tuple[Load, list[str]]:
    import aiohttp

    start = time.monotonic()
    load = Load(base, title_id, emails, start + args.minutes * 60)
    made: list[str] = []
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as s:
        tasks = [asyncio.create_task(load.viewer(s)) for _ in range(args.viewers)]
        tasks += [asyncio.create_task(load.browser(s)) for _ in range(4)]
        tasks += [asyncio.create_task(load.member(s, e)) for e in emails]

        async def ingests() -> None:
            n = 0
            while time.monotonic() + args.ingest_every < load.deadline:
                await asyncio.sleep(args.ingest_every)
                n += 1
                out = await asyncio.to_thread(
                    streamflix, env, "ingest", str(clip()), "--title", f"Soak clip {n}", "--json", check=False
                )
                try:
                    made.append(json.loads(out)["id"])
                except (ValueError, KeyError):
                    load.error("ingest failed")

        tasks.append(asyncio.create_task(ingests()))
        print(
            f"{'minute':>6} {'requests':>9} {'errors':>7} {'server RSS MB':>13} {'server fds':>10} "
            f"{'worker RSS MB':>13} {'worker fds':>10} {'ingested':>8}",
            flush=True,
        )
        rows = []
        for minute in range(1, args.minutes + 1):
            await asyncio.sleep(max(0.0, start + minute * 60 - time.monotonic()))
            srss, sfd = proc_stats(pids["server"])
            wrss, wfd = proc_stats(pids["worker"])
            rows.append((srss, sfd, wrss, wfd))
            print(
                f"{minute:>6} {load.requests:>9} {load.minute_errors:>7} {srss:>13.1f} {sfd:>10} "
                f"{wrss:>13.1f} {wfd:>10} {len(made):>8}",
                flush=True,
            )
            load.requests = 0
            load.minute_errors = 0
        await asyncio.gather(*tasks, return_exceptions=True)
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        print(
            f"\nafter warm-up (end of minute 1 -> end of minute {len(rows)}): server RSS {b[0] - a[0]:+.1f} MB, "
            f"fds {b[1] - a[1]:+d}; worker RSS {b[2] - a[2]:+.1f} MB, fds {b[3] - a[3]:+d}   (target: flat)"
        )
    return load, made


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--viewers", type=int, default=40)
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--ingest-every", type=float, default=150.0, help="seconds between ingests (default 150)")
    args = ap.parse_args()
    if args.minutes < 1:
        ap.error("--minutes must be at least 1")

    from server.settings import Settings

    port = free_port()
    env = env_for(Settings.load().database_url, port)
    base = f"http://127.0.0.1:{port}"
    streamflix(env, "migrate")
    emails = [f"soak-{i}@example.com" for i in range(args.users)]
    for e in emails:
        streamflix(env, "users", "create", e, "--password-stdin", stdin=PASSWORD + "\n", check=False)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    made: list[str] = []
    try:
        procs["worker"] = subprocess.Popen(
            [str(ROOT / ".venv/bin/streamflix"), "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs["server"] = subprocess.Popen(
            [str(ROOT / ".venv/bin/streamflix"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_http(f"{base}/healthz")
        title_id = json.loads(streamflix(env, "ingest", str(clip()), "--title", "Soak clip", "--wait", "--json"))["id"]
        made.append(title_id)
        print(
            f"bench/soak.py: {args.minutes} min, {args.viewers} viewers + 4 browsers + {args.users} signed-in users, "
            f"an ingest every {args.ingest_every:.0f} s; serve pid {procs['server'].pid}, "
            f"worker pid {procs['worker'].pid}; "
            f"load avg {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        load, more = asyncio.run(drive(args, base, title_id, emails, {k: p.pid for k, p in procs.items()}, env))
        made += more
        total = sum(load.errors.values())
        print(f"errors: {total} (target 0){'  ' + json.dumps(load.errors) if total else ''}")
        for p in procs.values():
            if p.poll() is not None:
                print(f"a process exited early: {p.args}", file=sys.stderr)
                total += 1
        return 0 if total == 0 else 1
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for title_id in made:
            streamflix(env, "titles", "delete", title_id, check=False)


if __name__ == "__main__":
    sys.exit(main())
