"""A long title's audio encoded in parts against the one-pass (whole-timeline) audio encode.

    .venv/bin/python bench/audio_parts.py [--seconds 600] [--part-segments 30]

Makes a source (a tiny video plus two tones, one of them swept, 48 kHz stereo FLAC, so the
source's PCM is the true signal), encodes its audio once whole and once as the worker's parts (`tasks.plan_tasks`,
`chunks.encode_audio_task`), then prints, against the whole encode as the reference:
- segments whose tfdt or sample count differ (must be 0), whether every part's init is
  byte-identical to the whole's;
- the decoded PCM: max |parts - whole| over the title, and at the part boundaries
  (+-1024 samples), and the SNR of parts against whole, beside the whole encode's own coding
  error against the source's decoded PCM (a difference well under that is inaudible);
- a click check: the largest sample-to-sample step of the parts' PCM at each boundary
  against the largest step anywhere in the whole's.
- each encode's wall time, with the load average.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from media.probe import probe
from transcoder import chunks, mp4, tasks
from transcoder.ladder import plan_ladder


def make_source(path: Path, seconds: int) -> None:
    tone = "0.4*sin(2*PI*440*t)+0.2*sin(2*PI*(300+200*sin(t/7))*t)"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=160x90:rate=10:duration={seconds}",
         "-f", "lavfi", "-i", f"aevalsrc={tone}|{tone}:s=48000:d={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "20", "-c:a", "flac", str(path)],
        check=True,
    )  # fmt: skip


def pcm(files: list[Path], work: Path, name: str) -> array.array:
    """Decode init + segments (concatenated) to interleaved float samples."""
    joined = work / f"{name}.mp4"
    with joined.open("wb") as out:
        for f in files:
            out.write(f.read_bytes())
    return decode(joined)


def decode(path: Path) -> array.array:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "2", "-ar", "48000", "-"],
        check=True,
        capture_output=True,
    ).stdout
    a = array.array("f")
    a.frombytes(raw)
    return a


def segs(out: chunks.TaskOutput) -> dict[int, chunks.ChunkSegment]:
    (r,) = out.renditions.values()
    return {s.number: s for s in r.segments}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--part-segments", type=int, default=30)
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="audio-parts-"))
    source = work / "source.mkv"
    make_source(source, args.seconds)
    p = await probe(str(source))
    ladder = plan_ladder(p, segment_s=4)
    assert ladder.audio is not None
    ends = await chunks.measure_source_ends(str(source), p)
    predicted = chunks.predict_presentation(p, ladder, title_id="t", version="v", end_s=ends)
    total = len(predicted.video[0].segments)
    rid = ladder.audio.id
    print(f"source {args.seconds} s, {total} segments of 4 s, audio {ladder.audio.sample_rate} Hz; "
          f"load average {os.getloadavg()}")  # fmt: skip

    t0 = time.monotonic()
    whole = await chunks.encode_audio_task(str(source), p, ladder, work / "whole", end_s=ends)
    whole_s = time.monotonic() - t0
    specs = [s for s in tasks.plan_tasks((), rid, total, 8, audio_part_segments=args.part_segments)]
    parts: list[chunks.TaskOutput] = []
    t0 = time.monotonic()
    part_times = []
    for i, s in enumerate(specs):
        t1 = time.monotonic()
        parts.append(
            await chunks.encode_audio_task(
                str(source), p, ladder, work / f"part{i}", end_s=ends, first=s.first, count=s.count, total=total
            )
        )
        part_times.append(time.monotonic() - t1)
    parts_s = time.monotonic() - t0
    print(f"whole encode {whole_s:.2f} s; {len(specs)} parts {parts_s:.2f} s in all "
          f"(first {part_times[0]:.2f} s, median {sorted(part_times)[len(part_times) // 2]:.2f} s); "
          f"load average {os.getloadavg()}")  # fmt: skip

    w = segs(whole)
    got: dict[int, chunks.ChunkSegment] = {}
    for out in parts:
        for n, seg in segs(out).items():
            assert n not in got, f"segment {n} made twice"
            got[n] = seg
    predicted_durations = [s.duration for s in predicted.audio[0].segments]
    bad = [n for n in w if n not in got or (got[n].start, got[n].duration) != (w[n].start, w[n].duration)]
    print(f"segments: whole {len(w)}, parts {len(got)}; tfdt or sample count different: {len(bad)} {bad[:5]}; "
          f"equal to the prediction: {[w[n].duration for n in sorted(w)] == predicted_durations}")  # fmt: skip
    init = (work / "whole" / rid / "init.mp4").read_bytes()
    same_init = all((work / f"part{i}" / rid / "init.mp4").read_bytes() == init for i in range(len(specs)))
    print(f"init byte-identical in every part: {same_init}")
    mp4.parse_init(init)

    a = pcm([work / "whole" / rid / "init.mp4"] + [w[n].path for n in sorted(w)], work, "whole")
    b = pcm([work / "part0" / rid / "init.mp4"] + [got[n].path for n in sorted(got)], work, "parts")
    # The fMP4 track starts with the encoder's priming frame (no edit list): line the source up.
    src = array.array("f", bytes(4 * 2 * chunks.AAC_PRIMING)) + decode(source)
    n = min(len(a), len(b))
    print(f"decoded samples (x2 channels): whole {len(a) // 2}, parts {len(b) // 2}, source {len(src) // 2}")
    diff_max = max(abs(x - y) for x, y in zip(a[:n], b[:n], strict=True))
    err = sum((x - y) ** 2 for x, y in zip(a[:n], b[:n], strict=True))
    sig = sum(x * x for x in a[:n])
    coding = sum((x - y) ** 2 for x, y in zip(a[:n], src[:n], strict=False))
    coding_max = max(abs(x - y) for x, y in zip(a[:n], src[:n], strict=False))
    parts_coding = sum((x - y) ** 2 for x, y in zip(b[:n], src[:n], strict=False))
    parts_coding_max = max(abs(x - y) for x, y in zip(b[:n], src[:n], strict=False))
    import math

    print(f"parts vs whole: max |diff| {diff_max:.5f}, SNR {10 * math.log10(sig / err) if err else math.inf:.1f} dB; "
          f"whole vs source (its own coding error): max |diff| {coding_max:.5f}, "
          f"SNR {10 * math.log10(sig / coding):.1f} dB; parts vs source: max |diff| {parts_coding_max:.5f}, "
          f"SNR {10 * math.log10(sig / parts_coding):.1f} dB")  # fmt: skip
    step_whole = max(abs(a[i] - a[i - 2]) for i in range(2, n))
    worst = 0.0
    worst_diff = 0.0
    for s in specs[1:]:
        at = ((s.first - 1) * 4 * 48000 + chunks.AAC_PRIMING) * 2
        lo, hi = max(2, at - 2048), min(n, at + 2048)
        worst = max(worst, max(abs(b[i] - b[i - 2]) for i in range(lo, hi)))
        worst_diff = max(worst_diff, max(abs(a[i] - b[i]) for i in range(lo, hi)))
    print(f"at the {len(specs) - 1} part boundaries (+-1024 samples): max |parts - whole| {worst_diff:.5f}; "
          f"largest step {worst:.5f} (largest step anywhere in the whole encode: {step_whole:.5f}; "
          f"a click would exceed it)")  # fmt: skip
    print(f"load average {os.getloadavg()}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(work)


if __name__ == "__main__":
    asyncio.run(main())
