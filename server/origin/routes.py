"""The `/stream` URLs: one route table, read by aiohttp's router (handlers.py) and by the fast
protocol's matcher (fastpath.py). Pure: no I/O, no aiohttp.

    master.m3u8              multivariant playlist
    manifest.mpd             DASH MPD
    {rendition}/index.m3u8   media playlist
    {rendition}/iframes.m3u8 I-frame playlist (video)
    {rendition}/thumbnails.vtt  WebVTT index of the thumbnail sprite sheets (image)
    {rendition}/init.mp4     init segment
    {rendition}/{n}.m4s      media segment (video, audio)
    {rendition}/{n}.vtt      WebVTT segment (subtitles)
    {rendition}/{n}.jpg      thumbnail sprite sheet (image)
    {rendition}/download.mp4 the progressive MP4 of a download rendition (downloads.py)

Paths never reach storage as given: the variables admit only [a-z0-9_-] names and decimal
numbers (everything else is the router's 404), rendition ids and segment numbers must exist in
the version's model, and storage keys are built from the model (media.keys), so `..`, `%2e%2e`
and encoded slashes cannot name a file.
"""

from __future__ import annotations

import re

from packager.model import DOWNLOAD_NAME
from packager.uris import IFRAME_PLAYLIST_NAME, MASTER_NAME, MEDIA_PLAYLIST_NAME, MPD_NAME, THUMBNAILS_NAME

PREFIX = "/stream"
# Route variables: only these characters can reach a handler.
VARIABLES = {
    "title_id": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "version": r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}",
    "rendition": r"[a-z0-9_-]{1,64}",
    # No sign, no leading zero: one segment has exactly one URL (one CDN cache entry).
    "number": r"0|[1-9][0-9]{0,8}",
}
# Route name -> path under PREFIX, `{variable}` for the table above.
ROUTES = {
    "master": f"{{title_id}}/{{version}}/{MASTER_NAME}",
    "manifest": f"{{title_id}}/{{version}}/{MPD_NAME}",
    "media_playlist": f"{{title_id}}/{{version}}/{{rendition}}/{MEDIA_PLAYLIST_NAME}",
    "iframe_playlist": f"{{title_id}}/{{version}}/{{rendition}}/{IFRAME_PLAYLIST_NAME}",
    "thumbnails": f"{{title_id}}/{{version}}/{{rendition}}/{THUMBNAILS_NAME}",
    "init": "{title_id}/{version}/{rendition}/init.mp4",
    "segment": "{title_id}/{version}/{rendition}/{number}.m4s",
    "text_segment": "{title_id}/{version}/{rendition}/{number}.vtt",
    "image_segment": "{title_id}/{version}/{rendition}/{number}.jpg",
    "download": f"{{title_id}}/{{version}}/{{rendition}}/{DOWNLOAD_NAME}",
}
# The segment routes, by the file name extension they serve (packager.model.SEGMENT_EXTS):
# a rendition's segments have exactly one URL, the one of its kind.
SEGMENT_ROUTES = {"segment": ".m4s", "text_segment": ".vtt", "image_segment": ".jpg"}


def route_name(route: str) -> str:
    """The aiohttp route name of a route (its metrics and access-log label come from it)."""
    return f"stream_{route}"


def route_paths() -> dict[str, str]:
    """aiohttp route patterns, `{name:regex}` for each variable."""
    return {
        name: f"{PREFIX}/" + path.format(**{k: f"{{{k}:{rx}}}" for k, rx in VARIABLES.items()})
        for name, path in ROUTES.items()
    }


def route_regex() -> re.Pattern[str]:
    """All the routes as one regex over a raw (undecoded) path: the route's name is the
    match's `lastgroup`, its variables are the groups named `{route}__{variable}`."""
    alternatives = []
    for name, path in ROUTES.items():
        literal = [re.escape(part) for part in re.split(r"\{\w+\}", f"{PREFIX}/{path}")]
        names = re.findall(r"\{(\w+)\}", path)
        inner = literal[0] + "".join(
            f"(?P<{name}__{n}>{VARIABLES[n]}){lit}" for n, lit in zip(names, literal[1:], strict=True)
        )
        alternatives.append(f"(?P<{name}>{inner})")
    return re.compile("|".join(alternatives))


class Matcher:
    """Takes a raw request path apart as aiohttp's router would for these routes."""

    def __init__(self) -> None:
        self.regex = route_regex()
        self.variables = {
            name: tuple((g.split("__", 1)[1], g) for g in self.regex.groupindex if g.startswith(name + "__"))
            for name in ROUTES
        }

    def match(self, path: str) -> tuple[str, dict[str, str]] | None:
        """(route name, its variables), or None for a path no route takes."""
        m = self.regex.fullmatch(path)
        if m is None:
            return None
        route = m.lastgroup or ""
        group = m.group
        return route, {var: group(name) for var, name in self.variables[route]}
