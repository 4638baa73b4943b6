"""Catalog benchmark (not a test): search, suggest and browse latency under an open-loop
load, then cached browse throughput with wrk.

    .venv/bin/python bench/catalog.py [--rate 100] [--duration 10] [--workers 1]

1. Creates its own database (`sf_bench_catalog_*`), migrates it, seeds 10,000 titles
   (movies, series, episodes) and 100,000 watch-history rows, and drops it at the end.
2. Starts `streamflix serve` on a free port with its own Redis key prefix.
3. For each of search, suggest and browse: requests sent on a fixed schedule (`--rate` per
   second for `--duration` seconds) whether or not earlier ones have answered, latency
   measured from the scheduled send time (no coordinated omission). Search queries are
   mostly distinct (typos, word pairs), so most are cache misses: this measures Postgres.
4. `wrk` against one cached browse page for 10 s on 127.0.0.1.

Targets: search p95 <= 15 ms, suggest p95 <= 5 ms, cached browse >= 5,000 req/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import free_port, wait_http  # noqa: E402

from server.migrate import migrate  # noqa: E402
from server.settings import Settings  # noqa: E402

N_TITLES = 10_000
N_SERIES = 150
EPISODES_PER_SERIES = 10
N_HISTORY = 100_000
N_USERS = 5_000
GENRES = [
    "action",
    "comedy",
    "drama",
    "horror",
    "sci-fi",
    "romance",
    "thriller",
    "documentary",
    "animation",
    "crime",
    "fantasy",
    "family",
    "mystery",
    "western",
    "music",
]
WORDS = """night day river city shadow light storm winter summer ocean mountain dragon empire
kingdom stranger secret garden silver golden iron glass stone fire water wind star moon sun
hunter dancer soldier doctor teacher pilot captain queen king prince princess ghost robot
machine signal voice echo mirror window door bridge road station harbor island desert forest
jungle valley canyon lake castle tower palace prison school hospital factory market theater
circus carnival festival wedding funeral journey return escape rescue revenge promise
betrayal memory dream nightmare legend myth story tale song poem letter diary map clock
crown sword shield arrow bullet engine rocket planet galaxy comet orbit matrix code cipher
puzzle riddle labyrinth maze paradise inferno heaven harvest hunger thunder lightning
blossom autumn spring frost ember ash dust smoke velvet crimson scarlet azure emerald
midnight twilight dawn horizon frontier border wild quiet silent broken hidden lost last
first final eternal endless forgotten burning frozen falling rising dark bright""".split()
FIRST = (
    "Anna Ben Carla David Elena Farid Grace Hiro Ines Jonas Kira Leo Maya Nico Olga Pablo Quinn Rosa Sami Tara".split()
)
LAST = "Reeves Moss Fishburne Weaving Okafor Tanaka Silva Novak Haddad Larsen Kowalski Dubois Moreau Rossi Chen".split()


def make_title(rng: random.Random) -> str:
    n = rng.choice([1, 2, 2, 3, 3, 4])
    words = [rng.choice(WORDS) for _ in range(n)]
    if rng.random() < 0.3:
        words.insert(0, "the")
    return " ".join(words).title()


def typo(rng: random.Random, word: str) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 2)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


async def seed(dsn: str, rng: random.Random) -> list[str]:
    """Returns the seeded titles' names (for queries)."""
    conn = await asyncpg.connect(dsn)
    try:
        now = datetime.now(UTC)
        rows = []
        names = []
        n_movies = N_TITLES - N_SERIES - N_SERIES * EPISODES_PER_SERIES
        specials = ["The Matrix", "The Matrix Reloaded", "Amélie", "Spirited Away", "Heat"]

        def credits() -> str:
            people = [
                {"name": f"{rng.choice(FIRST)} {rng.choice(LAST)}", "role": "cast"} for _ in range(rng.randint(2, 5))
            ]
            people.append({"name": f"{rng.choice(FIRST)} {rng.choice(LAST)}", "role": "director"})
            return json.dumps(people)

        def desc() -> str:
            return " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 30))).capitalize() + "."

        def when() -> datetime:
            return now - timedelta(seconds=rng.randint(0, 2 * 365 * 86400))

        for i in range(n_movies):
            name = specials[i] if i < len(specials) else make_title(rng)
            names.append(name)
            pub = when()
            rows.append(
                (
                    uuid.uuid4(),
                    "movie",
                    name,
                    rng.randint(1950, 2025),
                    rng.sample(GENRES, rng.randint(1, 3)),
                    desc(),
                    credits(),
                    None,
                    None,
                    None,
                    "ready",
                    "v1",
                    float(rng.randint(4000, 9000)),
                    pub,
                    pub,
                )
            )
        series_rows, episode_rows = [], []
        for _ in range(N_SERIES):
            sid = uuid.uuid4()
            name = make_title(rng)
            names.append(name)
            genres = rng.sample(GENRES, rng.randint(1, 3))
            pub = when()
            series_rows.append(
                (
                    sid,
                    "series",
                    name,
                    rng.randint(1990, 2025),
                    genres,
                    desc(),
                    credits(),
                    None,
                    None,
                    None,
                    "ready",
                    None,
                    None,
                    pub,
                    pub,
                )
            )
            for e in range(EPISODES_PER_SERIES):
                season, number = 1 + e // 5, 1 + e % 5
                episode_rows.append(
                    (
                        uuid.uuid4(),
                        "episode",
                        f"{name}: {make_title(rng)}",
                        None,
                        genres,
                        desc(),
                        "[]",
                        sid,
                        season,
                        number,
                        "ready",
                        "v1",
                        float(rng.randint(1200, 3600)),
                        pub,
                        pub,
                    )
                )
        cols = [
            "id",
            "kind",
            "title",
            "year",
            "genres",
            "description",
            "credits",
            "series_id",
            "season_number",
            "episode_number",
            "status",
            "current_version",
            "duration_s",
            "published_at",
            "created_at",
        ]
        for chunk in (rows, series_rows, episode_rows):
            await conn.copy_records_to_table("titles", schema_name="catalog", records=chunk, columns=cols)

        # history: a skewed popularity (a few titles watched by many), 20 titles per viewer
        playable = [(r[0], r[0], r[12]) for r in rows] + [(r[0], r[7], r[12]) for r in episode_rows]
        rng.shuffle(playable)
        cum, total = [], 0.0
        for i in range(len(playable)):
            total += 1.0 / (i + 1) ** 0.8
            cum.append(total)
        hist = []
        per_user = N_HISTORY // N_USERS
        for _ in range(N_USERS):
            user = uuid.uuid4()
            picked = {}
            while len(picked) < per_user:
                tid, item, dur = rng.choices(playable, cum_weights=cum, k=1)[0]
                picked[tid] = (item, dur)
            for tid, (item, dur) in picked.items():
                pos = rng.uniform(0, dur)
                ts = when()
                hist.append((user, tid, item, pos, dur, pos >= 0.95 * dur, ts, ts))
        await conn.copy_records_to_table(
            "history",
            schema_name="catalog",
            records=hist,
            columns=[
                "user_id",
                "title_id",
                "item_id",
                "position_s",
                "duration_s",
                "finished",
                "client_ts",
                "updated_at",
            ],
        )
        await conn.execute(
            """UPDATE catalog.titles t SET popularity = c.n FROM (
                   SELECT id, count(*) AS n FROM (
                       SELECT title_id AS id, user_id FROM catalog.history
                       UNION SELECT item_id, user_id FROM catalog.history) v GROUP BY id) c
                WHERE t.id = c.id"""
        )
        await conn.execute("ANALYZE catalog.titles; ANALYZE catalog.history")
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM catalog.titles) AS t, (SELECT count(*) FROM catalog.history) AS h"
        )
        print(f"seeded {counts['t']} titles and {counts['h']} history rows", flush=True)
        return names
    finally:
        await conn.close()


async def seeded_names(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["title"] for r in await conn.fetch("SELECT title FROM catalog.titles WHERE kind <> 'episode'")]
    finally:
        await conn.close()


def search_queries(rng: random.Random, names: list[str], n: int) -> list[str]:
    out = []
    for _ in range(n):
        words = re.findall(r"\w+", rng.choice(names).lower())
        r = rng.random()
        if r < 0.35:
            q = typo(rng, max(words, key=len))
        elif r < 0.7:
            q = " ".join(words[:2])
        elif r < 0.85:
            q = f"{rng.choice(LAST).lower()} {rng.choice(WORDS)}"
        else:
            q = rng.choice(words) + " " + rng.choice(WORDS)
        out.append(q)
    return out


def suggest_queries(rng: random.Random, names: list[str], n: int) -> list[str]:
    """What a search box sends while typing: prefixes of a title, keystroke by keystroke."""
    out: list[str] = []
    while len(out) < n:
        name = rng.choice(names).lower()
        for i in range(1, min(len(name), 12) + 1):
            out.append(name[:i])
    return out[:n]


def browse_urls(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        params = [f"sort={rng.choice(['newest', 'popular'])}"]
        if rng.random() < 0.6:
            params.append(f"genre={rng.choice(GENRES)}")
        if rng.random() < 0.3:
            params.append(f"kind={rng.choice(['movie', 'series'])}")
        out.append("/api/v1/titles?" + "&".join(params))
    return out


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def open_loop(base: str, paths: list[str], rate: float, duration: float) -> tuple[list[float], int, int]:
    """Send paths[i] at start + i/rate; latency from the scheduled time. Returns
    (latencies ms, errors, cache hits)."""
    latencies: list[float] = []
    errors = 0
    hits = 0
    total = int(rate * duration)
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(path: str, scheduled: float) -> None:
            nonlocal errors, hits
            try:
                async with session.get(base + path, params=None) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                    if r.headers.get("X-Cache") == "hit":
                        hits += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append((time.perf_counter() - scheduled) * 1000)

        start = time.perf_counter() + 0.05
        tasks = []
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(paths[i % len(paths)], scheduled)))
        await asyncio.gather(*tasks)
    return latencies, errors, hits


def quote(path: str) -> str:
    base, _, query = path.partition("?q=")
    return base + "?q=" + urllib.parse.quote(query) if query else path


def wrk(url: str, duration: int, connections: int, threads: int) -> tuple[float, str]:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    lat = re.search(r"99%\s+(\S+)", out)
    return float(m.group(1)) if m else 0.0, lat.group(1) if lat else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per endpoint")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--wrk-connections", type=int, default=32)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the database (prints its name)")
    parser.add_argument("--reuse", metavar="DBNAME", help="a database a --keep run left (skips seeding)")
    args = parser.parse_args()
    try:  # the load generator shares the machine: the cheaper its loop, the less noise
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    if not shutil.which("wrk"):
        print("bench/catalog.py needs wrk (scripts/setup.sh --bench installs it)", file=sys.stderr)
        return 1

    base_settings = Settings.load()
    dbname = args.reuse or f"sf_bench_catalog_{secrets.token_hex(4)}"
    dsn = base_settings.database_url.rsplit("/", 1)[0] + "/" + dbname
    admin_dsn = base_settings.database_url.rsplit("/", 1)[0] + "/postgres"
    rng = random.Random(args.seed)
    proc = None
    tmp = Path(tempfile.mkdtemp(prefix="sf-bench-catalog-"))
    try:
        t0 = time.perf_counter()
        asyncio.run(migrate(dsn))
        names = asyncio.run(seed(dsn, rng)) if not args.reuse else asyncio.run(seeded_names(dsn))
        print(f"seeding took {time.perf_counter() - t0:.1f} s", flush=True)

        port = free_port()
        env = {
            **os.environ,
            "STREAMFLIX_DATABASE_URL": dsn,
            "STREAMFLIX_REDIS_PREFIX": f"sfbench:{secrets.token_hex(4)}:",
            "STREAMFLIX_DATA_DIR": str(tmp / "var"),
            "STREAMFLIX_SECRET_KEY": secrets.token_urlsafe(32),
            # The per-IP API rate limit (accounts) would answer 429 to a benchmark from one
            # address; 0 turns it off (it also costs a Redis round trip per request).
            "STREAMFLIX_RATE_LIMIT_API_PER_MIN": "0",
        }
        cmd = [
            str(ROOT / ".venv/bin/streamflix"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
        ]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "serve.err", "wb"))
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/healthz")

        n = int(args.rate * args.duration)
        cases = {
            "search": [quote("/api/v1/search?q=" + q) for q in search_queries(rng, names, n)],
            "suggest": [quote("/api/v1/search/suggest?q=" + q) for q in suggest_queries(rng, names, n)],
            "browse": browse_urls(rng, n),
        }
        # warm the server's pools and code paths (not the measured queries)
        asyncio.run(open_loop(base, ["/api/v1/titles", "/api/v1/search?q=warm", "/api/v1/search/suggest?q=wa"], 50, 1))
        print(
            f"\nopen loop: {args.rate:.0f} req/s for {args.duration:.0f} s per endpoint, "
            f"{args.workers} server process(es)"
        )
        # /healthz does nothing: its latency is this machine's floor (client, loop, scheduler)
        cases["healthz"] = ["/healthz"] * n
        targets = {"search": 15.0, "suggest": 5.0, "browse": None, "healthz": None}
        for name, paths in cases.items():
            lat, errors, hits = asyncio.run(open_loop(base, paths, args.rate, args.duration))
            target = targets[name]
            verdict = (
                ""
                if target is None
                else f"  (target p95 <= {target:.0f} ms: {'met' if pct(lat, 95) <= target else 'MISSED'})"
            )
            print(
                f"  {name:8s} n={len(lat):5d}  p50 {pct(lat, 50):6.2f} ms  p95 {pct(lat, 95):6.2f} ms  "
                f"p99 {pct(lat, 99):6.2f} ms  cache hits {100 * hits / max(1, len(lat)):3.0f}%  "
                f"errors {errors}{verdict}"
            )

        url = base + "/api/v1/titles?sort=popular&limit=20"
        urllib.request.urlopen(url).read()  # cached from here on
        wrk(url, 2, args.wrk_connections, 1)
        rps, p99 = wrk(url, 10, args.wrk_connections, 1)
        verdict = "met" if rps >= 5000 else "MISSED"
        print(
            f"\ncached browse (wrk -t1 -c{args.wrk_connections} -d10s): {rps:,.0f} req/s, p99 {p99}  "
            f"(target >= 5,000 req/s: {verdict})"
        )
        return 0
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)

        async def drop() -> None:
            conn = await asyncpg.connect(admin_dsn)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            finally:
                await conn.close()

        if args.keep:
            print(f"kept database {dbname} (--reuse {dbname})")
        else:
            asyncio.run(drop())


if __name__ == "__main__":
    sys.exit(main())
