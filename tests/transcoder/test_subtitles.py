"""Subtitles through the real worker: an embedded mov_text stream and a sidecar .srt given to
`streamflix ingest --subtitle`, published as WebVTT renditions aligned with the video; bad
sidecars refused by the CLI (exit 2) before anything is stored or queued."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from media import keys
from media.backend import open_storage
from packager.model import Presentation
from server.settings import Settings
from tests.transcoder.test_ingest_cli import run_cli

EMBEDDED_SRT = "1\n00:00:00,500 --> 00:00:01,500\nHello embedded\n\n2\n00:00:05,000 --> 00:00:06,000\nLater on\n"
SIDECAR_SRT = "1\n00:00:03,000 --> 00:00:05,000\nBonjour <b>à</b> tous & bienvenue\n"


def make_clip(tmp_path: Path, *, seconds: int = 6) -> Path:
    """A small H.264 + AAC clip with one English mov_text subtitle stream."""
    srt = tmp_path / "embedded.srt"
    srt.write_text(EMBEDDED_SRT)
    out = tmp_path / "subbed.mp4"
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-i", str(srt),
            "-map", "0:v", "-map", "1:a", "-map", "2:s",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac", "-c:s", "mov_text",
            "-metadata:s:s:0", "language=eng", str(out),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return out


def test_embedded_and_sidecar_subtitles_published(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = make_clip(tmp_path)
    sidecar = tmp_path / "film.fr.srt"
    sidecar.write_bytes(SIDECAR_SRT.encode("latin-1"))  # an old-style Latin-1 file
    code, out, err = run_cli(
        monkeypatch, capsys, settings, "ingest", str(clip), "--title", "Subbed",
        "--subtitle", f"fr:{sidecar}:sdh", "--wait", "--json",
    )  # fmt: skip
    assert code == 0, err
    title = json.loads(out)
    assert title["status"] == "ready"
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    model = Presentation.from_json(asyncio.run(storage.get_bytes(keys.model_key(title["id"], title["version"]))))
    t0, t1 = model.subtitles
    assert (t0.id, t0.language, t0.name, t0.sdh) == ("t0", "en", "English", False)
    assert (t1.id, t1.language, t1.name, t1.sdh, t1.forced) == ("t1", "fr", "Français (SDH)", True, False)
    video = model.video[0]
    # aligned: one WebVTT file per video segment, same durations in milliseconds
    assert [round(d * 1000) for d in video.segment_seconds()] == [s.duration for s in t0.segments]
    assert t0.timescale == 1000 and len(t0.segments) == len(video.segments) >= 2

    def vtt(rid: str, n: int) -> str:
        return asyncio.run(storage.get_bytes(keys.object_key(title["id"], title["version"], f"{rid}/{n}.vtt"))).decode()

    first = vtt("t0", 1)
    assert first.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n")
    assert "00:00:00.500 --> 00:00:01.500\nHello embedded" in first and "Later on" not in first
    assert "Later on" in vtt("t0", len(t0.segments))
    # the sidecar cue crosses the 4 s boundary: it is in both segments, escaped, tags stripped
    for n in (1, 2):
        assert "00:00:03.000 --> 00:00:05.000\nBonjour à tous &amp; bienvenue" in vtt("t1", n)
    # the validated sidecar is kept beside the source for re-encodes
    stored = [o.key for o in asyncio.run(storage.list(keys.source_prefix(title["id"])))]
    assert f"{keys.source_prefix(title['id'])}subtitles/0.vtt" in stored


@pytest.mark.parametrize(
    ("spec", "content", "message"),
    [
        ("fr:{path}", b"\x89PNG not subtitles", "not a subtitle file"),
        ("xx:{path}", SIDECAR_SRT.encode(), "unknown language"),
        ("fr:{path}", b"1\n00:00:02,000 --> 00:00:01,000\nbackwards\n", "not after its start"),
        (
            "fr:{path}",
            b"1\n00:00:01,000 --> 00:00:03,000\na\n\n2\n00:00:02,000 --> 00:00:04,000\nb\n",
            "before cue 1 ends",
        ),
        ("fr:{path}", b"1\n-00:00:01,000 --> 00:00:03,000\na\n", "negative time"),
        ("fr:{path}.missing", b"", "cannot read"),
        ("{path}", SIDECAR_SRT.encode(), "expected LANG:PATH"),
    ],
)
def test_bad_sidecar_refused_before_anything_is_queued(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    spec: str,
    content: bytes,
    message: str,
) -> None:
    sidecar = tmp_path / "bad.srt"
    sidecar.write_bytes(content)
    with pytest.raises(SystemExit) as info:
        run_cli(
            monkeypatch,
            capsys,
            settings,
            "ingest",
            "nothing.mp4",
            "--title",
            "X",
            "--subtitle",
            spec.format(path=sidecar),
        )
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("streamflix ingest: error: argument --subtitle") and message in err
