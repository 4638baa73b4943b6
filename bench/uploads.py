"""Resumable upload throughput: one 1 GiB upload over tus into a real `streamflix serve`, on
local storage and on S3 (moto's server), against `curl` PUT of the same bytes to a plain
file server (nginx with WebDAV PUT) as the reference, with the server's memory during it.

    .venv/bin/python bench/uploads.py [--mib 1024] [--backends local,s3] [--rounds 3] [--baseline DIR]

Targets: tus throughput >= 0.8x the reference on each backend; the server's RSS flat (the
body is spooled to disk, never held in memory): peak minus idle well under the size sent.

Each round times the reference and then each backend, one after the other, after a `sync`
(so one write's dirty pages do not throttle the next); the figures are the medians of the
rounds, each round's times printed too. Each upload is `curl` both ways (one PATCH of the
whole file for tus, as tus-js-client sends by default; a PUT for the reference), so the
client costs the same. The tus figure includes
everything until the upload is complete: the request, then joining the parts (S3
CompleteMultipartUpload, a rename on local storage) and the title's creation.

Each round also prints the CPU seconds the server (its process tree) and nginx spent on the
upload, and the server's own split from its log (received, completed): on a loaded machine
wall times swing with what else runs, CPU seconds much less.

`--baseline DIR` adds, for each backend, `BACKEND-base`: the same upload served by the code in
DIR (say an unpacked `git archive main`, put first on the server's PYTHONPATH), so a change is
measured against the code before it in the same rounds; the tus runs of a round go in turn
first and last.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import free_port, moto_s3, tree_cpu_s, tree_rss_mb  # noqa: E402
from firstframe import PASSWORD, Api, Stack  # noqa: E402

OUT = ROOT / "bench" / "out"
TARGET = 0.8
NGINX = "/usr/sbin/nginx"


def source(mib: int) -> Path:
    path = OUT / f"upload-{mib}mib.bin"
    if not path.exists() or path.stat().st_size != mib * 1024 * 1024:
        OUT.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1024 * 1024))
    return path


class Sampler:
    """The peak RSS of a process tree while something runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.idle = tree_rss_mb(pid)
        self.peak = self.idle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, tree_rss_mb(self.pid))

    def stop(self) -> tuple[float, float]:
        self._stop.set()
        self._thread.join()
        return self.idle, self.peak


def curl(*args: str) -> str:
    out = subprocess.run(["curl", "-sS", "--fail-with-body", *args], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"curl {' '.join(args[:3])}...: {out.stderr.strip()} {out.stdout[-300:]}")
    return out.stdout


def reference_put(path: Path) -> tuple[float, float]:
    """(seconds, nginx's CPU seconds) for curl PUT of `path` to nginx (WebDAV PUT to its disk)."""
    prefix = ROOT / "var" / "bench" / "uploads-nginx"
    shutil.rmtree(prefix, ignore_errors=True)
    (prefix / "root").mkdir(parents=True)
    (prefix / "tmp").mkdir()
    port = free_port()
    (prefix / "nginx.conf").write_text(
        f"""daemon off;
worker_processes 1;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/tmp;
  server {{
    listen 127.0.0.1:{port};
    root {prefix}/root;
    client_max_body_size 0;
    location / {{ dav_methods PUT; create_full_put_path on; }}
  }}
}}
"""
    )
    proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf")], stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                curl("-o", "/dev/null", f"http://127.0.0.1:{port}/")
                break
            except RuntimeError as exc:
                if "404" in str(exc) or "403" in str(exc):
                    break
                time.sleep(0.1)
        os.sync()
        cpu = tree_cpu_s(proc.pid)
        started = time.perf_counter()
        curl("-T", str(path), f"http://127.0.0.1:{port}/films/source.bin")
        took = time.perf_counter() - started
        cpu = tree_cpu_s(proc.pid) - cpu
        assert (prefix / "root" / "films" / "source.bin").stat().st_size == path.stat().st_size
        return took, cpu
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(prefix, ignore_errors=True)


def header(dump: str, name: str) -> str:
    """A header's value from curl's -D dump."""
    return next(line.split(":", 1)[1].strip() for line in dump.splitlines() if line.lower().startswith(name + ":"))


def tus_upload(stack: Stack, token: str, path: Path) -> tuple[float, float, float, float]:
    """(seconds, idle RSS, peak RSS, the server's CPU seconds) of one tus upload of `path` in a
    single PATCH."""
    auth = f"Authorization: Bearer {token}"
    size = path.stat().st_size
    headers = curl(
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-X",
        "POST",
        "-H",
        auth,
        "-H",
        "Tus-Resumable: 1.0.0",
        "-H",
        f"Upload-Length: {size}",
        "-H",
        "Upload-Metadata: title QmVuY2g=,filename YmVuY2gubXA0",
        stack.base + "/api/v1/uploads/tus",
    )
    location = next(
        line.split(":", 1)[1].strip() for line in headers.splitlines() if line.lower().startswith("location:")
    )
    sampler = Sampler(stack.procs["serve"].pid)
    os.sync()
    cpu = tree_cpu_s(stack.procs["serve"].pid)
    started = time.perf_counter()
    answer = curl(
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-X",
        "PATCH",
        "-T",
        str(path),
        "-H",
        auth,
        "-H",
        "Tus-Resumable: 1.0.0",
        "-H",
        "Upload-Offset: 0",
        "-H",
        "Content-Type: application/offset+octet-stream",
        "-H",
        "Expect:",
        stack.base + location,
    )
    took = time.perf_counter() - started
    cpu = tree_cpu_s(stack.procs["serve"].pid) - cpu
    idle, peak = sampler.stop()
    offset = next(
        int(line.split(":", 1)[1]) for line in answer.splitlines() if line.lower().startswith("upload-offset:")
    )
    if offset != size:
        raise RuntimeError(f"the upload ended at {offset} of {size} bytes")
    return took, idle, peak, cpu


def split(stack: Stack) -> dict[str, float]:
    """The server's own split of the upload, from its log line ("... received in 1.10 s, stored
    in 0.00 s, completed in 0.03 s")."""
    found = re.findall(r"(received|stored|completed) in ([0-9.]+) s", (stack.dir / "serve.log").read_text())
    return {f"{name}_s": float(value) for name, value in found[-3:]}


def run_backend(name: str, path: Path, baseline: Path | None = None) -> dict[str, float]:
    extra: dict[str, str] = {}
    moto = None
    if name.endswith("-base") and baseline is not None:
        # the server and its packages imported from the baseline checkout, not this one
        extra = {"PYTHONPATH": str(baseline.resolve())}
    if name.removesuffix("-base") == "s3":
        moto, s3_env = moto_s3("bench-uploads")
        extra |= s3_env
    stack = Stack(f"uploads-{name}", workers=0, extra_env=extra)
    try:
        stack.start()
        stack.cli("users", "create", "admin-uploads@example.com", "--admin", "--password-stdin", stdin=PASSWORD + "\n")
        status, body = Api(stack.base).call(
            "POST", "/auth/login", {"email": "admin-uploads@example.com", "password": PASSWORD}
        )
        if status != 200:
            raise RuntimeError(f"login: {status} {body}")
        took, idle, peak, cpu = tus_upload(stack, str(body["access_token"]), path)
        result = {"seconds": took, "idle_mib": idle, "peak_mib": peak, "cpu_s": cpu, **split(stack)}
        if moto is not None:
            # context: the same bytes PUT straight into moto, one request (moto keeps objects
            # in its own memory, and joins multipart uploads in Python)
            os.sync()
            started = time.perf_counter()
            curl("-T", str(path), f"{extra['STREAMFLIX_S3_ENDPOINT_URL']}/bench-uploads/direct.bin")
            result["moto_put_s"] = time.perf_counter() - started
        return result
    finally:
        stack.stop()
        if moto is not None:
            moto.terminate()
            moto.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=1024, help="size of the upload (MiB)")
    parser.add_argument("--backends", default="local,s3")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--baseline", type=Path, help="also time each backend served by the code in DIR")
    args = parser.parse_args()
    path = source(args.mib)
    mib = args.mib
    backends = args.backends.split(",")
    if args.baseline is not None:
        backends += [f"{b}-base" for b in backends]
    print(f"upload of {mib} MiB, {os.cpu_count()} cores, {args.rounds} round(s), load {os.getloadavg()[0]:.1f}")
    refs: list[float] = []
    ref_cpu: list[float] = []
    runs: dict[str, list[dict[str, float]]] = {b: [] for b in backends}
    for n in range(1, args.rounds + 1):
        took, cpu = reference_put(path)
        refs.append(took)
        ref_cpu.append(cpu)
        line = [f"round {n}: nginx {refs[-1]:.2f} s (CPU {cpu:.2f} s)"]
        # the tus backends alternate their order, so neither always runs right after nginx
        for backend in backends if n % 2 else backends[::-1]:
            runs[backend].append(run_backend(backend, path, args.baseline))
            r = runs[backend][-1]
            line.append(
                f"{backend} {r['seconds']:.2f} s (CPU {r['cpu_s']:.2f} s; received {r.get('received_s', 0):.2f} s, "
                f"completed {r.get('completed_s', 0):.2f} s)"
            )
        print(", ".join(line) + f" (load {os.getloadavg()[0]:.1f})", flush=True)
    ref = statistics.median(refs)
    print(
        f"reference: curl PUT to nginx (WebDAV): {ref:.2f} s median, {mib / ref:.0f} MiB/s; "
        f"nginx CPU {statistics.median(ref_cpu):.2f} s median"
    )
    ok = True
    for backend in backends:
        took = statistics.median(r["seconds"] for r in runs[backend])
        idle = min(r["idle_mib"] for r in runs[backend])
        peak = max(r["peak_mib"] for r in runs[backend])
        ratio = ref / took
        passed = ratio >= TARGET
        ok &= passed or backend.endswith("-base")  # the baseline is context, not the target
        print(
            f"tus on {backend:5}: {took:.2f} s median, {mib / took:.0f} MiB/s = {ratio:.2f}x the reference "
            f"(target >= {TARGET}x: {'PASS' if passed else 'MISS'}); server RSS {idle:.0f} MiB idle, "
            f"{peak:.0f} MiB peak (+{peak - idle:.0f} MiB for {mib} MiB sent); "
            f"server CPU {statistics.median(r['cpu_s'] for r in runs[backend]):.2f} s median"
        )
        moto = [r["moto_put_s"] for r in runs[backend] if "moto_put_s" in r]
        if moto:
            moto_s = statistics.median(moto)
            print(f"  for context: curl PUT straight into moto: {moto_s:.2f} s median, {mib / moto_s:.0f} MiB/s")
    for backend in [b for b in backends if f"{b}-base" in runs]:
        # the same rounds, so the load each saw is alike: the ratio of each round's pair
        pairs = [b["seconds"] / c["seconds"] for b, c in zip(runs[f"{backend}-base"], runs[backend], strict=True)]
        wins = sum(p > 1 for p in pairs)
        print(
            f"{backend} against {backend}-base, round by round: {statistics.median(pairs):.2f}x the speed "
            f"(median), faster in {wins} of {len(pairs)} rounds"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
