"""Benchmark (not a test): the transcode pipeline against hand-written ffmpeg commands.

    .venv/bin/python bench/transcode.py [--seconds 60] [--preset veryfast] [--repeat 1]

Generates a 1080p30 testsrc2 + sine source (cached in bench/out/, gitignored), then encodes
it to the 4-rung ladder 1080/720/480/360 + AAC three ways and prints the wall times:

  (a) pipeline     `transcoder.pipeline.transcode()`: plan, one ffmpeg, read-back, checks
  (b) hand-written one ffmpeg command, written out literally below: the reference
  (c) sequential   four single-rung ffmpeg commands, one after the other (each decodes)

Target: pipeline <= 1.05x hand-written.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from media.probe import probe  # noqa: E402
from transcoder.ladder import plan_ladder  # noqa: E402
from transcoder.pipeline import transcode  # noqa: E402

OUT = ROOT / "bench" / "out"
TARGET = 1.05

# (id, width, height, -b:v, -maxrate, -bufsize, -level): what the ladder plans for 1080p30.
RUNGS = [
    ("v1080", 1920, 1080, "5000000", "7500000", "10000000", "4.0"),
    ("v720", 1280, 720, "3000000", "4500000", "6000000", "3.1"),
    ("v480", 854, 480, "1200000", "1800000", "2400000", "3.1"),
    ("v360", 640, 360, "700000", "1050000", "1400000", "3.0"),
]


def hand_written(src: Path, out: Path, preset: str) -> list[str]:
    """The reference: one decode, split into four, the same filters, GOP and bitrates."""
    return [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "warning",
        "-nostats",
        "-i",
        str(src),
        "-filter_complex",
        "[0:0]fps=fps=30,split=4[a][b][c][d];"
        "[a]scale=w=1920:h=1080,setsar=1,format=yuv420p[v0];"
        "[b]scale=w=1280:h=720,setsar=1,format=yuv420p[v1];"
        "[c]scale=w=854:h=480,setsar=1,format=yuv420p[v2];"
        "[d]scale=w=640:h=360,setsar=1,format=yuv420p[v3]",
        "-map",
        "[v0]",
        "-map",
        "[v1]",
        "-map",
        "[v2]",
        "-map",
        "[v3]",
        "-map",
        "0:1",
        "-c:v",
        "libx264",
        "-preset:v",
        preset,
        "-pix_fmt:v",
        "yuv420p",
        "-g:v",
        "60",
        "-keyint_min:v",
        "60",
        "-sc_threshold:v",
        "0",
        "-x264-params:v",
        "keyint=60:min-keyint=60:scenecut=0",
        "-b:v:0",
        "5000000",
        "-maxrate:v:0",
        "7500000",
        "-bufsize:v:0",
        "10000000",
        "-profile:v:0",
        "high",
        "-level:v:0",
        "4.0",
        "-b:v:1",
        "3000000",
        "-maxrate:v:1",
        "4500000",
        "-bufsize:v:1",
        "6000000",
        "-profile:v:1",
        "high",
        "-level:v:1",
        "3.1",
        "-b:v:2",
        "1200000",
        "-maxrate:v:2",
        "1800000",
        "-bufsize:v:2",
        "2400000",
        "-profile:v:2",
        "high",
        "-level:v:2",
        "3.1",
        "-b:v:3",
        "700000",
        "-maxrate:v:3",
        "1050000",
        "-bufsize:v:3",
        "1400000",
        "-profile:v:3",
        "high",
        "-level:v:3",
        "3.0",
        "-c:a",
        "aac",
        "-b:a",
        "128000",
        "-ac",
        "2",
        "-ar",
        "48000",
        "-map_metadata",
        "-1",
        "-map_chapters",
        "-1",
        "-f",
        "hls",
        "-hls_time",
        "4",
        "-hls_playlist_type",
        "vod",
        "-hls_segment_type",
        "fmp4",
        "-hls_flags",
        "independent_segments",
        "-hls_fmp4_init_filename",
        "%v/init.mp4",
        "-hls_segment_filename",
        f"{out}/%v/%d.m4s",
        "-hls_start_number_source",
        "generic",
        "-start_number",
        "1",
        "-var_stream_map",
        "v:0,name:v1080 v:1,name:v720 v:2,name:v480 v:3,name:v360 a:0,name:a0",
        f"{out}/%v.m3u8",
    ]


def single_rung(src: Path, out: Path, preset: str, rung: tuple, with_audio: bool) -> list[str]:
    rid, w, h, b, maxrate, bufsize, level = rung
    audio = ["-map", "0:1", "-c:a", "aac", "-b:a", "128000", "-ac", "2", "-ar", "48000"] if with_audio else []
    names = f"v:0,name:{rid}" + (" a:0,name:a0" if with_audio else "")
    init = "%v/init.mp4" if with_audio else f"{rid}/init.mp4"
    return [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "warning",
        "-nostats",
        "-i",
        str(src),
        "-filter_complex",
        f"[0:0]fps=fps=30,scale=w={w}:h={h},setsar=1,format=yuv420p[v0]",
        "-map",
        "[v0]",
        *audio,
        "-c:v",
        "libx264",
        "-preset:v",
        preset,
        "-pix_fmt:v",
        "yuv420p",
        "-g:v",
        "60",
        "-keyint_min:v",
        "60",
        "-sc_threshold:v",
        "0",
        "-x264-params:v",
        "keyint=60:min-keyint=60:scenecut=0",
        "-b:v:0",
        b,
        "-maxrate:v:0",
        maxrate,
        "-bufsize:v:0",
        bufsize,
        "-profile:v:0",
        "high",
        "-level:v:0",
        level,
        "-map_metadata",
        "-1",
        "-map_chapters",
        "-1",
        "-f",
        "hls",
        "-hls_time",
        "4",
        "-hls_playlist_type",
        "vod",
        "-hls_segment_type",
        "fmp4",
        "-hls_flags",
        "independent_segments",
        "-hls_fmp4_init_filename",
        init,
        "-hls_segment_filename",
        f"{out}/%v/%d.m4s",
        "-hls_start_number_source",
        "generic",
        "-start_number",
        "1",
        "-var_stream_map",
        names,
        f"{out}/%v.m3u8",
    ]


def make_source(seconds: int) -> Path:
    src = OUT / f"source_1080p30_{seconds}s.mp4"
    if not src.exists():
        print(f"generating {src.relative_to(ROOT)} ...", flush=True)
        tmp = src.with_suffix(".tmp.mp4")
        subprocess.run(
            [
                "ffmpeg",
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=size=1920x1080:rate=30:duration={seconds}",
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "18",
                "-pix_fmt",
                "yuv420p",
                "-g",
                "60",
                "-c:a",
                "aac",
                "-b:a",
                "192k",
                str(tmp),
            ],
            check=True,
        )
        tmp.rename(src)
    return src


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def timed_run(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument(
        "--repeat", type=int, default=1, help="rounds of (b) and (a), best time of each kept (noisy machines)"
    )
    opts = ap.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    src = make_source(opts.seconds)
    probed = asyncio.run(probe(str(src)))
    planned = [
        (r.id, r.width, r.height, str(r.video_bitrate), str(r.maxrate), str(r.bufsize), r.level_name)
        for r in plan_ladder(probed).rungs
    ]
    if planned != RUNGS:
        sys.exit(f"the ladder changed; update RUNGS in this script: {planned}")

    # Alternate (b) and (a), reference first so page-cache warm-up favours it, and keep each
    # one's best time: on a shared machine other load only ever adds time.
    hands, pipelines = [], []
    for round_ in range(1, opts.repeat + 1):
        hands.append(timed_run(hand_written(src, fresh(OUT / "hand"), opts.preset)))
        print(f"[{round_}] hand-written  {hands[-1]:8.1f} s", flush=True)
        started = time.perf_counter()
        presentation = asyncio.run(
            transcode(
                str(src),
                probed,
                fresh(OUT / "pipeline"),
                title_id="bench",
                version="v1",
                preset=opts.preset,
            )
        )
        pipelines.append(time.perf_counter() - started)
        print(
            f"[{round_}] pipeline      {pipelines[-1]:8.1f} s  ({', '.join(r.id for r in presentation.renditions)})",
            flush=True,
        )
    hand, pipeline = min(hands), min(pipelines)

    seq_out = fresh(OUT / "sequential")
    sequential = sum(
        timed_run(single_rung(src, seq_out, opts.preset, rung, with_audio=(i == 0))) for i, rung in enumerate(RUNGS)
    )
    print(f"    sequential    {sequential:8.1f} s", flush=True)

    ratio = pipeline / hand
    print()
    print(
        f"hand-written {hand:.1f} s, pipeline {pipeline:.1f} s, sequential {sequential:.1f} s"
        + (f" (best of {opts.repeat})" if opts.repeat > 1 else "")
    )
    print(f"source: {opts.seconds} s 1080p30, preset {opts.preset}, ladder {'/'.join(r[0][1:] for r in RUNGS)} + AAC")
    print(
        f"pipeline / hand-written   = {ratio:.3f}x  (target <= {TARGET:.2f}x: {'met' if ratio <= TARGET else 'MISSED'})"
    )
    print(f"sequential / hand-written = {sequential / hand:.3f}x")


if __name__ == "__main__":
    main()
