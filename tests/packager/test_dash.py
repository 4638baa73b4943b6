"""DASH output read back by an independent parser (mpegdash), plus edge cases of the model."""

import xml.etree.ElementTree as ET
from dataclasses import replace
from fractions import Fraction

import pytest
from mpegdash.parser import MPEGDASHParser

from packager.dash import CHANNELS_SCHEME, PROFILE_CMAF, PROFILE_LIVE, THUMBNAIL_TILE_SCHEME, render_mpd
from packager.errors import InvalidPresentation, PackagerError, PresentationIncomplete
from packager.uris import UriBuilder
from tests.packager.factories import (
    GOLDEN,
    audio,
    audio_only,
    event,
    ladder,
    mixed_durations,
    presentation,
    thumbnails,
    trickplay,
    video,
    video_only,
)

TOKEN = "tok_-9Zx"
REL = UriBuilder(query=f"token={TOKEN}")
ABS = UriBuilder("https://cdn.example/stream/t1/v1/", f"token={TOKEN}&exp=1700000000")


def _timeline_ticks(template) -> list[int]:
    """Expand <S t d r> back into one duration per segment."""
    out = []
    for s in template.segment_timelines[0].Ss:
        out += [s.d] * (1 + (s.r or 0))
    return out


def _template_for(aset, rep):
    return (rep.segment_templates or aset.segment_templates)[0]


def _iso_seconds(text: str) -> Fraction:
    # PT[nH][nM][n.nS], as written by packager.timing.xs_duration
    assert text.startswith("PT")
    total, num = Fraction(0), ""
    for ch in text[2:]:
        if ch in "HMS":
            total += Fraction(num) * {"H": 3600, "M": 60, "S": 1}[ch]
            num = ""
        else:
            num += ch
    return total


@pytest.mark.parametrize("name", [n for n in GOLDEN if GOLDEN[n]().complete])
@pytest.mark.parametrize("uri", [pytest.param(REL, id="relative"), pytest.param(ABS, id="absolute")])
def test_mpd_parses_and_matches_the_model(name, uri):
    p = GOLDEN[name]()
    text = render_mpd(p, uri)
    mpd = MPEGDASHParser.parse(text)
    assert mpd.type == "static"
    # mpegdash reads segmentAlignment with bool(str), so "false" would parse as True.
    assert 'segmentAlignment="false"' not in text
    assert PROFILE_LIVE in mpd.profiles.split(",")
    [period] = mpd.periods
    seen = {}
    ends = []
    for aset in period.adaptation_sets:
        if aset.content_type == "image":
            continue  # no init, no timeline: test_thumbnail_image_set
        assert aset.start_with_sap == 1
        for rep in aset.representations:
            r = p.rendition(rep.id)
            seen[rep.id] = aset.content_type
            assert r is not None and aset.content_type == r.kind
            assert aset.mime_type == f"{r.kind}/mp4"
            assert rep.codecs == r.codecs and rep.bandwidth == r.bandwidth_peak
            tmpl = _template_for(aset, rep)
            assert tmpl.timescale == r.timescale and tmpl.start_number == r.start_number
            assert tmpl.segment_timelines[0].Ss[0].t == r.start_time
            # The timeline is the model's ticks, exactly, so its sum is the duration.
            assert _timeline_ticks(tmpl) == [s.duration for s in r.segments]
            assert Fraction(sum(_timeline_ticks(tmpl)), tmpl.timescale) == Fraction(
                sum(s.duration for s in r.segments), r.timescale
            )
            ends.append(Fraction(r.start_time + sum(s.duration for s in r.segments), r.timescale))
            for t in (tmpl.initialization, tmpl.media):
                assert t.endswith(f"?{uri.query}")  # the parser un-escapes &amp;
                assert t.startswith(uri.base + "$RepresentationID$/")
            assert "$Number$" in tmpl.media
            if r.kind == "video":
                assert (rep.width, rep.height, rep.sar) == (r.width, r.height, "1:1")
                assert Fraction(rep.frame_rate) == Fraction(r.frame_rate)
            else:
                assert aset.lang == (r.language or "und")
                assert rep.audio_sampling_rate == str(r.sample_rate)
                [acc] = rep.audio_channel_configurations
                assert (acc.scheme_id_uri, acc.value) == (CHANNELS_SCHEME, str(r.channels))  # 2 -> 2, 6 -> 6
    assert set(seen) == {r.id for r in p.renditions if r.kind != "image"}
    assert abs(_iso_seconds(mpd.media_presentation_duration) - max(ends)) <= Fraction(1, 10**6)


def test_ladder_video_set_limits():
    mpd = MPEGDASHParser.parse(render_mpd(ladder(), REL))
    video_set = mpd.periods[0].adaptation_sets[0]
    assert (video_set.max_width, video_set.max_height, video_set.max_frame_rate) == (1920, 1080, "30")
    assert [r.bandwidth for r in video_set.representations] == sorted(r.bandwidth for r in video_set.representations)


def test_ntsc_frame_rate_kept_exact():
    mpd = MPEGDASHParser.parse(render_mpd(mixed_durations(), REL))
    video_set = mpd.periods[0].adaptation_sets[0]
    assert video_set.max_frame_rate == "30000/1001"
    assert {r.frame_rate for r in video_set.representations} == {"30000/1001"}


def test_decimal_frame_rate_becomes_a_fraction():
    text = render_mpd(presentation(video(frame_rate="29.97")), REL)
    assert 'frameRate="2997/100"' in text and 'maxFrameRate="2997/100"' in text


def test_token_query_is_xml_escaped():
    text = render_mpd(ladder(), ABS)
    assert "&amp;exp=1700000000" in text
    assert "&exp" not in text
    ET.fromstring(text.split("\n", 1)[1])  # well-formed


def test_one_audio_set_per_language_with_main_role_on_the_default():
    p = presentation(
        video(),
        audio("a0", language="en", name="English"),
        audio("a1", language="fr", name="Français", default=True),
        audio("a2", language="fr", name="Français stéréo 64k", peak=70_000, avg=64_000),
        audio("a3", language=None, name="Commentary"),
    )
    mpd = MPEGDASHParser.parse(render_mpd(p, REL))
    audio_sets = [a for a in mpd.periods[0].adaptation_sets if a.content_type == "audio"]
    assert [(a.lang, [r.id for r in a.representations]) for a in audio_sets] == [
        ("en", ["a0"]),
        ("fr", ["a2", "a1"]),
        ("und", ["a3"]),
    ]
    roles = [[(r.scheme_id_uri, r.value) for r in (a.roles or [])] for a in audio_sets]
    assert roles == [
        [("urn:mpeg:dash:role:2011", "alternate")],
        [("urn:mpeg:dash:role:2011", "main")],
        [("urn:mpeg:dash:role:2011", "alternate")],
    ]
    assert len({a.id for a in mpd.periods[0].adaptation_sets}) == 4


def test_surround_is_its_own_set_with_cicp_channel_configuration():
    p = presentation(
        video(),
        audio("a0", language="en", name="English", default=True),
        audio("a0-51", language="en", name="English 5.1", channels=6, peak=400_000, avg=384_000),
    )
    mpd = MPEGDASHParser.parse(render_mpd(p, REL))
    audio_sets = [a for a in mpd.periods[0].adaptation_sets if a.content_type == "audio"]
    assert [(a.lang, [r.id for r in a.representations]) for a in audio_sets] == [("en", ["a0"]), ("en", ["a0-51"])]
    configs = [
        [(c.scheme_id_uri, c.value) for r in a.representations for c in r.audio_channel_configurations]
        for a in audio_sets
    ]
    assert configs == [[(CHANNELS_SCHEME, "2")], [(CHANNELS_SCHEME, "6")]]
    assert CHANNELS_SCHEME == "urn:mpeg:mpegB:cicp:ChannelConfiguration"
    assert [[r.value for r in a.roles] for a in audio_sets] == [["main"], ["alternate"]]
    text = render_mpd(p, REL)
    assert "<Label>English</Label>" in text and "<Label>English 5.1</Label>" in text


def test_video_only_and_audio_only_sets():
    for p, types in [(video_only(), ["video"]), (audio_only(), ["audio", "audio"])]:
        mpd = MPEGDASHParser.parse(render_mpd(p, REL))
        assert [a.content_type for a in mpd.periods[0].adaptation_sets] == types


def test_shared_template_on_adaptation_set_when_timelines_match():
    mpd = MPEGDASHParser.parse(render_mpd(ladder(), REL))
    video_set = mpd.periods[0].adaptation_sets[0]
    assert video_set.segment_templates and all(not r.segment_templates for r in video_set.representations)


def test_per_representation_templates_when_timelines_differ():
    p = presentation(
        video("v720", durations_s=(4, 4, 2)),
        video("v360", 640, 360, durations_s=(2, 2, 2, 2, 2), timescale=90000),
    )
    text = render_mpd(p, REL)
    mpd = MPEGDASHParser.parse(text)
    video_set = mpd.periods[0].adaptation_sets[0]
    assert not video_set.segment_templates
    assert [r.segment_templates[0].timescale for r in video_set.representations] == [90000, 15360]  # v360 sorts first
    # Boundaries at 4 and 8 s exist in both, but v360 has extra ones: not aligned.
    assert 'segmentAlignment="false"' in text


def test_alignment_holds_across_timescales():
    p = presentation(
        video("v720", durations_s=(4, 4, 2)),
        video("v360", 640, 360, durations_s=(4, 4, 2), timescale=90000),
    )
    text = render_mpd(p, REL)
    video_set = MPEGDASHParser.parse(text).periods[0].adaptation_sets[0]
    assert 'segmentAlignment="true"' in text
    assert all(r.segment_templates for r in video_set.representations)


@pytest.mark.parametrize(
    ("durations_s", "expected"),
    [
        pytest.param((4, 4, 4, 4), [("0", "61440", "3")], id="one-run"),
        pytest.param((4, 4, 2.5), [("0", "61440", "1"), (None, "38400", None)], id="run-then-tail"),
        pytest.param(
            (4, 2, 4), [("0", "61440", None), (None, "30720", None), (None, "61440", None)], id="no-repeat-across-gap"
        ),
        pytest.param((2,), [("0", "30720", None)], id="single-segment"),
    ],
)
def test_timeline_run_length(durations_s, expected):
    root = ET.fromstring(render_mpd(presentation(video(durations_s=durations_s)), REL).split("\n", 1)[1])
    ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
    got = [(s.get("t"), s.get("d"), s.get("r")) for s in root.iterfind(".//d:S", ns)]
    assert got == expected


def test_start_number_and_start_time_carried():
    r = video(start_number=0, start_time=1024, durations_s=(4, 4))
    mpd = MPEGDASHParser.parse(render_mpd(presentation(r), REL))
    tmpl = mpd.periods[0].adaptation_sets[0].segment_templates[0]
    assert tmpl.start_number == 0 and tmpl.segment_timelines[0].Ss[0].t == 1024


@pytest.mark.parametrize(
    ("cmaf", "profiles"),
    [
        pytest.param(False, PROFILE_LIVE, id="live-only-by-default"),
        pytest.param(True, f"{PROFILE_LIVE},{PROFILE_CMAF}", id="cmaf-on-request"),
    ],
)
def test_profiles(cmaf, profiles):
    assert MPEGDASHParser.parse(render_mpd(ladder(), REL, cmaf=cmaf)).profiles == profiles


def test_min_buffer_time_is_the_longest_segment():
    mpd = MPEGDASHParser.parse(render_mpd(mixed_durations(), REL))
    # 4.5 s video, but the audio segment around it is 216064/48000 = 4.501333 s.
    assert mpd.min_buffer_time == "PT4.501333S"


def test_incomplete_presentation_refused():
    with pytest.raises(PresentationIncomplete) as err:
        render_mpd(event(), REL)
    assert isinstance(err.value, PackagerError) and err.value.code == "presentation_incomplete"


@pytest.mark.parametrize(
    "p",
    [
        pytest.param(presentation(), id="no-renditions"),
        pytest.param(presentation(video(durations_s=())), id="rendition-without-segments"),
        pytest.param(presentation(replace(video(), id="v$Number$")), id="template-identifier-in-id"),
    ],
)
def test_rejects_impossible_models(p):
    with pytest.raises(InvalidPresentation):
        render_mpd(p, REL)


def test_progressive_mpd_is_static_and_complete():
    p = ladder()
    text = render_mpd(replace(p, progressive=True), REL)
    assert 'type="static"' in text
    assert text == render_mpd(p, REL)


# ---- thumbnails (DASH-IF IOP v4.3 6.2.6) -------------------------------------------------


@pytest.mark.parametrize("uri", [pytest.param(REL, id="relative"), pytest.param(ABS, id="absolute")])
def test_thumbnail_image_set(uri):
    p = trickplay()
    th = p.rendition("th")
    text = render_mpd(p, uri)
    [period] = MPEGDASHParser.parse(text).periods
    [aset] = [a for a in period.adaptation_sets if a.content_type == "image"]
    assert aset.mime_type == "image/jpeg"
    [rep] = aset.representations
    assert (rep.id, rep.bandwidth, rep.width, rep.height) == ("th", th.bandwidth_peak, 800, 450)
    [prop] = rep.essential_properties
    assert (prop.scheme_id_uri, prop.value) == (THUMBNAIL_TILE_SCHEME, "5x5")
    [tmpl] = rep.segment_templates
    # One sheet is 25 thumbnails of 2 s: 50 s, in the template's own timescale.
    assert Fraction(tmpl.duration, tmpl.timescale) == 50 and tmpl.start_number == 1
    assert tmpl.media == uri.base + f"$RepresentationID$/$Number$.jpg?{uri.query}"
    assert tmpl.initialization is None and not tmpl.segment_timelines
    # Schema order (RepresentationBase descriptors first) and no codecs the IOP does not ask for.
    xml_rep = ET.fromstring(text).find(".//{*}AdaptationSet[@contentType='image']/{*}Representation")
    assert [child.tag.split("}")[1] for child in xml_rep] == ["EssentialProperty", "SegmentTemplate"]
    assert "codecs" not in xml_rep.attrib


def test_thumbnails_leave_buffer_and_duration_to_the_media():
    base = render_mpd(presentation(*trickplay().video, audio()), REL)
    with_thumbs = render_mpd(trickplay(), REL)
    for attr in ("minBufferTime", "mediaPresentationDuration"):
        assert ET.fromstring(base).get(attr) == ET.fromstring(with_thumbs).get(attr)


@pytest.mark.parametrize(
    "th",
    [
        pytest.param(replace(thumbnails(), tiles="5"), id="tiles-not-a-grid"),
        pytest.param(replace(thumbnails(), tiles=None), id="no-tiles"),
        pytest.param(replace(thumbnails(), tile_duration=0), id="no-tile-duration"),
        pytest.param(replace(thumbnails(), width=801), id="sheet-not-a-grid"),
        pytest.param(replace(thumbnails(), height=None), id="no-height"),
        pytest.param(replace(thumbnails(120), segments=thumbnails(120).segments[::-1]), id="short-sheet-first"),
        pytest.param(replace(thumbnails(), start_time=5), id="late-start"),
    ],
)
def test_rejects_impossible_thumbnails(th):
    with pytest.raises(InvalidPresentation):
        render_mpd(presentation(video(), th), REL)
