"""`streamflix serve [--host H] [--port P] [--workers N] [--loop asyncio|uvloop]`.

One process: one event loop and one app on the port. `--workers N` (N > 1): a supervisor
starts N worker processes, each with its own event loop, app and pools, each listening on its
own SO_REUSEPORT socket bound to the same port (the kernel spreads connections across them);
the supervisor restarts a worker that dies and forwards SIGTERM/SIGINT for a graceful stop
(listening sockets closed first, in-flight requests given SHUTDOWN_TIMEOUT_S to finish).

The event loop: uvloop by default (asyncio where uvloop cannot be imported), chosen by
measurement (bench/serve.py, docs/origin.md). Stream requests are answered by
server/origin/fastpath.py, which hands segments to sendfile(2) itself on either loop, so uvloop no
longer loses sendfile (aiohttp's file responses did under it); with the fast path, uvloop
served 1 MiB segments at 0.91-0.98x nginx and playlists at 0.64-0.73x on a quiet machine,
asyncio within the same noise on segments and a little behind on playlists (0.61-0.64x).
`--loop asyncio` remains available.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from typing import Any

from aiohttp import web

from server.commands._args import positive_int
from server.http.middlewares import ACCESS_SINK, AccessLogSink
from server.settings import Settings

log = logging.getLogger("streamflix.serve")

NAME = "serve"
HELP = "run the HTTP server"

DEFAULT_LOOP = "uvloop"
SHUTDOWN_TIMEOUT_S = 10.0
BACKLOG = 1024
# A worker that dies this soon after starting, this many times in a row, means the server
# cannot run (port taken, bad config): stop instead of restarting forever.
FAST_FAIL_S = 2.0
FAST_FAIL_LIMIT = 5


class _AccessHandler(logging.StreamHandler):
    """The access log's own handler, so configuring twice adds it once."""


def configure_access_log() -> None:
    """Access lines are JSON already: one per line on stdout, nothing prepended."""
    logger = logging.getLogger("streamflix.access")
    if any(isinstance(h, _AccessHandler) for h in logger.handlers):
        return
    handler = _AccessHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:  # a platform without uvloop wheels: asyncio still works
            log.warning("uvloop is not installed: serving with asyncio's event loop")
            return asyncio.new_event_loop()
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def serve_app(
    settings: Settings,
    host: str,
    port: int,
    *,
    reuse_port: bool,
    announce: Any = None,
) -> None:
    """Run one app on host:port until SIGTERM/SIGINT, then stop gracefully."""
    from server.app import create_app
    from server.origin.edge import Runner

    app = create_app(settings)
    sink = AccessLogSink(sys.stdout.buffer)
    app[ACCESS_SINK] = sink

    async def flush(_app: web.Application) -> None:
        sink.flush()

    app.on_cleanup.append(flush)
    # Our own JSON access log (server.http.middlewares) replaces aiohttp's.
    # The stream fast path (server/origin/fastpath.py) in front of aiohttp, on the same sockets.
    runner = Runner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None, backlog=BACKLOG)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if announce is not None:
            announce(os.getpid())
        await stop.wait()
    finally:
        # Closes the listening socket, lets in-flight requests finish, then runs cleanup_ctx.
        await runner.cleanup()


def raise_open_file_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (nginx's worker_rlimit_nofile): each fast-path
    connection holds two descriptors (server/origin/fastpath.py), and 1024 is a common soft default."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass  # not permitted here: serve with what we have


def _run_one(settings: Settings, host: str, port: int, loop_kind: str, reuse_port: bool, announce: Any) -> None:
    configure_access_log()
    raise_open_file_limit()
    with asyncio.Runner(loop_factory=lambda: new_loop(loop_kind)) as runner:
        runner.run(serve_app(settings, host, port, reuse_port=reuse_port, announce=announce))


def _worker_main(settings: Settings, host: str, port: int, loop_kind: str, conn: Any) -> None:
    """Entry point of a worker process (spawned: a fresh interpreter, nothing inherited)."""
    logging.basicConfig(
        level=logging.DEBUG if settings.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
        stream=sys.stderr,
    )

    def announce(pid: int) -> None:
        conn.send(pid)
        conn.close()

    try:
        _run_one(settings, host, port, loop_kind, True, announce)
    except KeyboardInterrupt:
        pass


def _reserve_port(host: str, port: int) -> socket.socket:
    """Bind (without listening) so the port is ours and known before the workers start; every
    worker's socket joins it with SO_REUSEPORT. Fails early, in one line, if the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


class Supervisor:
    def __init__(self, settings: Settings, host: str, port: int, workers: int, loop_kind: str) -> None:
        self.settings, self.host, self.port, self.n, self.loop_kind = settings, host, port, workers, loop_kind
        self.ctx = multiprocessing.get_context("spawn")
        self.procs: dict[int, tuple[Any, float]] = {}  # slot -> (process, started_at)
        self.stopping = False
        self.fast_fails = 0

    def _start(self, slot: int) -> int:
        parent, child = self.ctx.Pipe(duplex=False)
        p = self.ctx.Process(
            target=_worker_main,
            args=(self.settings, self.host, self.port, self.loop_kind, child),
            name=f"streamflix-serve-{slot}",
        )
        p.start()
        child.close()
        self.procs[slot] = (p, time.monotonic())
        # Wait for the worker to listen (or die) so "serving on" is only printed when true.
        if parent.poll(60):
            try:
                return int(parent.recv())
            except EOFError:
                pass
        p.join(1)
        raise RuntimeError(f"worker {slot} failed to start (exit code {p.exitcode})")

    def _signal(self, signum: int, _frame: Any) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._signal)
        signal.signal(signal.SIGINT, self._signal)
        reserved = _reserve_port(self.host, self.port)
        try:
            pids = [self._start(slot) for slot in range(self.n)]
        except RuntimeError:
            self._stop_all()
            raise
        finally:
            reserved.close()
        print(
            f"streamflix: serving on http://{self.host}:{self.port} with {self.n} workers "
            f"(pids {' '.join(map(str, pids))}; supervisor {os.getpid()})",
            flush=True,
        )
        while not self.stopping:
            sentinels = {p.sentinel: slot for slot, (p, _t) in self.procs.items()}
            ready = multiprocessing.connection.wait(list(sentinels), timeout=0.5)
            for sentinel in ready:
                if self.stopping:
                    break
                slot = sentinels[sentinel]
                p, started = self.procs[slot]
                p.join()
                self.fast_fails = self.fast_fails + 1 if time.monotonic() - started < FAST_FAIL_S else 0
                if self.fast_fails >= FAST_FAIL_LIMIT:
                    log.error("workers keep dying at start; giving up")
                    self._stop_all()
                    return 1
                log.warning("worker %d (pid %s) exited with %s; restarting", slot, p.pid, p.exitcode)
                try:
                    self._start(slot)
                except RuntimeError as exc:
                    log.error("%s", exc)
        self._stop_all()
        return 0

    def _stop_all(self) -> None:
        for p, _t in self.procs.values():
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)  # forwarded: each worker drains and exits
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT_S + 5
        for p, _t in self.procs.values():
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                log.warning("worker pid %s did not stop in time; killing it", p.pid)
                p.kill()
                p.join()


def warn_missing_player_files() -> None:
    """One log line at start-up when the web player's libraries are missing: the server runs,
    but the player in the web client cannot start (/vendor/* answers 404)."""
    from server import vendor
    from server.web import missing_vendor_files

    missing = missing_vendor_files()
    if missing:
        log.warning(
            "the web player's libraries are missing (%s; /vendor/* answers 404, the player cannot start): %s",
            ", ".join(missing),
            vendor.HOW_TO_GET,
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host")
    parser.add_argument("--port", type=positive_int)
    parser.add_argument("--workers", type=positive_int, default=1)
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default=None,
        help="event loop (default uvloop, asyncio when uvloop is missing; measured in docs/origin.md)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve with `settings.host`/`settings.port` (the CLI folds --host/--port into them)."""
    warn_missing_player_files()
    host, port = settings.host, settings.port
    workers = getattr(args, "workers", 1) or 1
    loop_kind = getattr(args, "loop", None) or DEFAULT_LOOP
    if workers == 1:

        def announce(pid: int) -> None:
            print(f"streamflix: serving on http://{host}:{port} (pid {pid}, {loop_kind})", flush=True)

        try:
            _run_one(settings, host, port, loop_kind, False, announce)
        except OSError as exc:
            raise RuntimeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        return 0
    return Supervisor(settings, host, port, workers, loop_kind).run()
