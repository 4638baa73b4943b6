"""The bounded thread pool one storage backend runs its blocking calls in.

Why not asyncio's default executor: it is shared with everything else in the process
(password hashing among them), so a hung storage endpoint that holds its threads stops
unrelated work. Each backend owns a pool of `threads` named `sf-storage`, and each call:

- waits at most `wait_s` for a free thread, else raises StorageBusy: a hung backend holds its
  threads until its own socket timeouts fire, and a request must never queue behind them
  without bound;
- once it has a thread, calls `gate()` (the server's circuit breaker) again: the backend may
  have been found down while this call waited;
- is awaited at most `deadline_s` (StorageUnavailable after that). The thread keeps running
  until the backend's own timeouts end it, and keeps its slot until then, so the count of
  busy threads stays true.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from media.errors import StorageBusy, StorageUnavailable

T = TypeVar("T")

THREAD_NAME = "sf-storage"
DEFAULT_THREADS = 16
DEFAULT_WAIT_S = 1.0


class StoragePool:
    def __init__(self, threads: int = DEFAULT_THREADS, wait_s: float = DEFAULT_WAIT_S, name: str = THREAD_NAME) -> None:
        self.size = max(1, threads)
        self.wait_s = wait_s
        self.executor = concurrent.futures.ThreadPoolExecutor(self.size, thread_name_prefix=name)
        self.busy = 0  # slots held: calls running (or hung) in a thread
        self.gate: Callable[[], None] | None = None
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def _acquire(self) -> None:
        # A live waiter exists only while every slot is held (_release hands slots to waiters
        # first), so a free slot is free for this call.
        if self.busy < self.size:
            self.busy += 1
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.wait_s)
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return  # the slot came as the wait ended: keep it
            self._forget(waiter)
            raise StorageBusy(
                f"all {self.size} storage threads stayed busy for {self.wait_s:g} s", retry_after=1
            ) from None
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed a slot, then cancelled: pass it on
            else:
                self._forget(waiter)
            raise

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        waiter.cancel()
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes to the longest waiter
                return
        self.busy -= 1

    async def run(self, fn: Callable[..., T], *args: Any, deadline_s: float | None = None, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` in one of the pool's threads (see the module doc)."""
        await self._acquire()
        loop = asyncio.get_running_loop()
        try:
            if self.gate is not None:
                self.gate()
            cfut = self.executor.submit(functools.partial(fn, *args, **kwargs))
        except BaseException:
            self._release()
            raise

        def done(_f: concurrent.futures.Future[T]) -> None:
            try:
                loop.call_soon_threadsafe(self._release)
            except RuntimeError:
                pass  # the loop is closed: nobody is counting any more

        cfut.add_done_callback(done)
        fut = asyncio.wrap_future(cfut, loop=loop)
        if deadline_s is None:
            return await fut
        try:
            return await asyncio.wait_for(fut, deadline_s)
        except TimeoutError:
            raise StorageUnavailable(f"storage did not answer within {deadline_s:g} s") from None

    def close(self) -> None:
        # Never wait: a hung thread would hold shutdown; queued calls are dropped.
        self.executor.shutdown(wait=False, cancel_futures=True)
