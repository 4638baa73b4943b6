"""What the scenarios do to the system: a bounded load loop of viewers (login, /me, catalog,
history writes, playback, playlists, segments) around an outage, and the kill of a worker in
a chosen phase of a job."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin

import aiohttp
import asyncpg
import m3u8

from media import keys as media_keys
from packager.model import Presentation
from tests.faults.harness import REQUEST_BOUND_S, Proc, Stack, wait_for
from transcoder import tasks

PASSWORD = "correct horse battery staple"
VIEWERS = 3
# A pause between one viewer's rounds: the loop is bounded, a steady mix, not a flood.
ROUND_PAUSE_S = 0.2
# The client gives up a little after the documented bound, so a hang is measured, not hidden.
CLIENT_TIMEOUT_S = REQUEST_BOUND_S + 4


@dataclass
class Outcome:
    op: str
    method: str
    path: str
    started: float  # seconds since the load began
    duration: float
    status: int | None
    retry_after: str | None
    body: str
    error: str | None  # no HTTP answer: the exception

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Viewer:
    email: str
    user_id: str
    token: str
    position: int = 0
    attempted: list[int] = field(default_factory=list)


@dataclass
class StreamUrls:
    playlists: list[str]  # the master, then every media playlist
    segments: list[str]  # every init and media segment of every rendition


def _http(timeout: float = CLIENT_TIMEOUT_S) -> aiohttp.ClientSession:
    # a new connection per request: a keep-alive connection the server closed is the
    # client's business, not a fault of the system under test
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout), connector=aiohttp.TCPConnector(force_close=True)
    )


async def make_viewers(base: str, n: int = VIEWERS) -> list[Viewer]:
    viewers = []
    async with _http() as http:
        for _ in range(n):
            email = f"fault-{secrets.token_hex(4)}@example.com"
            async with http.post(base + "/api/v1/auth/register", json={"email": email, "password": PASSWORD}) as r:
                assert r.status == 201, await r.text()
            async with http.post(base + "/api/v1/auth/login", json={"email": email, "password": PASSWORD}) as r:
                assert r.status == 200, await r.text()
                token = (await r.json())["access_token"]
            async with http.get(base + "/api/v1/me", headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200, await r.text()
                user_id = (await r.json())["id"]
            viewers.append(Viewer(email, user_id, token))
    return viewers


async def stream_urls(base: str, viewer: Viewer, title_id: str) -> StreamUrls:
    """Every playlist and segment URL of a ready title, as a player would find them."""
    async with _http() as http:
        bearer = {"Authorization": f"Bearer {viewer.token}"}
        async with http.post(f"{base}/api/v1/titles/{title_id}/playback", headers=bearer) as r:
            assert r.status == 200, await r.text()
            master = urljoin(base + "/", (await r.json())["hls_url"])
        async with http.get(master) as r:
            assert r.status == 200, await r.text()
            doc = m3u8.loads(await r.text())
        media = [urljoin(master, p.uri) for p in doc.playlists] + [urljoin(master, m.uri) for m in doc.media if m.uri]
        segments: list[str] = []
        for url in media:
            async with http.get(url) as r:
                assert r.status == 200, await r.text()
                playlist = m3u8.loads(await r.text())
            segments += [urljoin(url, m.uri) for m in playlist.segment_map if m.uri]
            segments += [urljoin(url, seg.uri) for seg in playlist.segments]
    assert segments, f"title {title_id} has no segments"
    return StreamUrls([master, *media], list(dict.fromkeys(segments)))


class Load:
    """Viewers going round login, /me, the catalog, a history write, playback, the master
    playlist and a segment, until `stop()`; every request recorded as an Outcome."""

    def __init__(self, base: str, viewers: list[Viewer], title_id: str, urls: StreamUrls) -> None:
        self.base = base
        self.viewers = viewers
        self.title_id = title_id
        self.urls = urls
        self.outcomes: list[Outcome] = []
        # viewer id -> (title id, last position the server acknowledged with a 2xx)
        self.acked: dict[str, tuple[str, int]] = {}
        self.t0 = time.monotonic()
        self._stopping = asyncio.Event()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        async with _http() as http:
            await asyncio.gather(*(self._viewer(http, v) for v in self.viewers))

    async def _viewer(self, http: aiohttp.ClientSession, v: Viewer) -> None:
        # each viewer starts at its own place and walks every segment, so storage is read
        # (not only a cache) for as long as the load runs
        turn = self.viewers.index(v) * 7
        while not self._stopping.is_set():
            turn += 1
            bearer = {"Authorization": f"Bearer {v.token}"}
            login = await self._call(
                http, "login", "POST", "/api/v1/auth/login", json={"email": v.email, "password": PASSWORD}
            )
            if login.ok:
                v.token = _field(login.body, "access_token") or v.token
                bearer = {"Authorization": f"Bearer {v.token}"}
            await self._call(http, "me", "GET", "/api/v1/me", headers=bearer)
            await self._call(http, "catalog", "GET", "/api/v1/titles?limit=10", headers=bearer)
            # A client retries a 503'd history write: the next round writes a later position.
            v.position += 1
            v.attempted.append(v.position)
            wrote = await self._call(
                http,
                "history",
                "PUT",
                f"/api/v1/me/history/{self.title_id}",
                headers=bearer,
                # in milliseconds: every position stays inside the short title (the server
                # clamps a position past the end to the duration)
                json={"position_s": v.position / 1000},
            )
            if wrote.ok:
                self.acked[v.user_id] = (self.title_id, v.position)
            await self._call(http, "playback", "POST", f"/api/v1/titles/{self.title_id}/playback", headers=bearer)
            await self._call(http, "playlist", "GET", self.urls.playlists[turn % len(self.urls.playlists)])
            await self._call(http, "segment", "GET", self.urls.segments[turn % len(self.urls.segments)])
            await asyncio.sleep(ROUND_PAUSE_S)

    async def _call(self, http: aiohttp.ClientSession, op: str, method: str, path: str, **kw: object) -> Outcome:
        url = path if path.startswith("http") else self.base + path
        started = self.now()
        status: int | None = None
        retry_after = None
        body = ""
        error = None
        try:
            async with http.request(method, url, **kw) as r:  # type: ignore[arg-type]  # kwargs of aiohttp's request
                status = r.status
                retry_after = r.headers.get("Retry-After")
                raw = await r.read()
                body = raw[:2000].decode(errors="replace") if op != "segment" or status != 200 else ""
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        outcome = Outcome(
            op, method, path.split("?token=")[0], started, self.now() - started, status, retry_after, body, error
        )
        self.outcomes.append(outcome)
        return outcome


def _field(body: str, name: str) -> str | None:
    import json

    try:
        value = json.loads(body).get(name)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


async def outage(
    load: Load, fault: Callable[[], None], heal: Callable[[], None], *, before_s: float, fault_s: float, after_s: float
) -> float:
    """Run `load` through: `before_s` healthy, `fault()` for `fault_s`, `heal()`, `after_s`
    more. Returns when the dependency came back, on the load's clock."""
    runner = asyncio.create_task(load.run())
    try:
        await asyncio.sleep(before_s)
        await asyncio.to_thread(fault)
        await asyncio.sleep(fault_s)
        await asyncio.to_thread(heal)
        back_at = load.now()
        await asyncio.sleep(after_s)
    finally:
        load.stop()
        await runner
    return back_at


# ---- killing a worker in one phase of a job ---------------------------------------------------

PHASES = ("probe", "encode", "upload", "publish")


def _child_named(worker: Proc, name: str) -> bool:
    return any(comm == name for _pid, comm in worker.children())


def kill_in_phase(
    stack: Stack, worker: Proc, title_id: str, phase: str, job_progress: Callable[[], float]
) -> tuple[str, list[int]]:
    """`kill -9` the worker while it is in `phase` of the title's job, and return what pins
    that down (evidence for the report). The phases are seen from outside, as an operator
    would: the worker's child processes (ffprobe, ffmpeg), the job's progress in Postgres and
    the objects in the bucket. Where a phase is too short to hit by polling, the proxy of the
    dependency the next step needs is frozen so the worker waits there, then it is killed.
    Returns (evidence, the pids of the worker's children at the kill)."""
    version_prefix = media_keys.title_prefix(title_id)

    def version_objects() -> list[str]:
        return [k for k in stack.keys(version_prefix) if k.count("/") >= 3]

    def segments() -> list[str]:
        return [k for k in version_objects() if k.endswith(".m4s")]

    def model(objects: list[str]) -> Presentation | None:
        found = [k for k in objects if k.endswith(media_keys.MODEL_NAME)]
        return Presentation.from_json(stack.get_object(found[0])) if found else None

    def measured(objects: list[str]) -> bool:
        m = model(objects)
        return m is not None and not m.progressive

    def all_uploaded() -> bool:
        objects = version_objects()
        m = model(objects)
        if m is None:
            return False
        prefix = media_keys.version_prefix(title_id, m.version)
        names = [name for r in m.renditions for name in r.object_names()]
        return all(prefix + name in objects for name in names)

    def task_rows() -> list[asyncpg.Record]:
        """The status and stage of each of the title's tasks."""
        from tests.faults.checks import sql  # checks imports this module

        return sql(
            stack.world.database_url,
            "SELECT t.status, t.stage FROM jobs.transcode_tasks t JOIN jobs.transcode_jobs j ON j.id = t.job_id"
            " WHERE j.title_id = $1",
            title_id,
        )

    def tasks_left(rows: list[asyncpg.Record] | None = None) -> list[str]:
        """The statuses of the title's tasks not done yet."""
        return [r["status"] for r in (task_rows() if rows is None else rows) if r["status"] != "done"]

    def last_task_running() -> bool:
        """Every task made (a per-title ladder's job makes its later stage once the ladder is
        chosen) and all done but one, which runs."""
        rows = task_rows()
        made = any(r["stage"] in (tasks.STAGE_ALL, tasks.STAGE_REST) for r in rows)
        return made and tasks_left(rows) == ["running"]

    if phase == "probe":
        # the worker was started with a slowed ffprobe (Stack.start_worker): its child is seen,
        # and the worker held before it can store the probe (Postgres frozen)
        wait_for(lambda: _child_named(worker, "ffprobe"), 30, lambda: f"no ffprobe seen\n{worker.tail()}", 0.01)
        stack.pg.freeze()
        evidence = "ffprobe child running"
    elif phase == "encode":
        wait_for(
            lambda: _child_named(worker, "ffmpeg") and job_progress() > 5,
            90,
            lambda: f"no encode in progress seen\n{worker.tail()}",
            0.05,
        )
        evidence = f"ffmpeg child running, job progress {job_progress():.0f} %"
    elif phase == "upload":
        # segments appearing under the version while its model is still the prediction: freeze
        # storage there, part of the version uploaded
        wait_for(lambda: segments(), 120, lambda: f"no upload seen\n{worker.tail()}", 0.01)
        stack.s3.freeze()
        objects = version_objects()
        assert not measured(objects), "the upload finished before it was held"
        evidence = f"{len(segments())} segments uploaded, the model still the prediction"
    elif phase == "publish":
        # Postgres frozen while the last task runs: it finishes encoding and uploading (the
        # encode goes on through an outage), then waits to record its result, so the measured
        # model and the commit that would publish the title are both pending.
        # the last task claimed (running), not merely the last one left: a queued one would
        # never be claimed with Postgres frozen (a claimed one needs no database until its
        # result: its job's work is cached by the worker from its earlier tasks)
        wait_for(
            last_task_running,
            120,
            lambda: f"no last task seen running: {tasks_left()}\n{worker.tail()}",
            0.02,
        )
        stack.pg.freeze()
        wait_for(
            lambda: not _child_named(worker, "ffmpeg") and all_uploaded(),
            90,
            lambda: f"the last task did not finish uploading\n{worker.tail()}",
            0.05,
        )
        assert not measured(version_objects()), "the title was published before it was held"
        evidence = "every segment uploaded, the last task's result and the commit pending"
    else:
        raise ValueError(phase)
    children = [pid for pid, _comm in worker.children()]
    worker.kill9()
    stack.pg.up()
    stack.s3.up()
    return evidence, children
