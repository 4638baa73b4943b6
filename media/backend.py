"""Which storage backend a URL names: `file:///abs/dir` or `s3://bucket/prefix`."""

from __future__ import annotations

from media.errors import StorageError
from media.storage import Storage, StorageOptions
from media.storage_file import FileStorage


def open_storage(url: str, endpoint_url: str | None = None, options: StorageOptions | None = None) -> Storage:
    """The backend for `url`; `endpoint_url` is the S3-compatible endpoint for s3:// URLs;
    `options` bound its threads and timeouts (defaults: StorageOptions())."""
    if url.startswith("file://"):
        return FileStorage(url, options=options)
    if url.startswith("s3://"):
        # boto3 loads slowly: only a server configured for S3 pays for it.
        from media.storage_s3 import S3Storage

        return S3Storage(url, endpoint_url=endpoint_url, options=options)
    raise StorageError(f"unsupported storage URL {url!r}: use file:///abs/dir or s3://bucket/prefix")
