"""What the encode changes about a source's timing and picture, in words for people.

Pure: a probe and its ladder in, a list of short sentences out. The list is stored in the
rendition model (`Presentation.extra["source_adjustments"]`) and shown by `streamflix titles
show`, so an operator can see why a title starts at 0 when its source started at 3600 s, or
why its picture differs from the raw capture. The filters that make these changes are built
in `transcoder.command`.
"""

from __future__ import annotations

from media.probe_model import Probe
from transcoder.ladder import Ladder

# The model's extra key (and the JSON field of `titles show --json`).
SOURCE_ADJUSTMENTS = "source_adjustments"
# Offsets below this are encoder delay and frame rounding that every source has (an AAC
# priming delay, a B-frame reorder delay): not worth a line.
REPORT_MIN_S = 0.05
# Field orders whose meaning nobody disputes; "tb"/"bt" are reported as ffprobe says them.
_PARITY = {"tt": "tff", "bb": "bff"}


def source_adjustments(probe: Probe, ladder: Ladder) -> tuple[str, ...]:
    """E.g. ("timeline shifted by -3600.0 s", "audio padded with 1.0 s of silence",
    "deinterlaced (tff)"); empty when the source is used as it is."""
    out: list[str] = []
    start = probe.start_time_s
    if abs(start) >= REPORT_MIN_S:
        out.append(f"timeline shifted by {_seconds(-start)} s")
    video = probe.video if ladder.rungs else None
    if video is not None:
        held = video.start_time_s - start
        if held >= REPORT_MIN_S:
            out.append(f"video held on its first frame for {_seconds(held)} s")
    if ladder.audio is not None:
        audio = next((a for a in probe.audio if a.index == ladder.audio.source_index), None)
        padded = audio.start_time_s - start if audio is not None else 0.0
        if padded >= REPORT_MIN_S:
            out.append(f"audio padded with {_seconds(padded)} s of silence")
    if ladder.deinterlace:
        out.append(f"deinterlaced ({_PARITY.get(ladder.deinterlace, ladder.deinterlace)})")
    return tuple(out)


def _seconds(value: float) -> str:
    """One decimal from a second up ("-3600.0"), milliseconds below ("0.021")."""
    text = f"{value:.1f}" if abs(value) >= 1 else f"{value:.3f}"
    return "0.0" if text.lstrip("-") in ("0.0", "0.000") else text
