"""`s3://bucket/prefix` storage on any S3-compatible store (AWS, MinIO, R2, moto).

boto3 is blocking, so every call runs in a thread of the backend's own bounded pool
(media/pool.py); its clients are thread-safe, so one client per instance serves all of them.
Timeouts are short and explicit (StorageOptions), and a timeout or a refused connection is
StorageUnavailable. Credentials and region come from the usual AWS_* variables (boto3's
default chain).

A multipart upload whose writer died stays in the bucket (and is billed) until it is
aborted: `list_incomplete` shows them, `sweep_incomplete` and `delete_prefix` abort them.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from media import s3
from media.errors import InvalidKey, ObjectNotFound, StorageError, StorageUnavailable
from media.pool import StoragePool
from media.storage import ObjectInfo, StorageOptions, validate_key

CHUNK_SIZE = 256 * 1024
# S3 allows at most 1000 keys per DeleteObjects call.
DELETE_BATCH = 1000
# Sources and segments above this go multipart, in parts of this size, streamed from disk.
DEFAULT_TRANSFER = TransferConfig(
    multipart_threshold=16 * 1024 * 1024,
    multipart_chunksize=16 * 1024 * 1024,
    max_concurrency=4,
)
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
# The endpoint is down, hung or overloaded (not: the request was wrong).
_UNAVAILABLE = (ConnectTimeoutError, ReadTimeoutError, EndpointConnectionError, ConnectionClosedError)

T = TypeVar("T")


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "?")
        message = err.get("Message") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
        return f"{code} {message}".strip()
    return " ".join(str(exc).split())


def _is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in _NOT_FOUND


JOIN_TIMEOUT_S = 300.0


class S3Storage:
    """Storage in one bucket under an optional key prefix."""

    def __init__(
        self,
        url: str,
        endpoint_url: str | None = None,
        *,
        transfer_config: TransferConfig | None = None,
        options: StorageOptions | None = None,
    ) -> None:
        if not url.startswith("s3://"):
            raise StorageError(f"not an s3:// URL: {url!r}")
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise StorageError(f"S3 storage URL needs a bucket (s3://bucket/prefix): {url!r}")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self.url = url
        self.bucket = bucket
        self.prefix = prefix + "/" if prefix else ""
        self.endpoint_url = endpoint_url
        self.transfer_config = transfer_config or DEFAULT_TRANSFER
        self.options = o = options or StorageOptions()
        self.pool = StoragePool(o.threads, o.wait_s)
        # One connection per thread, and the transfer manager's own threads beside them.
        self._client = s3.client(
            endpoint_url,
            max_pool_connections=max(32, o.threads + self.transfer_config.max_request_concurrency),
            connect_timeout_s=o.connect_timeout_s,
            read_timeout_s=o.read_timeout_s,
            max_attempts=o.max_attempts,
        )
        # Joining a multipart upload's parts can take S3 (and MinIO, moto) far longer than a
        # read: its own client, with a read timeout for that, made when first needed.
        self._joiner: Any = None

    # ---- helpers -------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        validate_key(key)
        if key.endswith("/"):
            raise InvalidKey(f"invalid storage key: {key!r} (an object key cannot end with '/')")
        return self.prefix + key

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, read: bool = False, **kwargs: Any) -> T:
        """Run one blocking boto3 call in the pool, mapping its errors to ours. A `read` (one
        request, small answer) is awaited at most the read timeout; writes and listings (many
        requests in one call) are bounded by botocore's per-request timeouts instead."""
        deadline = self.options.read_timeout_s if read else None
        try:
            return await self.pool.run(fn, *args, deadline_s=deadline, **kwargs)
        except StorageUnavailable as exc:
            raise type(exc)(f"s3 {what}: {exc}", retry_after=exc.retry_after) from None
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            raise self._error(what, exc) from exc

    def _error(self, what: str, exc: BaseException) -> StorageError:
        if _is_not_found(exc):
            return ObjectNotFound(f"no object {what}")
        if isinstance(exc, _UNAVAILABLE) or isinstance(exc.__context__, _UNAVAILABLE):
            return StorageUnavailable(f"s3 {what}: {_one_line(exc)}")
        if isinstance(exc, ClientError) and exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
            return StorageUnavailable(f"s3 {what}: {_one_line(exc)}")  # 500, 503 SlowDown
        return StorageError(f"s3 {what}: {_one_line(exc)}")

    def _to_info(self, key: str, size: int, etag: str, mtime: Any, content_type: str | None = None) -> ObjectInfo:
        # A multipart ETag ("abc-3") is not an MD5 but still changes with the content: strong.
        return ObjectInfo(key=key, size=size, etag=etag.strip('"'), mtime=mtime, content_type=content_type)

    # ---- writes --------------------------------------------------------------------------

    async def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        """Managed transfer: multipart above the threshold, parts read from disk as sent."""
        full = self._key(key)
        extra = {"ContentType": content_type} if content_type else None
        await self._call(
            f"put {key!r}",
            self._client.upload_file,
            str(path),
            self.bucket,
            full,
            ExtraArgs=extra,
            Config=self.transfer_config,
        )
        return await self.head(key)

    async def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        full = self._key(key)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": full, "Body": data}
        if content_type:
            kwargs["ContentType"] = content_type
        await self._call(f"put {key!r}", self._client.put_object, **kwargs)
        return await self.head(key)

    # ---- writes in parts: S3 multipart uploads -------------------------------------------

    async def start_parts(self, key: str, content_type: str | None = None) -> str:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if content_type:
            kwargs["ContentType"] = content_type
        answer = await self._call(f"start parts {key!r}", self._client.create_multipart_upload, **kwargs)
        return str(answer["UploadId"])

    async def put_part(self, key: str, write_id: str, number: int, path: Path, *, consume: bool = False) -> str:
        full = self._key(key)

        def run() -> str:
            with open(path, "rb") as body:
                answer = self._client.upload_part(
                    Bucket=self.bucket, Key=full, UploadId=write_id, PartNumber=number, Body=body
                )
            return str(answer["ETag"])

        return await self._call(f"put part {number} of {key!r}", run)

    async def complete_parts(self, key: str, write_id: str, parts: builtins.list[tuple[int, str]]) -> ObjectInfo:
        """Idempotent: when an earlier call completed the upload but its answer was lost (a
        timeout), the upload is gone and the object is there: that object is the answer."""
        if self._joiner is None:
            self._joiner = s3.client(
                self.endpoint_url,
                connect_timeout_s=self.options.connect_timeout_s,
                read_timeout_s=JOIN_TIMEOUT_S,
                max_attempts=1,
            )
        try:
            await self._call(
                f"complete parts of {key!r}",
                self._joiner.complete_multipart_upload,
                Bucket=self.bucket,
                Key=self._key(key),
                UploadId=write_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": tag} for n, tag in parts]},
            )
        except StorageError as exc:
            if "NoSuchUpload" not in str(exc):
                raise
            return await self.head(key)  # ObjectNotFound when it really is gone
        return await self.head(key)

    async def abort_parts(self, key: str, write_id: str) -> None:
        await self._call(f"abort parts of {key!r}", self._abort, {"Key": self._key(key), "UploadId": write_id})

    async def copy(self, src_key: str, dst_key: str) -> ObjectInfo:
        """Managed copy: CopyObject, or UploadPartCopy above the multipart threshold (a single
        CopyObject stops at 5 GB); metadata (the content type) is copied with the object."""
        source = {"Bucket": self.bucket, "Key": self._key(src_key)}
        full = self._key(dst_key)
        await self._call(f"copy {src_key!r}", self._client.copy, source, self.bucket, full, Config=self.transfer_config)
        return await self.head(dst_key)

    # ---- reads ---------------------------------------------------------------------------

    async def head(self, key: str) -> ObjectInfo:
        full = self._key(key)
        r = await self._call(repr(key), self._client.head_object, Bucket=self.bucket, Key=full, read=True)
        return self._to_info(key, r["ContentLength"], r["ETag"], r["LastModified"], r.get("ContentType"))

    async def get_bytes(self, key: str) -> bytes:
        full = self._key(key)
        r = await self._call(repr(key), self._client.get_object, Bucket=self.bucket, Key=full, read=True)
        body = r["Body"]
        try:
            return await self._call(repr(key), body.read, read=True)
        finally:
            body.close()

    async def stream(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes [start, end] inclusive via one ranged GetObject, read in chunks; `end` past the
        last byte is clamped, `start` past it yields nothing (as the file backend does)."""
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"bad byte range {start}-{end}")
        full = self._key(key)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": full}
        # No Range for the whole object: S3 answers 416 to "bytes=0-" on an empty object.
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end}"  # RFC 9110 14.1.2
        try:
            r = await self.pool.run(self._client.get_object, deadline_s=self.options.read_timeout_s, **kwargs)
        except StorageUnavailable as exc:
            raise type(exc)(f"s3 {key!r}: {exc}", retry_after=exc.retry_after) from None
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                # Unsatisfiable means start is past the end: nothing to send. Still a 404 when
                # the object is missing, which S3 reports before the range.
                return
            raise self._error(repr(key), exc) from exc
        except BotoCoreError as exc:
            raise self._error(repr(key), exc) from exc
        body = r["Body"]
        try:
            while True:
                chunk = await self._call(repr(key), body.read, CHUNK_SIZE, read=True)
                if not chunk:
                    break
                yield chunk
        finally:
            body.close()

    async def list(self, prefix: str) -> list[ObjectInfo]:
        """Objects whose key starts with `prefix` ("" lists everything), sorted by key."""
        if prefix:
            validate_key(prefix)

        def run() -> builtins.list[ObjectInfo]:
            out = []
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", ()):
                    key = obj["Key"][len(self.prefix) :]
                    out.append(self._to_info(key, obj["Size"], obj["ETag"], obj["LastModified"]))
            return out

        return await self._call(f"list {prefix!r}", run)

    def _uploads(self, prefix: str) -> builtins.list[dict[str, Any]]:
        """Multipart uploads begun and never completed nor aborted under `prefix` (blocking)."""
        out: builtins.list[dict[str, Any]] = []
        paginator = self._client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            out.extend(page.get("Uploads", ()))
        return out

    def _abort(self, upload: dict[str, Any]) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":  # finished or aborted meanwhile
                raise

    async def list_incomplete(self, prefix: str) -> builtins.list[ObjectInfo]:
        """Unfinished multipart uploads under `prefix`: `etag` is the upload id, `mtime` when
        it began, `size` 0 (S3 does not say without listing the parts)."""
        if prefix:
            validate_key(prefix)
        uploads = await self._call(f"list uploads {prefix!r}", self._uploads, prefix)
        return [
            ObjectInfo(key=u["Key"][len(self.prefix) :], size=0, etag=u["UploadId"], mtime=u["Initiated"])
            for u in uploads
        ]

    async def sweep_incomplete(self, prefix: str, older_than_s: float, keep: frozenset[str] = frozenset()) -> int:
        """Abort the multipart uploads under `prefix` begun more than `older_than_s` ago."""
        if prefix:
            validate_key(prefix)

        def run() -> int:
            cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
            old = [u for u in self._uploads(prefix) if u["Initiated"] < cutoff and u["UploadId"] not in keep]
            for u in old:
                self._abort(u)
            return len(old)

        return await self._call(f"sweep uploads {prefix!r}", run)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix` (which may not be empty) and abort every
        unfinished multipart upload there; returns how many objects went."""
        validate_key(prefix)

        def run() -> int:
            for upload in self._uploads(prefix):
                self._abort(upload)
            count = 0
            batch: list[dict[str, str]] = []

            def flush() -> None:
                nonlocal count
                r = self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
                if r.get("Errors"):
                    e = r["Errors"][0]
                    raise StorageError(f"s3 delete {e.get('Key')!r}: {e.get('Code')} {e.get('Message', '')}".strip())
                count += len(batch)
                batch.clear()

            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", ()):
                    batch.append({"Key": obj["Key"]})
                    if len(batch) == DELETE_BATCH:
                        flush()
            if batch:
                flush()
            return count

        return await self._call(f"delete {prefix!r}", run)

    def local_path(self, key: str) -> Path | None:
        return None

    def read_url(self, key: str, expires_s: int) -> str | None:
        # A presigned GET: signed here from the credentials, no request to the endpoint.
        url: str = self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires_s
        )
        return url

    # ---- lifecycle -----------------------------------------------------------------------

    async def ping(self) -> None:
        await self._call(f"bucket {self.bucket!r}", self._client.head_bucket, Bucket=self.bucket, read=True)

    async def create_bucket(self) -> None:
        """Create the bucket if it does not exist (tests and `streamflix demo`)."""

        def run() -> None:
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            region = self._client.meta.region_name
            # us-east-1 is the one region that refuses an explicit LocationConstraint.
            if region and region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            try:
                self._client.create_bucket(**kwargs)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in (
                    "BucketAlreadyOwnedByYou",
                    "BucketAlreadyExists",
                ):
                    raise

        await self._call(f"create bucket {self.bucket!r}", run)

    async def close(self) -> None:
        self.pool.close()
        self._client.close()
        if self._joiner is not None:
            self._joiner.close()
