"""transcoder/failures.py: causes sorted into permanent / retry / outage, groups unwrapped."""

from __future__ import annotations

import errno

import asyncpg
import botocore.exceptions
import pytest

from media.errors import InvalidKey, ObjectNotFound, ProbeError, StorageError
from transcoder.errors import SourceRejected, TranscodeError, TranscodeTimeout
from transcoder.failures import OUTAGE, PERMANENT, RETRY, classify, is_database_outage, leaves


def wrapped(outer: Exception, inner: Exception) -> Exception:
    """`outer` raised from `inner`, as the storage backends wrap their client's errors."""
    try:
        try:
            raise inner
        except Exception as exc:
            raise outer from exc
    except Exception as exc:
        return exc
    raise AssertionError("unreachable")


def s3_client_error(code: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": "m"}}, "PutObject")


UNREACHABLE = botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9/b/k")


@pytest.mark.parametrize(
    ("exc", "kind", "reason_part"),
    [
        pytest.param(ProbeError("/x.mp4", "no streams"), PERMANENT, "source rejected: no streams", id="probe"),
        pytest.param(SourceRejected("zero duration"), PERMANENT, "zero duration", id="rejected"),
        pytest.param(ObjectNotFound("no object 'k'"), PERMANENT, "missing from storage", id="source-missing"),
        pytest.param(InvalidKey("bad key"), PERMANENT, "bad key", id="invalid-key"),
        pytest.param(TranscodeError("ffmpeg exited 1"), RETRY, "ffmpeg exited 1", id="ffmpeg"),
        pytest.param(TranscodeTimeout("ran 2 h"), RETRY, "ran 2 h", id="ffmpeg-timeout"),
        pytest.param(StorageError("s3 put: InternalError"), RETRY, "InternalError", id="storage-500"),
        pytest.param(
            wrapped(StorageError("s3 put 'k': Could not connect"), UNREACHABLE),
            OUTAGE,
            "storage unreachable: s3 put 'k'",
            id="s3-unreachable",
        ),
        pytest.param(
            wrapped(StorageError("s3 put 'k': AccessDenied m"), s3_client_error("AccessDenied")),
            PERMANENT,
            "AccessDenied",
            id="s3-access-denied",
        ),
        pytest.param(
            wrapped(StorageError("s3 put 'k': NoSuchBucket m"), s3_client_error("NoSuchBucket")),
            PERMANENT,
            "NoSuchBucket",
            id="s3-no-bucket",
        ),
        pytest.param(
            wrapped(StorageError("s3 put 'k': SlowDown m"), s3_client_error("SlowDown")),
            RETRY,
            "SlowDown",
            id="s3-slow-down",
        ),
        pytest.param(
            ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 5432)"),
            OUTAGE,
            "unreachable: ConnectionRefusedError",
            id="refused",
        ),
        pytest.param(
            asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
            OUTAGE,
            "database unreachable",
            id="pg-connection-lost",
        ),
        pytest.param(asyncpg.CannotConnectNowError("the database system is starting up"), OUTAGE, "", id="pg-start"),
        pytest.param(asyncpg.UniqueViolationError("duplicate key"), RETRY, "UniqueViolationError", id="pg-query"),
        pytest.param(NotADirectoryError(errno.ENOTDIR, "Not a directory"), PERMANENT, "Not a directory", id="enotdir"),
        pytest.param(OSError(errno.ENOSPC, "No space left"), RETRY, "No space left", id="enospc"),
        pytest.param(RuntimeError("boom"), RETRY, "RuntimeError: boom", id="unknown"),
    ],
)
def test_classify_one_cause(exc: BaseException, kind: str, reason_part: str) -> None:
    verdict = classify(exc)
    assert verdict.kind == kind
    assert reason_part in verdict.reason
    assert verdict.retryable == (kind != PERMANENT)


def test_a_group_is_unwrapped_to_its_cause() -> None:
    group = ExceptionGroup("unhandled errors in a TaskGroup", [TranscodeError("ffmpeg exited 1")])
    verdict = classify(group)
    assert (verdict.kind, verdict.reason) == (RETRY, "ffmpeg exited 1")
    assert "ExceptionGroup" not in verdict.reason and "TaskGroup" not in verdict.reason


def test_nested_groups_are_unwrapped_at_every_depth() -> None:
    inner = ExceptionGroup("inner", [ProbeError("/x", "not media")])
    outer = ExceptionGroup("outer", [ExceptionGroup("middle", [inner])])
    assert [type(e) for e in leaves(outer)] == [ProbeError]
    assert classify(outer).kind == PERMANENT
    assert classify(outer).reason == "source rejected: not media"


@pytest.mark.parametrize(
    ("members", "kind"),
    [
        pytest.param(
            [wrapped(StorageError("s3 put: x"), UNREACHABLE), StorageError("s3: 500")], RETRY, id="outage+retry"
        ),
        pytest.param([StorageError("s3: 500"), InvalidKey("bad key")], PERMANENT, id="retry+permanent"),
        pytest.param(
            [wrapped(StorageError("s3 put: x"), UNREACHABLE), ExceptionGroup("g", [InvalidKey("bad key")])],
            PERMANENT,
            id="outage+nested-permanent",
        ),
        pytest.param(
            [wrapped(StorageError("a"), UNREACHABLE), wrapped(StorageError("b"), UNREACHABLE)], OUTAGE, id="all-outage"
        ),
    ],
)
def test_a_group_is_as_severe_as_its_most_permanent_member(members: list[Exception], kind: str) -> None:
    verdict = classify(ExceptionGroup("unhandled errors in a TaskGroup", members))
    assert verdict.kind == kind
    assert "other error" in verdict.reason  # the rest are counted, not lost silently


def test_the_same_cause_many_times_is_one_reason() -> None:
    same = [wrapped(StorageError("s3 put: refused"), UNREACHABLE) for _ in range(5)]
    verdict = classify(ExceptionGroup("g", same))
    assert verdict.reason == "storage unreachable: s3 put: refused"


def test_database_outage_predicate() -> None:
    assert is_database_outage(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    assert is_database_outage(asyncpg.InterfaceError("connection is closed"))
    assert is_database_outage(wrapped(RuntimeError("while claiming"), ConnectionResetError()))
    assert not is_database_outage(asyncpg.UniqueViolationError("duplicate key"))
    assert not is_database_outage(asyncpg.InterfaceError("cannot perform operation: another operation is in progress"))
