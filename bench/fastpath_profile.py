"""Benchmark (not a test): our own Python cost per cached request on the stream fast path.

    .venv/bin/python bench/fastpath_profile.py [--requests 200000] [--route playlist|master|segment-head] [--cprofile]

Builds the real app (create_app, file storage in a temp dir, the access-log sink `streamflix
serve` uses writing to /dev/null), makes one FastProtocol (server/origin/fastpath.py) on a
transport that only collects bytes, warms the caches with one request, then feeds the same
request N times straight into `data_received` and prints the CPU time per request: the
origin's own work, without the kernel, the event loop or a client. Reference: nginx spends
~2 µs of user time (+5 µs of system) per small static file here, as bench/serve.py prints;
`--cprofile` prints where ours goes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from auth import playback  # noqa: E402
from server.app import create_app  # noqa: E402
from server.http.middlewares import ACCESS_SINK, AccessLogSink  # noqa: E402
from server.migrate import migrate  # noqa: E402
from server.origin.edge import EdgeServer, Runner  # noqa: E402
from server.settings import Settings  # noqa: E402

SECRET = "bench-secret-key"
VERSION = "v20240101000000-profil"


class Collector(asyncio.Transport):
    """A transport that keeps count of what is written (no socket: no sendfile, no twin)."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closed = False

    def write(self, data: Any) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def run(args: argparse.Namespace, devnull: Any) -> None:
    # Imported here: serve.py's store() writes the same bench title the wrk runs use.
    from serve import store

    tmp = Path(tempfile.mkdtemp(prefix="sf-bench-profile-"))
    base = Settings.load()
    settings = Settings.load(
        env={},
        overrides={
            "database_url": base.database_url,
            "redis_url": base.redis_url,
            "data_dir": str(tmp / "var"),
            "storage_url": "file://" + str(tmp / "media"),
            "secret_key": SECRET,
        },
    )
    await migrate(base.database_url)
    title_id = str(uuid.uuid4())
    await store(tmp / "media", title_id, VERSION)
    token, _ = playback.sign(playback.keyring(SECRET), title_id, VERSION, time.time(), 6 * 3600)
    app = create_app(settings)
    app[ACCESS_SINK] = AccessLogSink(devnull)
    runner = Runner(app, access_log=None)
    await runner.setup()
    try:
        edge = runner.server
        assert isinstance(edge, EdgeServer)
        name = {"playlist": "v1080/index.m3u8", "master": "master.m3u8", "segment-head": "v1080/1.m4s"}[args.route]
        method = "HEAD" if args.route == "segment-head" else "GET"
        raw = (
            f"{method} /stream/{title_id}/{VERSION}/{name}?token={token} HTTP/1.1\r\n"
            "Host: 127.0.0.1:8080\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
        ).encode()
        transport = Collector()
        proto: Any = edge()
        proto.connection_made(transport)
        proto.data_received(raw)  # cold: loads the model, then answers
        if proto.finishing is not None:
            await proto.finishing
        before = edge.answered
        profiler = cProfile.Profile() if args.cprofile else None
        feed = proto.data_received
        if profiler is not None:
            profiler.enable()
        # CPU time of this process, not wall time: on a shared machine the wall clock also
        # counts the time spent waiting for a CPU.
        t0 = time.process_time()
        for _ in range(args.requests):
            feed(raw)
        elapsed = time.process_time() - t0
        if profiler is not None:
            profiler.disable()
        answered = edge.answered - before
        assert answered == args.requests, f"the fast path answered {answered} of {args.requests}"
        print(
            f"bench/fastpath_profile.py: {args.route}, {args.requests} cached requests on one FastProtocol: "
            f"{elapsed / args.requests * 1e6:.2f} us of CPU (Python) per request "
            f"({transport.written // args.requests} bytes each){' [under cProfile]' if profiler else ''}"
        )
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    finally:
        await runner.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--route", choices=("playlist", "master", "segment-head"), default="playlist")
    ap.add_argument("--cprofile", action="store_true")
    args = ap.parse_args()
    with open(os.devnull, "wb") as devnull:
        asyncio.run(run(args, devnull))
    return 0


if __name__ == "__main__":
    sys.exit(main())
