"""The worker's periodic storage sweep: what no job will ever clean up.

`gc_versions` (publish.py) runs at the start of each attempt, so a title whose job never runs
again (its last attempt died, or it finished before a crash left something behind) would keep
an orphan version, or a dead writer's temp files, forever. Every SWEEP_EVERY_S a worker:

1. removes incomplete writes (temp files, unfinished multipart uploads) older than
   INCOMPLETE_MAX_AGE_S anywhere in storage, but those of resumable uploads still receiving
   (they may pause for up to a day), and the uploads past their expiry with their bytes;
2. for each title in storage with no live job, removes every version prefix but the current
   one (gc_versions). Live jobs are read before the titles' current versions: a job that
   publishes between the two reads is then either still live (the title is skipped) or
   already committed (its version is the current one read after).

Prefixes of titles the catalog does not know are left alone (an operator's to judge).
"""

from __future__ import annotations

import logging
import uuid

import asyncpg

from catalog import titles
from media import keys
from media.storage import Storage
from transcoder import jobs, uploads
from transcoder.publish import INCOMPLETE_MAX_AGE_S, gc_versions

log = logging.getLogger("streamflix.gc")

SWEEP_EVERY_S = 3600.0


def _title_ids(stored_keys: list[str]) -> list[str]:
    ids = set()
    for key in stored_keys:
        parts = key.split("/")
        if len(parts) >= 3 and parts[0] == keys.TITLES:
            try:
                ids.add(str(uuid.UUID(parts[1])))
            except ValueError:
                continue
    return sorted(ids)


async def sweep(pool: asyncpg.Pool, storage: Storage, *, max_age_s: float = INCOMPLETE_MAX_AGE_S) -> dict[str, int]:
    """One sweep (see the module doc); returns counts of what went."""
    async with pool.acquire() as conn:
        uploading = await uploads.live_writes(conn)
    incomplete = await storage.sweep_incomplete("", max_age_s, keep=uploading)
    expired = await uploads.sweep_expired(pool, storage)
    prefix = keys.TITLES + "/"
    found = await storage.list(prefix) + await storage.list_incomplete(prefix)
    ids = _title_ids([o.key for o in found])
    async with pool.acquire() as conn:
        live = await jobs.live_titles(conn, ids)
        known = await titles.get_titles(conn, [i for i in ids if i not in live])
    versions = 0
    for title_id, title in sorted(known.items()):
        versions += len(await gc_versions(storage, title_id, title.current_version, max_age_s=max_age_s))
    if incomplete or versions or expired:
        log.info(
            "storage sweep: removed %d incomplete write(s), %d orphan version(s), %d expired upload(s)",
            incomplete,
            versions,
            expired,
        )
    return {"incomplete": incomplete, "versions": versions, "uploads": expired}
