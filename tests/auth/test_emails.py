"""Email syntax and the uniqueness key (pure)."""

from __future__ import annotations

import pytest

from auth.emails import InvalidEmail, clean_email, email_key


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param("Bob@Example.com", "bob@example.com", id="ascii-case"),
        pytest.param("  bob@example.com ", "bob@example.com", id="trimmed"),
        pytest.param("ＢＯＢ@example.com", "bob@example.com", id="fullwidth-nfkc"),
        pytest.param("straße@example.de", "STRASSE@example.de", id="sharp-s-casefold"),
        pytest.param("ÉLODIE@exemple.fr", "élodie@exemple.fr", id="accented-case"),
        pytest.param("e\u0301lodie@exemple.fr", "\u00e9lodie@exemple.fr", id="combining-vs-precomposed"),
        pytest.param("ﬁle@example.com", "file@example.com", id="ligature"),
    ],
)
def test_same_key(a, b):
    assert email_key(a) == email_key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param("bob@example.com", "bob@example.org", id="other-domain"),
        pytest.param("bob@example.com", "b0b@example.com", id="other-letter"),
        # Cyrillic "о" is a different letter, not a case or compatibility variant.
        pytest.param("bob@example.com", "b\u043eb@example.com", id="cyrillic-o"),
    ],
)
def test_different_key(a, b):
    assert email_key(a) != email_key(b)


def test_clean_keeps_case_and_composes():
    assert clean_email("  Bob.Smith@Example.COM ") == "Bob.Smith@Example.COM"
    assert clean_email("e\u0301@example.fr") == "\u00e9@example.fr"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("", id="empty"),
        pytest.param("bob", id="no-at"),
        pytest.param("@example.com", id="no-local"),
        pytest.param("bob@", id="no-domain"),
        pytest.param("bob@example", id="no-dot"),
        pytest.param("bob@@example.com", id="two-ats"),
        pytest.param("bob smith@example.com", id="space"),
        pytest.param("bob\x00@example.com", id="nul"),
        pytest.param("bob\u200b@example.com", id="zero-width"),
        pytest.param("bob@example..com", id="double-dot"),
        pytest.param("a" * 65 + "@example.com", id="local-too-long"),
        pytest.param("a@" + "b" * 250 + ".com", id="too-long"),
    ],
)
def test_invalid(raw):
    with pytest.raises(InvalidEmail):
        clean_email(raw)


def test_sql_and_script_text_is_just_an_address():
    raw = "o'brien+<script>@example.com"
    assert clean_email(raw) == raw
