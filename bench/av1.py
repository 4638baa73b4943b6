"""Benchmark (not a test): AV1 rungs (libsvtav1) against the H.264 rungs (libx264) they sit beside.

    .venv/bin/python bench/av1.py [--seconds 4] [--heights 1080,720] [--preset veryfast]

Generates a 1080p30 source (testsrc2 with light temporal noise, which costs an encoder more
bits than clean testsrc2; near-lossless x264, cached in bench/out/), plans the ladder with AV1
copies of `--heights`, and encodes the H.264 rungs of those heights in one ffmpeg and the AV1
rungs in another, as the worker's task groups do (the real argv from `transcoder.command`).
For each rung it prints the bits (kbit/s over the clip) and the SSIM against the source
scaled to the rung (ffmpeg's `ssim` filter, "All"); then the CPU seconds of each encode and
AV1/H.264 ratios. AV1 is planned at 0.6x the H.264 bitrate.

Then the bits at equal SSIM: an AV1 rung whose SSIM is under its H.264 rung's (to the 4
decimals printed) is encoded again alone at 0.05x steps more of the H.264 bitrate (maxrate and
buffer scaled alike) until it is not. Target: >= 30 % fewer bits than the H.264 rung at equal
or better SSIM, for every rung compared.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import ssim  # noqa: E402

from media.probe import probe  # noqa: E402
from transcoder.command import AV1_PRESET, build_ffmpeg_args  # noqa: E402
from transcoder.ladder import (  # noqa: E402
    AV1_BITRATE_FACTOR,
    BUFSIZE_FACTOR,
    MAXRATE_FACTOR,
    Ladder,
    Rung,
    parse_av1_heights,
    plan_ladder,
)

OUT = ROOT / "bench" / "out"


def make_source(seconds: float) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"av1-src-1080p-{seconds:g}s-noise5.mp4"
    if not path.exists():
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi",
             "-i", f"testsrc2=size=1920x1080:rate=30:duration={seconds},noise=alls=5:allf=t",
             "-c:v", "libx264", "-preset", "ultrafast", "-crf", "4", "-pix_fmt", "yuv420p", str(path)],
            check=True,
        )  # fmt: skip
    return path


def encode(source: Path, ladder: Ladder, rungs: tuple[Rung, ...], out: Path, preset: str) -> float:
    """CPU seconds (user + system) of the one ffmpeg that encodes `rungs`."""
    shutil.rmtree(out, ignore_errors=True)
    for r in rungs:
        (out / r.id).mkdir(parents=True)
    only = dataclasses.replace(ladder, rungs=rungs, audios=())
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(build_ffmpeg_args(str(source), only, out, preset=preset), check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def rung_bits(out: Path, rung: Rung) -> int:
    return 8 * sum(p.stat().st_size for p in (out / rung.id).glob("*.m4s"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--heights", default="1080,720", help="rung heights to compare (default 1080,720)")
    ap.add_argument("--preset", default="veryfast", help="the x264 preset (STREAMFLIX_X264_PRESET)")
    args = ap.parse_args()
    heights = parse_av1_heights(args.heights)

    source = make_source(args.seconds)
    ladder = plan_ladder(asyncio.run(probe(str(source))), av1_heights=heights)
    wanted = {f"v{h}" for h in heights}
    h264 = tuple(r for r in ladder.h264_rungs if r.id in wanted)
    av1 = ladder.av1_rungs
    assert ladder.fps is not None
    print(f"source {source.name}: {args.seconds:g} s 1080p30, x264 preset {args.preset}, SVT-AV1 preset {AV1_PRESET}")

    results = {}
    measured: dict[str, tuple[float, float]] = {}  # rung id -> (kbit/s, SSIM)
    for name, rungs in (("h264", h264), ("av1", av1)):
        out = OUT / f"av1-{name}"
        wall = time.monotonic()
        cpu = encode(source, ladder, rungs, out, args.preset)
        wall = time.monotonic() - wall
        results[name] = (cpu, wall)
        for r in rungs:
            kbps = rung_bits(out, r) / args.seconds / 1000
            measured[r.id] = (kbps, round(ssim(source, out, r, ladder.fps), 4))
            print(
                f"  {r.id:<10} {r.width}x{r.height}  target {r.video_bitrate / 1000:>6.0f} kbit/s  "
                f"got {kbps:>7.0f} kbit/s  SSIM {measured[r.id][1]:.4f}"
            )
        print(f"  {name} encode: {cpu:.1f} s CPU, {wall:.1f} s wall")
    (h_cpu, h_wall), (a_cpu, a_wall) = results["h264"], results["av1"]
    print(f"AV1 / H.264 encode time: {a_cpu / h_cpu:.2f}x CPU, {a_wall / h_wall:.2f}x wall")

    print("bits at equal or better SSIM:")
    met = True
    for r in av1:
        base = next(h for h in h264 if h.height == r.height)
        h_kbps, h_ssim = measured[base.id]
        factor = AV1_BITRATE_FACTOR
        kbps, got = measured[r.id]
        while got < h_ssim and factor < 1.0:
            factor = round(factor + 0.05, 2)
            bitrate = round(base.video_bitrate * factor / 1000) * 1000
            again = dataclasses.replace(
                r,
                video_bitrate=bitrate,
                maxrate=round(bitrate * MAXRATE_FACTOR),
                bufsize=round(bitrate * BUFSIZE_FACTOR),
            )
            out = OUT / "av1-match"
            encode(source, ladder, (again,), out, args.preset)
            kbps, got = rung_bits(out, again) / args.seconds / 1000, round(ssim(source, out, again, ladder.fps), 4)
            print(f"  {r.id:<10} at {factor:.2f}x: {kbps:>7.0f} kbit/s  SSIM {got:.4f}")
        saved = 1 - kbps / h_kbps
        ok = got >= h_ssim and saved >= 0.30
        met &= ok
        print(
            f"  {r.id:<10} {kbps:>7.0f} kbit/s at SSIM {got:.4f} against {base.id} {h_kbps:.0f} kbit/s at "
            f"{h_ssim:.4f}: {saved:.0%} fewer bits  {'PASS' if ok else 'MISS'} (>= 30 %)"
        )
    print("target met" if met else "target MISSED")


if __name__ == "__main__":
    main()
