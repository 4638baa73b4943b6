"""Waiting for a segment of a version that is still being encoded (a progressive model:
`packager.model.Presentation.progressive`). Its timeline is complete, but some init and media
segments are not in storage yet; a worker is making them.

A request for such a missing object asks for it to be made next (the app's segment bumper,
`server.keys.SEGMENT_BUMPER`), then waits for it to appear, up to `segment_wait_s`:

- one poller per object (a storage HEAD every POLL_FILE_S on file storage, POLL_S3_S on S3),
  shared by every request waiting for that object, and one bump per poller;
- at most MAX_WAITERS requests wait at once in a process; past that a request is refused at
  once (503 segment_not_ready), so a crowd asking for segments nobody is making cannot grow
  tasks without bound;
- a poller whose last waiter left (answered, timed out or disconnected) stops.

The aiohttp handlers (handlers.py) wait here; the fast path hands every missing object to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from media.storage import ObjectNotFound
from server.http.errors import ApiError

log = logging.getLogger("streamflix.stream")

POLL_FILE_S = 0.1
POLL_S3_S = 0.25
MAX_WAITERS = 1024  # requests waiting at once, per process
# What a viewer gets when the segment did not come in time: the one error shape, retried soon.
NOT_READY_RETRY_AFTER_S = 2


def not_ready(message: str) -> ApiError:
    """503 segment_not_ready: try again shortly; never cached (a CDN must not keep it)."""
    return ApiError(
        503,
        "segment_not_ready",
        message,
        headers={"Retry-After": str(NOT_READY_RETRY_AFTER_S), "Cache-Control": "no-store"},
    )


class _Poll:
    __slots__ = ("found", "task", "waiters")

    def __init__(self, found: asyncio.Future[None]) -> None:
        self.found = found
        self.task: asyncio.Task[None] | None = None
        self.waiters = 0


class Waits:
    """The objects being waited for in one process (kept in the app, like the Origin).

    `look(key)` is the load that answers once the object exists (Origin.stored_object: it
    also fills the object cache, so the waiters' next look is a hit) and raises ObjectNotFound
    while it does not; `local(key)` says whether the object is a local file (polled faster)."""

    def __init__(
        self,
        look: Callable[[str], Awaitable[Any]],
        local: Callable[[str], bool],
        *,
        wait_s: float,
        limit: int = MAX_WAITERS,
    ) -> None:
        self.look = look
        self.local = local
        self.wait_s = wait_s
        self.limit = limit
        self.waiters = 0  # requests waiting now
        self.polls: dict[str, _Poll] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # pollers and bumps, until they end

    async def wait(self, key: str, bump: Callable[[], Awaitable[None]]) -> bool:
        """Until the object `key` exists (True) or `wait_s` passed (False). Starts the poller
        of `key` and its one `bump()` when nobody waits for it yet. Raises the 503 at once
        when MAX_WAITERS requests are already waiting, and a poll's storage error (an outage)
        to every waiter."""
        if self.waiters >= self.limit:
            raise not_ready("too many requests are waiting for segments; try again shortly")
        poll = self.polls.get(key)
        if poll is None:
            poll = self.polls[key] = _Poll(asyncio.get_running_loop().create_future())
            poll.task = self._start(self._poll(key, poll))
            self._bump(bump)
        poll.waiters += 1
        self.waiters += 1
        try:
            async with asyncio.timeout(self.wait_s):
                await asyncio.shield(poll.found)
            return True
        except TimeoutError:
            return False
        finally:
            poll.waiters -= 1
            self.waiters -= 1
            if poll.waiters == 0 and not poll.found.done() and self.polls.get(key) is poll:
                # Nobody is waiting any more: the poller stops before its next look (not
                # cancelled mid-look, whose load other requests may share); a later request
                # starts a new one.
                del self.polls[key]

    async def _poll(self, key: str, poll: _Poll) -> None:
        interval = POLL_FILE_S if self.local(key) else POLL_S3_S
        try:
            while True:
                await asyncio.sleep(interval)
                if poll.waiters == 0:
                    return
                try:
                    await self.look(key)
                except ObjectNotFound:
                    continue
                poll.found.set_result(None)
                return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a storage outage: every waiter answers it
            if not poll.found.done():
                poll.found.set_exception(exc)
                poll.found.exception()  # retrieved: the waiters may all have gone
        finally:
            if self.polls.get(key) is poll:
                del self.polls[key]

    def _bump(self, bump: Callable[[], Awaitable[None]]) -> None:
        """Run the bump beside the wait (a slow database delays nobody), bounded by wait_s;
        any failure (a database outage) is logged and ignored: the wait goes on."""

        async def run() -> None:
            try:
                async with asyncio.timeout(max(self.wait_s, 1.0)):
                    await bump()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("could not ask for a missing segment to be made first: %r", exc)

        self._start(run())

    def _start(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Stop every poller and bump (the app is shutting down)."""
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        self.polls.clear()
