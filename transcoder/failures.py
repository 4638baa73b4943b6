"""Why a job failed, and what the queue should do about it. Values in, a verdict out: no I/O.

Three kinds of cause:

- `PERMANENT`: trying again gives the same answer (a source that is not media, a storage key
  that cannot be written, storage that refuses our credentials). The title fails now.
- `RETRY`: something went wrong this time (ffmpeg crashed, storage answered 500). The attempt
  counts; the job runs again after a backoff while attempts remain.
- `OUTAGE`: a dependency is unreachable (Postgres or storage down or timing out). Not the
  title's fault: the job is deferred without spending an attempt, for as long as it takes.

An `ExceptionGroup` (a TaskGroup of uploads that failed together) is unwrapped recursively and
judged as its most permanent member: one unwritable key fails the title even when the other
uploads only timed out, because retrying cannot fix that key.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

import asyncpg
import botocore.exceptions

from media.errors import InvalidKey, ObjectNotFound, ProbeError, StorageError
from transcoder.errors import SourceRejected, TaskFailed, TranscoderError
from transcoder.ingest import SourceRefused, SourceTooLarge

PERMANENT = "permanent"
RETRY = "retry"
OUTAGE = "outage"
_SEVERITY = {OUTAGE: 0, RETRY: 1, PERMANENT: 2}

# S3 error codes that no retry fixes: the bucket or the credentials are wrong until an operator
# changes them (then `streamflix titles retry ID`).
_PERMANENT_S3_CODES = frozenset(
    {"AccessDenied", "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidBucketName"}
)
# Local file errors that say the path itself is wrong (a file where a folder must be, a name
# too long): the same key fails the same way next time.
_PERMANENT_ERRNOS = frozenset({errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG})


@dataclass(frozen=True)
class Failure:
    reason: str  # one line for the job's error and the title's failure reason
    kind: str  # PERMANENT, RETRY or OUTAGE

    @property
    def retryable(self) -> bool:
        return self.kind != PERMANENT


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside `exc`, exception groups unwrapped at every depth."""
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for inner in exc.exceptions:
            out.extend(leaves(inner))
        return out
    return [exc]


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and what it was raised from (storage errors wrap the client's exception)."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
    return seen


def is_database_outage(exc: BaseException) -> bool:
    """Postgres cannot be reached (refused, reset, timed out, shutting down or starting up),
    as opposed to a query Postgres answered with an error."""
    for e in _chain(exc):
        if isinstance(
            e,
            asyncpg.PostgresConnectionError
            | asyncpg.CannotConnectNowError
            | asyncpg.AdminShutdownError
            | asyncpg.CrashShutdownError
            | asyncpg.TooManyConnectionsError,
        ):
            return True
        if isinstance(e, asyncpg.InterfaceError) and "connection" in str(e).lower():
            return True  # "connection is closed", "connection was closed in the middle of operation"
        if isinstance(e, ConnectionError | TimeoutError):
            return True
    return False


def _is_unreachable(exc: BaseException) -> bool:
    """A storage call that never got an answer: connect refused or timed out, read timed out."""
    for e in _chain(exc):
        if isinstance(e, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError):
            return True
        if isinstance(e, ConnectionError | TimeoutError):
            return True
        if getattr(e, "code", None) == "storage_unavailable":
            return True
    return False


def _s3_code(exc: BaseException) -> str | None:
    for e in _chain(exc):
        if isinstance(e, botocore.exceptions.ClientError):
            return str(e.response.get("Error", {}).get("Code", "")) or None
    return None


def _text(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def classify_one(exc: BaseException) -> Failure:
    """The verdict on one cause (not a group)."""
    if isinstance(exc, ProbeError):
        return Failure(f"source rejected: {exc.reason}", PERMANENT)
    if isinstance(exc, SourceRejected):
        return Failure(f"source rejected: {exc.reason}", PERMANENT)
    if isinstance(exc, ObjectNotFound):
        return Failure("the uploaded source is missing from storage", PERMANENT)
    if isinstance(exc, InvalidKey):
        return Failure(f"storage: {_text(exc)}", PERMANENT)
    if isinstance(exc, StorageError):
        if _is_unreachable(exc):
            return Failure(f"storage unreachable: {_text(exc)}", OUTAGE)
        if _s3_code(exc) in _PERMANENT_S3_CODES:
            return Failure(f"storage: {_text(exc)}", PERMANENT)
        return Failure(f"storage: {_text(exc)}", RETRY)
    if isinstance(exc, SourceTooLarge | SourceRefused):
        return Failure(exc.reason, PERMANENT)  # the same URL will be as large, or as private
    if isinstance(exc, TaskFailed):
        return Failure(exc.reason, PERMANENT)  # its task's attempts are spent already
    if isinstance(exc, TranscoderError):
        return Failure(exc.reason, RETRY)
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError) and is_database_outage(exc):
        return Failure(f"database unreachable: {type(exc).__name__}: {_text(exc)}", OUTAGE)
    if is_database_outage(exc) or _is_unreachable(exc):
        # a refused or timed-out connection with no client wrapper around it: which
        # dependency is in the message (its address)
        return Failure(f"unreachable: {type(exc).__name__}: {_text(exc)}", OUTAGE)
    if isinstance(exc, OSError) and exc.errno in _PERMANENT_ERRNOS:
        return Failure(f"storage: {type(exc).__name__}: {_text(exc)}", PERMANENT)
    return Failure(f"{type(exc).__name__}: {_text(exc)}", RETRY)


def classify(exc: BaseException) -> Failure:
    """The verdict on `exc`: for a group, the most permanent of its causes (the first such),
    with how many other distinct causes there were."""
    verdicts = [classify_one(e) for e in leaves(exc)]
    if not verdicts:  # an empty group cannot be built, but be total
        return Failure(_text(exc), RETRY)
    worst = max(verdicts, key=lambda v: _SEVERITY[v.kind])  # max keeps the first of equals
    others = {v.reason for v in verdicts} - {worst.reason}
    if others:
        return Failure(f"{worst.reason} (and {len(others)} other error{'s' if len(others) > 1 else ''})", worst.kind)
    return worst
