"""The poster: one JPEG frame at about 10% of the duration (past black intros and fades),
written as `poster.jpg` beside the renditions and published with the version
(`media.keys.poster_key`). No poster for an audio-only title."""

from __future__ import annotations

import logging
from pathlib import Path

from media.keys import POSTER_NAME
from media.probe import input_name, input_options, unsigned
from media.probe_model import Probe
from transcoder.command import DEINTERLACE
from transcoder.runner import run_quiet

log = logging.getLogger("streamflix.poster")

POSTER_AT = 0.10
POSTER_MAX_WIDTH = 1280
POSTER_TIMEOUT_S = 60.0


def poster_time_s(duration_s: float) -> float:
    return max(0.0, duration_s * POSTER_AT)


def poster_argv(source: str, out: Path, at_s: float, *, ffmpeg: str = "ffmpeg", deinterlace: bool = False) -> list[str]:
    """Seek before the input (fast, keyframe then decode to the exact time), one frame,
    scaled down to at most POSTER_MAX_WIDTH with square pixels, full-range 4:2:0 (what JPEG
    decoders expect, whatever the source's bit depth or chroma). An interlaced source is
    deinterlaced first, as the renditions are, so the poster shows no combing. `at_s` counts
    from the source's start: ffmpeg adds the start time to an input `-ss`."""
    vf = f"scale='min({POSTER_MAX_WIDTH},iw*sar)':-2,setsar=1,format=yuvj420p"
    if deinterlace:
        vf = "bwdif=" + ":".join(f"{k}={v}" for k, v in DEINTERLACE.items()) + "," + vf
    return [
        ffmpeg, "-nostdin", "-v", "error", "-y",
        "-ss", f"{at_s:.3f}", *input_options(source), "-i", input_name(source),
        "-map", "0:v:0", "-frames:v", "1", "-vf", vf, "-q:v", "3",
        "-f", "image2", "file:" + str(out),
    ]  # fmt: skip


async def make_poster(source: str, probe: Probe, out_dir: Path, *, ffmpeg: str = "ffmpeg") -> Path | None:
    """Write out_dir/poster.jpg; None (and a log line) for audio-only sources or when ffmpeg
    cannot produce a frame: a missing poster must not fail a title that plays."""
    if probe.video is None:
        return None
    out = out_dir / POSTER_NAME
    at = poster_time_s(probe.duration_s)
    for seek in (at, 0.0):  # a frame at 10% may not exist in a broken tail: fall back to 0
        argv = poster_argv(source, out, seek, ffmpeg=ffmpeg, deinterlace=probe.video.interlaced)
        try:
            await run_quiet(argv, timeout_s=POSTER_TIMEOUT_S, what="poster")
        except TimeoutError:
            reason = "timed out"
        except RuntimeError as exc:
            reason = str(exc)
        else:
            if out.is_file() and out.stat().st_size > 0:
                return out
            reason = "no frame written"
        log.warning("poster at %.1f s failed: %s", seek, unsigned(reason)[-200:])
    out.unlink(missing_ok=True)
    return None
