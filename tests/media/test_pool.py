"""The storage thread pool (media/pool.py) with real threads held on an Event: a bounded wait
for a thread, the gate re-checked once a call gets one, and slots held until a hung thread
really ends."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from media.errors import StorageBusy, StorageUnavailable
from media.pool import StoragePool


@pytest.fixture
def release() -> Iterator[threading.Event]:
    ev = threading.Event()
    yield ev
    ev.set()  # never leave a thread hanging after a test


async def test_calls_beyond_the_threads_wait_boundedly_then_are_refused(release: threading.Event) -> None:
    pool = StoragePool(threads=2, wait_s=0.2)
    try:
        hung = [asyncio.ensure_future(pool.run(release.wait)) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert pool.busy == 2
        with pytest.raises(StorageBusy):
            await pool.run(lambda: "never runs")
        release.set()
        assert await asyncio.gather(*hung) == [True, True]
        assert await pool.run(lambda: "ok") == "ok"
        assert pool.busy == 0
    finally:
        pool.close()


async def test_a_waiting_call_gets_the_freed_thread(release: threading.Event) -> None:
    pool = StoragePool(threads=1, wait_s=5)
    try:
        hung = asyncio.ensure_future(pool.run(release.wait))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(pool.run(lambda: "second"))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        release.set()
        assert await waiting == "second" and await hung is True
    finally:
        pool.close()


async def test_deadline_answers_but_the_hung_thread_keeps_its_slot(release: threading.Event) -> None:
    pool = StoragePool(threads=1, wait_s=0.1)
    try:
        with pytest.raises(StorageUnavailable) as err:
            await pool.run(release.wait, deadline_s=0.1)
        assert not isinstance(err.value, StorageBusy)
        assert pool.busy == 1, "the thread still hangs: its slot is not free"
        with pytest.raises(StorageBusy):
            await pool.run(lambda: None)
        release.set()
        for _ in range(100):
            if pool.busy == 0:
                break
            await asyncio.sleep(0.01)
        assert pool.busy == 0 and await pool.run(lambda: 1) == 1
    finally:
        pool.close()


async def test_the_gate_is_checked_when_a_waiting_call_gets_its_thread(release: threading.Event) -> None:
    pool = StoragePool(threads=1, wait_s=5)
    tripped = False

    def gate() -> None:
        if tripped:
            raise StorageUnavailable("breaker open")

    pool.gate = gate
    try:
        hung = asyncio.ensure_future(pool.run(release.wait))
        await asyncio.sleep(0.05)
        ran = []
        waiting = asyncio.ensure_future(pool.run(lambda: ran.append(1)))
        await asyncio.sleep(0.05)
        tripped = True  # storage found down while it waited
        release.set()
        with pytest.raises(StorageUnavailable):
            await waiting
        assert ran == [] and await hung is True
        await asyncio.sleep(0.05)
        assert pool.busy == 0
    finally:
        pool.close()
