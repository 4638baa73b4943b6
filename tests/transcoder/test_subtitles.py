"""Subtitles through the real worker: an embedded mov_text stream and a sidecar .srt given to
`streamflix ingest --subtitle`, published as WebVTT renditions aligned with the video; bitmap
streams and cues past the title's end skipped (the title still ready); bad sidecars refused
by the CLI (exit 2) before anything is stored or queued."""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import subprocess
from pathlib import Path

import pytest

from media import keys
from media.backend import open_storage
from packager.model import Presentation
from server.settings import Settings
from tests.packager import factories
from tests.transcoder.test_ingest_cli import run_cli
from transcoder.subtitles import add_subtitles

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
        # not read at all: refused on its size (a sparse file, nothing written to disk)
        ("fr:{path}", None, "the limit is"),
    ],
)
def test_bad_sidecar_refused_before_anything_is_queued(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    spec: str,
    content: bytes | None,
    message: str,
) -> None:
    sidecar = tmp_path / "bad.srt"
    if content is None:
        with sidecar.open("wb") as f:
            f.truncate(50 * 1024 * 1024)  # a 50 MB "subtitle"
    else:
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


def _pgs(path: Path) -> Path:
    """A minimal Blu-ray PGS stream (.sup): two display sets, each a presentation composition
    segment (epoch start, no objects) and an end segment. ffmpeg muxes it as hdmv_pgs_subtitle."""

    def seg(pts: int, kind: int, data: bytes) -> bytes:
        return b"PG" + struct.pack(">IIBH", pts, 0, kind, len(data)) + data

    pcs = struct.pack(">HHBHBBBB", 320, 180, 0x10, 0, 0x80, 0, 0, 0)
    path.write_bytes(b"".join(seg(pts, 0x16, pcs) + seg(pts, 0x80, b"") for pts in (90_000, 180_000)))
    return path


def test_bitmap_stream_and_late_sidecar_are_skipped_not_failed(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Matroska source with a PGS (bitmap) stream before a SubRip one, and a sidecar whose
    cue starts after the title's end: the title is ready with the one usable track, and the
    model names what was skipped and why."""
    srt = tmp_path / "embedded.srt"
    srt.write_text(EMBEDDED_SRT)
    clip = tmp_path / "bitmap.mkv"
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=6",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=6",
            "-i", str(_pgs(tmp_path / "signs.sup")), "-i", str(srt),
            "-map", "0:v", "-map", "1:a", "-map", "2:s", "-map", "3:s",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac",
            "-c:s:0", "copy", "-c:s:1", "srt",
            "-metadata:s:s:0", "language=eng", "-metadata:s:s:1", "language=eng", str(clip),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    late = tmp_path / "other-cut.de.srt"
    late.write_text("1\n00:00:30,000 --> 00:00:31,000\nZu spät\n")  # accepted by the CLI: no duration known yet
    caplog.set_level(logging.INFO, logger="streamflix.subtitles")
    code, out, err = run_cli(
        monkeypatch, capsys, settings, "ingest", str(clip), "--title", "Bitmap",
        "--subtitle", f"de:{late}", "--wait", "--json",
    )  # fmt: skip
    assert code == 0, err
    title = json.loads(out)
    assert title["status"] == "ready", title
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    model = Presentation.from_json(asyncio.run(storage.get_bytes(keys.model_key(title["id"], title["version"]))))
    [t0] = model.subtitles
    assert (t0.id, t0.language, t0.name) == ("t0", "en", "English")
    bitmap, past_end = model.extra["subtitles_skipped"]
    assert bitmap == "stream 0:s:0 (hdmv_pgs_subtitle): bitmap subtitles need OCR", bitmap
    assert past_end.startswith("sidecar ") and "after the title's end" in past_end, past_end
    logged = [r.getMessage() for r in caplog.records if r.name == "streamflix.subtitles"]
    assert any("hdmv_pgs_subtitle" in m and "skipped" in m for m in logged), logged


async def test_a_source_probed_without_subtitle_streams_is_not_read_for_them(
    tmp_path: Path, settings: Settings
) -> None:
    """The worker passes what the source's probe found: with no subtitle stream there, the
    subtitle step does not start another ffprobe on the source (it ran before every title's
    first segment); with streams, it lists and publishes them."""
    calls = tmp_path / "ffprobe-calls"
    recorder = tmp_path / "ffprobe"
    recorder.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\nexec ffprobe "$@"\n')
    recorder.chmod(0o755)
    clip = make_clip(tmp_path)
    predicted = factories.presentation(*factories.ladder_video(durations_s=(4, 2)))
    predicted = Presentation(**{**predicted.__dict__, "title_id": f"subs-{tmp_path.name}"})
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    try:
        listed = await add_subtitles(storage, predicted, clip, ffprobe=str(recorder))
        assert "-select_streams" in calls.read_text()
        assert [r.language for r in listed.subtitles] == ["en"]
        calls.unlink()
        skipped = await add_subtitles(storage, predicted, clip, embedded=False, ffprobe=str(recorder))
        assert not calls.exists()
        assert skipped.subtitles == ()
    finally:
        await storage.delete_prefix(keys.title_prefix(predicted.title_id))
        await storage.close()
