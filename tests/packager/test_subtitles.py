"""Subtitle renditions in HLS and DASH: read back by independent parsers (m3u8, ElementTree)."""

import xml.etree.ElementTree as ET

import m3u8

from packager.dash import render_mpd
from packager.hls import SDH_CHARACTERISTICS, SUBTITLES_GROUP, render_media, render_multivariant
from packager.model import Presentation, Rendition
from packager.uris import UriBuilder
from tests.packager.factories import audio, ladder_video, presentation, segments, ticks

REL = UriBuilder(query="token=tok")
ABS = UriBuilder("https://cdn.example/stream/t1/v1/", "token=tok")
NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}


def subs(rid: str, language: str, name: str, **kw) -> Rendition:
    durations = ticks((4, 4, 4, 4, 2.5), 1000)
    return Rendition(
        id=rid,
        kind="subtitles",
        codecs="wvtt",
        bandwidth_peak=800,
        bandwidth_avg=400,
        timescale=1000,
        segments=segments(durations, 400, 1000),
        language=language,
        name=name,
        **kw,
    )


def titled() -> Presentation:
    return presentation(
        *ladder_video()[1:3],
        audio(),
        subs("t0", "en", "English"),
        subs("t1", "fr", "Français (forced)", forced=True, default=True),
        subs("t2", "en", "English SDH", sdh=True),
    )


def test_multivariant_lists_subtitles_and_every_variant_refers_to_the_group():
    pl = m3u8.loads(render_multivariant(titled(), REL))
    media = {m.uri: m for m in pl.media if m.type == "SUBTITLES"}
    assert list(media) == [f"{rid}/index.m3u8?token=tok" for rid in ("t0", "t1", "t2")]
    t0, t1, t2 = media.values()
    assert (t0.group_id, t0.language, t0.name, t0.default, t0.autoselect, t0.forced) == (
        SUBTITLES_GROUP, "en", "English", "NO", "YES", "NO"
    )  # fmt: skip
    assert (t1.default, t1.forced, t1.language) == ("YES", "YES", "fr")
    assert t2.characteristics == SDH_CHARACTERISTICS and t0.characteristics is None
    assert pl.playlists and all(v.stream_info.subtitles == SUBTITLES_GROUP for v in pl.playlists)


def test_no_subtitles_no_group():
    text = render_multivariant(presentation(*ladder_video()[1:3], audio()), REL)
    assert "SUBTITLES" not in text


def test_at_most_one_default():
    p = presentation(*ladder_video()[1:2], subs("t0", "en", "A", default=True), subs("t1", "fr", "B", default=True))
    pl = m3u8.loads(render_multivariant(p, REL))
    assert [m.default for m in pl.media] == ["YES", "NO"]


def test_media_playlist_lists_vtt_segments_without_map():
    for uri, first in ((REL, "1.vtt?token=tok"), (ABS, "https://cdn.example/stream/t1/v1/t0/1.vtt?token=tok")):
        text = render_media(titled(), "t0", uri)
        pl = m3u8.loads(text)
        assert "EXT-X-MAP" not in text
        assert pl.segment_map == [] or not pl.segment_map
        assert [s.duration for s in pl.segments] == [4, 4, 4, 4, 2.5]
        assert pl.segments[0].uri == first and pl.is_endlist
    # video playlists keep their map and .m4s segments
    video = render_media(titled(), "v720", REL)
    assert "#EXT-X-MAP:" in video and "1.m4s?token=tok" in video


def test_dash_text_adaptation_sets():
    root = ET.fromstring(render_mpd(titled(), REL))
    texts = root.findall(".//d:AdaptationSet[@contentType='text']", NS)
    assert [(a.get("mimeType"), a.get("lang")) for a in texts] == [
        ("text/vtt", "en"),
        ("text/vtt", "fr"),
        ("text/vtt", "en"),
    ]
    roles = [[r.get("value") for r in a.findall("d:Role", NS)] for a in texts]
    assert roles == [["subtitle"], ["forced-subtitle", "main"], ["caption"]]
    assert [a.find("d:Label", NS).text for a in texts] == ["English", "Français (forced)", "English SDH"]
    rep = texts[0].find("d:Representation", NS)
    tmpl = rep.find("d:SegmentTemplate", NS)
    assert rep.get("id") == "t0"
    assert tmpl.get("media") == "$RepresentationID$/$Number$.vtt?token=tok"
    assert tmpl.get("initialization") is None and tmpl.get("timescale") == "1000"
    ss = tmpl.findall("d:SegmentTimeline/d:S", NS)
    assert [(s.get("t"), s.get("d"), s.get("r")) for s in ss] == [("0", "4000", "3"), (None, "2500", None)]
    # the media sets keep .m4s
    assert all(
        t.get("media").endswith(".m4s?token=tok")
        for t in root.findall(".//d:AdaptationSet[@contentType='video']//d:SegmentTemplate", NS)
    )


def test_old_model_json_without_the_new_fields_still_loads():
    p = titled()
    text = p.to_json().replace(',"forced":false', "").replace(',"sdh":false', "")
    assert '"forced":false' not in text
    assert Presentation.from_json(text).rendition("t0").forced is False
    assert Presentation.from_json(p.to_json()) == p
