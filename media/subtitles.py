"""Subtitle files: decode, parse (SubRip, WebVTT, ASS/SSA), validate, cut into WebVTT segments.

Pure: bytes in, values or text out. Everything a user can get wrong raises `SubtitleError`
with a short `code` and a one-line message, so the CLI, the upload route and the worker
report the same thing.

Overlapping cues: WebVTT allows them (two speakers at once), SubRip players mostly do not
and an overlap there is nearly always a timing mistake, so overlaps are refused in SubRip
and ASS input and kept in WebVTT input.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from media.errors import MediaError

# A subtitle file is text: a few hundred KB for a feature film. Anything above this is not
# a subtitle file and is refused before it is decoded or parsed.
MAX_BYTES = 5 * 1024 * 1024


class SubtitleError(MediaError):
    """A subtitle file or option we cannot use; `code` says which check, the message why."""

    code = "invalid_subtitle"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Cue:
    start: Fraction  # seconds
    end: Fraction
    text: str  # plain text, lines joined with "\n", no markup


# ---- languages ------------------------------------------------------------------------------

# ISO 639-1 codes (the BCP 47 primary subtag for every language that has one).
ISO639_1 = frozenset(
    """aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv
    cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht
    hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la
    lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj
    om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv
    sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh
    zu""".split()
)
# ISO 639-2 (B and T) codes of those languages, as found in container tags ("eng", "fre").
ISO639_2_TO_1 = {
    "ara": "ar", "bul": "bg", "cat": "ca", "ces": "cs", "cze": "cs", "chi": "zh", "zho": "zh",
    "dan": "da", "deu": "de", "ger": "de", "ell": "el", "gre": "el", "eng": "en", "spa": "es",
    "est": "et", "eus": "eu", "baq": "eu", "fas": "fa", "per": "fa", "fin": "fi", "fra": "fr",
    "fre": "fr", "gle": "ga", "glg": "gl", "heb": "he", "hin": "hi", "hrv": "hr", "hun": "hu",
    "hye": "hy", "arm": "hy", "ind": "id", "isl": "is", "ice": "is", "ita": "it", "jpn": "ja",
    "kat": "ka", "geo": "ka", "kor": "ko", "lat": "la", "lit": "lt", "lav": "lv", "mkd": "mk",
    "mac": "mk", "msa": "ms", "may": "ms", "nld": "nl", "dut": "nl", "nob": "nb", "nno": "nn",
    "nor": "no", "pol": "pl", "por": "pt", "ron": "ro", "rum": "ro", "rus": "ru", "slk": "sk",
    "slo": "sk", "slv": "sl", "sqi": "sq", "alb": "sq", "srp": "sr", "swe": "sv", "tha": "th",
    "tur": "tr", "ukr": "uk", "urd": "ur", "vie": "vi", "cym": "cy", "wel": "cy", "bos": "bs",
    "ben": "bn", "tam": "ta", "tel": "te", "fil": "tl", "tgl": "tl", "afr": "af", "swa": "sw",
}  # fmt: skip
_TAG_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


def normalize_language(tag: str) -> str:
    """A BCP 47 tag with a known primary language: "fr", "pt-BR"; "fre"/"fra" become "fr".

    "und" (undetermined) is accepted: an embedded stream without a language tag has it.
    """
    text = tag.strip()
    if not _TAG_RE.match(text):
        raise SubtitleError("unknown_language", f"not a language tag: {tag!r} (use e.g. en, fr, pt-BR)")
    primary, *rest = text.split("-")
    primary = primary.lower()
    if primary != "und":
        primary = ISO639_2_TO_1.get(primary, primary)
        if primary not in ISO639_1:
            raise SubtitleError("unknown_language", f"unknown language {tag!r} (use an ISO 639-1 code, e.g. en, fr)")
    return "-".join([primary, *(p.upper() if len(p) == 2 else p for p in rest)])


# ---- decoding -------------------------------------------------------------------------------


def decode(data: bytes) -> str:
    """Text from a subtitle file's bytes: BOM first, then UTF-8, UTF-16 without a BOM (many
    NUL bytes), then Latin-1 (any byte decodes, the usual encoding of old .srt files).
    Newlines are normalised to "\\n"."""
    check_size(len(data))
    text: str | None = None
    for bom, enc in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            text = _strict(data[len(bom) :], enc)
            break
    if text is None and data and data.count(0) > len(data) // 4:
        # UTF-16 without a BOM: ASCII characters have a NUL in their high byte.
        enc = "utf-16-le" if data[1::2].count(0) > data[0::2].count(0) else "utf-16-be"
        text = _strict(data, enc)
    if text is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    if "\x00" in text:
        raise SubtitleError("not_subtitles", "binary data (NUL characters): not a subtitle file")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _strict(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise SubtitleError("bad_encoding", f"not valid {encoding.upper()} text at byte {exc.start}") from None


def check_size(size: int) -> None:
    if size > MAX_BYTES:
        raise SubtitleError("too_large", f"subtitle file is {size} bytes, the limit is {MAX_BYTES}")


# ---- parsing --------------------------------------------------------------------------------

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})"
_TIMING_RE = re.compile(rf"^\s*(-?){_TIME}\s*-->\s*(-?){_TIME}")
_SRT_TAG_RE = re.compile(r"</?[a-zA-Z][^>]*>|\{\\[^}]*\}")
_VTT_TAG_RE = re.compile(r"</?[a-zA-Z][^>]*>|<\d[^>]*>")
_ASS_TAG_RE = re.compile(r"\{[^}]*\}")
_ASS_TIME_RE = re.compile(r"^\s*(-?)(\d+):(\d{2}):(\d{2})[.](\d{1,3})\s*$")
_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&nbsp;": "\u00a0", "&lrm;": "\u200e", "&rlm;": "\u200f"}


def detect_format(text: str) -> str:
    """Which format the text is ("vtt", "ass" or "srt"); anything else is not a subtitle file."""
    head = text.lstrip("\ufeff").lstrip()
    if head.startswith("WEBVTT"):
        return "vtt"
    if head.startswith("[Script Info]") or "\n[Events]" in text:
        return "ass"
    if _TIMING_RE.search(head[:2000].split("\n\n")[0]) or any(_TIMING_RE.match(line) for line in head.split("\n")[:20]):
        return "srt"
    raise SubtitleError("not_subtitles", "not a subtitle file (expected SubRip, WebVTT or ASS/SSA)")


def parse(data: bytes) -> list[Cue]:
    """Cues of a subtitle file, validated (see `validate`) except against a title's length."""
    text = decode(data)
    fmt = detect_format(text)
    cues = {"vtt": _parse_vtt, "srt": _parse_srt, "ass": _parse_ass}[fmt](text)
    if not cues:
        raise SubtitleError("not_subtitles", "the subtitle file holds no cues")
    validate(cues, allow_overlap=fmt == "vtt")
    return cues


def _timestamp(sign: str, h: str | None, m: str, s: str, ms: str) -> Fraction:
    value = Fraction(int(h or 0) * 3600 + int(m) * 60 + int(s)) + Fraction(int(ms.ljust(3, "0")), 1000)
    return -value if sign else value


def _timing(line: str, where: str) -> tuple[Fraction, Fraction]:
    m = _TIMING_RE.match(line)
    if not m:
        raise SubtitleError("not_subtitles", f"{where}: bad cue timing {line.strip()[:60]!r}")
    g = m.groups()
    return _timestamp(*g[0:5]), _timestamp(*g[5:10])


def _unescape(text: str) -> str:
    for entity, char in _ENTITIES.items():
        text = text.replace(entity, char)
    return text


def _blocks(text: str) -> list[list[str]]:
    return [block.split("\n") for block in re.split(r"\n\s*\n", text.strip()) if block.strip()]


def _parse_srt(text: str) -> list[Cue]:
    cues = []
    for n, lines in enumerate(_blocks(text.lstrip("\ufeff")), start=1):
        timing_at = 1 if lines[0].strip().isdigit() and len(lines) > 1 else 0
        start, end = _timing(lines[timing_at], f"cue {n}")
        body = "\n".join(_SRT_TAG_RE.sub("", line).strip() for line in lines[timing_at + 1 :])
        cues.append(Cue(start, end, _unescape(body).strip()))
    return cues


def _parse_vtt(text: str) -> list[Cue]:
    cues = []
    for n, lines in enumerate(_blocks(text.lstrip("\ufeff"))[1:], start=1):
        if lines[0].startswith(("NOTE", "STYLE", "REGION")) and "-->" not in lines[0]:
            continue
        timing_at = 0 if "-->" in lines[0] else 1
        if timing_at >= len(lines):
            raise SubtitleError("not_subtitles", f"cue {n}: no timing line")
        start, end = _timing(lines[timing_at], f"cue {n}")
        body = "\n".join(_VTT_TAG_RE.sub("", line) for line in lines[timing_at + 1 :])
        cues.append(Cue(start, end, _unescape(body).strip()))
    return cues


def _parse_ass(text: str) -> list[Cue]:
    cues = []
    fields: list[str] | None = None
    in_events = False
    for n, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if line.startswith("["):
            in_events = line.lower() == "[events]"
            continue
        if not in_events:
            continue
        key, _, value = line.partition(":")
        if key == "Format":
            fields = [f.strip().lower() for f in value.split(",")]
        elif key == "Dialogue":
            if fields is None:
                raise SubtitleError("not_subtitles", f"line {n}: Dialogue before the Format line")
            parts = value.split(",", len(fields) - 1)
            if len(parts) < len(fields):
                raise SubtitleError("not_subtitles", f"line {n}: Dialogue with too few fields")
            row = dict(zip(fields, (p.strip() for p in parts), strict=True))
            start, end = _ass_time(row.get("start", ""), n), _ass_time(row.get("end", ""), n)
            body = (
                _ASS_TAG_RE.sub("", row.get("text", "")).replace("\\N", "\n").replace("\\n", "\n").replace("\\h", " ")
            )
            cues.append(Cue(start, end, body.strip()))
    return sorted(cues, key=lambda c: (c.start, c.end))


def _ass_time(text: str, line: int) -> Fraction:
    m = _ASS_TIME_RE.match(text)
    if not m:
        raise SubtitleError("not_subtitles", f"line {line}: bad ASS time {text!r}")
    sign, h, mi, s, cs = m.groups()
    # ASS times are centiseconds: "0:00:01.50" is 1.5 s.
    return _timestamp(sign, h, mi, s, cs.ljust(2, "0")[:2] + "0")


# ---- validation -----------------------------------------------------------------------------


def validate(cues: Sequence[Cue], *, allow_overlap: bool = False, duration_s: float | None = None) -> None:
    """Refuse negative times, empty or reversed cues, overlaps (unless allowed) and, given the
    title's duration, cues that start after its end (a subtitle file of another cut)."""
    previous: Cue | None = None
    for n, cue in enumerate(cues, start=1):
        if cue.start < 0 or cue.end < 0:
            raise SubtitleError("negative_time", f"cue {n} has a negative time ({_fmt(cue.start)})")
        if cue.end <= cue.start:
            raise SubtitleError(
                "bad_cue_time", f"cue {n} ends at {_fmt(cue.end)}, not after its start {_fmt(cue.start)}"
            )
        if previous is not None and cue.start < previous.start:
            raise SubtitleError("cue_order", f"cue {n} starts before cue {n - 1}")
        if previous is not None and not allow_overlap and cue.start < previous.end:
            raise SubtitleError(
                "overlapping_cues",
                f"cue {n} starts at {_fmt(cue.start)}, before cue {n - 1} ends at {_fmt(previous.end)}",
            )
        previous = cue
    if duration_s is not None:
        check_within(cues, duration_s)


def check_within(cues: Sequence[Cue], duration_s: float) -> None:
    """A cue may end a little after the video (the last line lingers), but none may start at
    or after the title's end."""
    limit = Fraction(duration_s).limit_denominator(1000)
    for n, cue in enumerate(cues, start=1):
        if cue.start >= limit:
            raise SubtitleError(
                "past_end", f"cue {n} starts at {_fmt(cue.start)}, after the title's end at {_fmt(limit)}"
            )


# ---- writing --------------------------------------------------------------------------------


def _fmt(t: Fraction) -> str:
    sign = "-" if t < 0 else ""
    ms = round(abs(t) * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{sign}{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def escape(text: str) -> str:
    """WebVTT cue text: `&`, `<` and `>` are markup, so plain text escapes them; an empty line
    or "-->" would end or break the cue."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    lines = [line for line in escaped.split("\n") if line.strip()]
    return "\n".join(lines).replace("-->", "--&gt;")


def to_webvtt(cues: Sequence[Cue], *, timestamp_map: bool = False) -> str:
    """One WebVTT file. With `timestamp_map`, the header maps cue times onto the media timeline
    (HLS: RFC 8216 3.5). Our fMP4 media starts at presentation time 0 and cue times are
    presentation times, so MPEGTS:0 maps LOCAL 0 to 0; hls.js reads it relative to the first
    fMP4 segment's start, which is 0 too."""
    lines = ["WEBVTT"]
    if timestamp_map:
        lines.append("X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000")
    lines.append("")
    for cue in cues:
        text = escape(cue.text)
        if not text:
            continue
        lines += [f"{_fmt(cue.start)} --> {_fmt(cue.end)}", text, ""]
    return "\n".join(lines)


def segment(cues: Sequence[Cue], boundaries: Sequence[float | Fraction]) -> list[str]:
    """One WebVTT file per video segment, [boundaries[i], boundaries[i+1]), each holding every
    cue that overlaps it. A cue crossing a boundary is repeated in both files with its full
    times (as Apple's segmenter does); players drop the duplicate by its identical timing."""
    edges = [Fraction(b).limit_denominator(100_000) if not isinstance(b, Fraction) else b for b in boundaries]
    files = []
    for start, end in zip(edges, edges[1:], strict=False):
        inside = [c for c in cues if c.start < end and c.end > start]
        files.append(to_webvtt(inside, timestamp_map=True))
    return files
