"""Benchmark (not a test): per-title ladders against the fixed table, on three 1080p30 sources.

    .venv/bin/python bench/ladder.py [--seconds 10] [--sources low,medium,high] [--preset veryfast]

Sources (generated once, near-lossless x264, cached in bench/out/):

- low: a slide (text, boxes and a grid on white) under a slow pan (20 px/s);
- medium: testsrc2, a cartoon-like synthetic scene with a moving object and a counter;
- high: testsrc2 under heavy temporal noise (`noise=alls=40:allf=t+u`) and a moving `geq`
  pattern: nothing an encoder can predict.

For each source it plans the fixed ladder, runs the per-title complexity probe the worker runs
(`transcoder.per_title.plan`, timed) and plans the per-title ladder from its caps, then encodes
both with the worker's one-pass argv (`transcoder.command.build_ffmpeg_args`, all rungs in one
ffmpeg; once when the per-title ladder is the fixed one rung for rung, the same argv). It
prints per rung the bits (kbit/s over the clip) and the SSIM against the source scaled to the
rung (ffmpeg's `ssim` filter, "All") side by side, then the total bits and the probe's time as
a share of the fixed encode's wall time, with the load average.

A rung the per-title ladder dropped is compared with what a player would play in its place:
the highest kept rung whose peak (the largest segment's bit/s, what BANDWIDTH advertises) is
no more than the dropped fixed rung's peak (the lowest kept rung when none is), scaled
(bicubic) to the dropped rung's size, against the source scaled to that size.

Targets: on the low source >= 20 % fewer total bits, with every rung's SSIM (a dropped rung's
by its stand-in) equal or better to the 4 decimals printed; on the high source no rung's SSIM
worse to those 4 decimals.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import ssim  # noqa: E402

from media.probe import probe  # noqa: E402
from transcoder import per_title  # noqa: E402
from transcoder.command import build_ffmpeg_args  # noqa: E402
from transcoder.ladder import Ladder, Rung, plan_ladder  # noqa: E402

OUT = ROOT / "bench" / "out"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
SSIM_DECIMALS = 4  # "equal or better" as printed


def _slide() -> str:
    lines = [
        "Quarterly review - streaming costs",
        "- Fewer bits for the same picture",
        "- A ladder per title, measured",
        "- Static slides need a fraction of the bitrate",
    ]
    text = "".join(
        f",drawtext=fontfile={FONT}:text='{line}':fontsize={64 if i == 0 else 48}:fontcolor=black"
        f":x=160:y={200 + 110 * i}"
        for i, line in enumerate(lines)
    )
    return (
        "color=c=white:size=2400x1350:rate=30,drawgrid=width=120:height=120:thickness=1:color=0xdddddd,"
        "drawbox=x=1500:y=700:w=600:h=400:color=0x3366cc:t=fill,drawbox=x=160:y=150:w=2080:h=6:color=0x333333:t=fill"
        + text
        + ",crop=1920:1080:x='min(20*t,480)':y='min(10*t,270)'"
    )


SOURCES = {
    "low": _slide,
    "medium": lambda: "testsrc2=size=1920x1080:rate=30",
    "high": lambda: (
        "testsrc2=size=1920x1080:rate=30,"
        "geq=lum='clip(lum(X,Y)+40*sin(X/7+T*9)*cos(Y/5-T*7),0,255)':cb='cb(X,Y)':cr='cr(X,Y)',"
        "noise=alls=40:allf=t+u"
    ),
}


def make_source(name: str, seconds: float) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"ladder-{name}-1080p-{seconds:g}s.mp4"
    if not path.exists():
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", SOURCES[name](), "-t", f"{seconds}",
             "-c:v", "libx264", "-preset", "ultrafast", "-crf", "10", "-pix_fmt", "yuv420p", str(path)],
            check=True,
        )  # fmt: skip
    return path


def encode(source: Path, ladder: Ladder, out: Path, preset: str) -> float:
    """Wall seconds of the one ffmpeg that encodes the ladder's rungs."""
    shutil.rmtree(out, ignore_errors=True)
    for r in ladder.rungs:
        (out / r.id).mkdir(parents=True)
    only = dataclasses.replace(ladder, audios=())
    started = time.monotonic()
    subprocess.run(build_ffmpeg_args(str(source), only, out, preset=preset), check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def rung_bits(out: Path, rung: Rung) -> int:
    return 8 * sum(p.stat().st_size for p in (out / rung.id).glob("*.m4s"))


def peak_bits(out: Path, rung: Rung, segment_s: float) -> float:
    """The largest segment's bit/s (the last, shorter one counted at the full length)."""
    return max(8 * p.stat().st_size for p in (out / rung.id).glob("*.m4s")) / segment_s


def bench(name: str, seconds: float, preset: str) -> bool:
    source = make_source(name, seconds)
    p = asyncio.run(probe(str(source)))
    fixed = plan_ladder(p)
    assert fixed.fps is not None
    started = time.monotonic()
    caps, record = asyncio.run(per_title.plan(str(source), fixed, p.duration_s))
    probe_s = time.monotonic() - started
    chosen = plan_ladder(p, caps=caps or None)

    results: dict[str, dict[str, tuple[int, float]]] = {}
    peaks: dict[str, dict[str, float]] = {}
    walls = {}
    # The same rungs give the same argv: encoded once (two x264 runs of one argv differ by up to
    # 0.0002 SSIM on the noise source, which is not the ladder's doing).
    same = chosen.rungs == fixed.rungs
    for label, ladder in (("fixed", fixed), ("per-title", chosen)):
        if label == "per-title" and same:
            results[label], peaks[label], walls[label] = results["fixed"], peaks["fixed"], walls["fixed"]
            break
        out = OUT / f"ladder-{name}-{label}"
        walls[label] = encode(source, ladder, out, preset)
        results[label] = {r.id: (rung_bits(out, r), ssim(source, out, r, fixed.fps)) for r in ladder.rungs}
        peaks[label] = {r.id: peak_bits(out, r, ladder.segment_s) for r in ladder.rungs}

    bpps = [s["bpp"] for s in record.get("samples", [])]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\n{name}: {source.name}, x264 preset {preset}; probe {probe_s:.2f} s, bpp {min(bpps):.4f}-{max(bpps):.4f}; "
        f"load average {load}"
    )
    print(f"  {'rung':<6} {'fixed kbit/s':>13} {'SSIM':>7}   {'per-title kbit/s':>16} {'SSIM':>7}  {'cap':>6}")
    ok = True
    for r in fixed.rungs:
        fb, fs = results["fixed"][r.id]
        line = f"  {r.id:<6} {fb / seconds / 1000:>13.0f} {fs:>7.4f}   "
        if r.id in results["per-title"]:
            pb, ps = results["per-title"][r.id]
            line += f"{pb / seconds / 1000:>16.0f} {ps:>7.4f}  {caps.get(r.id, r.video_bitrate) // 1000:>6}"
        else:
            # what a player would play instead: the highest kept rung within the dropped
            # rung's peak, else the lowest, scaled to the dropped rung's size
            fitting = [k for k in chosen.rungs if peaks["per-title"][k.id] <= peaks["fixed"][r.id]]
            stand_in = fitting[0] if fitting else chosen.rungs[-1]
            out = OUT / f"ladder-{name}-per-title"
            ps = ssim(source, out, stand_in, fixed.fps, size=(r.width, r.height))
            line += (
                f"{'dropped: ' + stand_in.id:>16} {ps:>7.4f}  (scaled; peak {peaks['fixed'][r.id] / 1000:.0f} kbit/s)"
            )
        ok = ok and round(ps, SSIM_DECIMALS) >= round(fs, SSIM_DECIMALS)
        print(line)
    if same:
        print("  (the per-title ladder is the fixed one, rung for rung: encoded once)")
    total_fixed = sum(b for b, _ in results["fixed"].values())
    total_pt = sum(b for b, _ in results["per-title"].values())
    saving = 1 - total_pt / total_fixed
    print(
        f"  total {total_fixed / seconds / 1000:.0f} -> {total_pt / seconds / 1000:.0f} kbit/s "
        f"({saving:+.0%} saved); encodes {walls['fixed']:.1f} s fixed, {walls['per-title']:.1f} s per-title wall; "
        f"probe = {probe_s / walls['fixed']:.1%} of the fixed encode"
    )
    if name == "low":
        ok = ok and saving >= 0.20
    print(f"  target {'met' if ok else 'MISSED'}")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--sources", default="low,medium,high")
    ap.add_argument("--preset", default="veryfast", help="the x264 preset (STREAMFLIX_X264_PRESET)")
    args = ap.parse_args()
    names = [n.strip() for n in args.sources.split(",") if n.strip()]
    for n in names:
        if n not in SOURCES:
            ap.error(f"unknown source {n!r} (one of {', '.join(SOURCES)})")
    results = [bench(n, args.seconds, args.preset) for n in names]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
