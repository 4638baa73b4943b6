"""Seek thumbnails and I-frame playlists through the origin, on a real transcoded title (the
`ready_title` fixture): the playback answer's `thumbnails_url`, the WebVTT index rendered
with the viewer's token, the sprite sheets it names (and the DASH image set's), and the HLS
I-frame playlists, whose byte ranges are cut from the served segments and decoded by ffprobe.
Every URL twice: the second answer is the fast path's."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import m3u8
from mpegdash.parser import MPEGDASHParser

from tests.packager.test_thumbnails import parse

SEGMENT_CC = "public, max-age=31536000, immutable"
CT_HLS = "application/vnd.apple.mpegurl"


def _auth(user_token: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {user_token['access_token']}"}


def _token_of(uri: str) -> str | None:
    return parse_qs(urlsplit(uri).query).get("token", [None])[0]


async def _play(client: Any, title_id: str, user_token: dict[str, str]) -> dict[str, Any]:
    r = await client.post(f"/api/v1/titles/{title_id}/playback", headers=_auth(user_token))
    assert r.status == 200, await r.text()
    return await r.json()


async def _get(client: Any, url: str, content_type: str, **headers: str) -> bytes:
    body = None
    for _ in range(2):
        r = await client.get(url, headers=headers)
        assert r.status in (200, 206), (url, r.status, await r.text())
        assert r.headers["Content-Type"] == content_type, url
        got = await r.read()
        assert body is None or got == body
        body = got
    assert body is not None
    return body


def _frames(path: Path) -> list[dict[str, Any]]:
    raw = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_frames", "-of", "json", str(path)],
        check=True,
        capture_output=True,
    ).stdout
    return json.loads(raw)["frames"]


def _jpeg_size(data: bytes, tmp_path: Path) -> tuple[int, int]:
    path = tmp_path / "sheet.jpg"
    path.write_bytes(data)
    raw = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=width,height", "-of", "json", str(path)],
        check=True,
        capture_output=True,
    ).stdout
    [stream] = json.loads(raw)["streams"]
    return stream["width"], stream["height"]


async def test_thumbnails_index_and_sheets_carry_the_token(
    app_client: Any, user_token: dict[str, str], ready_title: dict[str, Any], tmp_path: Path
) -> None:
    tid, version = ready_title["id"], ready_title["version"]
    body = await _play(app_client, tid, user_token)
    token = _token_of(body["hls_url"])
    assert body["thumbnails_url"] == f"/stream/{tid}/{version}/th/thumbnails.vtt?token={token}"
    vtt = (await _get(app_client, body["thumbnails_url"], "text/vtt; charset=utf-8")).decode()
    cues = parse(vtt)
    assert cues and cues[0][0] == 0
    sheets: dict[str, bytes] = {}
    for _, _, uri, (x, y, w, h) in cues:
        assert _token_of(uri) == token, uri
        url = urljoin(body["thumbnails_url"], uri)
        if url not in sheets:
            sheets[url] = await _get(app_client, url, "image/jpeg")
        width, height = _jpeg_size(sheets[url], tmp_path)
        assert 0 <= x and x + w <= width and 0 <= y and y + h <= height
    [sheet_url] = sheets
    r = await app_client.get(sheet_url)
    assert r.headers["Cache-Control"] == SEGMENT_CC
    etag = r.headers["ETag"]
    r = await app_client.get(sheet_url, headers={"If-None-Match": etag})
    assert r.status == 304

    # The same sheet through the DASH-IF image AdaptationSet.
    mpd = MPEGDASHParser.parse((await _get(app_client, body["dash_url"], "application/dash+xml")).decode())
    [aset] = [a for a in mpd.periods[0].adaptation_sets if a.content_type == "image"]
    [rep] = aset.representations
    assert rep.essential_properties[0].value == "5x5"
    media = rep.segment_templates[0].media.replace("$RepresentationID$", rep.id).replace("$Number$", "1")
    assert await _get(app_client, urljoin(body["dash_url"], media), "image/jpeg") == sheets[sheet_url]
    assert _jpeg_size(sheets[sheet_url], tmp_path) == (rep.width, rep.height)

    # Without a token, or with another version's, nothing is served.
    bare = sheet_url.split("?")[0]
    other = body["thumbnails_url"].replace(version, "v20990101000000-ffffff")
    for url in (bare, body["thumbnails_url"].split("?")[0], urljoin(other, "1.jpg?token=" + (token or ""))):
        for _ in range(2):
            r = await app_client.get(url)
            assert r.status == 403, (url, r.status)
            assert (await r.json())["error"]["code"].startswith("playback_token")

    # Thumbnails have no media playlist; video has no index.
    for name in ("th/index.m3u8", "v360/thumbnails.vtt", "th/2.jpg", "th/init.mp4", "v360/1.jpg"):
        r = await app_client.get(f"/stream/{tid}/{version}/{name}?token={token}")
        assert r.status == 404, name


async def test_iframe_playlists_cut_key_frames_from_the_segments(
    app_client: Any, user_token: dict[str, str], ready_title: dict[str, Any], tmp_path: Path
) -> None:
    body = await _play(app_client, ready_title["id"], user_token)
    token = _token_of(body["hls_url"])
    master = m3u8.loads((await _get(app_client, body["hls_url"], CT_HLS)).decode())
    variants = {p.uri.split("/")[0]: p.stream_info for p in master.playlists}
    iframes = {p.uri.split("/")[0]: p for p in master.iframe_playlists}
    assert set(iframes) == set(variants) and iframes
    for rid, entry in iframes.items():
        assert _token_of(entry.uri) == token
        info = entry.iframe_stream_info
        assert info.resolution == variants[rid].resolution and info.codecs == variants[rid].codecs.split(",")[0]
        assert 0 < info.bandwidth < variants[rid].bandwidth
        url = urljoin(body["hls_url"], entry.uri)
        pl = m3u8.loads((await _get(app_client, url, CT_HLS)).decode())
        assert pl.is_i_frames_only and pl.is_endlist
        init = await _get(app_client, urljoin(url, pl.segment_map[0].uri), "video/mp4")
        media = m3u8.loads((await _get(app_client, urljoin(url, f"index.m3u8?token={token}"), CT_HLS)).decode())
        assert [s.uri for s in pl.segments] == [s.uri for s in media.segments]
        for i, s in enumerate(pl.segments):
            length, _, offset = s.byterange.partition("@")
            start, end = int(offset), int(offset) + int(length) - 1
            part = await _get(app_client, urljoin(url, s.uri), "video/mp4", Range=f"bytes={start}-{end}")
            assert len(part) == int(length)
            # init + the range: a decodable fragment of exactly one frame, a key frame.
            cut = tmp_path / f"{rid}-{i}.mp4"
            cut.write_bytes(init + part)
            frames = _frames(cut)
            assert len(frames) == 1 and frames[0]["key_frame"] == 1, (rid, s.uri)
            assert int(length) < len(await _get(app_client, urljoin(url, s.uri), "video/mp4"))
