"""Every error the media package raises. `server/http/errors.py` maps these `code`s to HTTP."""

from __future__ import annotations


class MediaError(Exception):
    code = "media_error"


class StorageError(MediaError):
    code = "storage_error"


class InvalidKey(StorageError):
    code = "invalid_key"


class ObjectNotFound(StorageError):
    code = "not_found"


class ProbeError(MediaError):
    """A source ffprobe cannot use; `reason` is one line a user can act on."""

    code = "probe_failed"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot probe {path}: {reason}")
        self.path = path
        self.reason = reason
