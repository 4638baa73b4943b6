"""Real encodes shared by the transcoder tests (ffmpeg ultrafast, small clips)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from media.probe import probe
from media.probe_model import Probe
from packager.model import Presentation
from transcoder.pipeline import transcode


@dataclass(frozen=True)
class Encoded:
    source: Path
    probe: Probe
    out_dir: Path
    presentation: Presentation
    progress: list[float]


def ffprobe_json(path: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", *args, str(path)],
        check=True,
        capture_output=True,
    ).stdout
    return json.loads(out)


def joined(out_dir: Path, rendition_id: str, count: int) -> Path:
    """init + every segment of one rendition as one fragmented MP4 file ffprobe can read."""
    target = out_dir.parent / f"{out_dir.name}-{rendition_id}-joined.mp4"
    with target.open("wb") as f:
        f.write((out_dir / rendition_id / "init.mp4").read_bytes())
        for n in range(1, count + 1):
            f.write((out_dir / rendition_id / f"{n}.m4s").read_bytes())
    return target


@pytest.fixture(scope="session")
def encode(clip_factory: Callable[..., Path], session_tmp: Path) -> Callable[..., Encoded]:
    """encode(name, **clip_args) -> Encoded: probe + transcode a generated clip, once."""
    cache: dict[str, Encoded] = {}

    def run(name: str, preset: str = "ultrafast", remux: tuple[str, ...] = (), **clip_args: Any) -> Encoded:
        """`remux`: options for a stream copy of the clip (ffmpeg 5.1 writes a display matrix
        from `-metadata:s:v rotate=` only when copying)."""
        if name not in cache:
            source = clip_factory(**clip_args)
            if remux:
                copy = session_tmp / f"{name}{source.suffix}"
                subprocess.run(
                    ["ffmpeg", "-v", "error", "-y", "-i", str(source), "-c", "copy", *remux, str(copy)],
                    check=True,
                    capture_output=True,
                )
                source = copy
            probed = asyncio.run(probe(str(source)))
            out_dir = session_tmp / "transcoded" / name
            progress: list[float] = []
            presentation = asyncio.run(
                transcode(
                    str(source),
                    probed,
                    out_dir,
                    title_id="t-" + name,
                    version="v1",
                    preset=preset,
                    timeout_s=120,
                    on_progress=progress.append,
                )
            )
            cache[name] = Encoded(source, probed, out_dir, presentation, progress)
        return cache[name]

    return run


@pytest.fixture(scope="session")
def ladder720(encode: Callable[..., Encoded]) -> Encoded:
    """A 6 s 1280x720 30 fps clip with audio: rungs 720/480/360 + a0."""
    return encode("ladder720", seconds=6, width=1280, height=720, fps=30)
