"""Browser fixtures: the real app on a free port (its own thread and event loop), Debian's
chromium driven by Playwright (never a downloaded browser), titles ingested through the real
ingest + worker code, and helpers that call the API like any client would.

Every test here is sync: Playwright's sync API and the server's loop each own a thread's
loop, so nothing async runs on the test's thread while the browser is up."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import pytest

from server.settings import ENV_PREFIX, Settings
from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-output" / "screenshots"
CHROMIUM = os.environ.get("STREAMFLIX_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    # muted test videos start without a click
    "--autoplay-policy=no-user-gesture-required",
]
PASSWORD = "correct horse battery staple"
# The checkout's own `streamflix` command, beside the interpreter running the tests.
STREAMFLIX = Path(sys.executable).with_name("streamflix")


def sign_in(page: Any, base: str, account: dict[str, str]) -> None:
    """Log in through the login page and wait for home."""
    page.goto(base + "/login")
    page.fill("#email", account["email"])
    page.fill("#password", account["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + "/")


# ---- the app on a free port ---------------------------------------------------------------


class LiveServer:
    """`create_app(settings)` served as `streamflix serve` does (server.origin.edge.Runner: the
    stream fast path in front of aiohttp) on 127.0.0.1:<free port>, in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="live-server", daemon=True)
        self.runner: Any = None
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def _start(self) -> int:
        from aiohttp import web

        from server.app import create_app
        from server.origin.edge import Runner

        self.runner = Runner(create_app(self.settings), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)  # port 0: others test at the same time
        await site.start()
        return self.runner.addresses[0][1]

    def start(self) -> LiveServer:
        self.thread.start()
        self.port = self.call(self._start(), timeout=60)
        return self

    def stop(self) -> None:
        if self.runner is not None:
            self.call(self.runner.cleanup(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def call(self, coro: Any, timeout: float = 300) -> Any:
        """Run a coroutine on the server's loop (database set-up next to the running app)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- a tiny JSON client, as a script would use the API ------------------------------

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + "/api/v1" + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                return resp.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except ValueError:
                return exc.code, raw.decode(errors="replace")

    def register_and_login(self, email: str | None = None, password: str = PASSWORD) -> dict[str, str]:
        email = email or f"web-{secrets.token_hex(4)}@example.com"
        status, body = self.api("POST", "/auth/register", {"email": email, "password": password})
        assert status == 201, body
        return self.login(email, password)

    def login(self, email: str, password: str = PASSWORD) -> dict[str, str]:
        status, body = self.api("POST", "/auth/login", {"email": email, "password": password})
        assert status == 200, body
        return {"email": email, "password": password, **body}

    def create_admin(self) -> dict[str, str]:
        email = f"admin-{secrets.token_hex(4)}@example.com"

        async def make() -> None:
            import asyncpg

            from auth import users

            conn = await asyncpg.connect(self.settings.database_url)
            try:
                await users.create_user(conn, email=email, password=PASSWORD, display_name="Admin", role="admin")
            finally:
                await conn.close()

        self.call(make())
        return {"email": email, "password": PASSWORD}

    # -- titles through the real pipeline ------------------------------------------------

    def ingest_ready(self, clip: Path, *, expect: str = "ready", **fields: Any) -> dict[str, Any]:
        """Ingest `clip` and transcode it with the real worker; returns the title as JSON."""
        return self.call(_ingest_ready(self.settings, clip, expect=expect, **fields), timeout=600)

    def create_title(self, **fields: Any) -> dict[str, Any]:
        """A catalog row without media (stays `pending`), e.g. for odd titles."""

        async def make() -> dict[str, Any]:
            import asyncpg

            from catalog import titles
            from server.api.links import poster_url

            conn = await asyncpg.connect(self.settings.database_url)
            try:
                return (await titles.create_title(conn, **fields)).to_json(poster_url)
            finally:
                await conn.close()

        return self.call(make())


class ServeProcess(LiveServer):
    """`streamflix serve` in an OS process of its own on a free port of 127.0.0.1, configured by
    `settings` through its environment (every field as its `STREAMFLIX_*` variable). The
    LiveServer helpers work against it: `api` and `register_and_login` over HTTP, `ingest_ready`
    and `call` on LiveServer's set-up loop (a thread: Playwright's sync API owns the test
    thread's loop). Its output goes to `stdout` and `stderr` files in `cwd`."""

    def __init__(self, settings: Settings, cwd: Path, streamflix: Path = STREAMFLIX) -> None:
        super().__init__(settings)
        self.cwd, self.streamflix = cwd, streamflix
        self.proc: subprocess.Popen[bytes] | None = None
        self.logs: list[Any] = []

    def base_env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}

    def env(self) -> dict[str, str]:
        env = self.base_env()
        for f in dataclasses.fields(self.settings):
            value = getattr(self.settings, f.name)
            if value is None:
                continue
            if isinstance(value, tuple):
                value = ",".join(value)
            elif isinstance(value, bool):
                value = "1" if value else "0"
            env[ENV_PREFIX + f.name.upper()] = str(value)
        return env

    def start(self) -> Self:
        self.thread.start()
        self.port = free_port()
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.logs = [open(self.cwd / "stdout", "wb"), open(self.cwd / "stderr", "wb")]
        self.proc = subprocess.Popen(
            [str(self.streamflix), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.cwd,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=self.logs[0],
            stderr=self.logs[1],
        )
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.stderr()
            assert time.monotonic() < deadline, "`streamflix serve` did not answer /healthz\n" + self.stderr()
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)

    def stderr(self) -> str:
        return (self.cwd / "stderr").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for log in self.logs:
            log.close()
        super().stop()


async def _ingest_ready(settings: Settings, clip: Path, *, expect: str, **fields: Any) -> dict[str, Any]:
    from server.api.links import poster_url
    from tests.support import ingest_and_transcode

    title = await ingest_and_transcode(settings, clip, **fields)
    assert title.status == expect, f"ingest ended {title.status}: {title.failure_reason}"
    return title.to_json(poster_url) | {"version": title.current_version}


@pytest.fixture(scope="session")
def web_database() -> Iterator[str]:
    """A database of the browser tests' own. The session database holds other tests' titles
    whose media lived in *their* tmp storage: a home page listing those would show broken
    posters and unplayable titles. Here every title has its media in `web_storage`."""
    from server.migrate import migrate
    from tests.conftest import _drop, _dsn_for

    name = f"sf_web_{os.getpid()}_{secrets.token_hex(3)}"
    dsn = _dsn_for(name)
    asyncio.run(migrate(dsn))
    try:
        yield dsn
    finally:
        asyncio.run(_drop(name))


@pytest.fixture(scope="session")
def web_storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    return "file://" + str(tmp_path_factory.mktemp("web-media"))


@pytest.fixture
def web_settings(settings: Settings, web_database: str, web_storage: str) -> Settings:
    """The `settings` fixture pointed at the browser tests' database and storage, with a Redis
    prefix of their own (the catalog's response cache must not answer from another database)."""
    return dataclasses.replace(
        settings,
        database_url=web_database,
        storage_url=web_storage,
        redis_prefix=f"sftest:web:{os.getpid()}:{secrets.token_hex(3)}:",
    )


@pytest.fixture
def live_server(web_settings: Settings) -> Iterator[LiveServer]:
    server = LiveServer(web_settings).start()
    try:
        yield server
    finally:
        server.stop()


# ---- the browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no chromium at {CHROMIUM}: run `make test` (scripts/setup.sh --browser installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # executable_path: Debian's chromium; Playwright never downloads a browser here.
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageWatch:
    """What a page did that a test must not ignore: console errors, uncaught exceptions,
    HTTP answers >= 400, failed requests, and JS dialogs (an XSS would open one)."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    bad_responses: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    responses: list[tuple[int, str]] = field(default_factory=list)
    allow_status: Callable[[int, str], bool] = lambda status, url: False

    def attach(self, page: Any) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        page.on("response", self._response)
        page.on("requestfailed", self._failed)
        page.on("dialog", self._dialog)
        page.on("request", self._request)

    def _console(self, msg: Any) -> None:
        if msg.type == "error":
            self.console_errors.append(f"{msg.text} @ {msg.location}")

    def _response(self, resp: Any) -> None:
        self.responses.append((resp.status, resp.url))
        if resp.status >= 400 and not self.allow_status(resp.status, resp.url):
            self.bad_responses.append(f"{resp.status} {resp.request.method} {resp.url}")

    def _failed(self, req: Any) -> None:
        failure = req.failure or ""
        # a navigation or player teardown cancels requests in flight: not an error
        if "ERR_ABORTED" in failure:
            return
        self.failed_requests.append(f"{req.method} {req.url}: {failure}")

    def _request(self, req: Any) -> None:
        # Nothing from the internet at run time: every request stays on the test server.
        url = urlsplit(req.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in ("127.0.0.1", "localhost"):
            self.external_requests.append(f"{req.method} {req.url}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def assert_clean(self) -> None:
        problems = {
            "console errors": self.console_errors,
            "page errors": self.page_errors,
            "HTTP errors": self.bad_responses,
            "failed requests": self.failed_requests,
            "dialogs": self.dialogs,
            "requests off the app's origin": self.external_requests,
        }
        assert not any(problems.values()), json.dumps(problems, indent=2)


@pytest.fixture
def new_context(browser: Any) -> Iterator[Callable[..., tuple[Any, Any, PageWatch]]]:
    """new_context(width=1440, height=900, **opts) -> (context, page, watch)."""
    contexts: list[Any] = []

    def make(width: int = 1440, height: int = 900, **opts: Any) -> tuple[Any, Any, PageWatch]:
        ctx = browser.new_context(viewport={"width": width, "height": height}, **opts)
        ctx.set_default_timeout(20_000)
        contexts.append(ctx)
        page = ctx.new_page()
        watch = PageWatch()
        watch.attach(page)
        return ctx, page, watch

    yield make
    for ctx in contexts:
        ctx.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
