"""The one place an S3 client is made, for storage and for `s3://` ingest sources.

Credentials and region come from the usual AWS_* variables (boto3's default chain).
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config


def client(
    endpoint_url: str | None = None,
    *,
    max_pool_connections: int = 10,
    connect_timeout_s: float = 2.0,
    read_timeout_s: float = 5.0,
    max_attempts: int = 2,
) -> Any:
    """A boto3 S3 client (thread-safe) for AWS or an S3-compatible endpoint, with short
    explicit timeouts (botocore's own are 60 s each, retried: minutes against a hung endpoint).

    Returned as `Any`: boto3 builds its clients at run time and ships no types for them.
    """
    config = Config(
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        # total_max_attempts counts the first try; botocore's `max_attempts` counts retries only.
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
        # MinIO and moto behind a plain host name need path-style addressing.
        s3={"addressing_style": "path"} if endpoint_url else {},
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)
