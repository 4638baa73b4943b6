"""Benchmark (not a test): how soon a viewer sees the first frame of a title just ingested.

    .venv/bin/python bench/firstframe.py [--runs 5] [--sources 60,600] [--no-seek] [--seek-runs 1]
                                         [--playable-timeout 180] [--frame-timeout 60]

Sources: 1080p30 testsrc2 + 440 Hz sine, H.264 High at 8 Mb/s (maxrate 10M, bufsize 16M) with
a normal source GOP (keyint 250, as cameras and editors write), AAC 192k, moov in front; 1 min
and 10 min long, cached in bench/out/ (gitignored). The 1 min one is encoded once with x264
`veryfast` (about a minute); the 10 min one repeats its video ten times (stream copy, so each
minute starts with an IDR) under a fresh 10 min sine: seconds instead of most of an hour on a
busy two-core machine.

Set-up: a database of its own (created, dropped at the end), a Redis prefix and a data /
storage dir of its own under var/bench/firstframe/, ONE `streamflix serve` and ONE
`streamflix worker` with their default settings (the worker's concurrency is printed), an
admin and a viewer account, and ONE headless Chromium page (Debian's /usr/bin/chromium driven
by Playwright, never a downloaded browser) on the server's origin with the vendored hls.js
(`/vendor/hls.min.mjs`, what the web client plays with) already loaded.

Per run, for each source (`--runs` each, default 5, never two at once):
  - ingest: `streamflix ingest SRC --title ...` (no --wait); its own duration is printed; t0 =
    the moment the process has exited;
  - t(playable): `POST /api/v1/titles/{id}/playback` every 20 ms until it answers 200;
  - t(first frame): a fresh <video> (muted autoplay) with a new hls.js on the master URL,
    `requestVideoFrameCallback` on the first frame presented; both from t0.
  Then the title is left to finish (`--wait-ready`, the default for the 1 min source) or is
  deleted and the worker waited for until it runs no ffmpeg, so runs never overlap.
Seek test (the 10 min source, `--seek-runs` times): the player starts as above; at t0 + 3 s (or when the
player has its manifest, if later) it seeks to 80 % of the duration; printed: the time from
the seek to the first frame presented at or after the target (mediaTime >= target - 0.1), and
what hls.js asked for, gave up and loaded from the seek on. `--seek-runs N`: N seek runs, median.

`--storage s3`: the media storage is moto's S3 server over HTTP on 127.0.0.1 (started by the
bench) instead of a local folder.

Targets: median t(first frame) <= 1.5 s for each source; seek -> frame <= 3 s. Each is
printed PASS or MISS; the exit status is non-zero only on errors (a run that failed, a
process that died), not on a missed target. A run that is not playable within
`--playable-timeout` counts as a MISS with no figure.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import CHROMIUM, LAUNCH_ARGS, free_port, moto_s3, tree, wait_http  # noqa: E402

OUT = ROOT / "bench" / "out"
CACHE = ROOT / "var" / "bench" / "firstframe"
PASSWORD = "firstframe-bench-password"
TARGET_FIRST_FRAME_S = 1.5
TARGET_SEEK_S = 3.0
SEEK_AFTER_S = 3.0
SEEK_FRACTION = 0.8
POLL_S = 0.020
PAGE_PATH = "/__bench/firstframe.html"

# The page: hls.js (the copy the web client uses) loaded once; each run gets a fresh <video>
# and a fresh Hls instance. Times are wall-clock ms (performance.timeOrigin + now) so Python
# can compare them with its own time.time().
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>first frame bench</title></head>
<body>
<div id="box"></div>
<script type="module">
import Hls from '/vendor/hls.min.mjs';
const wall = () => performance.timeOrigin + performance.now();
let current = null;
function fresh() {
  if (current) { current.hls.destroy(); current.video.remove(); }
  const video = document.createElement('video');
  video.muted = true; video.autoplay = true; video.playsInline = true;
  video.width = 640; video.height = 360;
  document.getElementById('box').appendChild(video);
  const hls = new Hls();
  const errors = [];
  const log = [];
  const t = () => ((wall() - t0) / 1000).toFixed(2);
  const t0 = wall();
  hls.on(Hls.Events.ERROR, (_e, d) => {
    if (d.fatal) errors.push(`${d.type}:${d.details}`);
    log.push(`${t()} error ${d.details} ${d.response ? d.response.code : ''} fatal=${d.fatal}`);
  });
  hls.on(Hls.Events.FRAG_LOADING, (_e, d) => log.push(`${t()} asks ${d.frag.type} l${d.frag.level} sn${d.frag.sn}`));
  hls.on(Hls.Events.FRAG_LOADED, (_e, d) => log.push(`${t()} loaded ${d.frag.type} l${d.frag.level} sn${d.frag.sn}`));
  hls.on(Hls.Events.FRAG_LOAD_EMERGENCY_ABORTED, (_e, d) =>
    log.push(`${t()} abandons ${d.frag.type} l${d.frag.level} sn${d.frag.sn}`));
  window.benchLog = log;
  current = { video, hls, errors };
  return current;
}
function frameAt(video, pred, timeoutMs, errors) {
  return new Promise((resolve, reject) => {
    const fail = () => {
      const b = video.buffered;
      const ranges = Array.from({ length: b.length }, (_, i) => `${b.start(i).toFixed(1)}-${b.end(i).toFixed(1)}`);
      const now = video.currentTime.toFixed(2);
      const state = `currentTime ${now}, readyState ${video.readyState}, paused ${video.paused}`;
      const tail = (window.benchLog || []).slice(-12).join(' | ');
      const fatal = errors.join(',');
      reject(new Error(`no frame within ${timeoutMs} ms; fatal: ${fatal}; ${state}; buffered ${ranges}; ${tail}`));
    };
    const timer = setTimeout(fail, timeoutMs);
    const cb = (now, meta) => {
      if (!pred(meta)) return video.requestVideoFrameCallback(cb);
      clearTimeout(timer);
      resolve({ wall: wall(), mediaTime: meta.mediaTime, height: meta.height });
    };
    video.requestVideoFrameCallback(cb);
  });
}
// First frame of a fresh player on `url`.
window.firstFrame = async (url, timeoutMs) => {
  const { video, hls, errors } = fresh();
  const attached = wall();
  const frame = frameAt(video, () => true, timeoutMs, errors);
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
  hls.loadSource(url);
  hls.attachMedia(video);
  const f = await frame;
  return { attached, frame: f.wall, mediaTime: f.mediaTime, height: f.height, level: hls.currentLevel };
};
// A fresh player on `url`; at wall time `seekAt` (or once the duration is known, if later) a
// seek to `fraction` of the duration; resolves with the first frame at/after the target.
window.seekRun = async (url, seekAt, fraction, timeoutMs) => {
  const { video, hls, errors } = fresh();
  const attached = wall();
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
  hls.loadSource(url);
  hls.attachMedia(video);
  await new Promise((resolve, reject) => {
    const fail = () => reject(new Error(`no duration within ${timeoutMs} ms; errors: ${errors.join(',')}`));
    const t = setTimeout(fail, timeoutMs);
    const check = () => {
      if (!(video.duration > 0 && isFinite(video.duration))) return setTimeout(check, 5);
      clearTimeout(t);
      resolve();
    };
    check();
  });
  const wait = seekAt - wall();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const target = video.duration * fraction;
  const frame = frameAt(video, (m) => m.mediaTime >= target - 0.1, timeoutMs, errors);
  const seekedAt = wall();
  const before = (window.benchLog || []).length;
  window.benchLog.push(`${((seekedAt - attached) / 1000).toFixed(2)} seek`);
  video.currentTime = target;
  const f = await frame;
  const duration = video.duration;
  // hls.js re-asks for an init segment that is slow to come every 100 ms, aborting the last
  // ask: those repeats are counted, not listed.
  const events = [];
  for (const e of (window.benchLog || []).slice(before)) {
    const what = e.replace(/^[0-9.]+ /, '');
    if (what.startsWith('error aborted')) continue;
    const again = events.slice(-2).find((x) => x.what === what && what.startsWith('asks'));
    if (again) again.n += 1;
    else events.push({ line: e, what, n: 1 });
  }
  const shown = events.slice(0, 40).map((x) => (x.n > 1 ? `${x.line} (x${x.n})` : x.line));
  const { mediaTime, height } = f;
  return { attached, seekedAt, frame: f.wall, target, duration, mediaTime, height, events: shown };
};
window.benchReady = true;
</script>
</body></html>
"""


# ---- sources ------------------------------------------------------------------------------


def make_source(seconds: int, preset: str = "veryfast") -> Path:
    """The cached 1080p30 source of `seconds` (made on first use; minutes for 10 min)."""
    OUT.mkdir(parents=True, exist_ok=True)
    src = OUT / f"firstframe_1080p30_{seconds}s_gop250.mp4"
    if src.exists():
        return src
    tmp = src.with_suffix(".tmp.mp4")
    if seconds > 60 and seconds % 60 == 0:
        # Encoding 10 min of 1080p on a busy two-core machine takes most of an hour: the 1 min
        # source's video is repeated (stream copy: every minute starts with an IDR, the GOP is
        # 250 otherwise) under a sine of the full length, encoded fresh (no gap at the joins).
        one = make_source(60, preset)
        video = OUT / "firstframe_1080p30_60s_gop250.video.mp4"
        print(f"making {src.relative_to(ROOT)} ({seconds // 60} x the 1 min video, stream copy) ...", flush=True)
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(one)]
            + ["-map", "0:v", "-c", "copy", str(video)],
            check=True,
            timeout=600,
        )
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
            + ["-stream_loop", str(seconds // 60 - 1), "-i", str(video)]
            + ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
            + ["-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-b:a", "192k", "-ac", "2"]
            + ["-movflags", "+faststart", str(tmp)],
            check=True,
            timeout=1800,
        )
        video.unlink()
        tmp.rename(src)
        return src
    print(f"making {src.relative_to(ROOT)} (x264 {preset}, once) ...", flush=True)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
        + ["-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={seconds}"]
        + ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
        + ["-c:v", "libx264", "-preset", preset, "-b:v", "8M", "-maxrate", "10M", "-bufsize", "16M"]
        + ["-g", "250", "-keyint_min", "25", "-pix_fmt", "yuv420p", "-profile:v", "high"]
        + ["-c:a", "aac", "-b:a", "192k", "-ac", "2", "-movflags", "+faststart", "-shortest", str(tmp)],
        check=True,
        timeout=3600,
    )
    tmp.rename(src)
    return src


# ---- the stack: database, server, worker --------------------------------------------------


def admin_dsn() -> str:
    """The configured database's DSN (the benches' databases live on the same server)."""
    from server.settings import Settings

    # a secret key of its own: loading the settings must not generate one into ./var
    return Settings.load(env={**os.environ, "STREAMFLIX_SECRET_KEY": "bench"}).database_url


def dsn_for(base: str, dbname: str) -> str:
    return base.rsplit("/", 1)[0] + "/" + dbname


def drop_database(base: str, dbname: str) -> None:
    import asyncio

    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(dsn_for(base, "postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(go())


def runs_ffmpeg(pid: int) -> bool:
    for p in tree(pid)[1:]:
        try:
            with open(f"/proc/{p}/comm") as f:
                if f.read().strip().startswith("ffmpeg"):
                    return True
        except OSError:
            continue
    return False


def worker_concurrency() -> int:
    """`streamflix worker`'s default --concurrency, read from its own argument parser."""
    from server.commands import worker as worker_cmd

    parser = argparse.ArgumentParser()
    worker_cmd.add_arguments(parser)
    return int(parser.parse_args([]).concurrency)


@dataclass
class Stack:
    """Server + workers on their own database, Redis prefix and storage dir."""

    name: str
    workers: int = 1
    worker_cpus: list[str | None] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    dir: Path = field(init=False)
    env: dict[str, str] = field(init=False)
    base: str = field(init=False)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    dbname: str = field(init=False)
    admin: str = field(init=False)

    def __post_init__(self) -> None:
        self.dir = ROOT / "var" / "bench" / self.name
        self.admin = admin_dsn()
        self.dbname = f"sf_bench_{self.name.replace('-', '_')}_{os.getpid()}"
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "STREAMFLIX_DATABASE_URL": dsn_for(self.admin, self.dbname),
            "STREAMFLIX_REDIS_PREFIX": f"sfbench:{self.name}:{os.getpid()}:{secrets.token_hex(3)}:",
            "STREAMFLIX_DATA_DIR": str(self.dir / "var"),
            "STREAMFLIX_STORAGE_URL": "file://" + str(self.dir / "media"),
            "STREAMFLIX_SECRET_KEY": f"bench-{self.name}-secret-key",
            "STREAMFLIX_PORT": str(port),
            # The bench polls the API every 20 ms from one address: limits are not measured.
            "STREAMFLIX_RATE_LIMIT_LOGIN_PER_MIN": "0",
            "STREAMFLIX_RATE_LIMIT_LOGIN_ACCOUNT_PER_MIN": "0",
            "STREAMFLIX_RATE_LIMIT_REGISTER_PER_MIN": "0",
            "STREAMFLIX_RATE_LIMIT_REGISTER_ACCOUNT_PER_MIN": "0",
            "STREAMFLIX_RATE_LIMIT_API_PER_MIN": "0",
            **self.extra_env,
        }

    def cli(self, *args: str, stdin: str | None = None, timeout: float = 600, check: bool = True) -> str:
        out = subprocess.run(
            [str(ROOT / ".venv/bin/streamflix"), *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and out.returncode != 0:
            raise RuntimeError(f"streamflix {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def start(self, *, serve: bool = True) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / "var").mkdir(parents=True)
        self.cli("migrate")  # creates the database
        cpus = self.worker_cpus or [None] * self.workers
        for i, cpu in enumerate(cpus):
            argv = [str(ROOT / ".venv/bin/streamflix"), "worker"]
            if cpu is not None:
                argv = ["taskset", "-c", cpu, *argv]
            self.procs[f"worker{i}"] = subprocess.Popen(
                argv, env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.dir / f"worker{i}.log", "wb")
            )
        if serve:
            self.procs["serve"] = subprocess.Popen(
                [
                    str(ROOT / ".venv/bin/streamflix"),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    self.base.split(":")[-1],
                ],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=open(self.dir / "serve.log", "wb"),
            )
            wait_http(self.base + "/healthz", timeout=60)

    def check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode} (log in {self.dir})")

    def worker_pids(self) -> list[int]:
        return [p.pid for n, p in self.procs.items() if n.startswith("worker")]

    def wait_idle(self, timeout: float = 120) -> float:
        """Until no worker runs ffmpeg for a whole second; returns the seconds waited."""
        started = time.monotonic()
        quiet_since: float | None = None
        while time.monotonic() - started < timeout:
            if any(runs_ffmpeg(pid) for pid in self.worker_pids()):
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= 1.0:
                return time.monotonic() - started
            time.sleep(0.1)
        raise RuntimeError(f"the worker still ran ffmpeg {timeout:.0f} s after the title was deleted")

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        try:
            drop_database(self.admin, self.dbname)
        except Exception as exc:
            print(f"could not drop database {self.dbname}: {exc}", file=sys.stderr)


class Api:
    """A keep-alive JSON client on 127.0.0.1 (one connection, reopened when dropped)."""

    def __init__(self, base: str) -> None:
        u = urlsplit(base)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.conn.request(method, "/api/v1" + path, body=data, headers=headers)
                r = self.conn.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def make_accounts(stack: Stack) -> str:
    """An admin (CLI, as soak.py does) and a viewer (registered through the API); returns
    the viewer's access token."""
    stack.cli(
        "users", "create", f"admin-{stack.name}@example.com", "--admin", "--password-stdin", stdin=PASSWORD + "\n"
    )
    api = Api(stack.base)
    email = f"viewer-{stack.name}@example.com"
    status, body = api.call("POST", "/auth/register", {"email": email, "password": PASSWORD})
    if status != 201:
        raise RuntimeError(f"register: {status} {body}")
    status, body = api.call("POST", "/auth/login", {"email": email, "password": PASSWORD})
    if status != 200:
        raise RuntimeError(f"login: {status} {body}")
    return str(body["access_token"])


def ingest(stack: Stack, src: Path, title: str) -> tuple[str, float, float]:
    """(title id, the command's own duration, t0 = wall time when it had exited)."""
    started = time.time()
    out = stack.cli("ingest", str(src), "--title", title, "--year", "2024", "--json", timeout=600)
    t0 = time.time()
    return str(json.loads(out)["id"]), t0 - started, t0


def poll_playable(api: Api, token: str, title_id: str, timeout: float, stack: Stack) -> tuple[str | None, float]:
    """POST playback every 20 ms until 200: (master URL or None on timeout, wall time)."""
    deadline = time.monotonic() + timeout
    n = unavailable = 0
    while time.monotonic() < deadline:
        if unavailable == 1:
            print(f"  note: POST playback answered 503 while polling {title_id}", flush=True)
            unavailable += 1
        status, body = api.call("POST", f"/titles/{title_id}/playback", token=token)
        now = time.time()
        if status == 200:
            url = body["hls_url"]
            return (url if url.startswith("http") else stack.base + url), now
        if status == 503:
            unavailable += 1  # a client retries a 503 (Retry-After); counted and printed
        elif status != 409:
            raise RuntimeError(f"playback answered {status}: {body}")
        n += 1
        if n % 50 == 0:
            stack.check_alive()
        time.sleep(POLL_S)
    return None, time.time()


def title_row(stack: Stack, title_id: str) -> dict[str, Any]:
    """The title's catalog row, read directly (cheaper than a CLI process per poll)."""
    import asyncio

    import asyncpg

    async def go() -> dict[str, Any]:
        conn = await asyncpg.connect(stack.env["STREAMFLIX_DATABASE_URL"])
        try:
            row = await conn.fetchrow(
                "SELECT status, current_version, failure_reason FROM catalog.titles WHERE id = $1", title_id
            )
        finally:
            await conn.close()
        return dict(row) if row else {"status": "gone"}

    # Playwright's sync API keeps an event loop on this thread: the query runs on another.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def title_status(stack: Stack, title_id: str) -> str:
    return str(title_row(stack, title_id)["status"])


def wait_ready(stack: Stack, title_id: str, timeout: float) -> float | None:
    """Wall time the title was seen ready (polled every 0.25 s), None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = title_row(stack, title_id)
        if row["status"] == "ready":
            return time.time()
        if row["status"] in ("failed", "gone"):
            raise RuntimeError(f"title {title_id} is {row['status']}: {row.get('failure_reason')}")
        stack.check_alive()
        time.sleep(0.25)
    return None


def fmt(x: float | None) -> str:
    return "   -   " if x is None else f"{x:7.3f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sources", default="60,600", help="source lengths in seconds (default 60,600)")
    ap.add_argument("--no-seek", action="store_true", help="skip the seek test")
    ap.add_argument("--seek-runs", type=int, default=1, help="seek test runs (median printed)")
    ap.add_argument("--playable-timeout", type=float, default=180.0, help="per run (s)")
    ap.add_argument("--frame-timeout", type=float, default=60.0, help="per run, after playable (s)")
    ap.add_argument("--ready-timeout", type=float, default=900.0, help="waiting for `ready` between runs (s)")
    ap.add_argument(
        "--wait-ready-max",
        type=int,
        default=60,
        help="between runs, wait for `ready` for sources up to this long (s); longer ones are deleted",
    )
    ap.add_argument("--storage", choices=("file", "s3"), default="file", help="media storage (default file)")
    args = ap.parse_args()
    lengths = [int(x) for x in args.sources.split(",") if x.strip()]
    sources = {n: make_source(n) for n in sorted(set(lengths + ([] if args.no_seek else [max(lengths)])))}

    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    moto, s3_env = moto_s3("bench-firstframe") if args.storage == "s3" else (None, {})
    stack = Stack("firstframe", extra_env=s3_env)
    errors: list[str] = []
    results: dict[int, list[dict[str, Any]]] = {}
    seeks: list[dict[str, Any]] = []
    try:
        stack.start()
        token = make_accounts(stack)
        api = Api(stack.base)
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"], capture_output=True, text=True
        ).stdout.strip()
        print(
            f"bench/firstframe.py: serve + 1 worker (concurrency {worker_concurrency()}, default settings, "
            f"{args.storage} storage) on "
            f"{stack.base}; cpus={os.cpu_count()}, load avg {os.getloadavg()[0]:.1f}; commit {commit[:70]}",
            flush=True,
        )
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            page = browser.new_context(viewport={"width": 800, "height": 450}, service_workers="block").new_page()
            page.route(stack.base + PAGE_PATH, lambda route: route.fulfill(body=PAGE, content_type="text/html"))
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.goto(stack.base + PAGE_PATH)
            page.wait_for_function("() => window.benchReady === true", timeout=30_000)
            page.set_default_timeout((args.frame_timeout + 30) * 1000)

            for seconds in lengths:
                src = sources[seconds]
                results[seconds] = []
                print(f"\nsource {src.name} ({seconds} s 1080p30, 8 Mb/s, GOP 250), {args.runs} runs")
                print(
                    f"{'run':>4} {'ingest s':>8} {'playable':>8} {'1st frame':>9} {'level':>5} {'ready':>8}  (from t0)"
                )
                for run in range(1, args.runs + 1):
                    r = one_run(args, stack, api, token, page, src, seconds, run)
                    results[seconds].append(r)
                    print(
                        f"{run:>4} {r['ingest_s']:>8.3f} {fmt(r['playable']):>8} {fmt(r['frame']):>9} "
                        f"{str(r.get('height') or '-'):>5} {fmt(r.get('ready')):>8}"
                        + (f"  {r['note']}" if r.get("note") else ""),
                        flush=True,
                    )
                    if r.get("error"):
                        errors.append(f"{seconds} s run {run}: {r['error']}")
            for _ in range(0 if args.no_seek else max(1, args.seek_runs)):
                seek = seek_run(args, stack, api, token, page, sources[max(lengths)], max(lengths))
                seeks.append(seek)
                if seek.get("error"):
                    errors.append(f"seek: {seek['error']}")
            browser.close()
        stack.check_alive()
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        stack.stop()
        if moto is not None:
            moto.terminate()
            moto.wait(10)

    print("\nsummary (medians of the runs, seconds from t0 = `ingest` returned)")
    print(
        f"{'source':>8} {'ingest':>8} {'playable':>9} {'1st frame':>9}   target 1st frame <= {TARGET_FIRST_FRAME_S} s"
    )
    for seconds, rs in results.items():
        if not rs:
            continue
        frames = [r["frame"] for r in rs if r["frame"] is not None]
        playable = [r["playable"] for r in rs if r["playable"] is not None]
        med_frame = statistics.median(frames) if frames else None
        print(
            f"{seconds:>6} s {statistics.median(r['ingest_s'] for r in rs):>8.3f} "
            f"{fmt(statistics.median(playable) if playable else None):>9} {fmt(med_frame):>9}   "
            f"{verdict(len(frames) == len(rs) and med_frame is not None and med_frame <= TARGET_FIRST_FRAME_S)}"
            + ("" if len(frames) == len(rs) else f" ({len(rs) - len(frames)} of {len(rs)} runs without a frame)")
        )
    got = [r for r in seeks if r.get("seek_to_frame") is not None]
    if seeks and len(got) < len(seeks):
        print(f"seek to 80 %: {len(seeks) - len(got)} of {len(seeks)} runs without a figure (see above)")
    if got:
        times = [r["seek_to_frame"] for r in got]
        s = statistics.median(times) if len(got) == len(seeks) else None
        print(
            f"seek to 80 % ({got[0].get('target', 0):.1f} s of {got[0].get('duration', 0):.1f} s) issued at t0 + "
            f"{fmt(statistics.median(r['seek_at'] for r in got))} s: seek -> frame median {fmt(s)} s of "
            f"{len(seeks)} ({', '.join(f'{x:.3f}' for x in times)})   target <= {TARGET_SEEK_S} s: "
            f"{verdict(s is not None and s <= TARGET_SEEK_S)}"
        )
    elif seeks:
        print(f"seek to 80 %: no figure   target <= {TARGET_SEEK_S} s: MISS")
    if errors:
        print("\nerrors:\n  " + "\n  ".join(errors), file=sys.stderr)
        return 1
    return 0


def one_run(
    args: argparse.Namespace, stack: Stack, api: Api, token: str, page: Any, src: Path, seconds: int, run: int
) -> dict[str, Any]:
    title_id, ingest_s, t0 = ingest(stack, src, f"First frame {seconds}s run {run} {secrets.token_hex(2)}")
    r: dict[str, Any] = {"id": title_id, "ingest_s": ingest_s, "playable": None, "frame": None}
    url, t_play = poll_playable(api, token, title_id, args.playable_timeout, stack)
    if url is None:
        r["note"] = f"not playable within {args.playable_timeout:.0f} s (status {title_status(stack, title_id)})"
    else:
        r["playable"] = t_play - t0
        try:
            got = page.evaluate("([u, t]) => window.firstFrame(u, t)", [url, args.frame_timeout * 1000])
            r["frame"] = got["frame"] / 1000 - t0
            r["height"] = got["height"]
        except Exception as exc:
            r["error"] = f"player: {str(exc).splitlines()[0]}"
    if seconds <= args.wait_ready_max:
        ready = wait_ready(stack, title_id, args.ready_timeout)
        if ready is None:
            r["note"] = (r.get("note", "") + f" not ready within {args.ready_timeout:.0f} s").strip()
            stack.cli("titles", "delete", title_id)
            stack.wait_idle()
        else:
            r["ready"] = ready - t0
    else:
        stack.cli("titles", "delete", title_id)
        r["note"] = (r.get("note", "") + f" deleted; worker idle after {stack.wait_idle():.1f} s").strip()
    return r


def seek_run(
    args: argparse.Namespace, stack: Stack, api: Api, token: str, page: Any, src: Path, seconds: int
) -> dict[str, Any]:
    print(f"\nseek test: {src.name}, seek to {SEEK_FRACTION:.0%} at t0 + {SEEK_AFTER_S:.0f} s", flush=True)
    title_id, ingest_s, t0 = ingest(stack, src, f"Seek {seconds}s {secrets.token_hex(2)}")
    r: dict[str, Any] = {"ingest_s": ingest_s}
    url, t_play = poll_playable(api, token, title_id, args.playable_timeout, stack)
    if url is None:
        print(f"  not playable within {args.playable_timeout:.0f} s: no seek figure")
    else:
        try:
            got = page.evaluate(
                "([u, at, f, t]) => window.seekRun(u, at, f, t)",
                [url, (t0 + SEEK_AFTER_S) * 1000, SEEK_FRACTION, args.frame_timeout * 1000],
            )
            r.update(
                seek_at=got["seekedAt"] / 1000 - t0,
                seek_to_frame=(got["frame"] - got["seekedAt"]) / 1000,
                target=got["target"],
                duration=got["duration"],
            )
            print(
                f"  ingest {ingest_s:.3f} s, playable t0 + {t_play - t0:.3f} s, seek at t0 + {r['seek_at']:.3f} s "
                f"to {got['target']:.1f} s, frame at media {got['mediaTime']:.3f} s ({got['height']}p) "
                f"{r['seek_to_frame']:.3f} s after the seek",
                flush=True,
            )
            # where the time went, as hls.js saw it: its requests, loads and give-ups from the seek on
            print("  player's events (s since attach): " + " | ".join(got["events"]), flush=True)
        except Exception as exc:
            r["error"] = f"player: {str(exc).splitlines()[0]}"
            print(f"  {r['error']}", flush=True)
    stack.cli("titles", "delete", title_id)
    stack.wait_idle()
    return r


if __name__ == "__main__":
    sys.exit(main())
