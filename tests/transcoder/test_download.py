"""The progressive download, made by the real worker from the real encode: one MP4 with the
moov box first, the <=720p rung's video, the default audio and soft subtitles."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from media import keys
from media.backend import open_storage
from packager.dash import render_mpd
from packager.model import Presentation, Rendition, Segment
from packager.uris import UriBuilder
from transcoder.download import (
    DOWNLOAD_ID,
    download_key,
    file_name,
    make_download,
    merge_webvtt,
    pick_video,
    with_download,
)


def _boxes(path: Path) -> list[str]:
    """The top-level MP4 box types, in file order."""
    out: list[str] = []
    with open(path, "rb") as f:
        while True:
            head = f.read(8)
            if len(head) < 8:
                return out
            size = int.from_bytes(head[:4], "big")
            kind = head[4:].decode("latin-1")
            if size == 1:
                size = int.from_bytes(f.read(8), "big")
                f.seek(size - 16, 1)
            else:
                f.seek(size - 8, 1)
            out.append(kind)


def _streams(path: Path) -> list[dict[str, Any]]:
    raw = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)], check=True, capture_output=True
    ).stdout
    return json.loads(raw)["streams"]


def _sub_text(path: Path) -> str:
    argv = ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:s:0", "-f", "webvtt", "-"]
    return subprocess.run(argv, check=True, capture_output=True).stdout.decode()


async def _model(settings: Any, title_id: str, version: str) -> Presentation:
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    try:
        return Presentation.from_json(await storage.get_bytes(keys.model_key(title_id, version)))
    finally:
        await storage.close()


async def test_worker_publishes_a_progressive_mp4(ready_title: dict[str, Any]) -> None:
    settings = ready_title["settings"]
    p = await _model(settings, ready_title["id"], ready_title["version"])
    dl = p.rendition(DOWNLOAD_ID)
    assert dl is not None and dl.kind == "download"
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    try:
        local = storage.local_path(download_key(p.title_id, p.version))
    finally:
        await storage.close()
    assert local is not None and local.is_file()
    path = local
    assert len(dl.segments) == 1 and dl.segments[0].size == path.stat().st_size
    assert abs(dl.duration_s - p.duration_s) < 0.01
    video = pick_video(p)
    assert video is not None and dl.height == video.height
    assert dl.codecs == f"{video.codecs},{p.audio[0].codecs}"
    assert dl.name and dl.name.startswith("ready-") and dl.name.endswith(".mp4")
    boxes = _boxes(path)
    assert "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat")
    assert "moof" not in boxes  # progressive, not fragmented
    kinds = sorted(s["codec_type"] for s in _streams(path))
    assert kinds == ["audio", "video"]
    # the MPD's buffer is still a segment's, not the whole download's
    mpd = render_mpd(p, UriBuilder(query="token=t"))
    assert f'minBufferTime="PT{p.duration_s:g}' not in mpd


async def test_subtitles_join_as_mov_text(ready_title: dict[str, Any], tmp_path: Path) -> None:
    """A handmade subtitles rendition (two WebVTT segments, one cue spanning both) becomes one
    mov_text track, its cue once."""
    settings = ready_title["settings"]
    p = await _model(settings, ready_title["id"], ready_title["version"])
    p = Presentation(**{**p.__dict__, "renditions": tuple(r for r in p.renditions if r.kind != "download")})
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    try:
        cue = "00:00:01.000 --> 00:00:05.000\nHello, world\n"
        await storage.put_bytes(keys.object_key(p.title_id, p.version, "t0/1.vtt"), f"WEBVTT\n\n1\n{cue}".encode())
        await storage.put_bytes(keys.object_key(p.title_id, p.version, "t0/2.vtt"), f"WEBVTT\n\nx\n{cue}".encode())
        t0 = Rendition(
            id="t0",
            kind="subtitles",
            codecs="wvtt",
            bandwidth_peak=100,
            bandwidth_avg=100,
            timescale=1000,
            segments=(Segment(3000, 50), Segment(3000, 50)),
            language="en",
            name="English",
        )
        p2 = Presentation(**{**p.__dict__, "renditions": (*p.renditions, t0)})
        dl = await make_download(storage, p2, tmp_path / "work", title="Ünïcode Title!")
        local = storage.local_path(download_key(p.title_id, p.version))
        assert local is not None
        streams = _streams(local)
        subs = [s for s in streams if s["codec_type"] == "subtitle"]
        assert [s["codec_name"] for s in subs] == ["mov_text"]
        assert subs[0]["tags"]["language"] == "eng"
        assert dl.name == "ünïcode-title.mp4"
        text = _sub_text(local)
        assert text.count("Hello, world") == 1
    finally:
        await storage.close()


async def test_a_failed_download_leaves_the_title_alone(ready_title: dict[str, Any], tmp_path: Path) -> None:
    settings = ready_title["settings"]
    p = await _model(settings, ready_title["id"], ready_title["version"])
    v = pick_video(p)
    assert v is not None
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    try:
        await storage.delete_prefix(keys.object_key(p.title_id, p.version, v.id + "/"))
        plain = Presentation(**{**p.__dict__, "renditions": tuple(r for r in p.renditions if r.kind != "download")})
        assert await with_download(storage, plain, tmp_path / "w", title="x") == plain
        assert not (tmp_path / "w").exists()
    finally:
        await storage.close()


def test_merge_webvtt_keeps_each_cue_once() -> None:
    a = "WEBVTT\nX-TIMESTAMP-MAP=LOCAL:00:00:00.000,MPEGTS:0\n\nNOTE hi\n\n1\n00:00.000 --> 00:02.000\nA\n\n"
    b = "\ufeffWEBVTT\r\n\r\n00:00.000 --> 00:02.000\r\nA\r\n\r\n00:03.000 --> 00:04.000 line:0\r\nB\r\n"
    assert merge_webvtt([a, b]) == "WEBVTT\n\n00:00.000 --> 00:02.000\nA\n\n00:03.000 --> 00:04.000 line:0\nB\n\n"


@pytest.mark.parametrize(
    ("title", "name"), [("The Big Film (2024)", "the-big-film-2024.mp4"), ("?!", "video.mp4"), ("Été", "été.mp4")]
)
def test_file_name(title: str, name: str) -> None:
    assert file_name(title) == name


async def test_made_from_s3_storage(ready_title: dict[str, Any], s3_server: str, tmp_path: Path) -> None:
    """On S3 the segments are streamed down (no local path), and the MP4 goes back up."""
    import uuid

    from media.storage_s3 import S3Storage

    settings = ready_title["settings"]
    p = await _model(settings, ready_title["id"], ready_title["version"])
    plain = Presentation(**{**p.__dict__, "renditions": tuple(r for r in p.renditions if r.kind != "download")})
    local = open_storage(settings.storage_url, settings.s3_endpoint_url)
    s3 = open_storage(f"s3://sf-{uuid.uuid4().hex[:12]}/media", s3_server)
    assert isinstance(s3, S3Storage)
    try:
        await s3.create_bucket()
        prefix = keys.version_prefix(p.title_id, p.version)
        for obj in await local.list(prefix):
            await s3.put_bytes(obj.key, await local.get_bytes(obj.key))
        assert s3.local_path(download_key(p.title_id, p.version)) is None
        out = await with_download(s3, plain, tmp_path / "work", title="From S3")
        dl = out.rendition(DOWNLOAD_ID)
        assert dl is not None and dl.name == "from-s3.mp4"
        saved = tmp_path / "dl.mp4"
        saved.write_bytes(await s3.get_bytes(download_key(p.title_id, p.version)))
        assert dl.segments[0].size == saved.stat().st_size
        assert sorted(s["codec_type"] for s in _streams(saved)) == ["audio", "video"]
    finally:
        await s3.close()
        await local.close()
