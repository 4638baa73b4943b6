"""Benchmark (not a test): how many paced viewers one `streamflix serve` holds.

    .venv/bin/python bench/viewers.py [--workers 1,2] [--steps 500,1000,2000,3000,4000,5000]
                                      [--step-seconds 24] [--clients 2] [--p99-ms 100]

A viewer does what a player does once it has a buffer: it fetches the multivariant playlist,
the 1080p media playlist and init segment, then the next 4 s segment every 4 s (paced, not a
flood), over its own keep-alive connection, with a real playback token from the API
(`POST /api/v1/titles/{id}/playback` after a login). The title is real: a 1080p clip made by
ffmpeg (testsrc2 + sine, SOURCE_S long so viewers never run out) and ingested by the real
pipeline; source, storage and the title id are cached under var/bench/viewers/ so a rerun
starts in seconds (the first run spends a few minutes encoding).

For each `serve --workers` count, N steps up through `--steps`; each step runs `--clients`
client processes (aiohttp on uvloop, N/clients viewers each, soft open-file limit raised to
the hard limit) for `--step-seconds`, viewers starting spread over the first segment
duration. A step is held when the p99 time to first byte of the segment requests is under
`--p99-ms` and no request failed (a status other than 200, a short body, a reset, or a
segment not complete within two segment durations). The first step that is not held ends the
count. Printed per step: viewers, requests, p50/p99 TTFB, errors, the server's CPU (its whole
process tree, % of one core over the step) and RSS, the clients' CPU, the p99 lateness of a
50 ms timer in the clients (time spent waiting for a CPU) and the machine's load average, so
it is plain whether the server, the clients or the machine ran out first. Target: >= 2,000 viewers on one server
process. Everything talks to 127.0.0.1 and every step is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import free_port, tree_cpu_s, tree_rss_mb, wait_http  # noqa: E402

CACHE = ROOT / "var" / "bench" / "viewers"
SOURCE_S = 150  # seconds of 1080p: longer than a step plus a start anywhere in it
SECRET = "bench-viewers-secret-key"
EMAIL = "viewers-bench@example.com"
PASSWORD = "viewers-bench-password"
SEGMENT_S = 4.0
TIMEOUT_S = 2 * SEGMENT_S  # a segment not complete by then is a stall: an error


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def server_env(base_db: str) -> dict[str, str]:
    return {
        **os.environ,
        "STREAMFLIX_DATA_DIR": str(CACHE / "var"),
        "STREAMFLIX_STORAGE_URL": "file://" + str(CACHE / "media"),
        "STREAMFLIX_SECRET_KEY": SECRET,
        "STREAMFLIX_DATABASE_URL": base_db,
        "STREAMFLIX_X264_PRESET": "ultrafast",
        # One login per client process from 127.0.0.1; the limits are not what is measured.
        "STREAMFLIX_RATE_LIMIT_LOGIN_PER_MIN": "0",
        "STREAMFLIX_RATE_LIMIT_LOGIN_ACCOUNT_PER_MIN": "0",
        "STREAMFLIX_RATE_LIMIT_API_PER_MIN": "0",
    }


def streamflix(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    out = subprocess.run(
        [str(ROOT / ".venv/bin/streamflix"), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode != 0:
        raise RuntimeError(f"streamflix {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def prepare(env: dict[str, str]) -> str:
    """The cached 1080p title's id, made (source, ingest, user) on the first run."""
    CACHE.mkdir(parents=True, exist_ok=True)
    streamflix(env, "migrate")
    marker = CACHE / "title.json"
    if marker.exists():
        title_id = json.loads(marker.read_text())["id"]
        try:
            shown = json.loads(streamflix(env, "titles", "show", title_id, "--json"))
            if shown.get("status") == "ready":
                return title_id
        except RuntimeError:
            pass  # the database was reset: ingest again
    source = CACHE / "source-1080p.mp4"
    if not source.exists():
        print(f"viewers: making a {SOURCE_S} s 1080p source with ffmpeg (once)", flush=True)
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=25:duration={SOURCE_S}"]
            + ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SOURCE_S}"]
            + ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", "-g", "50", "-c:a", "aac", "-shortest"]
            + [str(source) + ".tmp.mp4"],
            check=True,
            timeout=1800,
        )
        os.replace(str(source) + ".tmp.mp4", source)
    print("viewers: ingesting it (once; a few minutes on a busy machine)", flush=True)
    title = json.loads(
        streamflix(env, "ingest", str(source), "--title", "Viewers bench 1080p", "--year", "2024", "--wait", "--json")
    )
    marker.write_text(json.dumps({"id": title["id"]}))
    return str(title["id"])


def ensure_user(env: dict[str, str]) -> None:
    try:
        streamflix(env, "users", "create", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    except RuntimeError as exc:
        if "exist" not in str(exc).lower() and "already" not in str(exc).lower():
            raise


# ---- the client process -------------------------------------------------------------------


async def playback_url(base: str, title_id: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}) as r:
            r.raise_for_status()
            access = (await r.json())["access_token"]
        async with s.post(
            f"{base}/api/v1/titles/{title_id}/playback", headers={"Authorization": f"Bearer {access}"}
        ) as r:
            r.raise_for_status()
            hls = (await r.json())["hls_url"]
    return hls if hls.startswith("http") else base + hls


async def viewer(
    master: str, deadline: float, delay: float, ttfb: list[float], errors: dict[str, int], requests: list[int]
) -> None:
    import aiohttp

    await asyncio.sleep(delay)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    conn = aiohttp.TCPConnector(limit=1, force_close=False, enable_cleanup_closed=False)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as s:

        async def get(url: str, timed: bool) -> bytes | None:
            t0 = time.perf_counter()
            try:
                async with s.get(url) as r:
                    first = time.perf_counter() - t0
                    if r.status != 200:
                        errors[f"status {r.status}"] = errors.get(f"status {r.status}", 0) + 1
                        return None
                    expected = r.content_length
                    if timed:
                        n = 0
                        async for chunk in r.content.iter_any():
                            n += len(chunk)
                        body = b""
                    else:
                        body = await r.read()
                        n = len(body)
                requests[0] += 1
                if expected is not None and n != expected:
                    errors["short body"] = errors.get("short body", 0) + 1
                    return None
                if timed:
                    ttfb.append(first)
                return body
            except TimeoutError:
                errors["stall (segment not complete in 8 s)"] = errors.get("stall (segment not complete in 8 s)", 0) + 1
            except aiohttp.ClientError as exc:
                name = type(exc).__name__
                errors[name] = errors.get(name, 0) + 1
            return None

        text = await get(master, False)
        if text is None:
            return
        rendition = next(
            line for line in text.decode().splitlines() if line and not line.startswith("#") and "v1080" in line
        )
        base = master.rsplit("/", 1)[0]
        media = await get(f"{base}/{rendition}", False)
        if media is None:
            return
        lines = media.decode().splitlines()
        mbase = f"{base}/{rendition}".rsplit("/", 1)[0]
        segments = [f"{mbase}/{line}" for line in lines if line and not line.startswith("#")]
        init = next(line.split('URI="', 1)[1].split('"', 1)[0] for line in lines if line.startswith("#EXT-X-MAP"))
        if await get(f"{mbase}/{init}", False) is None:
            return
        i = random.randrange(len(segments))
        next_at = time.monotonic()
        while next_at < deadline:
            await get(segments[i % len(segments)], True)
            i += 1
            next_at += SEGMENT_S
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def warm(master: str) -> None:
    """Every 1080p segment fetched once: the origin's object cache and the page cache hold
    them, as they do on any origin that has been serving a while."""
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.get(master) as r:
            text = await r.text()
        base = master.rsplit("/", 1)[0]
        rendition = next(ln for ln in text.splitlines() if ln and not ln.startswith("#") and "v1080" in ln)
        media = f"{base}/{rendition}"
        async with s.get(media) as r:
            lines = (await r.text()).splitlines()
        mbase = media.rsplit("/", 1)[0]
        for line in lines:
            if line and not line.startswith("#"):
                async with s.get(f"{mbase}/{line}") as r:
                    await r.read()


async def client(args: argparse.Namespace) -> None:
    master = await playback_url(args.base, args.title_id)
    if args.warm:
        await warm(master)
        return
    ttfb: list[float] = []
    errors: dict[str, int] = {}
    requests = [0]
    start = time.monotonic()
    deadline = start + args.seconds
    cpu0 = time.process_time()
    lags: list[float] = []

    async def ticker() -> None:
        # How late this process's own timers fire: when it is as large as the TTFB, the
        # time goes to waiting for a CPU (this process's or the machine's), not to the server.
        while time.monotonic() < deadline:
            t = time.monotonic()
            await asyncio.sleep(0.05)
            lags.append(time.monotonic() - t - 0.05)

    await asyncio.gather(
        ticker(),
        *(viewer(master, deadline, random.uniform(0, SEGMENT_S), ttfb, errors, requests) for _ in range(args.viewers)),
    )
    json.dump(
        {"ttfb": ttfb, "errors": errors, "requests": requests[0], "cpu_s": time.process_time() - cpu0, "lag": lags},
        sys.stdout,
    )


# ---- the driver ---------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def step(args: argparse.Namespace, base: str, title_id: str, server_pid: int, n: int) -> dict[str, Any]:
    per = [n // args.clients + (1 if i < n % args.clients else 0) for i in range(args.clients)]
    cpu0, t0 = tree_cpu_s(server_pid), time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--client", "--base", base, "--title-id", title_id]
            + ["--viewers", str(k), "--seconds", str(args.step_seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in per
        if k
    ]
    rss = 0.0
    while any(p.poll() is None for p in procs) and time.monotonic() - t0 < args.step_seconds + 60:
        time.sleep(1)
        rss = max(rss, tree_rss_mb(server_pid))
    results = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=max(1.0, args.step_seconds + 60 - (time.monotonic() - t0)))
            results.append(json.loads(out))
        except (subprocess.TimeoutExpired, json.JSONDecodeError):
            p.kill()
            p.wait()
            results.append({"ttfb": [], "errors": {"client process failed": 1}, "requests": 0, "cpu_s": 0.0, "lag": []})
    elapsed = time.monotonic() - t0
    cpu = tree_cpu_s(server_pid) - cpu0
    ttfb = sorted(x for r in results for x in r["ttfb"])
    lag = sorted(x for r in results for x in r["lag"])
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    return {
        "viewers": n,
        "requests": sum(r["requests"] for r in results),
        "segments": len(ttfb),
        "p50_ms": percentile(ttfb, 0.50) * 1000,
        "p99_ms": percentile(ttfb, 0.99) * 1000,
        "errors": errors,
        "server_cpu_pct": cpu / elapsed * 100,
        "server_rss_mb": rss,
        "client_cpu_pct": sum(r["cpu_s"] for r in results) / elapsed * 100,
        "client_lag_p99_ms": percentile(lag, 0.99) * 1000,
        "load": os.getloadavg()[0],
    }


def run_workers(args: argparse.Namespace, env: dict[str, str], title_id: str, workers: int) -> int:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/streamflix"), "serve", "--host", "127.0.0.1", "--port", str(port)]
        + ["--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(CACHE / f"serve-{workers}.err", "wb"),  # lives as long as the server
    )
    held = 0
    try:
        wait_http(f"{base}/healthz")
        urllib.request.urlopen(f"{base}/readyz", timeout=10).read()
        print(
            f"\nserve --workers {workers}: {args.clients} client processes, {args.step_seconds} s per step, "
            f"load avg {os.getloadavg()[0]:.1f}, cpus={os.cpu_count()}"
        )
        print(
            f"{'viewers':>8} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
            f"{'server CPU%':>11} {'server RSS MB':>13} {'client CPU%':>11} {'client lag p99':>14} {'load':>5}  held"
        )
        subprocess.run(
            [sys.executable, __file__, "--client", "--warm", "--base", base, "--title-id", title_id],
            check=True,
            timeout=300,
        )
        for n in args.steps:
            r = step(args, base, title_id, proc.pid, n)
            nerr = sum(r["errors"].values())
            ok = nerr == 0 and r["p99_ms"] < args.p99_ms and r["segments"] > 0
            print(
                f"{n:>8} {r['requests']:>9} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {nerr:>7} "
                f"{r['server_cpu_pct']:>11.0f} {r['server_rss_mb']:>13.0f} {r['client_cpu_pct']:>11.0f} "
                f"{r['client_lag_p99_ms']:>14.1f} {r['load']:>5.1f}  "
                f"{'yes' if ok else 'NO'}" + (f"  {r['errors']}" if nerr else ""),
                flush=True,
            )
            if not ok:
                break
            held = n
        target = f"; target >= 2000 on one process: {'ok' if held >= 2000 else 'MISSED'}" if workers == 1 else ""
        print(f"serve --workers {workers}: held {held} viewers (p99 TTFB < {args.p99_ms:.0f} ms, no errors){target}")
        return held
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,2, not {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected positive numbers like 1,2")
    return values


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int_list, default=[1, 2], help="serve --workers counts (default 1,2)")
    ap.add_argument("--steps", type=int_list, default=[500, 1000, 2000, 3000, 4000, 5000, 6000])
    ap.add_argument("--step-seconds", type=int, default=24)
    ap.add_argument("--clients", type=int, default=2, help="client processes (default 2)")
    ap.add_argument("--p99-ms", type=float, default=100.0)
    # The client process (run by the driver).
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--base", help=argparse.SUPPRESS)
    ap.add_argument("--title-id", help=argparse.SUPPRESS)
    ap.add_argument("--viewers", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    raise_nofile()
    if args.client:
        try:
            import uvloop

            uvloop.run(client(args))
        except ImportError:
            asyncio.run(client(args))
        return 0

    from server.settings import Settings

    env = server_env(Settings.load().database_url)
    title_id = prepare(env)
    ensure_user(env)
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(f"bench/viewers.py: title {title_id} (1080p, {SOURCE_S} s), open-file limit {soft}")
    held = {w: run_workers(args, env, title_id, w) for w in args.workers}
    print("\nviewers held: " + ", ".join(f"{w} process(es): {n}" for w, n in held.items()))
    return 0 if held.get(1, 2000) >= 2000 else 1


if __name__ == "__main__":
    sys.exit(main())
