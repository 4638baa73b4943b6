"""The fault proxy the outage tests rely on does what it says: refuse, reset, freeze, heal."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.faultproxy import FaultProxy


async def test_proxy_down_freeze_up_against_postgres():
    with FaultProxy("127.0.0.1", 5432) as p:
        dsn = p.url("postgresql://postgres@127.0.0.1:{port}/postgres")
        c = await asyncpg.connect(dsn)
        assert await c.fetchval("select 1") == 1
        p.down()
        with pytest.raises((OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
            await c.fetchval("select 1")
        with pytest.raises(OSError):
            await asyncpg.connect(dsn)
        p.up()
        c = await asyncpg.connect(dsn)
        assert await c.fetchval("select 1") == 1
        p.freeze()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(c.fetchval("select 1"), 1)
        with pytest.raises((asyncio.TimeoutError, OSError)):
            await asyncpg.connect(dsn, timeout=1)
        p.up()
        c2 = await asyncpg.connect(dsn)
        assert await c2.fetchval("select 2") == 2
