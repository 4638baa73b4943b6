from fractions import Fraction

import pytest

from packager.errors import InvalidPresentation
from packager.timing import decimal, parse_frame_rate, round_half_up, xs_duration


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(Fraction(9, 2), 5, id="half-rounds-up-not-to-even"),
        pytest.param(Fraction(5, 2), 3, id="2.5-up"),
        pytest.param(Fraction(4004, 1000), 4, id="4.004-down"),
        pytest.param(Fraction(39, 10), 4, id="3.9-up"),
        pytest.param(Fraction(4499999, 1000000), 4, id="just-under-half"),
        pytest.param(Fraction(0), 0, id="zero"),
    ],
)
def test_round_half_up(value, expected):
    assert round_half_up(value) == expected


@pytest.mark.parametrize(
    ("value", "places", "trim", "expected"),
    [
        pytest.param(Fraction(120120, 30000), 6, True, "4.004", id="ntsc-4.004"),
        pytest.param(Fraction(4), 6, True, "4", id="whole"),
        pytest.param(Fraction(192512, 48000), 6, True, "4.010667", id="aac-rounded-to-micro"),
        pytest.param(Fraction(1, 3), 6, True, "0.333333", id="third"),
        pytest.param(Fraction(2, 3), 6, True, "0.666667", id="two-thirds-rounds-up"),
        pytest.param(Fraction(9999995, 10000000), 6, True, "1", id="carry-into-whole"),
        pytest.param(Fraction(30000, 1001), 3, False, "29.970", id="frame-rate-keeps-zeros"),
        pytest.param(Fraction(30), 3, False, "30.000", id="frame-rate-whole"),
        pytest.param(Fraction(60000, 1001), 3, False, "59.940", id="frame-rate-59.94"),
    ],
)
def test_decimal(value, places, trim, expected):
    assert decimal(value, places, trim=trim) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(Fraction(0), "PT0S", id="zero"),
        pytest.param(Fraction(37, 2), "PT18.5S", id="seconds"),
        pytest.param(Fraction(60), "PT1M", id="one-minute"),
        pytest.param(Fraction(3600 + 120 + 3), "PT1H2M3S", id="h-m-s"),
        pytest.param(Fraction(7200), "PT2H", id="hours-only"),
        pytest.param(Fraction(5400 * 30000 + 1, 30000), "PT1H30M0.000033S", id="sub-second-tail"),
    ],
)
def test_xs_duration(value, expected):
    assert xs_duration(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("30", Fraction(30), id="integer"),
        pytest.param("30000/1001", Fraction(30000, 1001), id="fraction"),
        pytest.param("29.97", Fraction(2997, 100), id="decimal"),
    ],
)
def test_parse_frame_rate(text, expected):
    assert parse_frame_rate(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "30/0", "0", "-25"])
def test_parse_frame_rate_rejects(text):
    with pytest.raises(InvalidPresentation):
        parse_frame_rate(text)
