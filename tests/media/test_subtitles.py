"""media.subtitles: every bad file refused with its own code; good ones parsed and segmented."""

from __future__ import annotations

import codecs
from fractions import Fraction

import pytest

from media.subtitles import (
    MAX_BYTES,
    Cue,
    SubtitleError,
    normalize_language,
    parse,
    segment,
    to_webvtt,
    validate,
)

SRT = "1\n00:00:01,000 --> 00:00:02,500\n<i>Hello</i> & welcome\n\n2\n00:00:03,000 --> 00:00:04,000\nBye\n"


def _code(data: bytes) -> str:
    with pytest.raises(SubtitleError) as info:
        parse(data)
    return info.value.code


def test_srt_parsed_tags_stripped() -> None:
    cues = parse(SRT.encode())
    assert cues == [
        Cue(Fraction(1), Fraction(5, 2), "Hello & welcome"),
        Cue(Fraction(3), Fraction(4), "Bye"),
    ]


@pytest.mark.parametrize(
    "data",
    [
        codecs.BOM_UTF8 + "1\n00:00:01,000 --> 00:00:02,000\nçà\n".encode(),
        codecs.BOM_UTF16_LE + "1\r\n00:00:01,000 --> 00:00:02,000\r\nçà\r\n".encode("utf-16-le"),
        codecs.BOM_UTF16_BE + "1\n00:00:01,000 --> 00:00:02,000\nçà\n".encode("utf-16-be"),
        "1\n00:00:01,000 --> 00:00:02,000\nçà\n".encode("utf-16-le"),
        "1\n00:00:01,000 --> 00:00:02,000\nçà\n".encode("latin-1"),
    ],
)
def test_encodings(data: bytes) -> None:
    assert parse(data)[0].text == "çà"


def test_vtt_and_ass() -> None:
    vtt = (
        "WEBVTT\n\nNOTE hi\n\nid1\n00:01.000 --> 00:02.000 line:0\n<v Bob>Hi &amp; yo</v>\n\n"
        "00:01.500 --> 00:03.000\nBoth\n"
    )
    assert [c.text for c in parse(vtt.encode())] == ["Hi & yo", "Both"]  # overlap legal in WebVTT
    ass = (
        "[Script Info]\nTitle: x\n\n[Events]\n"
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
        "Dialogue: 0,0:00:01.50,0:00:02.00,Default,,0,0,0,,{\\i1}Hi{\\i0}, there\\Nnext\n"
    )
    assert parse(ass.encode()) == [Cue(Fraction(3, 2), Fraction(2), "Hi, there\nnext")]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x89PNG\r\n\x1a\n not at all", "not_subtitles"),
        (b"hello world\n", "not_subtitles"),
        (codecs.BOM_UTF8 + b"1\n00:00:01,000 --> 00:00:02,000\n\xff\xfe\n", "bad_encoding"),
        (b"1\n00:00:01,000 --> 00:00:03,000\na\n\n2\n00:00:02,000 --> 00:00:04,000\nb\n", "overlapping_cues"),
        (b"1\n-00:00:01,000 --> 00:00:03,000\na\n", "negative_time"),
        (b"1\n00:00:03,000 --> 00:00:03,000\na\n", "bad_cue_time"),
        (b"1\n00:00:01,000 --> 00:00:02,000\n" + b"a" * MAX_BYTES, "too_large"),
    ],
)
def test_bad_files(data: bytes, code: str) -> None:
    assert _code(data) == code


def test_past_end() -> None:
    cues = parse(SRT.encode())
    validate(cues, duration_s=3.5)
    with pytest.raises(SubtitleError) as info:
        validate(cues, duration_s=2.9)
    assert info.value.code == "past_end"


def test_languages() -> None:
    assert normalize_language("fr") == "fr"
    assert normalize_language("fre") == "fr"
    assert normalize_language("pt-br") == "pt-BR"
    assert normalize_language("und") == "und"
    for bad in ("xx", "klingon", "", "f"):
        with pytest.raises(SubtitleError) as info:
            normalize_language(bad)
        assert info.value.code == "unknown_language"


def test_segments_repeat_crossing_cues_and_escape() -> None:
    cues = [Cue(Fraction(1), Fraction(3), "a < b & c"), Cue(Fraction(5), Fraction(6), "late")]
    files = segment(cues, [0, 2, 4, 6])
    assert len(files) == 3
    assert all(f.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n") for f in files)
    assert "00:00:01.000 --> 00:00:03.000\na &lt; b &amp; c" in files[0]
    assert "a &lt; b" in files[1] and "late" not in files[1]
    assert "late" in files[2] and "a &lt;" not in files[2]
    assert to_webvtt([]) == "WEBVTT\n"
