"""A 50 MB upload through tuspy (a real tus client) to a real `streamflix serve` on S3 (moto),
cut off twice mid-way: first the connection is killed (a proxy between client and server
goes down), then the server process itself (kill -9) and a new one starts. Each time the
client resumes from the offset the server reports, and the upload completes with the bytes
stored exactly as sent, into a queued title."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from auth import api_keys
from auth.users import create_user
from tests.faultproxy import FaultProxy
from tests.faults.harness import Server, Stack, wait_for
from tests.support import free_port

pytestmark = [pytest.mark.fault, pytest.mark.slow]

SIZE = 50 * 1024 * 1024
CHUNK = 5 * 1024 * 1024


def upload_key(stack: Stack) -> str:
    async def go() -> str:
        conn = await asyncpg.connect(stack.world.database_url)
        try:
            user = await create_user(
                conn, email=f"up-{os.urandom(4).hex()}@example.com", password="x" * 12, role="admin"
            )
            _key, secret = await api_keys.create(conn, "fault uploads", ["upload"], user.id)
            return secret
        finally:
            await conn.close()

    return asyncio.run(go())


def received(stack: Stack, location: str) -> int:
    async def go() -> int:
        conn = await asyncpg.connect(stack.world.database_url)
        try:
            return int(
                await conn.fetchval("SELECT received FROM jobs.uploads WHERE id = $1", location.rsplit("/", 1)[1])
            )
        finally:
            await conn.close()

    return asyncio.run(go())


def start_serve(stack: Stack, port: int) -> Server:
    proc = stack._start("serve", "serve", "--host", "127.0.0.1", "--port", str(port))
    server = Server(proc, f"http://127.0.0.1:{port}")
    server.wait_ready()
    return server


PACE_S = 0.2  # per chunk read: at most 25 MB/s, so a cut lands mid-upload on any machine


class PacedFile(io.FileIO):
    """The source as tuspy reads it, a chunk at a time, at a pace: the server stores a 5 MB
    chunk in tens of milliseconds, which would leave nothing to cut."""

    def read(self, size: int | None = -1, /) -> bytes:
        time.sleep(PACE_S)
        return super().read(size)


class Sender:
    """tuspy in a thread: uploads (or resumes) the file, records how it ended."""

    def __init__(self, endpoint: str, key: str, source: Path, location: str | None) -> None:
        from tusclient import client as tus

        self.error: BaseException | None = None
        self.done = False
        c = tus.TusClient(endpoint, headers={"Authorization": f"Bearer {key}"})
        self.uploader = c.uploader(
            str(source), chunk_size=CHUNK, metadata={"title": "Cut twice", "filename": "cut.mp4"}, url=location
        )
        self.uploader.get_file_stream = lambda: PacedFile(source, "r")  # type: ignore[method-assign]  # paced reads
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.uploader.upload()
            self.done = True
        except BaseException as exc:
            self.error = exc

    @property
    def location(self) -> str:
        return str(self.uploader.url)


def resume(endpoint: str, key: str, source: Path, location: str, timeout: float = 60) -> Sender:
    """A new client resuming `location`; a 423 (the dead request's lease not yet over) is
    retried, as tus clients do."""
    deadline = time.monotonic() + timeout
    while True:
        sender = Sender(endpoint, key, source, location)
        sender.thread.join(timeout)
        if sender.done or time.monotonic() > deadline or "423" not in str(sender.error):
            return sender
        time.sleep(1)


def test_a_50_mb_upload_survives_a_cut_connection_and_a_killed_server(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "cut.mp4"
    source.write_bytes(os.urandom(SIZE))
    key = upload_key(stack)
    port = free_port()
    server = start_serve(stack, port)
    with FaultProxy("127.0.0.1", port) as proxy:
        endpoint = proxy.url("http://127.0.0.1:{port}/api/v1/uploads/tus")

        # 1. the connection is killed mid-upload
        first = Sender(endpoint, key, source, None)
        wait_for(lambda: first.uploader.url, 30, lambda: f"no upload created: {first.error}")
        location = first.location
        wait_for(lambda: received(stack, location) >= 2 * CHUNK, 60, lambda: f"no progress: {first.error}")
        proxy.down()
        first.thread.join(30)
        assert not first.done and first.error is not None
        cut1 = received(stack, location)
        assert 0 < cut1 < SIZE
        proxy.up()

        # 2. resumed; then the server process is killed mid-upload and a new one started. A
        # 423 (the cut request still storing its last chunk) is retried, as tus clients do.
        for _ in range(30):
            second = Sender(endpoint, key, source, location.replace(f":{port}/", f":{proxy.port}/"))
            second.thread.join(0.5)
            if "423" not in str(second.error):
                break
            time.sleep(0.5)
        wait_for(lambda: received(stack, location) >= cut1 + 2 * CHUNK, 60, lambda: f"no progress: {second.error}")
        server.proc.kill9()
        second.thread.join(30)
        assert not second.done
        cut2 = received(stack, location)
        assert cut1 < cut2 < SIZE
        start_serve(stack, port)

        # 3. resumed again: completes
        third = resume(endpoint, key, source, location.replace(f":{port}/", f":{proxy.port}/"))
        assert third.done, third.error

    async def check() -> dict[str, Any]:
        conn = await asyncpg.connect(stack.world.database_url)
        try:
            row = await conn.fetchrow(
                "SELECT status, received, length, storage_key, title_id FROM jobs.uploads WHERE id = $1",
                location.rsplit("/", 1)[1],
            )
            job = await conn.fetchval("SELECT status FROM jobs.transcode_jobs WHERE title_id = $1", row["title_id"])
            return {**dict(row), "job": job}
        finally:
            await conn.close()

    row = asyncio.run(check())
    assert (row["status"], row["received"], row["length"]) == ("completed", SIZE, SIZE)
    assert row["job"] == "queued"
    stored = stack.get_object(row["storage_key"])
    assert hashlib.sha256(stored).digest() == hashlib.sha256(source.read_bytes()).digest()
