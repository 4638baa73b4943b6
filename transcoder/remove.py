"""Removing a title everywhere it lives: its jobs, its catalog rows (a series takes its
episodes along), then every stored object (all versions and the source).

One implementation for the CLI (`streamflix titles delete`) and the admin API."""

from __future__ import annotations

import asyncpg

from catalog import titles
from media import keys
from media.storage import Storage
from transcoder import jobs, sources


async def remove_title(pool: asyncpg.Pool, storage: Storage, title_id: str) -> list[str]:
    """Returns the ids removed. Rows go first, objects second: a crash in between leaves
    orphaned objects, never a title pointing at missing media."""
    async with pool.acquire() as conn, conn.transaction():
        title = await titles.get_title(conn, title_id)
        ids = [title.id]
        if title.kind == "series":
            ids += [e.id for e in await titles.list_episodes(conn, title.id, visible_only=False)]
        # Jobs first, titles second: the same lock order as the publish commit (no deadlock).
        # A worker on one of them notices at its next heartbeat; its commit is fenced.
        for tid in ids:
            await jobs.cancel_for_title(conn, tid)
        deleted = await titles.delete_title_tree(conn, title.id)
        await sources.forget(conn, ids + deleted)
        ids = [title.id] + [i for i in deleted if i != title.id]
    for tid in ids:
        await storage.delete_prefix(keys.title_prefix(tid))
        await storage.delete_prefix(keys.source_prefix(tid))
    return ids
