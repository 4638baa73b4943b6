"""Exact time arithmetic and the number formats HLS and DASH write.

Ticks stay integers and seconds are `Fraction`s until the last moment, so no float error
accumulates between a DASH timeline and the EXTINF values of the same segments.
"""

from __future__ import annotations

import math
from fractions import Fraction

from packager.errors import InvalidPresentation

# EXTINF / xs:duration precision: a microsecond is far below one frame or one audio sample
# period a player cares about, and keeps 1001-based durations readable (2.002, 4.004).
SECONDS_PLACES = 6


def seconds(ticks: int, timescale: int) -> Fraction:
    return Fraction(ticks, timescale)


def round_half_up(value: Fraction) -> int:
    """Nearest integer, halves away from zero (value >= 0 here), unlike Python's round()."""
    return math.floor(value + Fraction(1, 2))


def decimal(value: Fraction, places: int = SECONDS_PLACES, *, trim: bool = True) -> str:
    """`value` rounded half up to `places` decimals; trailing zeros trimmed when `trim`."""
    scaled = round_half_up(value * 10**places)
    whole, frac = divmod(scaled, 10**places)
    if places == 0:
        return str(whole)
    digits = f"{frac:0{places}d}"
    if trim:
        digits = digits.rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def parse_frame_rate(text: str) -> Fraction:
    """'30', '29.97' or '30000/1001' -> Fraction; anything else is an invalid model."""
    try:
        rate = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise InvalidPresentation(f"invalid frame rate {text!r}") from None
    if rate <= 0:
        raise InvalidPresentation(f"invalid frame rate {text!r}")
    return rate


def xs_duration(value: Fraction) -> str:
    """XML Schema duration (ISO 8601) as DASH writes it: PT1H2M3.5S, PT0S."""
    scaled = round_half_up(value * 10**SECONDS_PLACES)
    total_seconds, micros = divmod(scaled, 10**SECONDS_PLACES)
    hours, rest = divmod(total_seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = "PT"
    if hours:
        out += f"{hours}H"
    if minutes:
        out += f"{minutes}M"
    if secs or micros or out == "PT":
        out += decimal(Fraction(secs * 10**SECONDS_PLACES + micros, 10**SECONDS_PLACES)) + "S"
    return out
