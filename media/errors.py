"""Every error the media package raises. `server/http/errors.py` maps these `code`s to HTTP."""

from __future__ import annotations


class MediaError(Exception):
    code = "media_error"


class StorageError(MediaError):
    code = "storage_error"


class StorageUnavailable(StorageError):
    """The backend did not answer in time, refused the connection, or is being skipped while
    it is known to be down: try again in `retry_after` seconds. Callers that keep a circuit
    breaker trip it on this error (and not on `StorageBusy`)."""

    code = "storage_unavailable"

    def __init__(self, message: str, *, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageBusy(StorageUnavailable):
    """Every storage thread stayed busy for the whole bounded wait: load shed, not an outage
    (the backend may be healthy, only saturated), so it does not trip a breaker."""

    code = "storage_busy"


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


class OutboundRefused(MediaError):
    """A URL we were asked to call (a webhook, a source to ingest) is not one we may call: not
    http(s), no host, or a host that is (or resolves to) a loopback, private, link-local or
    otherwise non-public address while private addresses are not allowed (SSRF)."""

    code = "url_not_allowed"
