"""Giving a failed title another go: back to `pending` with a new job and fresh attempts.

One implementation for the CLI (`streamflix titles retry`) and the admin API. The catalog
decides whether the title may move (only `failed` may); the queue makes the job; both in one
transaction, so a title is never pending without a job nor queued while still failed.
"""

from __future__ import annotations

import asyncpg

from catalog import status
from transcoder import jobs
from transcoder.ingest import SourceUnavailable


async def retry_title(pool: asyncpg.Pool, title_id: str, *, max_attempts: int) -> jobs.Job:
    """Returns the queued job. Raises TitleNotFound, TitleNotFailed, or SourceUnavailable
    when the title never had a source to transcode (nothing changes then)."""
    async with pool.acquire() as conn, conn.transaction():
        await status.retry_failed(conn, title_id)
        job = await jobs.requeue(conn, title_id, max_attempts)
        if job is None:
            raise SourceUnavailable(f"title {title_id} has no source to transcode again: ingest it anew")
    return job
