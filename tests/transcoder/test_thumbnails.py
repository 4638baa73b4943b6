"""Seek thumbnails made by the real worker from the real encode: JPEG sprite sheets of the
size the model states, and a WebVTT index whose cues cover the whole title and whose tiles
lie inside their sheet."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from media import keys
from media.backend import open_storage
from packager.model import Presentation
from packager.thumbnails import render_thumbnails
from packager.uris import UriBuilder
from tests.packager.factories import audio, ladder_video, presentation
from tests.packager.test_thumbnails import parse
from transcoder.derive import copy_version
from transcoder.publish import new_version
from transcoder.thumbnails import (
    THUMBNAILS_ID,
    interval_s,
    make_thumbnails,
    pick_video,
    sheet_durations,
    tile_size,
    with_thumbnails,
)


def _size(path: Path) -> tuple[int, int]:
    raw = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=width,height,codec_name", "-of", "json", str(path)],
        check=True,
        capture_output=True,
    ).stdout
    [stream] = json.loads(raw)["streams"]
    assert stream["codec_name"] == "mjpeg"
    return stream["width"], stream["height"]


async def test_worker_publishes_sprites_and_an_index_covering_the_title(ready_title: dict[str, Any]) -> None:
    settings = ready_title["settings"]
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    try:
        p = Presentation.from_json(await storage.get_bytes(keys.model_key(ready_title["id"], ready_title["version"])))
        th = p.rendition(THUMBNAILS_ID)
        assert th is not None and th.kind == "image" and th.tiles == "5x5"
        # A 6 s clip: a thumbnail every 2 s, 3 tiles of 160x90 (16:9) on one 800x450 sheet.
        assert th.tile_duration == 2000 and (th.width, th.height) == (800, 450)
        assert [s.duration for s in th.segments] == [round(p.duration_s * 1000)]
        for number, segment in enumerate(th.segments, start=th.start_number):
            path = storage.local_path(keys.object_key(p.title_id, p.version, th.segment_name(number)))
            assert path is not None and path.stat().st_size == segment.size
            assert _size(path) == (th.width, th.height)
    finally:
        await storage.close()
    cues = parse(render_thumbnails(p, THUMBNAILS_ID, UriBuilder(query="token=t")))
    assert len(cues) == 3
    assert cues[0][0] == 0 and abs(float(cues[-1][1]) - p.duration_s) < 0.001
    for (_, end, _, _), (start, _, _, _) in zip(cues, cues[1:], strict=False):
        assert end == start
    for _, _, uri, (x, y, w, h) in cues:
        assert uri == "1.jpg?token=t"
        assert (w, h) == (160, 90) and x + w <= 800 and y + h <= 450


@pytest.mark.parametrize(
    ("duration_s", "override", "expected"),
    [
        pytest.param(6, None, 2, id="short"),
        pytest.param(599.9, None, 2, id="just-under-10-min"),
        pytest.param(600, None, 5, id="10-min"),
        pytest.param(7200, None, 5, id="film"),
        pytest.param(7200, 10, 10, id="setting"),
    ],
)
def test_interval(duration_s, override, expected):
    assert interval_s(duration_s, override) == expected


def test_sheets_follow_the_timeline():
    assert sheet_durations(6000, 2000) == [6000]
    assert sheet_durations(100_000, 2000) == [50_000, 50_000]
    assert sheet_durations(100_001, 2000) == [50_000, 50_000, 1]


@pytest.mark.parametrize(
    ("size", "tile"),
    [((640, 360), (160, 90)), ((1440, 1080), (160, 120)), ((720, 1280), (160, 284)), ((1998, 1080), (160, 86))],
)
def test_tile_keeps_the_aspect_ratio(size, tile):
    assert tile_size(*size) == tile


def test_picks_the_smallest_rung_wide_enough():
    v1080, v720, v480, v360 = ladder_video()
    assert pick_video(presentation(v1080, v360, v720)).id == "v360"


async def test_audio_only_title_has_none(tmp_path: Path) -> None:
    p = presentation(audio())
    assert await with_thumbnails(None, p, tmp_path / "th") is p  # type: ignore[arg-type]  # never touched


async def test_the_interval_setting_changes_the_grid(ready_title: dict[str, Any], tmp_path: Path) -> None:
    """Every 1 s instead of 2: on a copy of the ready version, so the shared one stays as made."""
    settings = ready_title["settings"]
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    try:
        p = Presentation.from_json(await storage.get_bytes(keys.model_key(ready_title["id"], ready_title["version"])))
        copy = dataclasses.replace(p, version=new_version())
        await copy_version(storage, p.title_id, p.version, copy.version)
        th = await make_thumbnails(storage, copy, tmp_path / "work", every_s=1)
        assert th.tile_duration == 1000 and th.tiles == "5x5"
        cues = parse(render_thumbnails(dataclasses.replace(copy, renditions=(th,)), th.id, UriBuilder()))
        assert len(cues) == 6 and cues[-1][1] == Fraction(round(p.duration_s * 1000), 1000)
        path = storage.local_path(keys.object_key(copy.title_id, copy.version, "th/1.jpg"))
        assert path is not None and _size(path) == (800, 450)
    finally:
        await storage.delete_prefix(keys.version_prefix(p.title_id, copy.version))
        await storage.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [pytest.param("3", 3.0, id="seconds"), pytest.param("0", 0.0, id="by-length"), pytest.param("0.5", 0.5, id="half")],
)
def test_interval_setting(tmp_path: Path, value: str, expected: float) -> None:
    from server.settings import Settings

    env = {"STREAMFLIX_DATA_DIR": str(tmp_path), "STREAMFLIX_THUMBNAIL_INTERVAL_S": value}
    assert Settings.load(env=env).thumbnail_interval_s == expected


@pytest.mark.parametrize("value", ["-1", "3601", "often"])
def test_bad_interval_setting_is_one_clear_error(tmp_path: Path, value: str) -> None:
    from server.settings import ConfigError, Settings

    env = {"STREAMFLIX_DATA_DIR": str(tmp_path), "STREAMFLIX_THUMBNAIL_INTERVAL_S": value}
    with pytest.raises(ConfigError, match="STREAMFLIX_THUMBNAIL_INTERVAL_S"):
        Settings.load(env=env)


async def test_thumbnails_that_cannot_be_made_are_left_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A rung whose segments are not readable media: the title keeps its model, a stale sheet
    of an earlier try is removed, and no work file is left."""
    storage = open_storage(f"file://{tmp_path / 'media'}", None)
    try:
        p = presentation(*ladder_video()[3:], audio())
        for name in p.video[0].object_names():
            await storage.put_bytes(keys.object_key(p.title_id, p.version, name), b"not an mp4")
        stale = keys.object_key(p.title_id, p.version, "th/1.jpg")
        await storage.put_bytes(stale, b"\xff\xd8 from a dead attempt")
        out = await with_thumbnails(storage, p, tmp_path / "work")
        assert out is p
        assert not await storage.list(keys.object_key(p.title_id, p.version, "th/"))
        assert not (tmp_path / "work").exists()
        assert "no thumbnails" in caplog.text
    finally:
        await storage.close()
