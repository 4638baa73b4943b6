"""Benchmark (not a test): capped CRF against the fixed table's average bitrate, rung by rung.

    .venv/bin/python bench/capped_crf.py [--crf 18,21,23] [--sources low,medium,high] [--seconds 10]

On `bench/ladder.py`'s three 1080p30 sources (generated there, cached in bench/out/), each
fixed-table H.264 rung is encoded alone, 2 s keyframes, x264 `veryfast`, with the table's VBV
(maxrate 1.5x and buffer 2x the average, what BANDWIDTH advertises): once as the worker
encodes it (`-b:v` at the table's average: the reference) and once per CRF with the same VBV
cap (`-crf N -maxrate -bufsize`: "capped CRF", where a picture takes the bits its quality
needs, up to the cap). Printed per rung and mode: kbit/s over the clip and SSIM ("All")
against the source scaled to the rung.

What it answers: whether capped CRF could replace the average-bitrate rate control for
per-title rungs (docs/transcode.md "Per-title ladder"), under that ladder's rule: fewer bits
with every rung's SSIM equal or better to 4 decimals on the low source, no rung's SSIM worse on
the high one.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import ssim_of  # noqa: E402
from ladder import make_source  # noqa: E402  (bench/ladder.py)

from media.probe import probe  # noqa: E402
from transcoder.ladder import Rung, plan_ladder  # noqa: E402

OUT = ROOT / "bench" / "out" / "capped_crf"
GOP_S = 2


def encode(source: Path, out: Path, rung: Rung, fps: float, crf: int | None) -> None:
    rate = ["-b:v", str(rung.video_bitrate)] if crf is None else ["-crf", str(crf)]
    gop = str(round(GOP_S * fps))
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(source), "-an",
         "-vf", f"scale={rung.width}:{rung.height}:flags=bicubic,format=yuv420p",
         "-c:v", "libx264", "-preset", "veryfast", *rate,
         "-maxrate", str(rung.maxrate), "-bufsize", str(rung.bufsize),
         "-g", gop, "-keyint_min", gop, "-sc_threshold", "0", str(out)],
        check=True,
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crf", default="18,21,23")
    ap.add_argument("--sources", default="low,medium,high")
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    crfs = [int(c) for c in args.crf.split(",")]
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"{'source':7}{'rung':6}" + "".join(f"{'table avg' if c is None else f'crf {c}':>22}" for c in [None, *crfs]))
    for name in args.sources.split(","):
        source = make_source(name, args.seconds)
        p = asyncio.run(probe(str(source)))
        ladder = plan_ladder(p, segment_s=4)
        fps = float(ladder.fps_fraction or 30)
        for rung in ladder.h264_rungs:
            cells = []
            for crf in [None, *crfs]:
                out = OUT / f"{name}-{rung.id}-{crf or 'abr'}.mp4"
                encode(source, out, rung, fps, crf)
                kbps = 8 * out.stat().st_size / args.seconds / 1000
                cells.append(f"{kbps:8.0f} kb/s {ssim_of(out, source, (rung.width, rung.height), ladder.fps):.4f}")
            print(f"{name:7}{rung.id:6}" + "".join(f"{c:>22}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
