"""Language tags for audio (and text) tracks: what a source's stream says, made into the
BCP 47 tag players and manifests want, and a name for a player's menu.

Containers tag streams with ISO 639-2 codes ("eng", "fre"/"fra"); HLS LANGUAGE and DASH
@lang are BCP 47 (RFC 5646), which uses the two-letter ISO 639-1 code where one exists
("en", "fr") and the three-letter code otherwise. "und" (undetermined) is the tag of a
stream with no language. Pure: no I/O.
"""

from __future__ import annotations

UNDETERMINED = "und"

# BCP 47 tag -> (ISO 639-2/B, ISO 639-2/T, the language's own name). The common languages of
# film and TV audio; any other valid-looking code passes through as it is.
_LANGUAGES: dict[str, tuple[str, str, str]] = {
    "ar": ("ara", "ara", "العربية"),
    "bg": ("bul", "bul", "Български"),
    "ca": ("cat", "cat", "Català"),
    "cs": ("cze", "ces", "Čeština"),
    "da": ("dan", "dan", "Dansk"),
    "de": ("ger", "deu", "Deutsch"),
    "el": ("gre", "ell", "Ελληνικά"),
    "en": ("eng", "eng", "English"),
    "es": ("spa", "spa", "Español"),
    "et": ("est", "est", "Eesti"),
    "fa": ("per", "fas", "فارسی"),
    "fi": ("fin", "fin", "Suomi"),
    "fr": ("fre", "fra", "Français"),
    "he": ("heb", "heb", "עברית"),
    "hi": ("hin", "hin", "हिन्दी"),
    "hr": ("hrv", "hrv", "Hrvatski"),
    "hu": ("hun", "hun", "Magyar"),
    "id": ("ind", "ind", "Bahasa Indonesia"),
    "is": ("ice", "isl", "Íslenska"),
    "it": ("ita", "ita", "Italiano"),
    "ja": ("jpn", "jpn", "日本語"),
    "ko": ("kor", "kor", "한국어"),
    "lt": ("lit", "lit", "Lietuvių"),
    "lv": ("lav", "lav", "Latviešu"),
    "ms": ("may", "msa", "Bahasa Melayu"),
    "nl": ("dut", "nld", "Nederlands"),
    "no": ("nor", "nor", "Norsk"),
    "pl": ("pol", "pol", "Polski"),
    "pt": ("por", "por", "Português"),
    "ro": ("rum", "ron", "Română"),
    "ru": ("rus", "rus", "Русский"),
    "sk": ("slo", "slk", "Slovenčina"),
    "sl": ("slv", "slv", "Slovenščina"),
    "sr": ("srp", "srp", "Српски"),
    "sv": ("swe", "swe", "Svenska"),
    "ta": ("tam", "tam", "தமிழ்"),
    "th": ("tha", "tha", "ไทย"),
    "tr": ("tur", "tur", "Türkçe"),
    "uk": ("ukr", "ukr", "Українська"),
    "vi": ("vie", "vie", "Tiếng Việt"),
    "zh": ("chi", "zho", "中文"),
}
_BY_ALPHA3: dict[str, str] = {code: tag for tag, (b, t, _name) in _LANGUAGES.items() for code in (b, t)}


def to_bcp47(tag: str | None) -> str:
    """A stream's language tag as BCP 47: "eng" -> "en", "fre"/"fra" -> "fr", "en-US" kept,
    absent or unreadable -> "und". Unknown but well-formed codes ("tlh") pass through."""
    text = (tag or "").strip().replace("_", "-")
    if not text:
        return UNDETERMINED
    primary, _, rest = text.partition("-")
    primary = primary.lower()
    if not primary.isascii() or not primary.isalpha() or not 2 <= len(primary) <= 3:
        return UNDETERMINED
    primary = _BY_ALPHA3.get(primary, primary)
    if rest and all(part.isascii() and part.isalnum() and 1 <= len(part) <= 8 for part in rest.split("-")):
        return f"{primary}-{rest}"
    return primary


def known(tag: str) -> str | None:
    """The BCP 47 tag of a language code a person typed ("en", "eng", "fre", "und"), or
    None when it is not one this table knows: an ingest override must not be a typo."""
    code = tag.strip().lower()
    if code == UNDETERMINED:
        return code
    if code in _LANGUAGES:
        return code
    return _BY_ALPHA3.get(code)


def to_iso639_2(tag: str) -> str | None:
    """The ISO 639-2/T code for a BCP 47 tag (an MP4 mdhd language), None when unknown."""
    primary = tag.split("-", 1)[0].lower()
    if primary in _LANGUAGES:
        return _LANGUAGES[primary][1]
    if len(primary) == 3 and primary.isalpha():
        return primary
    return None


def display_name(tag: str) -> str:
    """The language's own name for a menu ("Français"), else the tag itself."""
    primary = tag.split("-", 1)[0].lower()
    entry = _LANGUAGES.get(primary)
    return entry[2] if entry else tag
