"""Benchmark (not a test): our origin against nginx serving the same stored files.

    .venv/bin/python bench/serve.py [--workers 1,2] [--only segment|playlist] [--duration 10]
                                    [--connections 64] [--threads 2] [--loop asyncio|uvloop]

Stores one title version (file backend, 1 MiB segments) in a temp dir; for each count N in
`--workers` (default 1 then 2) starts `streamflix serve --workers N` (token verification on)
and Debian's nginx with `worker_processes N` whose root is the same storage directory, then
runs wrk against 127.0.0.1 for a bounded time per case:

    segment   1 MiB media segment: ours (/stream/...?token=) vs nginx (the stored file)
    playlist  our tokenised media playlist (rendered, cached per token) vs the same text
              written to disk once and served statically by nginx

and prints req/s, MB/s and each server's CPU time per request (user + system µs, from /proc,
the server's whole process tree) side by side with ratios. Targets: segments >= 0.9x
nginx, playlists >= 0.5x.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import free_port, wait_http  # noqa: E402

from auth import playback  # noqa: E402
from media import keys as media_keys  # noqa: E402
from media.backend import open_storage  # noqa: E402
from packager.hls import render_media  # noqa: E402
from packager.model import Presentation, Rendition, Segment  # noqa: E402
from packager.uris import UriBuilder  # noqa: E402
from server.migrate import migrate  # noqa: E402
from server.settings import Settings  # noqa: E402

SEGMENT_BYTES = 1024 * 1024
SEGMENTS = 4
ROUNDS = 5  # interleaved wrk rounds per server per case
SECRET = "bench-secret-key"
NGINX = "/usr/sbin/nginx"


async def store(storage_dir: Path, title_id: str, version: str) -> Presentation:
    storage = open_storage("file://" + str(storage_dir))
    r = Rendition(
        id="v1080",
        kind="video",
        codecs="avc1.640028",
        bandwidth_peak=2_200_000,
        bandwidth_avg=2_000_000,
        timescale=90000,
        segments=tuple(Segment(4 * 90000, SEGMENT_BYTES) for _ in range(SEGMENTS)),
        width=1920,
        height=1080,
        frame_rate="25",
    )
    p = Presentation(title_id, version, 4.0 * SEGMENTS, 4, (r,))
    await storage.put_bytes(media_keys.object_key(title_id, version, r.init_name), os.urandom(1000))
    for i in range(SEGMENTS):
        await storage.put_bytes(
            media_keys.object_key(title_id, version, r.segment_name(i + 1)), os.urandom(SEGMENT_BYTES)
        )
    await storage.put_bytes(media_keys.model_key(title_id, version), p.to_json().encode())
    await storage.close()
    return p


def nginx_conf(prefix: Path, root: Path, port: int, workers: int) -> str:
    # As root, nginx's workers would switch to `nobody` and could not read a 0700 temp dir.
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""
{user}
worker_processes {workers};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    types {{ application/vnd.apple.mpegurl m3u8; video/mp4 m4s mp4; }}
    default_type application/octet-stream;
    access_log {prefix}/access.log combined buffer=64k;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {prefix}/tmp_body;
    proxy_temp_path {prefix}/tmp_proxy;
    fastcgi_temp_path {prefix}/tmp_fcgi;
    uwsgi_temp_path {prefix}/tmp_uwsgi;
    scgi_temp_path {prefix}/tmp_scgi;
    server {{
        listen 127.0.0.1:{port} reuseport;
        root {root};
    }}
}}
"""


def wrk(url: str, duration: int, connections: int, threads: int) -> tuple[float, float]:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", url],
        check=True,
        capture_output=True,
        text=True,
        timeout=duration + 30,
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise SystemExit(f"wrk printed no Requests/sec line:\n{out}")
    rps = float(found.group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    assert m is not None
    scale = {"B": 1 / 1e6, "KB": 1024 / 1e6, "MB": 1024**2 / 1e6, "GB": 1024**3 / 1e6}[m.group(2)]
    if "Non-2xx" in out or "Socket errors" in out:
        print(out, file=sys.stderr)
    return rps, float(m.group(1)) * scale


def tree_cpu(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of `pid` and all its descendants so far (Linux /proc)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    user = system = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            user += int(stats[p][11])
            system += int(stats[p][12])
        todo += children.get(p, [])
    hz = os.sysconf("SC_CLK_TCK")
    return user / hz, system / hz


def measured(pid: int, url: str, duration: int, connections: int, threads: int) -> tuple[float, float, float, float]:
    """wrk against `url`: req/s, MB/s, and the server's user and system CPU µs per request."""
    u0, s0 = tree_cpu(pid)
    rps, mbs = wrk(url, duration, connections, threads)
    u1, s1 = tree_cpu(pid)
    n = max(rps * duration, 1.0)
    return rps, mbs, (u1 - u0) / n * 1e6, (s1 - s0) / n * 1e6


def worker_counts(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--workers takes counts like 1,2, not {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("--workers takes counts of at least 1, like 1,2")
    return counts


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_case_set(args: argparse.Namespace, workers: int, tmp: Path, env: dict[str, str], paths: dict[str, str]) -> bool:
    """Our server and nginx, `workers` processes each, through every case; True if all met their target."""
    ours_port, nginx_port = free_port(), free_port()
    cmd = [
        str(ROOT / ".venv/bin/streamflix"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(ours_port),
        "--workers",
        str(workers),
    ]
    if args.loop:
        cmd += ["--loop", args.loop]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / f"serve-{workers}.err", "wb"))
        )
        prefix = tmp / f"nginx-{workers}"
        prefix.mkdir()
        (prefix / "nginx.conf").write_text(nginx_conf(prefix, tmp / "media", nginx_port, workers))
        procs.append(
            subprocess.Popen(
                [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf")], stderr=open(prefix / "stderr", "wb")
            )
        )
        rel = paths["rel"]
        wait_http(f"http://127.0.0.1:{ours_port}/healthz")
        wait_http(f"http://127.0.0.1:{nginx_port}/{rel}/index.m3u8")

        ours = f"http://127.0.0.1:{ours_port}/stream/{paths['title_id']}/{paths['version']}/v1080"
        theirs = f"http://127.0.0.1:{nginx_port}/{rel}"
        token = paths["token"]
        cases = {
            "segment": (f"{ours}/2.m4s?token={token}", f"{theirs}/2.m4s", 0.9),
            "playlist": (f"{ours}/index.m3u8?token={token}", f"{theirs}/index.m3u8", 0.5),
        }
        # Same bytes from both before measuring anything.
        for name, (a, b, _target) in cases.items():
            da, db = urllib.request.urlopen(a).read(), urllib.request.urlopen(b).read()
            assert da == db, f"{name}: ours and nginx's bodies differ"

        print(
            f"\n{workers} worker(s) each: wrk -t{args.threads} -c{args.connections}, "
            f"{args.duration}s per server per case ({ROUNDS} interleaved rounds), 127.0.0.1, "
            f"loop={args.loop or 'default'}, cpus={os.cpu_count()}, load avg {os.getloadavg()[0]:.1f}"
        )
        print(
            f"{'case':<10} {'server':<8} {'req/s':>10} {'MB/s':>10} {'CPU us/req user+sys':>20}   "
            f"ratio (ours/nginx)  target"
        )
        ok = True
        ours_pid, nginx_pid = procs[0].pid, procs[1].pid
        for name, (a, b, target) in cases.items():
            if args.only and name != args.only:
                continue
            wrk(a, 2, args.connections, args.threads)  # warm both (page cache, LRUs)
            wrk(b, 2, args.connections, args.threads)
            # Interleaved rounds (ours, nginx, ours, nginx, ...): the machine's speed drifts
            # (nginx alone moves +-5% from run to run here, more while others use the CPU),
            # and short alternating rounds give both servers the same drift. Totals:
            # `duration` seconds each.
            step = max(1, args.duration // ROUNDS)
            runs_a, runs_b = [], []
            for _ in range(ROUNDS):
                runs_a.append(measured(ours_pid, a, step, args.connections, args.threads))
                runs_b.append(measured(nginx_pid, b, step, args.connections, args.threads))
            ra, ma, ua, sa = (sum(x) / ROUNDS for x in zip(*runs_a, strict=True))
            rb, mb, ub, sb = (sum(x) / ROUNDS for x in zip(*runs_b, strict=True))
            ratio = ra / rb if rb else 0.0
            ok &= ratio >= target
            print(f"{name:<10} {'ours':<8} {ra:>10.0f} {ma:>10.1f} {f'{ua:.0f}+{sa:.0f}':>20}")
            print(
                f"{'':<10} {'nginx':<8} {rb:>10.0f} {mb:>10.1f} {f'{ub:.0f}+{sb:.0f}':>20}   {ratio:>6.2f}x"
                f"             >= {target}x {'ok' if ratio >= target else 'MISSED'}"
            )
        return ok
    finally:
        stop(procs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--workers",
        type=worker_counts,
        default=[1, 2],
        help="comma-separated process counts, each run against nginx with as many workers (default 1,2)",
    )
    ap.add_argument("--duration", type=int, default=10, help="seconds per server per case (default 10)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default=None)
    ap.add_argument("--only", choices=("segment", "playlist"), default=None, help="run one case only")
    args = ap.parse_args()
    if not shutil.which("wrk") or not os.path.exists(NGINX):
        print("bench/serve.py needs wrk and nginx (scripts/setup.sh --bench installs them)", file=sys.stderr)
        return 1

    tmp = Path(tempfile.mkdtemp(prefix="sf-bench-serve-"))
    try:
        base = Settings.load()
        settings_env = {
            **os.environ,
            "STREAMFLIX_DATA_DIR": str(tmp / "var"),
            "STREAMFLIX_STORAGE_URL": "file://" + str(tmp / "media"),
            "STREAMFLIX_SECRET_KEY": SECRET,
            "STREAMFLIX_DATABASE_URL": base.database_url,
        }
        asyncio.run(migrate(base.database_url))
        title_id, version = str(uuid.uuid4()), "v20240101000000-bench0"
        p = asyncio.run(store(tmp / "media", title_id, version))
        ring = playback.keyring(SECRET)
        token, _ = playback.sign(ring, title_id, version, time.time(), 6 * 3600)
        # The static twin of our tokenised playlist, written once for nginx.
        rel = f"titles/{title_id}/{version}/v1080"
        playlist = render_media(p, "v1080", UriBuilder(query=f"token={token}"))
        (tmp / "media" / rel / "index.m3u8").write_text(playlist)
        paths = {"rel": rel, "title_id": title_id, "version": version, "token": token}
        print("bench/serve.py: our origin against nginx serving the same files (ratios are what to compare:")
        print("  absolute req/s move with whatever else the machine is running)")
        ok = True
        for workers in args.workers:
            ok &= run_case_set(args, workers, tmp, settings_env, paths)
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
