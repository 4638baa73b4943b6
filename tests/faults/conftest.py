"""Fixtures of the fault suite: a world of its own (a migrated database nobody else's test
writes jobs into, a bucket on the session's moto server) and a Stack of real `streamflix`
processes behind fault proxies per scenario."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.migrate import migrate
from tests.conftest import REDIS_URL, _drop, _dsn_for
from tests.faults.harness import Stack, World


@pytest.fixture(scope="session")
def fault_world(s3_server: str) -> Iterator[World]:
    # Its own database: a worker process claims any queued job, so it must never see the
    # jobs of the rest of the suite (nor they its).
    dbname = f"sf_fault_{os.getpid()}_{secrets.token_hex(3)}"
    dsn = _dsn_for(dbname)
    asyncio.run(migrate(dsn))
    world = World(database_url=dsn, redis_url=REDIS_URL, s3_endpoint=s3_server, bucket=f"fault-{secrets.token_hex(4)}")
    world.s3().create_bucket(Bucket=world.bucket)
    try:
        yield world
    finally:
        asyncio.run(_drop(dbname))


@pytest.fixture
def stack(fault_world: World, tmp_path: Path) -> Iterator[Stack]:
    """Fresh proxies, data dir, storage prefix and Redis prefix; every process it started is
    stopped afterwards, and every proxy closed."""
    s = Stack(fault_world, tmp_path)
    try:
        yield s
    finally:
        s.close()
