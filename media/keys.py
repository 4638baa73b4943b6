"""Storage key layout: the one place that knows where a title's objects live."""

from __future__ import annotations

TITLES = "titles"
SOURCES = "sources"
MODEL_NAME = "model.json"
POSTER_NAME = "poster.jpg"


def title_prefix(title_id: str) -> str:
    return f"{TITLES}/{title_id}/"


def version_prefix(title_id: str, version: str) -> str:
    return f"{TITLES}/{title_id}/{version}/"


def model_key(title_id: str, version: str) -> str:
    return version_prefix(title_id, version) + MODEL_NAME


def object_key(title_id: str, version: str, name: str) -> str:
    """`name` is relative to the version, e.g. "v720/init.mp4" or "v720/3.m4s"."""
    return version_prefix(title_id, version) + name


def poster_key(title_id: str, version: str) -> str:
    return version_prefix(title_id, version) + POSTER_NAME


def source_key(title_id: str, ext: str) -> str:
    """Where ingest puts a title's original file, so any worker can fetch it; `ext` like ".mp4"."""
    return f"{SOURCES}/{title_id}/original{ext}"


def source_prefix(title_id: str) -> str:
    return f"{SOURCES}/{title_id}/"


def uploaded_poster_key(title_id: str) -> str:
    """An admin-uploaded poster: beside the versions (not inside one), so publishing a new
    version or collecting stale ones leaves it alone; `title_prefix` still covers it."""
    return f"{TITLES}/{title_id}/uploaded-poster"


def seekable_source_key(title_id: str) -> str:
    """A copy of a source that cannot be seeked (MPEG-TS, ...) into a container that can, made
    once by the worker so every chunk task can start at its own first frame."""
    return f"{SOURCES}/{title_id}/seekable.nut"


def upload_tail_key(title_id: str) -> str:
    """The last bytes a resumable upload received that are fewer than a part (S3 parts but the
    last are 5 MiB at least): kept here until the next request adds to them."""
    return f"{SOURCES}/{title_id}/upload-tail"
