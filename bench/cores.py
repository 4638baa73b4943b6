"""Benchmark (not a test): how much two cores of this machine give two independent encodes.

    .venv/bin/python bench/cores.py [--seconds 20] [--rounds 3]

`bench/scaleout.py` asks one title's ladder on two pinned workers to finish >= 1.8x faster
than on one. That target assumes two cores do twice the work of one. This measures what this
machine actually gives, with nothing of ours in the way: the same single-thread x264 encode
(a 1080p testsrc2 source scaled to 720p, veryfast, 3 Mb/s, as a chunk task encodes) pinned
to core 0 alone, then two copies at once pinned to cores 0 and 1. Rounds alternate (alone,
pair, alone, pair, ...) and the medians are compared:

    ceiling = 2 x alone / pair     (2.00 when the cores do not slow each other down)

A scale-out figure is then read against this ceiling, not against 2.0: on a virtual machine
whose two vCPUs share a physical core, a memory bus or a CPU quota, no scheduler of ours can
beat it. The CPU seconds per encode (user + system, from the children's rusage) are printed
too: when a pair's encodes each take more CPU seconds than one alone, the cores slow each
other down (shared caches, memory, clock); when they take the same CPU seconds but more wall
time, other work on the machine took the difference, and the scale-out run beside it had
that much less than two cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
TARGET = 1.8  # bench/scaleout.py's (c)/(d) target


def source(seconds: int) -> Path:
    path = OUT / f"cores-1080p-{seconds}s.mp4"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.mp4")
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30",
             "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-g", "60", str(tmp)],
            check=True,
        )  # fmt: skip
        tmp.rename(path)
    return path


def encode_cmd(src: Path, core: int) -> list[str]:
    return [
        "taskset", "-c", str(core), "ffmpeg", "-v", "error", "-nostdin", "-threads", "1", "-i", str(src),
        "-vf", "scale=1280:720", "-c:v", "libx264", "-preset", "veryfast", "-threads", "1",
        "-b:v", "3000k", "-maxrate", "4500k", "-bufsize", "6000k", "-an", "-f", "null", "-",
    ]  # fmt: skip


def run(src: Path, cores: list[int]) -> tuple[float, float]:
    """Wall seconds for encodes on `cores` at once, and CPU seconds per encode."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    procs = [subprocess.Popen(encode_cmd(src, core)) for core in cores]
    codes = [p.wait() for p in procs]
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if any(codes):
        sys.exit(f"ffmpeg failed: exit {codes}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu / len(cores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20, help="source length (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds (default 3)")
    args = parser.parse_args()
    if not shutil.which("ffmpeg") or not shutil.which("taskset"):
        sys.exit("bench/cores.py needs ffmpeg and taskset (scripts/setup.sh installs ffmpeg)")
    if (os.cpu_count() or 1) < 2:
        sys.exit("bench/cores.py needs two cores")
    src = source(args.seconds)
    print(f"cores.py: {args.seconds} s 1080p -> 720p veryfast threads 1, {args.rounds} rounds, "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    alone: list[tuple[float, float]] = []
    pair: list[tuple[float, float]] = []
    for n in range(1, args.rounds + 1):
        alone.append(run(src, [0]))
        pair.append(run(src, [0, 1]))
        print(f"  round {n}: alone {alone[-1][0]:.2f} s ({alone[-1][1]:.2f} CPU s); "
              f"pair {pair[-1][0]:.2f} s ({pair[-1][1]:.2f} CPU s each); load {os.getloadavg()[0]:.2f}")  # fmt: skip
    a_wall = statistics.median(w for w, _ in alone)
    p_wall = statistics.median(w for w, _ in pair)
    a_cpu = statistics.median(c for _, c in alone)
    p_cpu = statistics.median(c for _, c in pair)
    ceiling = 2 * a_wall / p_wall
    print(f"median: alone {a_wall:.2f} s, pair {p_wall:.2f} s; CPU per encode {a_cpu:.2f} s alone, "
          f"{p_cpu:.2f} s in a pair ({p_cpu / a_cpu:.2f}x)")  # fmt: skip
    print(f"ceiling: two cores give {ceiling:.2f}x one core's throughput "
          f"(ideal 2.00; bench/scaleout.py's target {TARGET:.1f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
