"""Small helpers the benchmark scripts share (they run as `python bench/NAME.py`, which puts
this folder on sys.path)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

# The system's chromium, driven by Playwright (never a downloaded browser), headless, with
# muted test videos starting without a click.
CHROMIUM = os.environ.get("STREAMFLIX_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    """Poll until `url` answers 2xx, or raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout} s") from None
            time.sleep(0.1)


def tree(pid: int) -> list[int]:
    """`pid` and every descendant process, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def tree_cpu_s(pid: int, *, reaped: bool = False) -> float:
    """User + system seconds of `pid`'s tree; with `reaped`, those of the children its
    processes have already waited for too (an ffmpeg that has finished)."""
    last = 15 if reaped else 13
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:last])
        except OSError:
            continue
    return total / os.sysconf("SC_CLK_TCK")


def moto_s3(bucket: str) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """moto's S3 server on a free port with `bucket` made: the process, and the environment
    that points a StreamFlix process at it (`s3://{bucket}/media`)."""
    import boto3

    creds = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    for k, v in creds.items():
        os.environ.setdefault(k, v)
    port = free_port()
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [str(root / ".venv/bin/moto_server"), "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_http(endpoint + "/moto-api/", timeout=30)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return proc, {"STREAMFLIX_STORAGE_URL": f"s3://{bucket}/media", "STREAMFLIX_S3_ENDPOINT_URL": endpoint, **creds}


def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid`'s tree, in MiB."""
    kb = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                kb += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return kb / 1024


def ssim(source: Path, out: Path, rung: Any, fps: Any, size: tuple[int, int] | None = None) -> float:
    """SSIM ("All") of a rung's HLS output in `out/{rung.id}/` (init + segments, joined into
    one file) against the source at the output frame rate, scaled to the rung; with `size`
    (a dropped rung's, for its stand-in), both scaled to that size."""
    folder = out / rung.id
    whole = out / f"{rung.id}.mp4"
    segments = sorted(folder.glob("*.m4s"), key=lambda p: int(p.stem))
    whole.write_bytes(b"".join(p.read_bytes() for p in [folder / "init.mp4", *segments]))
    return ssim_of(whole, source, size or (rung.width, rung.height), fps, scaled=size is not None)


def ssim_of(encoded_file: Path, source: Path, size: tuple[int, int], fps: Any, *, scaled: bool = False) -> float:
    """SSIM ("All") of `encoded_file` against `source` at `fps`, scaled to `size`; `scaled`:
    the encoded picture is scaled to `size` too (it has another size)."""
    w, h = size
    encoded = f"[0:v]scale={w}:{h}:flags=bicubic[enc];[enc]" if scaled else "[0:v]"
    graph = f"[1:v]fps={fps},scale={w}:{h},format=yuv420p[ref];{encoded}[ref]ssim"
    run = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostats",
            "-i",
            str(encoded_file),
            "-i",
            str(source),
            "-lavfi",
            graph,
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"All:([0-9.]+)", run.stderr)
    if not found:
        raise RuntimeError(f"no SSIM in ffmpeg's output: {run.stderr[-300:]}")
    return float(found.group(1))
