"""Per-title ladders: a cheap complexity measurement of the source, and the bitrate caps it
chooses for the ladder's rungs (docs/transcode.md "Per-title ladder").

The measurement encodes `SPANS` short spans of the source, spread over its length, at the
lowest and a middle rung's size, at a constant quality (x264 `-crf PROBE_CRF`, preset
`PROBE_PRESET`), and reads the bits each took: bits per pixel per frame (bpp) says how hard the
picture is to compress. A slide needs a small fraction of the fixed table's bits for the same
picture; noise and heavy motion need all of them.

`choose_caps` is pure: from the samples it fits bpp against the pixel count (a power law
through the two sizes), scales it to each rung (its need), keeps the need between a floor
(`FLOOR_FRACTION` of the fixed table) and the fixed table itself (never more bits than
today), and drops a middle rung whose need is within `SWITCH_RATIO` of a neighbour kept (not
worth a switch). The highest and lowest rungs always stay; nothing is added, so never an
upscale. A kept rung's cap is then its need lifted to `KEPT_FLOOR_FRACTION` of the table, and
the lowest rung keeps the table's: x264's average-bitrate mode picks its quantizer from the
nominal average, not from what the picture needs, so below that a static picture loses SSIM
without saving bits, and a rung that spends its whole budget loses SSIM with every bit taken
away (docs/transcode.md "Per-title ladder").
"""

from __future__ import annotations

import asyncio
import logging
import math
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from media.probe import input_name, input_options
from packager.model import Presentation
from transcoder.errors import TranscodeError
from transcoder.ladder import AV1_SUFFIX, MIN_VIDEO_BITRATE, Ladder, Rung
from transcoder.runner import run_ffmpeg

log = logging.getLogger("streamflix.transcoder.per_title")

FIXED = "fixed"
PER_TITLE = "per-title"
MODES = (FIXED, PER_TITLE)
# The rendition model's `extra` key of a per-title ladder's record (measurements and choice).
RECORD_KEY = "ladder"

SPANS = 3
SPAN_S = 0.5  # 15 frames at 30 fps: the three spans take ~0.6 s wall for a 1080p30 source
PROBE_CRF = 18  # about where SSIM stops rising on text and synthetic pictures
PROBE_PRESET = "veryfast"  # the encode's own default: its CRF bits are what an ABR encode needs
# A rung's cap: the constant-quality bitrate times this (an average-bitrate encode spreads its
# bits less well than constant quality: the surplus is its headroom).
CRF_TO_CAP = 1.2
FLOOR_FRACTION = 0.25  # a rung's need is never below this share of the fixed table's bitrate
# A kept rung's cap is never below this share of the table's average: x264's average-bitrate
# mode sets its quantizer from the nominal average. A static 1080p slide spends ~400 kbit/s at
# any average from 1.75 to 5 Mb/s, but its SSIM is 0.9997 at 1.75, 0.9999 at 2.5 and 1.0000
# (to 4 decimals) from 3.5 up; a rung that spends its whole budget (motion) loses SSIM with
# every bit taken away. The lowest rung always keeps the table's average.
KEPT_FLOOR_FRACTION = 0.7
SWITCH_RATIO = 1.5  # a middle rung closer than this to a kept neighbour is dropped
# bpp against pixels: bpp ~ pixels**k, k from the two sampled sizes, kept in this range
# (one size measured: DEFAULT_EXPONENT).
EXPONENT_RANGE = (-0.6, 0.0)
DEFAULT_EXPONENT = -0.25
PROBE_TIMEOUT_S = 60.0


def parse_mode(text: str) -> str:
    """`STREAMFLIX_LADDER`'s value; ValueError for anything else."""
    mode = text.strip().lower()
    if mode not in MODES:
        raise ValueError(f"{text!r} is not a ladder mode ({' or '.join(MODES)})")
    return mode


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One span encoded at one rung's size at constant quality."""

    at_s: float  # where the span starts in the source
    rung: str
    width: int
    height: int
    frames: int
    bits: int

    @property
    def bpp(self) -> float:
        return self.bits / max(1, self.width * self.height * self.frames)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bpp": round(self.bpp, 5)}


def sampled_rungs(rungs: tuple[Rung, ...]) -> tuple[Rung, ...]:
    """The rungs a measurement encodes at: the lowest and a middle one (one when they match)."""
    if not rungs:
        return ()
    low, mid = rungs[-1], rungs[(len(rungs) - 1) // 2]
    return (low,) if low.id == mid.id else (mid, low)


def span_starts(duration_s: float, spans: int | None = None, span_s: float | None = None) -> tuple[list[float], float]:
    """Where the spans start (each centred in its share of the length) and their length."""
    spans = spans or SPANS
    length = min(span_s or SPAN_S, duration_s / spans)
    return [max(0.0, (i + 0.5) * duration_s / spans - length / 2) for i in range(spans)], length


def choose_caps(rungs: tuple[Rung, ...], samples: list[Sample], fps: Fraction) -> dict[str, int]:
    """The average bit/s of each rung kept (by id), from the measurement; {} without samples
    (the fixed ladder stays). `rungs` are the fixed ladder's H.264 rungs, highest first."""
    needs = rung_needs(rungs, samples, fps)
    if not needs:
        return {}
    # which rungs are worth a switch: by what they need
    kept = [needs[0]]
    lowest = needs[-1]
    for r, need in needs[1:-1]:
        if kept[-1][1] >= SWITCH_RATIO * need and need >= SWITCH_RATIO * lowest[1]:
            kept.append((r, need))
    if len(needs) > 1:
        kept.append(lowest)
    caps = {r.id: kept_cap(r, need) for r, need in kept}
    caps[lowest[0].id] = lowest[0].video_bitrate
    return caps


def kept_cap(rung: Rung, need: int) -> int:
    """A kept rung's average bit/s: its need, at least `KEPT_FLOOR_FRACTION` of the table's,
    at most the table's, in whole kbit/s."""
    cap = min(max(need, KEPT_FLOOR_FRACTION * rung.video_bitrate), rung.video_bitrate)
    return int(round(cap / 1000) * 1000)


def rung_needs(rungs: tuple[Rung, ...], samples: list[Sample], fps: Fraction) -> list[tuple[Rung, int]]:
    """Each rung's need in bit/s (the constant-quality rate times `CRF_TO_CAP`), between
    `FLOOR_FRACTION` of the table and the table; [] without samples."""
    if not rungs or not samples:
        return []
    # mean bpp by sampled size
    by_size: dict[int, list[float]] = {}
    for s in samples:
        by_size.setdefault(s.width * s.height, []).append(s.bpp)
    points = sorted((p, sum(v) / len(v)) for p, v in by_size.items())
    if len(points) >= 2 and points[0][1] > 0 and points[-1][1] > 0:
        (p0, b0), (p1, b1) = points[0], points[-1]
        k = math.log(b1 / b0) / math.log(p1 / p0)
        k = min(max(k, EXPONENT_RANGE[0]), EXPONENT_RANGE[1])
    else:
        k = DEFAULT_EXPONENT

    needs: list[tuple[Rung, int]] = []
    for r in rungs:
        pixels = r.width * r.height
        ref_p, ref_bpp = min(points, key=lambda pt: abs(math.log(pixels / pt[0])))
        bpp = ref_bpp * (pixels / ref_p) ** k
        target = bpp * pixels * float(fps) * CRF_TO_CAP
        floor = max(MIN_VIDEO_BITRATE, FLOOR_FRACTION * r.video_bitrate)
        needs.append((r, int(round(min(max(target, floor), r.video_bitrate) / 1000) * 1000)))
    return needs


def probe_argv(
    source: str, ladder: Ladder, rungs: tuple[Rung, ...], at_s: float, length_s: float, out_dir: Path, *, ffmpeg: str
) -> tuple[list[str], list[tuple[Rung, Path, int]]]:
    """ffmpeg encoding one span at each of `rungs`' sizes at constant quality, raw H.264."""
    fps = ladder.fps_fraction or Fraction(30)
    frames = max(1, round(length_s * fps))
    chain = []
    if ladder.deinterlace:
        chain.append("yadif=mode=send_frame:parity=auto")
    chain.append("setpts=PTS-STARTPTS")  # from 0 wherever the seek landed
    chain.append(f"fps={ladder.fps}")
    chain.append(f"split={len(rungs)}" + "".join(f"[s{i}]" for i in range(len(rungs))))
    graph = f"[0:{ladder.video_source_index}]" + ",".join(chain)
    for i, r in enumerate(rungs):
        graph += f";[s{i}]scale={r.width}:{r.height}:flags=bicubic,format=yuv420p[o{i}]"
    argv = [ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-progress", "pipe:1", "-nostats"]
    # -noaccurate_seek: start at the keyframe at or before `at_s` rather than decode up to it
    # (a long-GOP source would cost seconds); -frames:v ends the span.
    argv += ["-noaccurate_seek", "-ss", f"{at_s:.3f}", *input_options(source), "-i", input_name(source)]
    argv += ["-filter_complex", graph]
    outs = []
    for i, r in enumerate(rungs):
        out = out_dir / f"probe-{at_s:.3f}-{r.id}.h264"
        argv += ["-map", f"[o{i}]", "-an", "-sn", "-frames:v", str(frames), "-c:v", "libx264"]
        argv += ["-preset", PROBE_PRESET, "-crf", str(PROBE_CRF), "-threads", "1", "-f", "h264", "-y", str(out)]
        outs.append((r, out, frames))
    return argv, outs


async def measure(
    source: str, ladder: Ladder, duration_s: float, *, ffmpeg: str = "ffmpeg", nice: int = 0
) -> list[Sample]:
    """Encode the spans (at once, one thread each, at CPU niceness `nice`) and read their
    bits. Raises `TranscodeError` when ffmpeg fails or writes nothing."""
    rungs = sampled_rungs(ladder.h264_rungs)
    if not rungs or ladder.video_source_index is None:
        return []
    starts, length = span_starts(duration_s)
    with tempfile.TemporaryDirectory(prefix="streamflix-ladder-") as tmp:
        runs = [probe_argv(source, ladder, rungs, at, length, Path(tmp), ffmpeg=ffmpeg) for at in starts]
        try:
            # a failed span stops the others (each ffmpeg is awaited) before the folder goes
            async with asyncio.TaskGroup() as group:
                for argv, _ in runs:
                    group.create_task(run_ffmpeg(argv, duration_s=length, timeout_s=PROBE_TIMEOUT_S, nice=nice))
        except* (TranscodeError, OSError) as failed:
            raise failed.exceptions[0] from None
        samples = []
        for at, (_, outs) in zip(starts, runs, strict=True):
            for r, out, frames in outs:
                size = out.stat().st_size if out.exists() else 0
                if size == 0:
                    raise TranscodeError(f"the complexity probe at {at:.1f} s encoded nothing for {r.id}")
                samples.append(
                    Sample(at_s=round(at, 3), rung=r.id, width=r.width, height=r.height, frames=frames, bits=8 * size)
                )
    return samples


def has_choice(ladder: Ladder) -> bool:
    """Whether a measurement can change `ladder`: one H.264 rung is both the highest and the
    lowest, which keeps the table's bitrate whatever the source."""
    return len(ladder.h264_rungs) > 1


async def plan(
    source: str, ladder: Ladder, duration_s: float, *, ffmpeg: str = "ffmpeg", nice: int = 0
) -> tuple[dict[str, int], dict]:
    """Measure and choose: the caps for `plan_ladder(caps=...)` and the record kept in the
    rendition model (`extra["ladder"]`). A failed measurement keeps the fixed ladder (caps
    {}), its reason recorded; a ladder without a choice (`has_choice`) is not measured."""
    if not has_choice(ladder):
        return {}, {
            "mode": PER_TITLE,
            "probe": {"skipped": "one rung: nothing to choose"},
            "samples": [],
            "rungs": [
                {"id": r.id, "fixed_bitrate": r.video_bitrate, "bitrate": r.video_bitrate, "kept": True}
                for r in ladder.h264_rungs
            ],
            "caps": {r.id: r.video_bitrate for r in ladder.h264_rungs},
        }
    started = time.monotonic()
    try:
        samples = await measure(source, ladder, duration_s, ffmpeg=ffmpeg, nice=nice)
    except (TranscodeError, OSError) as exc:
        log.warning("per-title ladder: the complexity probe failed (%s); the fixed ladder is used", exc)
        return {}, {"mode": FIXED, "requested": PER_TITLE, "error": str(exc)}
    elapsed = time.monotonic() - started
    fps = ladder.fps_fraction or Fraction(30)
    caps = choose_caps(ladder.h264_rungs, samples, fps)
    log.info(
        "per-title ladder: %d sample(s) in %.2f s -> %s",
        len(samples),
        elapsed,
        ", ".join(f"{k} {v // 1000} kb/s" for k, v in caps.items()),
    )
    record = {
        "mode": PER_TITLE,
        "probe": {
            "crf": PROBE_CRF,
            "preset": PROBE_PRESET,
            "span_s": span_starts(duration_s)[1],
            "seconds": round(elapsed, 3),
        },
        "samples": [s.to_dict() for s in samples],
        "rungs": [
            {"id": r.id, "fixed_bitrate": r.video_bitrate, "bitrate": caps.get(r.id), "kept": r.id in caps}
            for r in ladder.h264_rungs
        ],
        "caps": caps,
    }
    return caps, record


# The model's ladder record while the ladder is being chosen (`provisional`).
PENDING = {"mode": PER_TITLE, "pending": True}


def is_pending(extra: dict[str, Any]) -> bool:
    """Whether a model's `extra` is a provisional model's (its ladder not chosen yet)."""
    record = extra.get(RECORD_KEY)
    return isinstance(record, dict) and bool(record.get("pending"))


def provisional(model: Presentation, ladder: Ladder) -> Presentation:
    """What a title publishes while its per-title ladder is being chosen (the fixed `ladder`'s
    predicted `model`): the lowest H.264 rung and its AV1 copy, the only video every choice
    encodes exactly as the table says (the same bitrate, caps, level and BANDWIDTH), beside
    the audio and subtitles. Any other rung may be dropped or lowered, and a playlist a player
    holds must never lose a rung nor advertise what it will not carry, so none is listed until
    the choice is made. The model's ladder record is `PENDING`."""
    keep = invariant_renditions(ladder)
    renditions = tuple(r for r in model.renditions if r.kind != "video" or r.id in keep)
    return replace(model, renditions=renditions, extra={**model.extra, RECORD_KEY: dict(PENDING)})


def invariant_renditions(ladder: Ladder) -> set[str]:
    """The renditions of `ladder` (the fixed one) that every choice encodes alike: the lowest
    H.264 rung (kept, at the table's bitrate), its AV1 copy and the audio."""
    lowest = {r.id for r in ladder.h264_rungs[-1:]}
    return lowest | {rid + AV1_SUFFIX for rid in lowest} | {a.id for a in ladder.audios}
