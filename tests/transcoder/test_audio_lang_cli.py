"""`streamflix ingest --audio-lang INDEX=LANG`: a real two-language source through the CLI and
the real worker, the overrides reaching the published model (and the audio tracks' own MP4
language), and every bad value a one-line error with exit code 2 that stores nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import asyncpg
import pytest

from media import keys
from media.backend import open_storage
from packager.model import Presentation
from server.settings import Settings
from tests.conftest import _ffmpeg
from tests.transcoder.test_ingest_cli import run_cli


def two_audio_clip(path: Path, *, seconds: int = 4, surround: bool = False) -> Path:
    """Video plus two audio streams tagged eng and fre (the second 5.1 with `surround`)."""
    second = "aevalsrc=0.1*sin(880*2*PI*t):c=5.1:s=48000" if surround else "sine=frequency=880:sample_rate=48000"
    subprocess.run(
        [
            _ffmpeg(), "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-f", "lavfi", "-t", str(seconds), "-i", second,
            "-map", "0:v", "-map", "1:a", "-map", "2:a",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
            "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fre",
            str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def _count_titles(settings: Settings) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM catalog.titles"))
        finally:
            await conn.close()

    return asyncio.run(count())


def _model(settings: Settings, title: dict) -> Presentation:
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    raw = asyncio.run(storage.get_bytes(keys.object_key(title["id"], title["version"], keys.MODEL_NAME)))
    return Presentation.from_json(raw)


def test_overrides_reach_the_model_and_surround_gets_a_51_copy(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = two_audio_clip(tmp_path / "two.mp4", surround=True)
    code, out, err = run_cli(
        monkeypatch, capsys, settings, "ingest", str(clip), "--title", "Languages",
        "--audio-lang", "0=de", "--audio-lang", "1=ita", "--wait", "--json",
    )  # fmt: skip
    assert code == 0, err
    title = json.loads(out)
    assert title["status"] == "ready"
    model = _model(settings, title)
    got = [(a.id, a.language, a.name, a.channels, a.default) for a in model.audio]
    assert got == [
        ("a0", "de", "Deutsch", 2, True),
        ("a1", "it", "Italiano", 2, False),
        ("a1-51", "it", "Italiano 5.1", 6, False),
    ]
    timeline = [s.duration for s in model.audio[0].segments]
    assert all(a.codecs == "mp4a.40.2" and [s.duration for s in a.segments] == timeline for a in model.audio)
    # the stored tracks say so too (MP4 mdhd language, channel count)
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    for rid, lang, channels in (("a0", "deu", 2), ("a1-51", "ita", 6)):
        init = tmp_path / f"{rid}.mp4"
        init.write_bytes(
            asyncio.run(storage.get_bytes(keys.object_key(title["id"], title["version"], f"{rid}/init.mp4")))
        )
        probe = json.loads(
            subprocess.run(
                ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(init)],
                check=True, capture_output=True,
            ).stdout
        )["streams"][0]  # fmt: skip
        assert (probe["tags"].get("language"), probe["channels"]) == (lang, channels)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("0=xx", "unknown language code 'xx'", id="unknown-code"),
        pytest.param("en", "expected INDEX=LANG", id="no-index"),
        pytest.param("x=en", "expected INDEX=LANG", id="index-not-a-number"),
    ],
)
def test_bad_values_are_usage_errors(
    value: str, message: str, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_cli(monkeypatch, capsys, settings, "ingest", "x.mp4", "--title", "X", "--audio-lang", value)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    [line] = [ln for ln in err.splitlines() if "error" in ln]
    assert line.startswith("streamflix ingest: error: argument --audio-lang: ") and message in line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--audio-lang", "2=en"], "--audio-lang 2=...: the source has audio streams 0..1", id="past-last"),
        pytest.param(["--audio-lang", "0=en", "--audio-lang", "0=fr"], "named twice", id="twice"),
    ],
)
def test_an_index_the_source_lacks_is_refused_before_anything_is_stored(
    argv: list[str],
    message: str,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clip = two_audio_clip(tmp_path / "two.mp4", seconds=2)
    before = _count_titles(settings)
    code, out, err = run_cli(monkeypatch, capsys, settings, "ingest", str(clip), "--title", "Bad", *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("streamflix ingest: error: ") and message in err
    assert _count_titles(settings) == before
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    assert asyncio.run(storage.list(keys.SOURCES + "/")) == []
