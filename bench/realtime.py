"""Benchmark (not a test): the real-time socket and watch parties across two server processes.

    .venv/bin/python bench/realtime.py [--sockets 1000] [--parties 10] [--users 100]
                                       [--seconds 30] [--rate 2]

Set-up: a database of its own (created, dropped at the end), a Redis prefix and a data /
storage dir of its own under var/bench/realtime/, TWO `streamflix serve` processes (A and B)
on that database and prefix, and one `streamflix worker` that makes one small ready title (a
3 s 320x240 testsrc2 + sine clip, `streamflix ingest --wait`) and is then stopped. The
per-address and per-account socket limits are raised so one machine may open them all; the
API rate limits are off (as in the other benches).

`--users` people register through the API and sign in; the first `--parties` of them each
create a party through the API (`POST /api/v1/parties`). Every person belongs to one party
(round robin) and holds `--sockets / --users` sockets, alternating between A and B (half
on each). Each socket authenticates with its first message, as the protocol says, and joins
its person's party. The party's host drives it from its first socket (on A for even parties,
on B for odd ones, so both the local and the cross-process path through Redis are used).

Load, `--seconds` long: each host sends `party.control` (play, seek, rate, pause, in turn) at
`--rate` a second, each with a position of its own so the state it causes can be recognised.
Every socket records the arrival of each `party.state`. Printed:
  - fan-out latency = arrival minus the host's send (one client process, one monotonic
    clock): count, p50/p95/p99/max, per receiving server, for receivers on the host's own
    process and on the other one, and overall. The client is one asyncio process on the same
    two cores: its own event loop's delay is in these figures (its CPU time is printed);
  - each serve process's RSS (process tree): idle (after the sign-ins and party creation,
    before any socket), with every socket open, and the peak sampled every 0.25 s during the
    load;
  - "no dropped party state": every socket saw every seq of its party once and in order (gaps,
    duplicates and reorderings counted), and each party's state read back through
    `GET /api/v1/parties/{id}` at the end matches the host's last action (seq, playing,
    rate, position carried forward).
There is no target for latency or memory: those are reported. The exit status is non-zero on
errors and on any dropped or mismatched party state.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from benchlib import free_port, tree_rss_mb, wait_http  # noqa: E402
from firstframe import Stack  # noqa: E402

PASSWORD = "realtime-bench-password"
ACTIONS = ("play", "seek", "rate", "pause")
RATES = (1.5, 1.0, 2.0, 0.5)
PHASE_TIMEOUT_S = 120.0


@dataclass
class Sock:
    user: int
    party: int
    server: str  # "A" or "B"
    ws: Any = None
    states: list[tuple[int, float]] = field(default_factory=list)  # (seq, position) in arrival order
    arrivals: list[float] = field(default_factory=list)
    joined_seq: int = 0
    closed_early: str | None = None


@dataclass
class PartyRun:
    id: str
    host: int
    host_server: str
    token: str
    sent: dict[float, float] = field(default_factory=dict)  # position -> monotonic send time
    actions: int = 0
    playing: bool = False
    rate: float = 1.0
    last_position: float = 0.0
    last_at: int = 0  # the server's stamp of the last state, from the host's own socket
    base_seq: int = 0


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))]


def lat_line(label: str, xs: list[float]) -> str:
    if not xs:
        return f"  {label:<34} {0:>7}      -"
    ms = [x * 1000 for x in xs]
    return (
        f"  {label:<34} {len(ms):>7} {statistics.median(ms):>8.1f} {pct(ms, 95):>8.1f} "
        f"{pct(ms, 99):>8.1f} {max(ms):>8.1f}"
    )


def make_clip(path: Path) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
        + ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=3"]
        + ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3"]
        + ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "50"]
        + ["-c:a", "aac", "-b:a", "96k", "-shortest", str(path)],
        check=True,
        timeout=120,
    )


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stack = Stack(
            "realtime",
            extra_env={
                "STREAMFLIX_REALTIME_MAX_PER_IP": str(args.sockets + 100),
                "STREAMFLIX_REALTIME_MAX_PER_USER": str(args.sockets),
                "STREAMFLIX_RATE_LIMIT_COMMENTS_PER_MIN": "0",
            },
        )
        self.base_b = f"http://127.0.0.1:{free_port()}"
        self.bases = {"A": self.stack.base, "B": self.base_b}
        self.errors: list[str] = []
        self.rss: dict[str, dict[str, float]] = {"A": {}, "B": {}}

    # ---- processes ------------------------------------------------------------------------

    def start(self) -> str:
        self.stack.start()
        env = {**self.stack.env, "STREAMFLIX_PORT": self.base_b.split(":")[-1]}
        self.stack.procs["serveB"] = subprocess.Popen(
            [str(ROOT / ".venv/bin/streamflix"), "serve", "--host", "127.0.0.1", "--port", self.base_b.split(":")[-1]],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.stack.dir / "serveB.log", "wb"),
        )
        wait_http(self.base_b + "/healthz", timeout=60)
        clip = self.stack.dir / "clip.mp4"
        make_clip(clip)
        t = time.monotonic()
        out = self.stack.cli("ingest", str(clip), "--title", "Realtime bench", "--year", "2024", "--wait", "--json")
        title_id = str(json.loads(out)["id"])
        print(f"title {title_id} ready in {time.monotonic() - t:.1f} s; stopping the worker", flush=True)
        worker = self.stack.procs.pop("worker0")
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        return title_id

    def serve_pid(self, server: str) -> int:
        return self.stack.procs["serve" if server == "A" else "serveB"].pid

    def sample_rss(self, key: str) -> None:
        for s in "AB":
            mb = tree_rss_mb(self.serve_pid(s))
            if key == "peak":
                self.rss[s]["peak"] = max(self.rss[s].get("peak", 0.0), mb)
            else:
                self.rss[s][key] = mb

    # ---- clients --------------------------------------------------------------------------

    async def api(
        self, http: aiohttp.ClientSession, method: str, server: str, path: str, body: Any = None, token: str = ""
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with http.request(method, self.bases[server] + "/api/v1" + path, json=body, headers=headers) as r:
            raw = await r.read()
            return r.status, (json.loads(raw) if raw else None)

    async def make_users(self, http: aiohttp.ClientSession) -> list[str]:
        sem = asyncio.Semaphore(8)
        tag = self.stack.dbname[-8:]

        async def one(i: int) -> str:
            async with sem:
                email = f"rt-{tag}-{i}@example.com"
                server = "AB"[i % 2]
                status, body = await self.api(
                    http, "POST", server, "/auth/register", {"email": email, "password": PASSWORD}
                )
                if status != 201:
                    raise RuntimeError(f"register {email}: {status} {body}")
                status, body = await self.api(
                    http, "POST", server, "/auth/login", {"email": email, "password": PASSWORD}
                )
                if status != 200:
                    raise RuntimeError(f"login {email}: {status} {body}")
                return str(body["access_token"])

        return list(await asyncio.gather(*(one(i) for i in range(self.args.users))))

    async def open_socket(self, http: aiohttp.ClientSession, sock: Sock, token: str, party_id: str) -> None:
        ws = await http.ws_connect(self.bases[sock.server] + "/api/v1/ws", autoping=True, max_msg_size=1 << 20)
        sock.ws = ws
        await ws.send_json({"type": "auth", "token": token})
        await self.until(ws, "ready")
        await ws.send_json({"type": "party.join", "party": party_id})
        await self.until(ws, "party.joined")
        state = await self.until(ws, "party.state")
        sock.joined_seq = int(state["seq"])

    @staticmethod
    async def until(ws: Any, kind: str) -> dict[str, Any]:
        while True:
            msg = await asyncio.wait_for(ws.receive(), timeout=30)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"socket closed while waiting for {kind}: {msg.type} {msg.data} {msg.extra}")
            data = json.loads(msg.data)
            if data.get("type") == kind:
                return dict(data)
            if data.get("type") == "error":
                raise RuntimeError(f"waiting for {kind}: {data}")

    async def reader(self, sock: Sock, parties: list[PartyRun], host_sock: bool) -> None:
        ws = sock.ws
        while True:
            msg = await ws.receive()
            now = time.monotonic()
            if msg.type != aiohttp.WSMsgType.TEXT:
                sock.closed_early = f"{msg.type.name} {msg.data} {msg.extra}"
                return
            data = json.loads(msg.data)
            if data.get("type") == "party.state":
                sock.states.append((int(data["seq"]), float(data["position"])))
                sock.arrivals.append(now)
                if host_sock:
                    parties[sock.party].last_at = int(data["at"])
            elif data.get("type") == "error":
                self.errors.append(f"socket error message: {data}")

    async def drive(self, party: PartyRun, ws: Any, stop_at: float) -> None:
        """The host's actions at --rate a second until stop_at."""
        period = 1.0 / self.args.rate
        next_at = time.monotonic() + party.host * period / len(self.args_parties())
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if time.monotonic() >= stop_at:
                return
            k = party.actions
            action = ACTIONS[k % len(ACTIONS)]
            position = round(10.0 + k * 0.25 + party.host * 0.001, 3)
            msg: dict[str, Any] = {"type": "party.control", "party": party.id, "action": action, "position": position}
            if action == "rate":
                msg["rate"] = RATES[(k // len(ACTIONS)) % len(RATES)]
                party.rate = msg["rate"]
            elif action in ("play", "pause"):
                party.playing = action == "play"
            party.last_position = position
            party.sent[position] = time.monotonic()
            await ws.send_json(msg)
            party.actions += 1
            next_at += period

    def args_parties(self) -> range:
        return range(self.args.parties)

    async def run(self, title_id: str) -> bool:
        args = self.args
        conn = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=conn, timeout=timeout) as http:
            t = time.monotonic()
            tokens = await asyncio.wait_for(self.make_users(http), PHASE_TIMEOUT_S)
            print(f"{args.users} users registered and signed in in {time.monotonic() - t:.1f} s", flush=True)
            parties: list[PartyRun] = []
            for p in self.args_parties():
                server = "AB"[p % 2]
                status, body = await self.api(http, "POST", server, "/parties", {"title_id": title_id}, tokens[p])
                if status != 201:
                    raise RuntimeError(f"create party: {status} {body}")
                parties.append(
                    PartyRun(id=body["id"], host=p, host_server=server, token=tokens[p], base_seq=body["state"]["seq"])
                )
            self.sample_rss("idle")  # warmed up (sign-ins, API calls) but no socket open
            # sockets: person u in party u % parties, with per_user sockets alternating A / B;
            # a host's first socket is on its party's server (A for even, B for odd)
            per_user = -(-args.sockets // args.users)
            socks: list[Sock] = []
            host_socks: dict[int, Sock] = {}
            for i in range(args.sockets):
                u, j = i % args.users, i // args.users
                p = u % args.parties
                server = "AB"[(j + u) % 2] if u >= args.parties else "AB"[(j + p) % 2]
                sock = Sock(user=u, party=p, server=server)
                socks.append(sock)
                if u < args.parties and j == 0:
                    host_socks[p] = sock
            sem = asyncio.Semaphore(32)

            async def open_one(s: Sock) -> None:
                async with sem:
                    await self.open_socket(http, s, tokens[s.user], parties[s.party].id)
                # read from now on: the server's pings are answered and nothing piles up
                readers.append(asyncio.create_task(self.reader(s, parties, host_socks.get(s.party) is s)))

            readers: list[asyncio.Task[None]] = []

            t = time.monotonic()
            await asyncio.wait_for(asyncio.gather(*(open_one(s) for s in socks)), PHASE_TIMEOUT_S)
            per_server = {s: sum(1 for x in socks if x.server == s) for s in "AB"}
            print(
                f"{len(socks)} sockets authenticated and joined in {time.monotonic() - t:.1f} s "
                f"(A {per_server['A']}, B {per_server['B']}; {per_user} per person at most)",
                flush=True,
            )
            await asyncio.sleep(1.0)  # the party.members messages of the last joins settle
            self.sample_rss("open")
            self.sample_rss("peak")

            async def sampler() -> None:
                while True:
                    self.sample_rss("peak")
                    await asyncio.sleep(0.25)

            sampling = asyncio.create_task(sampler())
            cpu0 = time.process_time()
            t = time.monotonic()
            stop_at = t + args.seconds
            await asyncio.wait_for(
                asyncio.gather(*(self.drive(parties[p], host_socks[p].ws, stop_at) for p in self.args_parties())),
                args.seconds + 30,
            )
            # let the last states arrive: until every socket has its party's last seq, or 5 s
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                if all(
                    s.states and s.states[-1][0] >= parties[s.party].base_seq + parties[s.party].actions for s in socks
                ):
                    break
                await asyncio.sleep(0.05)
            load_s = time.monotonic() - t
            client_cpu = time.process_time() - cpu0
            sampling.cancel()
            # read each party back through the API (from the other server than its host's)
            readback: list[tuple[PartyRun, int, Any]] = []
            for party in parties:
                other = "B" if party.host_server == "A" else "A"
                status, body = await self.api(http, "GET", other, f"/parties/{party.id}", token=party.token)
                readback.append((party, status, body))
            for r in readers:
                r.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            await asyncio.gather(*(s.ws.close() for s in socks if s.ws is not None), return_exceptions=True)
        return self.report(parties, socks, readback, load_s, client_cpu)

    # ---- figures --------------------------------------------------------------------------

    def report(
        self,
        parties: list[PartyRun],
        socks: list[Sock],
        readback: list[tuple[PartyRun, int, Any]],
        load_s: float,
        client_cpu: float,
    ) -> bool:
        lat: dict[str, list[float]] = {"A": [], "B": [], "same": [], "cross": [], "all": []}
        gaps = dups = reordered = unknown = early = 0
        for s in socks:
            party = parties[s.party]
            if s.closed_early:
                early += 1
                self.errors.append(f"a socket on {s.server} closed during the load: {s.closed_early}")
            seen: set[int] = set()
            last = s.joined_seq
            for (seq, position), arrival in zip(s.states, s.arrivals, strict=True):
                if seq in seen:
                    dups += 1
                    continue
                seen.add(seq)
                if seq < last:
                    reordered += 1
                last = max(last, seq)
                sent = party.sent.get(position)
                if sent is None:
                    unknown += 1
                    continue
                d = arrival - sent
                lat[s.server].append(d)
                lat["same" if s.server == party.host_server else "cross"].append(d)
                lat["all"].append(d)
            expected = set(range(party.base_seq + 1, party.base_seq + party.actions + 1))
            gaps += len(expected - seen)
        actions = sum(p.actions for p in parties)
        print(
            f"\nload: {len(parties)} hosts x {self.args.rate:g} actions/s for {self.args.seconds:g} s: {actions} "
            f"actions, {sum(len(s.states) for s in socks)} party.state messages received "
            f"(expected {sum(parties[s.party].actions for s in socks)}); {load_s:.1f} s incl. drain; "
            f"client CPU {client_cpu:.1f} s ({client_cpu / load_s:.0%} of one core); load avg {os.getloadavg()[0]:.1f}"
        )
        print("\nfan-out latency, host send -> member arrival (ms)   target: none, reported")
        print(f"  {'receivers':<34} {'count':>7} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}")
        print(lat_line("on serve A", lat["A"]))
        print(lat_line("on serve B", lat["B"]))
        print(lat_line("on the host's process", lat["same"]))
        print(lat_line("on the other process (via Redis)", lat["cross"]))
        print(lat_line("all", lat["all"]))
        print("\nserve RSS (MiB, process tree)       idle     open     peak   target: none, reported")
        for name in "AB":
            r = self.rss[name]
            n = sum(1 for x in socks if x.server == name)
            per = (r.get("open", 0) - r.get("idle", 0)) * 1024 / max(1, n)
            print(
                f"  serve {name} ({n} sockets)          {r.get('idle', 0):>8.1f} {r.get('open', 0):>8.1f} "
                f"{r.get('peak', 0):>8.1f}   ~{per:.0f} KiB per socket"
            )
        mismatched = 0
        for party, status, body in readback:
            want_seq = party.base_seq + party.actions
            problem = ""
            if status != 200:
                problem = f"GET answered {status} {body}"
            else:
                st = body["state"]
                expect_pos = party.last_position
                if party.playing:
                    expect_pos += (int(st["at"]) - party.last_at) / 1000 * party.rate
                if st["seq"] != want_seq:
                    problem = f"seq {st['seq']} != {want_seq}"
                elif st["playing"] != party.playing or abs(float(st["rate"]) - party.rate) > 1e-9:
                    problem = f"playing/rate {st['playing']}/{st['rate']} != {party.playing}/{party.rate}"
                elif abs(float(st["position"]) - expect_pos) > 0.01:
                    problem = f"position {st['position']} != {expect_pos:.3f}"
            if problem:
                mismatched += 1
                self.errors.append(f"party {party.id} read back: {problem}")
        ok = gaps == dups == reordered == unknown == early == mismatched == 0
        print(
            f"\nno dropped party state (target): gaps {gaps}, duplicates {dups}, out of order {reordered}, "
            f"unrecognised {unknown}, sockets closed early {early}; read back through the API: "
            f"{len(readback) - mismatched}/{len(readback)} parties match the last action   "
            f"{'PASS' if ok else 'MISS'}"
        )
        return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sockets", type=int, default=1000, help="concurrent authenticated sockets (default 1000)")
    ap.add_argument("--parties", type=int, default=10, help="parties, one host each (default 10)")
    ap.add_argument("--users", type=int, default=100, help="people holding the sockets (default 100)")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the load (default 30)")
    ap.add_argument("--rate", type=float, default=2.0, help="party actions per host per second (default 2)")
    args = ap.parse_args()
    if not 1 <= args.parties <= args.users <= args.sockets:
        ap.error("need 1 <= --parties <= --users <= --sockets")
    if not 0 < args.seconds <= 600 or not 0 < args.rate <= 4:
        ap.error("--seconds must be in (0, 600] and --rate in (0, 4]")
    raise_nofile()
    bench = Bench(args)
    ok = False
    try:
        title_id = bench.start()
        print(
            f"bench/realtime.py: serve A {bench.bases['A']}, serve B {bench.bases['B']}; {args.sockets} sockets, "
            f"{args.users} people, {args.parties} parties; cpus={os.cpu_count()}, load avg {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        ok = asyncio.run(bench.run(title_id))
        bench.stack.check_alive()
    except Exception as exc:
        bench.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        bench.stack.stop()
        cleanup_redis(bench.stack.env)
    if bench.errors:
        shown = bench.errors[:20]
        more = f"\n  ... and {len(bench.errors) - 20} more" if len(bench.errors) > 20 else ""
        print("\nerrors:\n  " + "\n  ".join(shown) + more, file=sys.stderr)
        return 1
    return 0 if ok else 1


def cleanup_redis(env: dict[str, str]) -> None:
    """Delete the keys under the bench's Redis prefix (parties would otherwise expire later)."""
    import redis

    from server.settings import Settings

    settings = Settings.load(env=env)
    try:
        r = redis.Redis.from_url(settings.redis_url)
        keys = list(r.scan_iter(match=settings.redis_prefix + "*", count=1000))
        if keys:
            r.delete(*keys)
        r.close()
    except Exception as exc:
        print(f"could not clean Redis prefix {settings.redis_prefix}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
