"""The origin's per-process state: which playback tokens were verified, each version's rendition
model, each stored object's size and validators, and each rendered playlist or MPD.

A version is immutable, so after its first request nothing here touches Postgres or Redis, and
storage only for bytes: everything is kept in bounded LRUs (cachetools), and concurrent misses
of one key share one load. A version that is gone from storage is forgotten (`forget_version`).
The one exception is a version still being encoded (a progressive model): its model.json is
overwritten once, in place, with the measured model, so its model is read again at most every
MODEL_RECHECK_S (`model()` says when a cached one is due) and its playlists have a short life.
`target()` says what a route answers: a rendered Document, or the storage key of a segment.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import cachetools

from auth import playback
from auth.keyring import KeyRing
from media import keys as media_keys
from media.errors import StorageError
from media.storage import ObjectNotFound, Storage
from packager.dash import render_mpd
from packager.hls import render_iframes, render_media, render_multivariant
from packager.model import DOWNLOAD_NAME, Presentation
from packager.thumbnails import render_thumbnails
from packager.uris import IFRAME_PLAYLIST_NAME, MASTER_NAME, MEDIA_PLAYLIST_NAME, MPD_NAME, THUMBNAILS_NAME, UriBuilder
from server.http.conditional import Decision, Validators, http_date
from server.http.errors import ApiError
from server.http.middlewares import CORS_HEADERS
from server.origin.representation import Representation
from server.origin.routes import SEGMENT_ROUTES

CT_HLS = "application/vnd.apple.mpegurl"  # RFC 8216 section 4
CT_DASH = "application/dash+xml"  # ISO/IEC 23009-1 annex C
# hls.js, dash.js, Safari and Chrome's MSE all accept video/mp4 for init and media segments;
# the registered `video/iso.segment` is refused by some CDNs' and proxies' type allow-lists.
CT_SEGMENT = "video/mp4"
# The other kinds of segment, by their name's ending (routes.SEGMENT_ROUTES): WebVTT subtitles
# (RFC 8216 3.5; UTF-8, as the packager writes them) and thumbnail sprite sheets.
CT_BY_EXT = {".vtt": "text/vtt; charset=utf-8", ".jpg": "image/jpeg"}
CT_WEBVTT = "text/vtt; charset=utf-8"  # W3C WebVTT, the thumbnails' index

SEGMENT_CACHE_CONTROL = "public, max-age=31536000, immutable"
# Playlists carry a viewer's window token: browsers may keep them briefly, shared caches not.
PLAYLIST_CACHE_CONTROL = "private, max-age=60"
# A progressive version's playlists change once (measured bandwidth, when its last segment is
# in): kept as long as its model is (MODEL_RECHECK_S).
PROGRESSIVE_PLAYLIST_CACHE_CONTROL = "private, max-age=2"
# How often a progressive version's model is read again from storage.
MODEL_RECHECK_S = 2.0

MODEL_CACHE_SIZE = 256  # versions
OBJECT_CACHE_SIZE = 65536  # objects (~200 bytes each)
PLAYLIST_CACHE_SIZE = 4096  # rendered documents (a few KB each)
TOKEN_CACHE_SIZE = 8192

log = logging.getLogger("streamflix.stream")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")


class Lru(cachetools.LRUCache[K, V]):
    """cachetools' LRU cache, with a `get` that costs a hit one lookup (Cache.get tests
    membership first, then looks up: ~0.1 us more per hit, and a cached segment takes three)."""

    @overload
    def get(self, key: K, default: None = None) -> V | None: ...
    @overload
    def get(self, key: K, default: V | T) -> V | T: ...
    def get(self, key: K, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def drop(self, pred: Callable[[K], bool]) -> None:
        for k in [k for k in self if pred(k)]:
            del self[k]


@dataclass(frozen=True)
class StoredObject(Representation):
    """An immutable object of a version (init or media segment)."""

    key: str
    path: str | None  # local file for sendfile, None on S3
    validators: Validators
    headers: dict[str, str]
    full: Decision


@dataclass(frozen=True)
class Document(Representation):
    """A rendered playlist or MPD (its URLs carry one token)."""

    body: bytes
    validators: Validators
    headers: dict[str, str]
    full: Decision


class Origin:
    """Per-process state of the stream routes (kept in the app, never module-global)."""

    def __init__(self, storage: Storage, ring: KeyRing) -> None:
        self.storage = storage
        self.ring = ring
        self.models: Lru[tuple[str, str], tuple[Presentation, int]] = Lru(MODEL_CACHE_SIZE)
        # Progressive versions only: when (loop time) their cached model is due to be read again.
        self.rechecks: Lru[tuple[str, str], float] = Lru(MODEL_CACHE_SIZE)
        self.objects: Lru[str, StoredObject] = Lru(OBJECT_CACHE_SIZE)
        self.documents: Lru[tuple[str, str, str, str, bool], Document] = Lru(PLAYLIST_CACHE_SIZE)
        self.tokens: Lru[str, tuple[str, str, int]] = Lru(TOKEN_CACHE_SIZE)
        self._loading: dict[Any, asyncio.Future[Any]] = {}
        # Bumped whenever the set of versions this process knows changes (a model loaded, which
        # is also when one may have been evicted, or a version forgotten): whoever remembers an
        # answer derived from a model (the fast path's per-URL answers) keeps the generation it
        # saw and drops the answer when it differs.
        self.generation = 0

    def verify_token(self, token: str, title_id: str, version: str) -> int:
        """Raises the precise PlaybackTokenError unless `token` opens this title version now;
        returns the token's expiry (Unix seconds)."""
        now = time.time()
        hit = self.tokens.get(token)
        # A token verified once is remembered with its scope; the expiry is still checked on
        # every request (and a scope mismatch re-verifies, to raise the precise error).
        if hit is not None and hit[0] == title_id and hit[1] == version and hit[2] > now:
            return hit[2]
        exp = playback.verify(self.ring, token, title_id, version, now)
        self.tokens[token] = (title_id, version, exp)
        return exp

    # ---- loads, each once --------------------------------------------------------------------

    async def _once(self, key: Any, load: Callable[[], Awaitable[V]]) -> V:
        """Concurrent misses for the same key share one load."""
        fut = self._loading.get(key)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._loading[key] = fut
        try:
            value = await load()
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: nobody else may be waiting
            raise
        else:
            fut.set_result(value)
            return value
        finally:
            del self._loading[key]

    def model(self, title_id: str, version: str) -> tuple[Presentation, int] | None:
        """The cached model of a version and its mtime, or None when it is not cached or it is
        a progressive one due to be read again (then `presentation()` reads it)."""
        entry = self.models.get((title_id, version))
        if entry is not None and entry[0].progressive:
            due = self.rechecks.get((title_id, version))
            if due is None or due <= time.monotonic():
                return None
        return entry

    async def presentation(self, title_id: str, version: str) -> tuple[Presentation, int]:
        """The version's rendition model and when it was published (the model's mtime)."""
        cached = self.model(title_id, version)
        if cached is not None:
            return cached
        vkey = (title_id, version)

        async def load() -> tuple[Presentation, int]:
            key = media_keys.model_key(title_id, version)
            old = self.models.get(vkey)
            try:
                info = await self.storage.head(key)
                raw = await self.storage.get_bytes(key)
            except ObjectNotFound:
                if old is not None:
                    self.forget_version(title_id, version)
                raise ApiError(404, "version_not_found", f"title {title_id} has no version {version}") from None
            except StorageError:
                if old is None:
                    raise
                # A progressive model we could not read again: the one we have still lists
                # every segment; try again after another period.
                log.warning("could not read the model of %s/%s again; keeping the cached one", *vkey)
                self.rechecks[vkey] = time.monotonic() + MODEL_RECHECK_S
                return old
            entry = (Presentation.from_json(raw), int(info.mtime.timestamp()))
            if entry[0].progressive:
                self.rechecks[vkey] = time.monotonic() + MODEL_RECHECK_S
            else:
                self.rechecks.pop(vkey, None)
            if old is not None and old == entry:
                return old  # read again, unchanged: nothing derived from it changes
            if old is not None:
                # Overwritten in place (the measured model of a progressive version): its
                # rendered playlists are stale.
                self.documents.drop(lambda k: k[0] == title_id and k[1] == version)
            self.models[vkey] = entry
            self.generation += 1
            return entry

        return await self._once(("model", title_id, version), load)

    async def stored_object(
        self, key: str, content_type: str | None = None, extra_headers: dict[str, str] | None = None
    ) -> StoredObject:
        """An object's size and validators (a storage HEAD on the first request only).
        `extra_headers` join its 200's fields (a download's Content-Disposition): one key is
        always asked for with the same ones."""
        cached = self.objects.get(key)
        if cached is not None:
            return cached

        async def load() -> StoredObject:
            info = await self.storage.head(key)
            local = self.storage.local_path(key)
            lm = int(info.mtime.timestamp())
            etag = f'"{info.etag}"'
            obj = StoredObject(
                key=key,
                path=str(local) if local is not None else None,
                validators=Validators(info.size, etag, lm),
                headers={
                    "Content-Type": content_type or CT_BY_EXT.get(key[key.rfind(".") :], CT_SEGMENT),
                    "ETag": etag,
                    "Last-Modified": http_date(lm),
                    "Cache-Control": SEGMENT_CACHE_CONTROL,
                    "Accept-Ranges": "bytes",
                    **CORS_HEADERS,
                    **(extra_headers or {}),
                },
                full=Decision(200, 0, info.size),
            )
            self.objects[key] = obj
            return obj

        return await self._once(("object", key), load)

    def forget_version(self, title_id: str, version: str) -> None:
        """The version vanished from storage (deleted or garbage-collected): drop its entries."""
        self.models.drop(lambda k: k == (title_id, version))
        self.rechecks.pop((title_id, version), None)
        self.generation += 1
        prefix = media_keys.version_prefix(title_id, version)
        self.objects.drop(lambda k: k.startswith(prefix))
        self.documents.drop(lambda k: k[0] == title_id and k[1] == version)

    # ---- what a route answers ----------------------------------------------------------------

    def document(
        self, p: Presentation, lm: int, name: str, token: str, render: Callable[[UriBuilder], str], content_type: str
    ) -> Document:
        """The playlist or MPD `name` of a version with `token` in its URLs, rendered once."""
        # Progressive or not is in the key: a model overwritten while this process had evicted
        # it must not find the playlists rendered from the predicted one.
        key = (p.title_id, p.version, name, token, p.progressive)
        cached = self.documents.get(key)
        if cached is not None:
            return cached
        body = render(UriBuilder(query=f"token={token}")).encode()
        # Strong validator: a hash of the exact bytes (RFC 9110 8.8.3).
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        # The model is written last and never changes (but once, for a progressive version):
        # its mtime is the documents' age.
        headers = {
            "Content-Type": content_type,
            "ETag": etag,
            "Last-Modified": http_date(lm),
            "Cache-Control": PROGRESSIVE_PLAYLIST_CACHE_CONTROL if p.progressive else PLAYLIST_CACHE_CONTROL,
            "Accept-Ranges": "bytes",
            **CORS_HEADERS,
        }
        doc = Document(body, Validators(len(body), etag, lm), headers, Decision(200, 0, len(body)))
        self.documents[key] = doc
        return doc

    def target(
        self, p: Presentation, lm: int, token: str, route: str, rendition: str | None, number: str | None
    ) -> Document | str:
        """What a stream route (routes.ROUTES) answers once its token is checked and its model
        loaded: the rendered playlist or MPD, or the storage key of an init or media segment.
        ApiError 404 for a rendition or segment the model does not have."""
        if route == "master":
            return self.document(p, lm, MASTER_NAME, token, lambda uri: render_multivariant(p, uri), CT_HLS)
        if route == "manifest":
            return self.document(p, lm, MPD_NAME, token, lambda uri: render_mpd(p, uri), CT_DASH)
        r = p.rendition(rendition or "")
        if r is None:
            raise ApiError(404, "rendition_not_found", "no such rendition in this version")
        if route == "media_playlist":
            if r.kind in ("download", "image"):
                raise ApiError(404, "rendition_not_found", "this rendition has no media playlist")
            rid = r.id
            name = f"{rid}/{MEDIA_PLAYLIST_NAME}"
            return self.document(p, lm, name, token, lambda uri: render_media(p, rid, uri), CT_HLS)
        if route == "iframe_playlist":
            if not r.has_iframes or p.progressive:
                raise ApiError(404, "rendition_not_found", "this rendition has no I-frame playlist")
            rid = r.id
            name = f"{rid}/{IFRAME_PLAYLIST_NAME}"
            return self.document(p, lm, name, token, lambda uri: render_iframes(p, rid, uri), CT_HLS)
        if route == "thumbnails":
            if r.kind != "image":
                raise ApiError(404, "rendition_not_found", "this rendition has no thumbnails")
            rid = r.id
            name = f"{rid}/{THUMBNAILS_NAME}"
            return self.document(p, lm, name, token, lambda uri: render_thumbnails(p, rid, uri), CT_WEBVTT)
        if route == "download":
            if r.kind != "download":
                raise ApiError(404, "download_not_found", "this rendition is not a download")
            return media_keys.object_key(p.title_id, p.version, f"{r.id}/{DOWNLOAD_NAME}")
        if route == "init":
            if r.kind not in ("video", "audio"):
                raise ApiError(404, "segment_not_found", "this rendition has no init segment")
            return media_keys.object_key(p.title_id, p.version, r.init_name)
        n = int(number or "")
        if SEGMENT_ROUTES.get(route) != r.segment_ext or not r.start_number <= n < r.start_number + len(r.segments):
            raise ApiError(404, "segment_not_found", "no such segment in this rendition")
        return media_keys.object_key(p.title_id, p.version, r.segment_name(n))
