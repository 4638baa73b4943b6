"""Ingest: take a source (local file, `http(s)://` or `s3://` URL), put it into storage under
`sources/{title_id}/original{ext}` so a worker on any machine can fetch it, then create the
catalog row and its transcode job in one transaction.

The source is only checked for existence and size here; whether it is media at all is the
worker's call (it probes, and stores the probe beside the source so nothing probes twice).
A source that is rejected later leaves a `failed` title with a one-line reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import re
import shutil
import stat
import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiofiles
import aiohttp
import asyncpg

from catalog import titles
from catalog.errors import InvalidTitle
from catalog.titles import Title
from media import keys
from media.errors import OutboundRefused, ProbeError
from media.outbound import check_target
from media.probe import probe as run_probe
from media.storage import Storage
from transcoder import jobs, sources
from transcoder.errors import BadIngestOption, TranscoderError
from transcoder.outbound import guarded_session
from transcoder.subtitles import Track, store_sidecars

DOWNLOAD_CHUNK = 1024 * 1024
CONNECT_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 120.0  # between two chunks: a stalled server, not a slow one
_EXT = re.compile(r"^\.[a-z0-9]{1,10}$")
DEFAULT_EXT = ".bin"


class SourceUnavailable(TranscoderError):
    """The source cannot be read (missing, not a file, download failed)."""

    code = "source_unavailable"


class SourceTooLarge(TranscoderError):
    code = "source_too_large"


class SourceRefused(SourceUnavailable):
    """A URL given through the API that the server may not fetch (not public, a redirect)."""

    code = "source_refused"


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _too_large(size: int, cap: int) -> SourceTooLarge:
    return SourceTooLarge(
        f"source is {human_bytes(size)}, over the {human_bytes(cap)} limit (max_source_bytes)"
        if size >= 0
        else f"source is over the {human_bytes(cap)} limit (max_source_bytes)"
    )


def source_extension(source: str) -> str:
    """ ".mp4" from a path or URL, lower case; DEFAULT_EXT when it has none we can use."""
    path = urlsplit(source).path if "://" in source else source
    ext = os.path.splitext(unquote(path))[1].lower()
    return ext if _EXT.match(ext) else DEFAULT_EXT


def plan_kind(kind: str | None, series: str | None, season: int | None, episode: int | None) -> str:
    """`--kind` defaults to episode when a series is named, else movie."""
    kind = kind or ("episode" if series else "movie")
    if kind == "episode" and (not series or season is None or episode is None):
        raise InvalidTitle("an episode needs --series, --season and --episode")
    if kind == "movie" and (series or season is not None or episode is not None):
        raise InvalidTitle("--series/--season/--episode only apply to --kind episode")
    return kind


# ---- getting the bytes to a local file ------------------------------------------------------


def check_local(path: Path, max_bytes: int) -> int:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SourceUnavailable(f"source not found: {path}") from None
    except OSError as exc:
        raise SourceUnavailable(f"cannot read source {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SourceUnavailable(f"source is not a regular file: {path}")
    if not os.access(path, os.R_OK):
        raise SourceUnavailable(f"source is not readable: {path}")
    if st.st_size > max_bytes:
        raise _too_large(st.st_size, max_bytes)
    return st.st_size


async def download_http(url: str, dest: Path, max_bytes: int, *, allow_private: bool = True) -> int:
    """Stream `url` to `dest`, aborting as soon as it passes `max_bytes`. A URL a user gave
    through the API is fetched with `allow_private` False: only public addresses, no redirects
    (transcoder/outbound.py); an operator's `streamflix ingest` may reach its own network."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S)
    written = 0
    try:
        async with guarded_session(allow_private=allow_private, timeout_s=timeout) as session:
            async with session.get(url, allow_redirects=allow_private) as resp:
                if resp.status in (301, 302, 303, 307, 308) and not allow_private:
                    raise SourceRefused(f"download refused: {url} redirects, and redirects are not followed")
                if resp.status != 200:
                    raise SourceUnavailable(f"download failed: {url} answered HTTP {resp.status} {resp.reason}")
                if resp.content_length is not None and resp.content_length > max_bytes:
                    raise _too_large(resp.content_length, max_bytes)
                async with aiofiles.open(dest, "wb") as fh:
                    async for chunk in resp.content.iter_chunked(DOWNLOAD_CHUNK):
                        written += len(chunk)
                        if written > max_bytes:
                            raise _too_large(-1, max_bytes)
                        await fh.write(chunk)
    except OutboundRefused as exc:
        raise SourceRefused(f"download refused: {url}: {exc}") from None
    except (TimeoutError, aiohttp.ClientError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise SourceUnavailable(f"download failed: {url}: {detail}") from None
    return written


def _download_s3(url: str, dest: Path, max_bytes: int, endpoint_url: str | None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from media import s3

    parts = urlsplit(url)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not bucket or not key:
        raise SourceUnavailable(f"not an s3://bucket/key URL: {url}")
    client = s3.client(endpoint_url)
    try:
        size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        if size > max_bytes:
            raise _too_large(size, max_bytes)
        client.download_file(bucket, key, str(dest))
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
            raise SourceUnavailable(f"source not found: {url}") from None
        raise SourceUnavailable(f"cannot read {url}: {code or exc}") from None
    except BotoCoreError as exc:
        raise SourceUnavailable(f"cannot read {url}: {exc}") from None
    return size


def _checked_local(source: str, max_bytes: int) -> Path:
    path = Path(source).expanduser().absolute()
    check_local(path, max_bytes)
    return path


async def fetch_to_local(
    source: str, scratch: Path, max_bytes: int, *, s3_endpoint_url: str | None = None, allow_private: bool = True
) -> Path:
    """A local file holding the source: the path itself, or a download into `scratch`."""
    scheme = urlsplit(source).scheme.lower() if "://" in source else ""
    if not scheme:
        return await asyncio.to_thread(_checked_local, source, max_bytes)
    await asyncio.to_thread(scratch.mkdir, parents=True, exist_ok=True)
    dest = scratch / ("download" + source_extension(source))
    if scheme in ("http", "https"):
        await download_http(source, dest, max_bytes, allow_private=allow_private)
    elif scheme == "s3":
        await asyncio.to_thread(_download_s3, source, dest, max_bytes, s3_endpoint_url)
    else:
        raise SourceUnavailable(f"unsupported source {source!r}: use a local path, http(s):// or s3://")
    return dest


# ---- the transaction ------------------------------------------------------------------------


async def _check_audio_indexes(local: Path, audio_languages: dict[int, str]) -> None:
    """Refuse a language for an audio stream the source does not have, before anything is
    stored (the worker would otherwise ignore it silently)."""
    try:
        count = len((await run_probe(str(local))).audio)
    except ProbeError as exc:
        raise BadIngestOption(f"--audio-lang: cannot read the source's audio streams ({exc})") from None
    bad = sorted(i for i in audio_languages if not 0 <= i < count)
    if bad:
        have = f"audio streams 0..{count - 1}" if count else "no audio stream"
        raise BadIngestOption(f"--audio-lang {bad[0]}=...: the source has {have}")


async def _series(conn: asyncpg.Connection, name: str, genres: Sequence[str]) -> Title:
    # Two ingests naming the same new series at once must not create it twice.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('streamflix:series:' || lower($1)))", name.strip())
    found = await titles.find_series(conn, name)
    if found:
        return found
    # a series carries no media of its own: the catalog makes it ready at once
    return await titles.create_title(conn, kind="series", title=name, genres=list(genres))


async def ingest(
    pool: asyncpg.Pool,
    storage: Storage,
    *,
    source: str,
    title: str,
    kind: str | None = None,
    series: str | None = None,
    season: int | None = None,
    episode: int | None = None,
    year: int | None = None,
    genres: Sequence[str] = (),
    description: str = "",
    credits: Sequence[dict[str, str]] = (),
    max_source_bytes: int,
    work_dir: Path,
    max_attempts: int = 3,
    s3_endpoint_url: str | None = None,
    audio_languages: dict[int, str] | None = None,
    subtitles: Sequence[Track] = (),
    av1_heights: Sequence[int] | None = None,
) -> Title:
    """Register a title from `source` and queue its transcode; returns the `pending` title.

    Raises SourceUnavailable / SourceTooLarge before anything is written, InvalidTitle for
    bad fields, DuplicateEpisode when the series already has that season and episode (the
    uploaded source is then removed again), BadIngestOption when `audio_languages` (BCP 47 tags
    by audio stream order, see `media.languages.known`) names a stream the source lacks.
    `av1_heights`: the rung heights that get an AV1 copy for this title, replacing the
    workers' setting (an empty sequence: none); None keeps the setting."""
    kind = plan_kind(kind, series, season, episode)
    if not title.strip():
        raise InvalidTitle("--title must not be empty")
    title_id = str(uuid.uuid4())
    scratch = Path(work_dir) / f"ingest-{title_id}"
    key = keys.source_key(title_id, source_extension(source))
    try:
        local = await fetch_to_local(source, scratch, max_source_bytes, s3_endpoint_url=s3_endpoint_url)
        options: dict[str, object] = {}
        if audio_languages:
            await _check_audio_indexes(local, audio_languages)
            options[sources.AUDIO_LANGUAGES] = {str(k): v for k, v in sorted(audio_languages.items())}
        if av1_heights is not None:
            options[sources.AV1_RUNGS] = sorted(set(av1_heights), reverse=True)
        content_type = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
        await storage.put_file(key, local, content_type)
        try:
            await store_sidecars(storage, title_id, subtitles)
            async with pool.acquire() as conn, conn.transaction():
                created = await register(
                    conn,
                    title_id=title_id,
                    key=key,
                    source=source,
                    max_attempts=max_attempts,
                    title=title,
                    kind=kind,
                    series=series,
                    season=season,
                    episode=episode,
                    year=year,
                    genres=genres,
                    description=description,
                    credits=credits,
                    options=options,
                )
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(storage.delete_prefix(keys.source_prefix(title_id)))
            raise
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)
    return created


async def register(
    conn: asyncpg.Connection,
    *,
    title_id: str,
    key: str,
    source: str,
    max_attempts: int,
    title: str,
    kind: str,
    series: str | None = None,
    season: int | None = None,
    episode: int | None = None,
    year: int | None = None,
    genres: Sequence[str] = (),
    description: str = "",
    credits: Sequence[dict[str, str]] = (),
    options: dict[str, object] | None = None,
) -> Title:
    """In the caller's transaction: the catalog row of a title whose source is stored at `key`
    (`source`: where it came from, kept for the record, with the ingest's `options`), and its
    transcode job. `kind` as `plan_kind` gives it."""
    # plan_kind made sure an episode names its series
    series_id = (await _series(conn, series, genres)).id if kind == "episode" and series else None
    created = await titles.create_title(
        conn,
        title_id=title_id,
        kind=kind,
        title=title,
        year=year,
        genres=list(genres),
        description=description,
        credits=list(credits),
        series_id=series_id,
        season_number=season if kind == "episode" else None,
        episode_number=episode if kind == "episode" else None,
    )
    await sources.record_source(conn, title_id, source, options)
    await jobs.enqueue(conn, title_id, key, max_attempts)
    return created


URL_SCHEMES = ("http", "https", "s3")


async def register_url(
    pool: asyncpg.Pool,
    *,
    url: str,
    allow_private: bool,
    max_attempts: int = 3,
    title: str,
    kind: str | None = None,
    series: str | None = None,
    season: int | None = None,
    episode: int | None = None,
    year: int | None = None,
    genres: Sequence[str] = (),
    description: str = "",
) -> Title:
    """Ingest from a URL given through the API: the title and its job at once, the job's
    source the URL itself; the worker that runs it downloads it (with the same caps and
    timeouts as `streamflix ingest`, public addresses only unless `allow_private`) and keeps
    it in storage for its later attempts. The URL is checked here first, so a request for a
    private address is refused before anything is created."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in URL_SCHEMES:
        raise SourceUnavailable("the source URL must be http://, https:// or s3://")
    if scheme in ("http", "https"):
        try:
            await check_target(url, allow_private=allow_private)
        except OutboundRefused as exc:
            raise SourceRefused(str(exc)) from None
    kind = plan_kind(kind, series, season, episode)
    if not title.strip():
        raise InvalidTitle("the title must not be empty")
    async with pool.acquire() as conn, conn.transaction():
        return await register(
            conn,
            title_id=str(uuid.uuid4()),
            key=url,
            source=url,
            max_attempts=max_attempts,
            title=title,
            kind=kind,
            series=series,
            season=season,
            episode=episode,
            year=year,
            genres=genres,
            description=description,
        )
