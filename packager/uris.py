"""How URIs are written into playlists and MPDs.

A version is served under one directory (the server owns the route prefix):

    {version}/master.m3u8            multivariant playlist
    {version}/manifest.mpd           DASH MPD
    {version}/{rendition}/index.m3u8 media playlist
    {version}/{rendition}/init.mp4   init segment      (names from packager.model)
    {version}/{rendition}/{n}.m4s    media segment
    {version}/{rendition}/download.mp4  a download rendition's one progressive MP4
    {version}/{rendition}/iframes.m3u8  a video rendition's I-frame playlist
    {version}/{rendition}/thumbnails.vtt  an image rendition's WebVTT index of its sprite sheets

With `base=""` every URI is relative to the document it is written in (RFC 8216 section 4.1,
ISO/IEC 23009-1 5.6: relative URIs resolve against the playlist's / MPD's own URL), so the
same text works behind any prefix or host. With `base` set (a public CDN URL or a root-relative
path to the version directory) every URI is `base` + the path from the version directory.

`query` (e.g. "token=abc") is appended to every URI: a player that cannot send headers (Safari,
a CDN) must carry the credential on each request.
"""

from __future__ import annotations

from dataclasses import dataclass

from packager.errors import InvalidUri
from packager.model import DOWNLOAD_NAME, INIT_NAME, SEGMENT_EXT, Rendition

MASTER_NAME = "master.m3u8"
MEDIA_PLAYLIST_NAME = "index.m3u8"
MPD_NAME = "manifest.mpd"
IFRAME_PLAYLIST_NAME = "iframes.m3u8"
THUMBNAILS_NAME = "thumbnails.vtt"

# '"' and line breaks end an HLS quoted-string or URI line (RFC 8216 section 4.2); '$' starts
# a DASH template identifier (ISO/IEC 23009-1 5.3.9.4.4); '#' would cut the query off.
_FORBIDDEN = frozenset('"$#<>\\ \t\r\n')


def _check(what: str, value: str) -> None:
    bad = sorted({c for c in value if c in _FORBIDDEN or ord(c) < 0x20 or ord(c) == 0x7F})
    if bad:
        raise InvalidUri(f"{what} {value!r} contains characters not allowed in a URI: {bad!r}")


@dataclass(frozen=True)
class UriBuilder:
    """Writes every URI of one version. `query` must already be URL-encoded."""

    base: str = ""
    query: str = ""

    def __post_init__(self) -> None:
        _check("base", self.base)
        _check("query", self.query)
        if self.base and not self.base.endswith("/"):
            object.__setattr__(self, "base", self.base + "/")
        if self.query.startswith("?"):
            object.__setattr__(self, "query", self.query[1:])

    @property
    def relative(self) -> bool:
        return not self.base

    def _q(self, path: str) -> str:
        return f"{path}?{self.query}" if self.query else path

    # ---- documents at the version root -------------------------------------------------

    def master(self) -> str:
        return self._q(self.base + MASTER_NAME)

    def mpd(self) -> str:
        return self._q(self.base + MPD_NAME)

    def media_playlist(self, rendition_id: str) -> str:
        """From the multivariant playlist (it sits at the version root)."""
        return self._q(f"{self.base}{rendition_id}/{MEDIA_PLAYLIST_NAME}")

    def iframe_playlist(self, rendition_id: str) -> str:
        """A video rendition's I-frame playlist, from the multivariant playlist."""
        return self._q(f"{self.base}{rendition_id}/{IFRAME_PLAYLIST_NAME}")

    def thumbnails(self, rendition_id: str) -> str:
        """An image rendition's WebVTT index, from the version root."""
        return self._q(f"{self.base}{rendition_id}/{THUMBNAILS_NAME}")

    def download(self, rendition: Rendition) -> str:
        """A download rendition's one MP4 (packager.model.DOWNLOAD_NAME), from the version root."""
        return self._q(f"{self.base}{rendition.id}/{DOWNLOAD_NAME}")

    # ---- media, as written in a media playlist (it sits in `{rendition_id}/`) ----------

    def init(self, rendition: Rendition) -> str:
        if self.relative:
            return self._q(INIT_NAME)
        return self._q(self.base + rendition.init_name)

    def segment(self, rendition: Rendition, number: int) -> str:
        if self.relative:
            return self._q(f"{number}{rendition.segment_ext}")
        return self._q(self.base + rendition.segment_name(number))

    # ---- DASH SegmentTemplate (the MPD sits at the version root) -----------------------

    def dash_init_template(self) -> str:
        return self._q(f"{self.base}$RepresentationID$/{INIT_NAME}")

    def dash_media_template(self, ext: str = SEGMENT_EXT) -> str:
        """`ext` is the segment extension of the adaptation set's kind (".vtt" for text)."""
        return self._q(f"{self.base}$RepresentationID$/$Number${ext}")
