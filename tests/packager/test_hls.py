"""HLS output read back by an independent parser (m3u8), plus edge cases of the model."""

import math
from dataclasses import replace
from fractions import Fraction
from urllib.parse import parse_qs, urlsplit

import m3u8
import pytest

from packager.errors import InvalidPresentation, PackagerError, RenditionNotFound
from packager.hls import AUDIO_GROUP, render_iframes, render_media, render_multivariant
from packager.model import Segment
from packager.uris import UriBuilder
from tests.packager.factories import (
    GOLDEN,
    audio,
    audio_only,
    event,
    ladder,
    mixed_durations,
    presentation,
    trickplay,
    video,
    video_only,
    with_key_samples,
)

TOKEN = "tok_-9Zx"
REL = UriBuilder(query=f"token={TOKEN}")
ABS = UriBuilder("https://cdn.example/stream/t1/v1/", f"token={TOKEN}")


def _token(uri: str) -> str | None:
    return parse_qs(urlsplit(uri).query).get("token", [None])[0]


# ---- multivariant ----------------------------------------------------------------------


def test_ladder_multivariant_parses():
    p = ladder()
    pl = m3u8.loads(render_multivariant(p, REL))
    assert pl.is_variant and pl.version == 6 and pl.is_independent_segments
    a0 = p.rendition("a0")
    by_uri = {v.uri: v.stream_info for v in pl.playlists}
    assert list(by_uri) == [f"{rid}/index.m3u8?token={TOKEN}" for rid in ("v360", "v480", "v720", "v1080")]
    for r in p.video:
        info = by_uri[f"{r.id}/index.m3u8?token={TOKEN}"]
        assert info.bandwidth == r.bandwidth_peak + a0.bandwidth_peak
        assert info.average_bandwidth == r.bandwidth_avg + a0.bandwidth_avg
        assert info.codecs == f"{r.codecs},mp4a.40.2"
        assert info.resolution == (r.width, r.height)
        assert info.frame_rate == 30.0
        assert info.audio == AUDIO_GROUP
    [media] = pl.media
    assert (media.type, media.group_id, media.language, media.default, media.autoselect, media.channels) == (
        "AUDIO",
        AUDIO_GROUP,
        "en",
        "YES",
        "YES",
        "2",
    )
    assert media.uri == f"a0/index.m3u8?token={TOKEN}"


def test_variants_sorted_by_bandwidth_whatever_the_model_order():
    p = ladder()
    shuffled = presentation(*reversed(p.renditions))
    bws = [v.stream_info.bandwidth for v in m3u8.loads(render_multivariant(shuffled, REL)).playlists]
    assert bws == sorted(bws)


def test_bandwidth_adds_the_highest_audio():
    p = presentation(
        video("v360", 640, 360, peak=900_000, avg=700_000),
        audio("a0", peak=70_000, avg=64_000),
        audio("a1", language="fr", name="Français", peak=200_000, avg=120_000),
    )
    [variant] = m3u8.loads(render_multivariant(p, REL)).playlists
    # RFC 8216 4.3.4.2: the largest sum over any playable combination.
    assert variant.stream_info.bandwidth == 1_100_000
    assert variant.stream_info.average_bandwidth == 820_000


def test_video_only_has_no_audio_group():
    pl = m3u8.loads(render_multivariant(video_only(), REL))
    assert not pl.media
    for v in pl.playlists:
        assert v.stream_info.audio is None
        assert "mp4a" not in v.stream_info.codecs


def test_audio_only_lists_audio_renditions_as_variants():
    p = audio_only()
    pl = m3u8.loads(render_multivariant(p, REL))
    assert not pl.media
    assert [(v.uri, v.stream_info.bandwidth, v.stream_info.codecs) for v in pl.playlists] == [
        (f"a1/index.m3u8?token={TOKEN}", 68_000, "mp4a.40.2"),
        (f"a0/index.m3u8?token={TOKEN}", 132_000, "mp4a.40.2"),
    ]
    assert all(v.stream_info.resolution is None for v in pl.playlists)


def test_distinct_codecs_listed_once_each():
    p = presentation(
        video(),
        audio("a0"),
        audio("a1", language="de", name="Deutsch", codecs="ec-3"),
        audio("a2", language="fr", name="Français"),
    )
    [variant] = m3u8.loads(render_multivariant(p, REL)).playlists
    assert variant.stream_info.codecs == "avc1.64001f,mp4a.40.2,ec-3"


@pytest.mark.parametrize(
    ("defaults", "expected"),
    [
        pytest.param((False, False, False), ["YES", "NO", "NO"], id="none-marked-first-wins"),
        pytest.param((False, True, False), ["NO", "YES", "NO"], id="marked-one-wins"),
        pytest.param((False, True, True), ["NO", "YES", "NO"], id="two-marked-only-first-is-default"),
    ],
)
def test_exactly_one_default_audio(defaults, expected):
    langs = ("en", "fr", "de")
    p = presentation(
        video(),
        *(
            audio(f"a{i}", language=lang, name=lang, default=d)
            for i, (lang, d) in enumerate(zip(langs, defaults, strict=True))
        ),
    )
    media = m3u8.loads(render_multivariant(p, REL)).media
    assert [m.default for m in media] == expected
    assert all(m.autoselect == "YES" for m in media)


@pytest.mark.parametrize(
    ("names", "languages", "expected"),
    [
        pytest.param(
            ("English", "English"), ("en", "en"), ["English", "English (a1)"], id="duplicate-names-made-unique"
        ),
        pytest.param((None, None), ("en", "fr"), ["en", "fr"], id="name-falls-back-to-language"),
        pytest.param((None, None), (None, None), ["a0", "a1"], id="name-falls-back-to-id"),
        pytest.param(('Director "cut"', "x"), ("en", "en"), ["Director 'cut'", "x"], id="quote-in-name-replaced"),
    ],
)
def test_audio_names(names, languages, expected):
    p = presentation(
        video(),
        *(audio(f"a{i}", name=n, language=lang) for i, (n, lang) in enumerate(zip(names, languages, strict=True))),
    )
    text = render_multivariant(p, REL)
    assert [m.name for m in m3u8.loads(text).media] == expected
    if languages[0] is None:
        assert "LANGUAGE=" not in text


@pytest.mark.parametrize(
    ("kwargs", "absent"),
    [
        pytest.param({"frame_rate": None}, "FRAME-RATE", id="no-frame-rate"),
        pytest.param({"width": None, "height": None}, "RESOLUTION", id="no-resolution"),
    ],
)
def test_optional_video_attributes_omitted(kwargs, absent):
    r = video()
    text = render_multivariant(presentation(replace(r, **kwargs)), REL)
    assert absent not in text
    m3u8.loads(text)


@pytest.mark.parametrize(
    ("frame_rate", "expected"),
    [
        pytest.param("30000/1001", "FRAME-RATE=29.970", id="ntsc"),
        pytest.param("24000/1001", "FRAME-RATE=23.976", id="film"),
        pytest.param("25", "FRAME-RATE=25.000", id="pal"),
        pytest.param("59.94", "FRAME-RATE=59.940", id="decimal-string"),
    ],
)
def test_frame_rate_three_decimals(frame_rate, expected):
    assert expected in render_multivariant(presentation(video(frame_rate=frame_rate)), REL)


# ---- media playlists -------------------------------------------------------------------


@pytest.mark.parametrize("name", list(GOLDEN))
@pytest.mark.parametrize("uri", [pytest.param(REL, id="relative"), pytest.param(ABS, id="absolute")])
def test_every_media_playlist_parses_and_matches_the_model(name, uri):
    p = GOLDEN[name]()
    for r in p.renditions:
        if r.kind == "image":
            continue  # a WebVTT index, not a playlist: tests/packager/test_thumbnails.py
        pl = m3u8.loads(render_media(p, r.id, uri))
        assert pl.version == 6
        assert pl.media_sequence == r.start_number
        assert pl.playlist_type == ("vod" if p.complete else "event")
        assert pl.is_endlist is p.complete
        assert len(pl.segments) == len(r.segments)
        # Durations are exact to a microsecond, and so is their sum.
        assert sum(Fraction(str(s.duration)) for s in pl.segments) == pytest.approx(
            r.duration_s, abs=1e-5 * len(r.segments)
        )
        for s, model_seg in zip(pl.segments, r.segments, strict=True):
            assert abs(Fraction(str(s.duration)) - Fraction(model_seg.duration, r.timescale)) <= Fraction(1, 2_000_000)
            # RFC 8216 4.3.3.1: each EXTINF rounded to the nearest integer <= target duration.
            assert int(Fraction(str(s.duration)) + Fraction(1, 2)) <= pl.target_duration
        uris = [s.uri for s in pl.segments] + [pl.segments[0].init_section.uri]
        assert all(_token(u) == TOKEN for u in uris)
        if uri is ABS:
            assert all(u.startswith(f"https://cdn.example/stream/t1/v1/{r.id}/") for u in uris)
        else:
            assert pl.segments[0].init_section.uri == f"init.mp4?token={TOKEN}"
            assert [s.uri for s in pl.segments] == [
                f"{n}.m4s?token={TOKEN}" for n in range(r.start_number, r.start_number + len(r.segments))
            ]


@pytest.mark.parametrize("name", list(GOLDEN))
def test_every_multivariant_uri_carries_the_token(name):
    pl = m3u8.loads(render_multivariant(GOLDEN[name](), ABS))
    uris = [v.uri for v in pl.playlists] + [m.uri for m in pl.media]
    assert uris and all(_token(u) == TOKEN and u.startswith("https://cdn.example/") for u in uris)


@pytest.mark.parametrize(
    ("durations_s", "complete", "target_s", "expected"),
    [
        pytest.param((4.004, 3.9, 4.004), True, 4, 4, id="4.004-and-3.9-round-to-4"),
        pytest.param((4, 4.5, 2), True, 4, 5, id="4.5-rounds-half-up-to-5"),
        pytest.param((4, 4.49, 2), True, 4, 4, id="4.49-rounds-down"),
        pytest.param((6, 6, 6.5), True, 6, 7, id="long-last-segment"),
        pytest.param((2, 2, 1), True, 6, 2, id="vod-uses-actual-not-nominal"),
        pytest.param((2.002, 2.002), False, 4, 4, id="event-floored-at-nominal"),
        pytest.param((4.004, 6.6), False, 4, 7, id="event-longer-than-nominal"),
        pytest.param((0.4,), True, 4, 1, id="never-zero"),
    ],
)
def test_target_duration(durations_s, complete, target_s, expected):
    r = video(durations_s=durations_s, timescale=30000)
    pl = m3u8.loads(render_media(presentation(r, complete=complete, segment_target_s=target_s), r.id, REL))
    assert pl.target_duration == expected


def test_media_sequence_follows_start_number():
    r = video(start_number=42, durations_s=(4, 4))
    pl = m3u8.loads(render_media(presentation(r), r.id, REL))
    assert pl.media_sequence == 42
    assert [s.uri for s in pl.segments] == [f"42.m4s?token={TOKEN}", f"43.m4s?token={TOKEN}"]


def test_event_has_no_endlist_and_vod_has():
    assert "#EXT-X-ENDLIST" not in render_media(event(), "v360", REL)
    assert render_media(ladder(), "v360", REL).endswith("#EXT-X-ENDLIST\n")


def test_exact_extinf_not_float_noise():
    text = render_media(mixed_durations(), "v720", REL)
    assert "#EXTINF:4.004,\n" in text and "#EXTINF:3.9,\n" in text and "#EXTINF:4.5,\n" in text
    assert "0000001" not in text and "9999" not in text


def test_no_query_means_no_question_mark():
    text = render_media(ladder(), "v360", UriBuilder())
    assert "?" not in text


# ---- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "error", "code"),
    [
        pytest.param(presentation(), InvalidPresentation, "invalid_presentation", id="no-renditions"),
        pytest.param(
            presentation(video(durations_s=())),
            InvalidPresentation,
            "invalid_presentation",
            id="rendition-without-segments",
        ),
        pytest.param(
            presentation(video("v720"), video("v720")), InvalidPresentation, "invalid_presentation", id="duplicate-ids"
        ),
        pytest.param(presentation(video("V 720")), InvalidPresentation, "invalid_presentation", id="id-not-path-safe"),
        pytest.param(presentation(video("v$1")), InvalidPresentation, "invalid_presentation", id="id-with-dollar"),
        pytest.param(
            presentation(replace(video(), timescale=0)),
            InvalidPresentation,
            "invalid_presentation",
            id="zero-timescale",
        ),
        pytest.param(
            presentation(replace(video(), segments=(Segment(0, 10),))),
            InvalidPresentation,
            "invalid_presentation",
            id="zero-duration-segment",
        ),
        pytest.param(
            presentation(replace(video(), start_number=-1)),
            InvalidPresentation,
            "invalid_presentation",
            id="negative-start-number",
        ),
        pytest.param(
            presentation(video(frame_rate="fast")), InvalidPresentation, "invalid_presentation", id="bad-frame-rate"
        ),
        pytest.param(
            presentation(video(codecs='avc1"')), InvalidPresentation, "invalid_presentation", id="quote-in-codecs"
        ),
    ],
)
def test_multivariant_rejects_impossible_models(p, error, code):
    with pytest.raises(error) as err:
        render_multivariant(p, REL)
    assert isinstance(err.value, PackagerError) and err.value.code == code


def test_media_rejects_unknown_rendition():
    with pytest.raises(RenditionNotFound) as err:
        render_media(ladder(), "v4320", REL)
    assert err.value.code == "rendition_not_found"


def test_media_rejects_empty_rendition_even_if_another_is_asked():
    p = presentation(video("v720"), video("v360", 640, 360, durations_s=()))
    with pytest.raises(InvalidPresentation):
        render_media(p, "v720", REL)


# ---- progressive (segments still being encoded, bitrates are the encoder's caps) ---------


def test_progressive_multivariant_has_no_average_bandwidth():
    p = replace(ladder(), progressive=True)
    text = render_multivariant(p, REL)
    assert "AVERAGE-BANDWIDTH" not in text
    pl = m3u8.loads(text)
    a0 = p.rendition("a0")
    by_uri = {v.uri: v.stream_info for v in pl.playlists}
    for r in p.video:
        assert by_uri[f"{r.id}/index.m3u8?token={TOKEN}"].bandwidth == r.bandwidth_peak + a0.bandwidth_peak
    only = replace(audio_only(), progressive=True)
    assert "AVERAGE-BANDWIDTH" not in render_multivariant(only, REL)
    assert "AVERAGE-BANDWIDTH" in render_multivariant(ladder(), REL)


def test_progressive_media_playlist_is_vod_like_the_measured_one():
    p = ladder()
    assert render_media(replace(p, progressive=True), "v360", REL) == render_media(p, "v360", REL)


def test_two_languages_and_a_surround_copy_share_one_audio_group():
    p = presentation(
        video(peak=1_000_000),
        audio("a0", language="en", name="English", default=True),
        audio("a0-51", language="en", name="English 5.1", channels=6, peak=400_000, avg=384_000),
        audio("a1", language="fr", name="Français"),
    )
    parsed = m3u8.loads(render_multivariant(p, REL))
    got = [(m.group_id, m.language, m.name, m.channels, m.default, m.autoselect, m.uri) for m in parsed.media]
    assert got == [
        (AUDIO_GROUP, "en", "English", "2", "YES", "YES", "a0/index.m3u8?token=" + TOKEN),
        (AUDIO_GROUP, "en", "English 5.1", "6", "NO", "YES", "a0-51/index.m3u8?token=" + TOKEN),
        (AUDIO_GROUP, "fr", "Français", "2", "NO", "YES", "a1/index.m3u8?token=" + TOKEN),
    ]
    [variant] = parsed.playlists
    # RFC 8216 4.3.4.2: BANDWIDTH covers the richest combination (video + the 5.1 track)
    assert variant.stream_info.bandwidth == 1_000_000 + 400_000
    assert variant.stream_info.audio == AUDIO_GROUP


# ---- I-frame playlists (RFC 8216 4.3.3.6, 4.3.4.3) ----------------------------------------


def test_iframe_stream_inf_per_rung_with_key_samples():
    p = trickplay()
    pl = m3u8.loads(render_multivariant(p, REL))
    assert [v.uri for v in pl.playlists] == [f"{rid}/index.m3u8?token={TOKEN}" for rid in ("v360", "v720")]
    by_uri = {i.uri: i.iframe_stream_info for i in pl.iframe_playlists}
    assert list(by_uri) == [f"{rid}/iframes.m3u8?token={TOKEN}" for rid in ("v360", "v720")]
    for r in p.video:
        info = by_uri[f"{r.id}/iframes.m3u8?token={TOKEN}"]
        # Only the video codec: an I-frame playlist has no audio (RFC 8216 4.3.4.3).
        assert info.codecs == r.codecs and info.resolution == (r.width, r.height)
        key_bits = [s.key_end * 8 for s in r.segments]
        peak = max(Fraction(b * r.timescale, s.duration) for b, s in zip(key_bits, r.segments, strict=True))
        assert info.bandwidth == math.ceil(peak)
        assert info.bandwidth < r.bandwidth_peak  # key samples only, far below the variant's


@pytest.mark.parametrize(
    "p",
    [
        pytest.param(ladder(), id="no-key-samples-recorded"),
        pytest.param(replace(trickplay(), progressive=True), id="progressive"),
        pytest.param(
            presentation(with_key_samples(video()), replace(video("v360", 640, 360), codecs="avc1.64001e")),
            id="one-rung-without",
        ),
    ],
)
def test_no_iframe_playlist_without_measured_key_samples(p):
    text = render_multivariant(p, REL)
    listed = {i.uri.split("/")[0] for i in m3u8.loads(text).iframe_playlists}
    assert listed == {r.id for r in p.video if r.has_iframes and not p.progressive}
    for r in p.video:
        if r.id not in listed:
            with pytest.raises(RenditionNotFound):
                render_iframes(p, r.id, REL)


@pytest.mark.parametrize("uri", [pytest.param(REL, id="relative"), pytest.param(ABS, id="absolute")])
def test_iframe_playlist_byte_ranges_into_the_media_segments(uri):
    p = trickplay()
    r = p.rendition("v720")
    text = render_iframes(p, "v720", uri)
    pl = m3u8.loads(text)
    assert pl.is_i_frames_only and pl.version == 6 and pl.is_endlist and pl.playlist_type == "vod"
    assert pl.segment_map[0].uri == uri.init(r)
    media = m3u8.loads(render_media(p, "v720", uri))
    # The same segment URIs as the media playlist, each cut at the end of its key sample.
    assert [s.uri for s in pl.segments] == [s.uri for s in media.segments]
    assert [s.byterange for s in pl.segments] == [f"{s.key_end}@0" for s in r.segments]
    assert [Fraction(str(s.duration)) for s in pl.segments] == [Fraction(s.duration, r.timescale) for s in r.segments]
    assert all(s.key_end <= s.size for s in r.segments)
    assert pl.target_duration == 4


def test_no_media_playlist_for_thumbnails():
    with pytest.raises(RenditionNotFound):
        render_media(trickplay(), "th", REL)


def test_key_sample_outside_its_segment_refused():
    r = with_key_samples(video())
    bad = replace(r, segments=(replace(r.segments[0], key_size=r.segments[0].size), *r.segments[1:]))
    with pytest.raises(InvalidPresentation):
        render_multivariant(presentation(bad), REL)
