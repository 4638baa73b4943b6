"""The origin on real transcoded output (the `ready_title` fixture: ingest + worker + ffmpeg), not
on a hand-built model: a viewer logs in, asks for playback URLs, and every playlist, MPD,
init and media segment they name is checked with independent parsers (m3u8, mpegdash), with
BANDWIDTH recomputed from the bytes the origin actually serves."""

from __future__ import annotations

import math
import secrets
from fractions import Fraction
from urllib.parse import parse_qs, urljoin, urlsplit

import m3u8
from mpegdash.parser import MPEGDASHParser

from media import keys as media_keys
from media.backend import open_storage
from packager.model import Presentation

PASSWORD = "correct horse battery staple"


def _token_of(uri: str) -> str | None:
    return parse_qs(urlsplit(uri).query).get("token", [None])[0]


async def _playback_urls(client, title_id: str) -> dict:
    email = f"real-{secrets.token_hex(4)}@example.com"
    r = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status == 201, await r.text()
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status == 200, await r.text()
    bearer = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
    r = await client.post(f"/api/v1/titles/{title_id}/playback", headers=bearer)
    assert r.status == 200, await r.text()
    return await r.json()


async def _get(client, url: str, content_type: str, cache_control: str) -> bytes:
    """GET and HEAD: the headers every playlist, MPD and segment must carry."""
    r = await client.get(url)
    assert r.status == 200, (url, await r.text())
    body = await r.read()
    h = await client.head(url)
    assert h.status == 200 and await h.read() == b""
    for resp in (r, h):
        hd = resp.headers
        assert hd["Content-Type"] == content_type, url
        assert int(hd["Content-Length"]) == len(body), url
        assert "Transfer-Encoding" not in hd, url
        assert hd["ETag"].startswith('"') and hd["ETag"].endswith('"'), url  # strong
        assert "Last-Modified" in hd and hd["Accept-Ranges"] == "bytes", url
        assert hd["Cache-Control"] == cache_control, url
        assert hd["Access-Control-Allow-Origin"] == "*", url
    assert h.headers["ETag"] == r.headers["ETag"]
    return body


async def test_real_title_manifests_parse_and_every_uri_plays(app_client, ready_title):
    settings = ready_title["settings"]
    title_id, version = ready_title["id"], ready_title["version"]
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    try:
        model = Presentation.from_json(await storage.get_bytes(media_keys.model_key(title_id, version)))
    finally:
        await storage.close()

    urls = await _playback_urls(app_client, title_id)
    token = _token_of(urls["hls_url"])
    assert token and _token_of(urls["dash_url"]) == token
    playlist_cc = "private, max-age=60"
    segment_cc = "public, max-age=31536000, immutable"

    # ---- every rendition's bytes, fetched through the URIs of its HLS media playlist ------
    master_text = (await _get(app_client, urls["hls_url"], "application/vnd.apple.mpegurl", playlist_cc)).decode()
    master = m3u8.loads(master_text)
    assert master.is_variant and master.is_independent_segments
    sizes: dict[str, list[int]] = {}
    media_uris = [p.uri for p in master.playlists] + [m.uri for m in master.media if m.uri]
    assert media_uris
    for uri in media_uris:
        assert _token_of(uri) == token, uri
        rid = uri.split("/")[0]
        r = model.rendition(rid)
        assert r is not None, rid
        url = urljoin(urls["hls_url"], uri)
        pl = m3u8.loads((await _get(app_client, url, "application/vnd.apple.mpegurl", playlist_cc)).decode())
        assert pl.version == 6  # EXT-X-MAP in a non-I-frame playlist (RFC 8216 7)
        assert pl.playlist_type == "vod" and pl.is_endlist
        assert pl.target_duration >= max(math.floor(s.duration + 0.5) for s in pl.segments)
        # exact EXTINF: the model's ticks in seconds, to the 6 decimals written
        assert len(pl.segments) == len(r.segments)
        for s, seg in zip(pl.segments, r.segments, strict=True):
            assert abs(Fraction(str(s.duration)) - Fraction(seg.duration, r.timescale)) <= Fraction(1, 2_000_000)
        [init_map] = pl.segment_map
        assert _token_of(init_map.uri) == token
        init = await _get(app_client, urljoin(url, init_map.uri), "video/mp4", segment_cc)
        assert init[4:8] == b"ftyp"
        sizes[rid] = []
        for s in pl.segments:
            assert _token_of(s.uri) == token, s.uri
            data = await _get(app_client, urljoin(url, s.uri), "video/mp4", segment_cc)
            assert data[4:8] in (b"styp", b"moof"), s.uri
            sizes[rid].append(len(data))

    # ---- multivariant: BANDWIDTH is the measured peak of the video plus its audio ---------
    def peak(rid: str) -> int:
        r = model.rendition(rid)
        return math.ceil(
            max(
                Fraction(size * 8 * r.timescale, seg.duration) for size, seg in zip(sizes[rid], r.segments, strict=True)
            )
        )

    def average(rid: str) -> int:
        r = model.rendition(rid)
        return math.ceil(Fraction(sum(sizes[rid]) * 8 * r.timescale, sum(seg.duration for seg in r.segments)))

    audio = [m for m in master.media if m.type == "AUDIO"]
    assert audio, master_text
    for m in audio:
        assert m.group_id and m.name and m.language and m.default in ("YES", "NO") and m.autoselect == "YES"
    assert sum(m.default == "YES" for m in audio) == 1
    [default_audio] = [m.uri.split("/")[0] for m in audio if m.default == "YES"]
    audio_peak = max(peak(m.uri.split("/")[0]) for m in audio)
    audio_avg = max(average(m.uri.split("/")[0]) for m in audio)
    for v in master.playlists:
        rid = v.uri.split("/")[0]
        r = model.rendition(rid)
        info = v.stream_info
        assert info.bandwidth == peak(rid) + audio_peak, (rid, info.bandwidth)
        assert info.average_bandwidth == average(rid) + audio_avg, rid
        assert info.codecs == f"{r.codecs},{model.rendition(default_audio).codecs}"
        assert info.resolution == (r.width, r.height)
        assert info.frame_rate and abs(info.frame_rate - float(Fraction(r.frame_rate))) < 0.001
        assert info.audio == audio[0].group_id

    # ---- DASH over the same segments --------------------------------------------------------
    mpd_text = (await _get(app_client, urls["dash_url"], "application/dash+xml", playlist_cc)).decode()
    mpd = MPEGDASHParser.parse(mpd_text)
    assert mpd.type == "static"
    [period] = mpd.periods
    seen = set()
    for aset in period.adaptation_sets:
        if aset.content_type == "image":
            continue  # the thumbnails' sprite sheets: tests/server/test_origin_thumbnails.py
        assert aset.segment_alignment in (True, "true")
        for rep in aset.representations:
            r = model.rendition(rep.id)
            seen.add(rep.id)
            assert rep.codecs == r.codecs and rep.bandwidth == peak(rep.id)
            template = (rep.segment_templates or aset.segment_templates)[0]
            assert _token_of(template.initialization) == token and _token_of(template.media) == token
            assert template.segment_timelines or template.duration
            for n in (template.start_number or 1, (template.start_number or 1) + len(r.segments) - 1):
                seg_uri = template.media.replace("$RepresentationID$", rep.id).replace("$Number$", str(n))
                data = await _get(app_client, urljoin(urls["dash_url"], seg_uri), "video/mp4", segment_cc)
                assert len(data) == sizes[rep.id][n - r.start_number]
            if r.kind == "video":
                assert (rep.width, rep.height) == (r.width, r.height)
                assert Fraction(rep.frame_rate or aset.frame_rate) == Fraction(r.frame_rate)
            else:
                assert aset.lang == r.language
    assert seen == set(sizes)
