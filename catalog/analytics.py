"""Search analytics in Redis: how often each query is asked, and which find nothing.

Two sorted sets (member = the case-folded query, score = count). They are trimmed to the
most frequent `KEEP` now and then, so a flood of unique queries cannot grow them without
bound. The caller passes the Redis client and the deployment's key prefix.
"""

from __future__ import annotations

import random
from typing import Any

QUERIES_KEY = "catalog:search:queries"
ZERO_KEY = "catalog:search:zero"
MAX_MEMBER_CHARS = 100
KEEP = 10_000
TRIM_EVERY = 200  # one write in this many trims


async def record(redis: Any, prefix: str, query: str, hits: int) -> None:
    member = query.casefold()[:MAX_MEMBER_CHARS]
    if not member:
        return
    pipe = redis.pipeline(transaction=False)
    pipe.zincrby(prefix + QUERIES_KEY, 1, member)
    if hits == 0:
        pipe.zincrby(prefix + ZERO_KEY, 1, member)
    if random.randrange(TRIM_EVERY) == 0:
        pipe.zremrangebyrank(prefix + QUERIES_KEY, 0, -KEEP - 1)
        pipe.zremrangebyrank(prefix + ZERO_KEY, 0, -KEEP - 1)
    await pipe.execute()


async def stats(redis: Any, prefix: str, *, limit: int = 20) -> dict[str, list[dict[str, Any]]]:
    pipe = redis.pipeline(transaction=False)
    pipe.zrevrange(prefix + QUERIES_KEY, 0, limit - 1, withscores=True)
    pipe.zrevrange(prefix + ZERO_KEY, 0, limit - 1, withscores=True)
    top, zero = await pipe.execute()

    def rows(pairs: list[tuple[bytes | str, float]]) -> list[dict[str, Any]]:
        return [{"query": q.decode() if isinstance(q, bytes) else q, "count": int(n)} for q, n in pairs]

    return {"top": rows(top), "zero_results": rows(zero)}
