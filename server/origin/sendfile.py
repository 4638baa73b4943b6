"""A stored file's bytes onto a connection: sendfile(2) when the socket takes them, a copy
through the transport when nothing else can. One implementation for both front ends
(handlers.py under aiohttp's response, fastpath.py with its own socket descriptor).

Why not just `loop.sendfile`: it pauses reading, waits for an empty buffer and re-arms epoll
around every call, which on loopback cost more than copying a whole 1 MiB segment; and uvloop's
transports do not support it at all. So: one sendfile(2) straight to the socket first (most
segments fit in the socket buffer), then, for what is left, waiting for writability on our own
descriptor of the socket where there is one, else loop.sendfile, else chunks.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable

CHUNK = 256 * 1024  # bytes per read when copying


def socket_twin(transport: asyncio.BaseTransport) -> socket.socket | None:
    """A non-blocking descriptor of our own for a plain TCP connection's socket (TLS and Unix
    sockets: None), so that writes can go out with send flags and waits for writability leave
    the transport's epoll registration alone. The caller closes it with the connection."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    if transport.get_extra_info("sslcontext") is not None:
        return None
    try:
        twin = socket.socket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
    except OSError:  # out of descriptors: callers go through the transport instead
        return None
    twin.setblocking(False)
    return twin


def sendfile_now(transport: asyncio.WriteTransport, fd: int, offset: int, count: int) -> int:
    """One sendfile(2) straight to the socket, when nothing is queued on the transport (the
    head went out already) and the connection is plain TCP; returns the bytes the socket took
    (0 when it took none or sendfile is not possible here). ConnectionError when the viewer is gone."""
    sock = transport.get_extra_info("socket")
    if sock is None or transport.get_extra_info("sslcontext") is not None or transport.get_write_buffer_size():
        return 0
    try:
        return os.sendfile(sock.fileno(), fd, offset, count)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError as exc:  # EPIPE, ECONNRESET: the viewer went away
        raise ConnectionResetError(str(exc)) from exc


def send_head_and_body(
    transport: asyncio.WriteTransport, twin: socket.socket | None, head: bytes, fd: int, offset: int, count: int
) -> int:
    """A response head, then as much of the body as the socket takes now; returns the body
    bytes sent. ConnectionError when the viewer is gone."""
    if twin is None or transport.get_write_buffer_size():
        transport.write(head)
        return sendfile_now(transport, fd, offset, count)
    try:
        # MSG_MORE: the head waits in the socket and leaves in the body's first packet
        # (nginx's tcp_nopush) instead of as a packet of its own.
        n = twin.send(head, socket.MSG_MORE)
    except (BlockingIOError, InterruptedError):
        n = 0
    except OSError as exc:  # EPIPE, ECONNRESET
        raise ConnectionResetError(str(exc)) from exc
    if n < len(head):
        transport.write(head[n:])
        return 0  # the body follows the queued head (send_rest)
    try:
        return os.sendfile(twin.fileno(), fd, offset, count)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError as exc:  # EPIPE, ECONNRESET
        raise ConnectionResetError(str(exc)) from exc


async def send_rest(
    transport: asyncio.WriteTransport,
    fd: int,
    offset: int,
    count: int,
    write: Callable[[bytes], Awaitable[None]],
    *,
    twin: socket.socket | None = None,
    writable: Callable[[int], Awaitable[None]] | None = None,
) -> None:
    """Bytes [offset, offset + count) of `fd`, after whatever is already queued on the
    transport. `write` queues a chunk on the transport under flow control (the copy fallback);
    with `twin` (socket_twin) and `writable` (waits until that descriptor is writable, raising
    ConnectionError if the connection goes): sendfile(2) again each time the socket has room,
    on asyncio and uvloop alike. Raises ConnectionError (or OSError) when the viewer is gone or
    the file shrank: the head is out, so the caller must end the connection."""
    if twin is not None and writable is not None:
        twin_fd = twin.fileno()
        while count and not transport.is_closing() and not transport.get_write_buffer_size():
            await writable(twin_fd)
            if transport.is_closing():
                raise ConnectionResetError("connection lost")
            try:
                n = os.sendfile(twin_fd, fd, offset, count)
            except (BlockingIOError, InterruptedError):
                continue
            if not n:
                raise ConnectionResetError("file shrank while sending")
            offset, count = offset + n, count - n
    if not count:
        return
    if transport.is_closing():
        raise ConnectionResetError("connection lost")
    loop = asyncio.get_running_loop()
    try:
        with open(fd, "rb", closefd=False) as fobj:  # noqa: ASYNC230 - wraps a descriptor, no I/O
            await loop.sendfile(transport, fobj, offset, count, fallback=False)
        return
    except (NotImplementedError, RuntimeError):
        pass  # e.g. uvloop's transports, TLS: copy through the transport instead
    while count:
        chunk = await loop.run_in_executor(None, os.pread, fd, min(count, CHUNK), offset)
        if not chunk:
            raise ConnectionResetError("file shrank while sending")
        await write(chunk)
        offset, count = offset + len(chunk), count - len(chunk)


async def send_file(
    transport: asyncio.WriteTransport, fd: int, offset: int, count: int, write: Callable[[bytes], Awaitable[None]]
) -> None:
    """Bytes [offset, offset + count) of `fd` after the head already written: sendfile_now,
    then send_rest."""
    sent = sendfile_now(transport, fd, offset, count)
    if sent < count:
        await send_rest(transport, fd, offset + sent, count - sent, write)
