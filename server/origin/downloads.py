"""The download route's own rules: whether a title may be downloaded, and the file name.

A download is served like a segment (the same token, Range, preconditions, sendfile), plus:

- `STREAMFLIX_DOWNLOADS=false` refuses every download (403 `downloads_disabled`);
- a title whose `downloads_enabled` is off refuses it too, even with a valid playback token
  (a viewer's token opens the stream, not necessarily the file). The flag lives in Postgres,
  and the origin never asks Postgres per segment: it is read once per title per process and
  kept DOWNLOAD_FLAG_TTL_S, so turning downloads off takes effect within that time (only on
  the download route: segments never look). A flag that cannot be read again keeps the last
  one known; never known, the request answers the database outage's 503;
- `Content-Disposition: attachment` with the title's file name (RFC 6266: an ASCII
  `filename` for old clients and a UTF-8 `filename*`, RFC 8187).
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import asyncpg
import cachetools

from catalog import titles
from server.http.errors import ApiError

log = logging.getLogger("streamflix.stream")

DOWNLOAD_FLAG_TTL_S = 30.0
FLAG_CACHE_SIZE = 8192
DEFAULT_FILE_NAME = "video.mp4"


def disabled(message: str) -> ApiError:
    return ApiError(403, "downloads_disabled", message)


def content_disposition(name: str | None) -> str:
    """`attachment; filename="ascii.mp4"; filename*=UTF-8''%C3%A9t%C3%A9.mp4` (RFC 6266 4.3:
    a client that knows filename* prefers it)."""
    name = name or DEFAULT_FILE_NAME
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    ascii_name = "".join(c for c in ascii_name if c.isprintable() and c not in '"\\/;').strip() or DEFAULT_FILE_NAME
    if ascii_name.startswith("."):
        ascii_name = "video" + ascii_name
    field = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        field += "; filename*=UTF-8''" + quote(name, safe="")
    return field


class DownloadGate:
    """Per process: each title's `downloads_enabled`, read at most every DOWNLOAD_FLAG_TTL_S."""

    def __init__(self, lookup: Callable[[str], Awaitable[bool]], *, enabled: bool, ttl_s: float = DOWNLOAD_FLAG_TTL_S):
        self.lookup = lookup
        self.enabled = enabled
        self.ttl_s = ttl_s
        # title id -> (flag, monotonic time it is due to be read again); never evicted by age,
        # so a flag that cannot be read again still answers (the LRU bounds the size).
        self.flags: cachetools.LRUCache[str, tuple[bool, float]] = cachetools.LRUCache(FLAG_CACHE_SIZE)

    async def check(self, title_id: str) -> None:
        """Raise 403 downloads_disabled unless the server and the title allow downloads."""
        if not self.enabled:
            raise disabled("downloads are turned off on this server")
        if not await self._allowed(title_id):
            raise disabled("this title cannot be downloaded")

    async def _allowed(self, title_id: str) -> bool:
        known = self.flags.get(title_id)
        now = time.monotonic()
        if known is not None and known[1] > now:
            return known[0]
        try:
            flag = await self.lookup(title_id)
        except ApiError:
            raise
        except Exception:
            if known is None:
                raise
            log.warning("title %s: could not read downloads_enabled again; keeping the last one", title_id)
            flag = known[0]
        self.flags[title_id] = (flag, now + self.ttl_s)
        return flag


def catalog_lookup(pool_of: Callable[[], asyncpg.Pool]) -> Callable[[str], Awaitable[bool]]:
    """The gate's lookup through the app's pool (`catalog.titles`; a deleted title is a 404)."""

    async def lookup(title_id: str) -> bool:
        pool = pool_of()
        async with pool.acquire() as conn:
            return (await titles.get_title(conn, title_id)).downloads_enabled

    return lookup
