"""The server's storage: the backend behind a circuit breaker (auth.breaker), so that while
storage does not answer every storage-backed request answers 503 with Retry-After at once
instead of each holding a storage thread until a timeout.

- A call that fails with StorageUnavailable (a timeout, a refused connection, a 5xx) trips
  the breaker: the first one, since one hung call already costs the read timeout. StorageBusy
  (every thread taken for the whole bounded wait) is load shed and trips nothing.
- While open, every call raises StorageUnavailable at once, with the seconds left as its
  Retry-After; so does a call that finally got a thread after the breaker opened (the pool's
  gate, media/pool.py).
- After `open_s`, one call is let through as the probe (Breaker.admit); any answer from
  storage, "not found" included, closes the breaker.
- Readiness pings share one call in flight: a prober polling a hung endpoint holds one
  storage thread, not one per probe.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from auth.breaker import Breaker
from media.errors import StorageBusy, StorageError, StorageUnavailable
from media.pool import StoragePool
from media.storage import ObjectInfo, Storage

log = logging.getLogger("streamflix.storage")

T = TypeVar("T")


class GuardedStorage:
    """A Storage whose calls go through `breaker` (see the module doc)."""

    def __init__(self, inner: Storage, breaker: Breaker) -> None:
        self.inner = inner
        self.url = inner.url
        self.breaker = breaker
        self._ping: asyncio.Future[None] | None = None
        pool = getattr(inner, "pool", None)
        if isinstance(pool, StoragePool):
            pool.gate = self._recheck

    def _refusal(self) -> StorageUnavailable:
        return StorageUnavailable("storage is not answering; try again shortly", retry_after=self.breaker.retry_after)

    def _admit(self) -> None:
        if not self.breaker.admit():
            raise self._refusal()

    def _recheck(self) -> None:
        # The breaker may have opened while this call waited for a thread.
        if self.breaker.is_open:
            raise self._refusal()

    def _failed(self, exc: StorageUnavailable) -> None:
        if not self.breaker.is_open:
            log.warning("storage unavailable (%s); refusing storage calls for %g s", exc, self.breaker.open_s)
        self.breaker.trip()

    async def _guard(self, call: Callable[[], Awaitable[T]]) -> T:
        self._admit()
        try:
            result = await call()
        except StorageBusy:
            raise
        except StorageUnavailable as exc:
            self._failed(exc)
            raise
        except StorageError:
            self.breaker.success()  # storage answered (not found, bad key): it is up
            raise
        self.breaker.success()
        return result

    # ---- the Storage interface ---------------------------------------------------------------

    async def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        return await self._guard(lambda: self.inner.put_file(key, path, content_type))

    async def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        return await self._guard(lambda: self.inner.put_bytes(key, data, content_type))

    async def copy(self, src_key: str, dst_key: str) -> ObjectInfo:
        return await self._guard(lambda: self.inner.copy(src_key, dst_key))

    async def get_bytes(self, key: str) -> bytes:
        return await self._guard(lambda: self.inner.get_bytes(key))

    async def stream(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        self._admit()
        chunks: Any = self.inner.stream(key, start, end)
        try:
            while True:
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                except StorageBusy:
                    raise
                except StorageUnavailable as exc:
                    self._failed(exc)
                    raise
                except StorageError:
                    self.breaker.success()
                    raise
                self.breaker.success()
                yield chunk
        finally:
            await chunks.aclose()

    async def head(self, key: str) -> ObjectInfo:
        return await self._guard(lambda: self.inner.head(key))

    async def list(self, prefix: str) -> list[ObjectInfo]:
        return await self._guard(lambda: self.inner.list(prefix))

    async def delete_prefix(self, prefix: str) -> int:
        return await self._guard(lambda: self.inner.delete_prefix(prefix))

    async def list_incomplete(self, prefix: str) -> builtins.list[ObjectInfo]:
        return await self._guard(lambda: self.inner.list_incomplete(prefix))

    async def sweep_incomplete(self, prefix: str, older_than_s: float, keep: frozenset[str] = frozenset()) -> int:
        return await self._guard(lambda: self.inner.sweep_incomplete(prefix, older_than_s, keep))

    async def start_parts(self, key: str, content_type: str | None = None) -> str:
        return await self._guard(lambda: self.inner.start_parts(key, content_type))

    async def put_part(self, key: str, write_id: str, number: int, path: Path, *, consume: bool = False) -> str:
        return await self._guard(lambda: self.inner.put_part(key, write_id, number, path, consume=consume))

    async def complete_parts(self, key: str, write_id: str, parts: builtins.list[tuple[int, str]]) -> ObjectInfo:
        return await self._guard(lambda: self.inner.complete_parts(key, write_id, parts))

    async def abort_parts(self, key: str, write_id: str) -> None:
        await self._guard(lambda: self.inner.abort_parts(key, write_id))

    def local_path(self, key: str) -> Path | None:
        return self.inner.local_path(key)

    def read_url(self, key: str, expires_s: int) -> str | None:
        return self.inner.read_url(key, expires_s)

    async def ping(self) -> None:
        if self._ping is None or self._ping.done():
            self._ping = asyncio.ensure_future(self._guard(self.inner.ping))
            # Retrieved here, so a ping whose every waiter timed out logs no "never retrieved".
            self._ping.add_done_callback(lambda f: f.cancelled() or f.exception())
        await asyncio.shield(self._ping)

    async def close(self) -> None:
        await self.inner.close()
