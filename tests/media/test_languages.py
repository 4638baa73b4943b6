"""Stream language tags as BCP 47, the codes `--audio-lang` accepts, and menu names."""

import pytest

from media import languages


@pytest.mark.parametrize(
    ("tag", "bcp47"),
    [
        ("eng", "en"),
        ("fre", "fr"),
        ("fra", "fr"),
        ("GER", "de"),
        ("en", "en"),
        ("en-US", "en-US"),
        ("pt_BR", "pt-BR"),
        ("tlh", "tlh"),  # no two-letter code known: kept
        ("und", "und"),
        ("", "und"),
        (None, "und"),
        ("english", "und"),  # not a code
        ("e1", "und"),
    ],
)
def test_to_bcp47(tag, bcp47):
    assert languages.to_bcp47(tag) == bcp47


def test_known_accepts_two_and_three_letter_codes_only_from_the_table():
    assert [languages.known(c) for c in ("en", "eng", "FRE", "fra", "und", " de ")] == [
        "en",
        "en",
        "fr",
        "fr",
        "und",
        "de",
    ]
    assert languages.known("xx") is None
    assert languages.known("english") is None


def test_iso639_2_for_mp4_and_names():
    assert languages.to_iso639_2("fr") == "fra"
    assert languages.to_iso639_2("en-US") == "eng"
    assert languages.to_iso639_2("tlh") == "tlh"
    assert languages.to_iso639_2("x") is None
    assert languages.display_name("fr") == "Français"
    assert languages.display_name("en-GB") == "English"
    assert languages.display_name("tlh") == "tlh"
