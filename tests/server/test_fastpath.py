"""server/origin/fastpath.py (behind edge.py): cached `/stream` requests answered outside aiohttp's request machinery.

The contract: for every request, the answer through the fast path is the answer aiohttp's
handlers give (same status, same header fields but Date, same body), whether the fast path
answers it or hands the connection to aiohttp. Checked over raw sockets, side by side with a
server that has no fast path, for good requests, every conditional/range case and every bad
input; then what only the fast path has: pipelining, hand-over mid-connection, segments
larger than the socket buffer (asyncio and uvloop), idle and shutdown closes, metrics.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import test_utils

from auth import playback
from server.app import create_app
from server.origin import edge as edge_server
from server.origin import fastpath
from tests.server.origin_support import new_title_id, presentation, store_in, token_for
from tests.support import free_port

VERSION = "v20240101000000-fastpa"


@pytest.fixture
async def pair(aiohttp_client, settings):
    """(edge, plain): the same app configuration behind the fast path and behind aiohttp alone."""
    edge = await aiohttp_client(create_app(settings))
    plain = await aiohttp_client(test_utils.TestServer(create_app(settings)))
    assert isinstance(edge.server.handler, edge_server.EdgeServer)
    assert not isinstance(plain.server.handler, edge_server.EdgeServer)
    return edge, plain


async def read_response(reader: asyncio.StreamReader, method: str = "GET") -> tuple[str, list[tuple[str, str]], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0]
    fields = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:] if line)]
    length = next((int(v) for k, v in fields if k.lower() == "content-length"), None)
    code = int(status.split()[1])
    if method == "HEAD" or code in (204, 304):
        body = b""
    elif length is not None:
        body = await reader.readexactly(length)
    else:
        body = await reader.read()
    return status, fields, body


async def exchange(port: int, raw: bytes, method: str = "GET") -> tuple[str, list[tuple[str, str]], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(read_response(reader, method), 10)
    finally:
        writer.close()


def comparable(fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted((k.lower(), v) for k, v in fields if k.lower() != "date")


def requests_for(stored, token: str, etag: str, lm: str) -> list[tuple[str, bytes]]:
    base = f"/stream/{stored.title_id}/{stored.version}"
    seg, pl = f"{base}/v360/1.m4s", f"{base}/v360/index.m3u8"
    ring = playback.keyring("another-secret-key-xxxxxxxx")
    other = playback.sign(ring, stored.title_id, stored.version, time.time(), 3600)[0]

    def get(target: str, *headers: str, method: str = "GET", version: str = "1.1") -> bytes:
        fields = "".join(h + "\r\n" for h in headers)
        return f"{method} {target} HTTP/{version}\r\nHost: x\r\n{fields}\r\n".encode()

    q = f"?token={token}"
    cases = []
    for name in ("master.m3u8", "manifest.mpd", "v360/index.m3u8", "v720/init.mp4", "a0/2.m4s", "v360/0.m4s"):
        cases += [(f"GET {name}", get(f"{base}/{name}{q}")), (f"HEAD {name}", get(f"{base}/{name}{q}", method="HEAD"))]
    for target in (seg, pl):
        t = target + q
        cases += [
            ("range", get(t, "Range: bytes=100-199")),
            ("suffix", get(t, "Range: bytes=-50")),
            ("open", get(t, "Range: bytes=10-")),
            ("unsatisfiable", get(t, "Range: bytes=99999999-")),
            ("malformed range", get(t, "Range: bytes=abc")),
            ("two ranges", get(t, "Range: bytes=0-1,5-6")),
            ("other unit", get(t, "Range: items=0-1")),
            ("inm etag", get(t, f"If-None-Match: {etag}")),
            ("inm star", get(t, "If-None-Match: *")),
            ("inm weak", get(t, f"If-None-Match: W/{etag}")),
            ("inm other", get(t, 'If-None-Match: "nope"')),
            ("if-range strong", get(t, "Range: bytes=0-9", f"If-Range: {etag}")),
            ("if-range weak", get(t, "Range: bytes=0-9", f"If-Range: W/{etag}")),
            ("if-range date", get(t, "Range: bytes=0-9", f"If-Range: {lm}")),
            ("ims", get(t, f"If-Modified-Since: {lm}")),
            ("ius old", get(t, "If-Unmodified-Since: Mon, 01 Jan 2001 00:00:00 GMT")),
            ("if-match miss", get(t, 'If-Match: "nope"')),
            ("lowercase fields", get(t, "range: bytes=1-2")),
            ("two range fields", get(t, "Range: bytes=0-1", "Range: bytes=2-3")),
            ("two inm fields", get(t, 'If-None-Match: "a"', f"If-None-Match: {etag}")),
            ("connection close", get(t, "Connection: close")),
            ("http/1.0", get(t, version="1.0")),
            ("options", get(t, "Origin: https://a.example", "Access-Control-Request-Method: GET", method="OPTIONS")),
            ("post", get(t, "Content-Length: 0", method="POST")),
            ("extra query", get(target + q + "&x=1")),
            ("encoded token", get(target + "?token=" + token.replace(".", "%2E"))),
        ]
    cases += [
        ("no token", get(seg)),
        ("empty token", get(seg + "?token=")),
        ("forged", get(seg + "?token=" + token[:-3] + "AAA")),
        ("other key", get(seg + "?token=" + other)),
        ("alg none-ish", get(seg + "?token=eyJhbGciOiJub25lIn0.e30.")),
        ("other title", get(f"/stream/{new_title_id()}/{stored.version}/v360/1.m4s{q}")),
        ("unknown version", get(f"/stream/{stored.title_id}/v20990101000000-zzzzzz/v360/1.m4s{q}")),
        ("unknown rendition", get(f"{base}/v999/1.m4s{q}")),
        ("segment past the end", get(f"{base}/v360/99.m4s{q}")),
        ("leading zero", get(f"{base}/v360/01.m4s{q}")),
        ("dot-dot", get(f"{base}/v360/../v720/1.m4s{q}")),
        ("encoded dot-dot", get(f"{base}/v360/%2e%2e/v720/1.m4s{q}")),
        ("encoded slash", get(f"{base}/v360%2F1.m4s{q}")),
        ("uppercase title", get(f"/stream/{stored.title_id.upper()}/{stored.version}/v360/1.m4s{q}")),
        ("10 KB url", get(f"{seg}{q}&pad={'a' * 10_000}")),
        ("api route", get("/healthz")),
        ("unknown route", get("/stream/nope")),
    ]
    return cases


async def test_same_answers_with_and_without_the_fast_path(pair, stored, token):
    edge, plain = pair
    seg = stored.url("v360/1.m4s", token)
    # Warm both (the model and object caches), and read the validators the cases use.
    head = await plain.head(seg)
    await edge.head(seg)
    await edge.get(stored.url("v360/index.m3u8", token))
    etag, lm = head.headers["ETag"], head.headers["Last-Modified"]
    cases = requests_for(stored, token, etag, lm)
    answered_before = edge.server.handler.answered
    for name, raw in cases:
        method = raw.split(b" ", 1)[0].decode()
        a = await exchange(edge.server.port, raw, method)
        b = await exchange(plain.server.port, raw, method)
        assert a[0] == b[0], name
        assert comparable(a[1]) == comparable(b[1]), name
        assert a[2] == b[2], name
    # And the fast path did answer the plain ones itself (not everything went to aiohttp).
    assert edge.server.handler.answered - answered_before >= 40


async def test_cold_caches_load_then_answer_on_the_fast_path(aiohttp_client, settings, stored, token):
    edge = await aiohttp_client(create_app(settings))
    handler = edge.server.handler
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.server.port)
    try:
        for name in ("v360/1.m4s", "v360/1.m4s", "v360/index.m3u8", "master.m3u8"):
            writer.write(f"GET {stored.url(name, token)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, _fields, body = await read_response(reader)
            assert status == "HTTP/1.1 200 OK"
            if name.endswith(".m4s"):
                assert body == stored.objects[name]
    finally:
        writer.close()
    assert handler.answered == 4 and handler.handed_over == 0


async def test_pipelined_requests_answered_in_order_across_a_hand_over(app_client, stored, token):
    handler = app_client.server.handler
    seg, pl = stored.url("v720/1.m4s", token), stored.url("v360/index.m3u8", token)
    await app_client.get(seg)  # warm
    reader, writer = await asyncio.open_connection("127.0.0.1", app_client.server.port)
    raw = (
        f"GET {seg} HTTP/1.1\r\nHost: x\r\n\r\n"
        f"HEAD {pl} HTTP/1.1\r\nHost: x\r\n\r\n"
        f"GET {pl} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-6\r\n\r\n"
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        f"GET {seg} HTTP/1.1\r\nHost: x\r\n\r\n"
    ).encode()
    before = handler.handed_over
    try:
        # Byte by byte: heads split anywhere must still frame correctly.
        for i in range(0, len(raw), 7):
            writer.write(raw[i : i + 7])
            await writer.drain()
        answers = [await asyncio.wait_for(read_response(reader, m), 10) for m in ("GET", "HEAD", "GET", "GET", "GET")]
    finally:
        writer.close()
    assert [a[0].split()[1] for a in answers] == ["200", "200", "206", "200", "200"]
    assert answers[0][2] == stored.objects["v720/1.m4s"] == answers[4][2]
    assert answers[2][2] == b"#EXTM3U"
    assert b'"status"' in answers[3][2]  # /healthz, answered by aiohttp after the hand-over
    assert handler.handed_over == before + 1


async def test_idle_connections_close_after_the_keepalive_time(app_client, stored, token, monkeypatch):
    monkeypatch.setattr(edge_server, "KEEPALIVE_S", 0.2)
    monkeypatch.setattr(edge_server, "SWEEP_S", 0.1)
    handler = app_client.server.handler
    handler._sweeper and handler._sweeper.cancel()
    handler._sweeper = None
    reader, writer = await asyncio.open_connection("127.0.0.1", app_client.server.port)
    writer.write(f"GET {stored.url('v360/index.m3u8', token)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await read_response(reader)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
    writer.close()


async def test_without_a_second_descriptor_segments_still_go_out_whole(aiohttp_client, settings, stored, monkeypatch):
    """Out of file descriptors, a connection has no descriptor of its own: heads go through
    the transport and what the socket does not take at once goes by loop.sendfile."""

    def no_dup(fd: int) -> int:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(fastpath.os, "dup", no_dup)
    edge = await aiohttp_client(create_app(settings))
    sv = await store_in(settings, presentation(stored.title_id, "v20240101000000-nodupx", segment_size=8 * 1024 * 1024))
    tok = token_for(settings.secret_key, sv)
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.server.port, limit=1 << 20)
    try:
        for name in ("v720/1.m4s", "v720/2.m4s"):
            writer.write(f"GET {sv.url(name, tok)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await asyncio.sleep(0.3)  # both queued behind a full socket
        for name in ("v720/1.m4s", "v720/2.m4s"):
            status, _fields, body = await asyncio.wait_for(read_response(reader), 20)
            assert status == "HTTP/1.1 200 OK" and body == sv.objects[name]
    finally:
        writer.close()
    assert edge.server.handler.answered >= 2 and edge.server.handler.handed_over == 0


async def test_client_gone_mid_segment_is_survived(app_client, settings, token, stored):
    """A viewer that leaves during a big segment: the connection is aborted, the server goes on."""
    sv = await store_in(settings, presentation(stored.title_id, "v20240101000000-bigseg", segment_size=8 * 1024 * 1024))
    tok = token_for(settings.secret_key, sv)
    url = sv.url("v720/1.m4s", tok)
    for _ in range(3):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", app_client.server.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await reader.readuntil(b"\r\n\r\n")
        await reader.read(1000)
        await asyncio.sleep(0.05)
        writer.transport.abort()
    r = await app_client.get(url)
    assert r.status == 200 and await r.read() == sv.objects["v720/1.m4s"]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_large_segments_to_a_slow_reader_through_serve(settings, tmp_path, loop):
    """`streamflix serve` on each loop: a 16 MiB segment read slowly (the socket cannot take it
    at once, so the rest goes out by loop.sendfile or by chunks under flow control), pipelined
    with 600 playlist requests; every byte arrives, in order; SIGTERM then stops the server cleanly while
    an idle keep-alive connection is open."""
    sv = asyncio.run(store_in(settings, presentation(new_title_id(), VERSION, segment_size=8 * 1024 * 1024)))
    tok = token_for(settings.secret_key, sv)
    port = free_port()
    env = {
        **os.environ,
        "STREAMFLIX_DATABASE_URL": settings.database_url,
        "STREAMFLIX_REDIS_URL": settings.redis_url,
        "STREAMFLIX_STORAGE_URL": settings.storage_url,
        "STREAMFLIX_SECRET_KEY": settings.secret_key,
        "STREAMFLIX_DATA_DIR": str(tmp_path / "var"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--loop", loop],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.1)

        async def run() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
            seg, pl = sv.url("v720/1.m4s", tok), sv.url("v360/index.m3u8", tok)
            # The segment, then more pipelined playlist requests than the server keeps unread
            # (PIPELINE_LIMIT): it pauses reading while the segment goes out, then catches up.
            playlists = 600
            writer.write(f"GET {seg} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await asyncio.sleep(0.3)  # the server is stuck on a full socket buffer now
            writer.write(f"GET {pl} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * playlists)
            assert (len(pl) + 30) * playlists > fastpath.PIPELINE_LIMIT
            await asyncio.sleep(0.3)
            status, fields, body = await read_response(reader)
            assert status.endswith("200 OK") and body == sv.objects["v720/1.m4s"]
            for _ in range(playlists):
                status, _f, body = await read_response(reader)
                assert status.endswith("200 OK") and body.startswith(b"#EXTM3U")
            # An idle keep-alive connection does not hold up a graceful stop.
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(reader.read(), 15) == b""
            writer.close()

        asyncio.run(run())
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def remove_version(root: Path, version: str) -> None:
    """A version's whole folder gone from file storage (deleted or garbage-collected)."""
    shutil.rmtree(next(root.rglob(version)))


def get_raw(target: str) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


async def test_a_remembered_playlist_answers_only_its_own_token(app_client, settings, stored, token):
    """The fast path remembers each playlist answer per URL; another token (valid, forged or
    expired) on the same path never gets it."""
    handler = app_client.server.handler
    port = app_client.server.port
    playlist = stored.url("v360/index.m3u8", token)
    for _ in range(3):  # load, then answered from the remembered Document
        status, _fields, body = await exchange(port, get_raw(playlist))
        assert status == "HTTP/1.1 200 OK" and f"token={token}".encode() in body
    answered = handler.answered
    ring = playback.keyring(settings.secret_key)
    # A later window: a different valid token for the same title version.
    later, _ = playback.sign(ring, stored.title_id, stored.version, time.time() + 2 * 3600, 3600)
    assert later != token
    status, _fields, body = await exchange(port, get_raw(stored.url("v360/index.m3u8", later)))
    assert status == "HTTP/1.1 200 OK"
    assert f"token={later}".encode() in body and token.encode() not in body
    assert handler.answered == answered + 1  # on the fast path, not a hand-over
    expired, _ = playback.sign(ring, stored.title_id, stored.version, time.time() - 86400, 3600)
    for bad in (token[:-3] + "AAA", expired):
        status, _fields, body = await exchange(port, get_raw(stored.url("v360/index.m3u8", bad)))
        assert status == "HTTP/1.1 403 Forbidden", bad
        assert token.encode() not in body


async def test_a_remembered_playlist_stops_when_its_token_expires(app_client, stored, token, monkeypatch):
    port = app_client.server.port
    playlist = stored.url("master.m3u8", token)
    for _ in range(2):
        status, _fields, _body = await exchange(port, get_raw(playlist))
        assert status == "HTTP/1.1 200 OK"
    exp = int(token.split(".")[1])
    real = time.time
    monkeypatch.setattr(time, "time", lambda: max(real(), exp + 1.0))
    status, _fields, body = await exchange(port, get_raw(playlist))
    assert status == "HTTP/1.1 403 Forbidden"
    assert b"playback_token_expired" in body


async def test_a_remembered_playlist_goes_with_its_version(app_client, settings, stored, token):
    """A version removed from storage is forgotten when a request finds it gone; its
    playlists are then 404 like any unknown version's, not answered from memory."""
    port = app_client.server.port
    playlist = stored.url("v360/index.m3u8", token)
    for _ in range(2):
        status, _fields, _body = await exchange(port, get_raw(playlist))
        assert status == "HTTP/1.1 200 OK"
    remove_version(Path(settings.storage_url.removeprefix("file://")), stored.version)
    status, _fields, _body = await exchange(port, get_raw(stored.url("v360/2.m4s", token)))
    assert status == "HTTP/1.1 404 Not Found"  # found gone: the version is forgotten
    status, _fields, body = await exchange(port, get_raw(playlist))
    assert status == "HTTP/1.1 404 Not Found"
    assert b"version_not_found" in body
