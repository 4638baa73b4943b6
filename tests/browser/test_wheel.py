"""The wheel stands alone: `pip wheel .`, installed into a fresh virtual environment outside the
repository, carries everything the server serves (the player libraries with their licences and
pinned versions, the static files, every package's migrations), and its `streamflix serve`,
started from a directory outside the checkout, plays a title in the web client in Chromium.

The fresh venv gets the wheel alone (`--no-deps`); the dependencies come from the test
interpreter's site-packages through a `.pth` path entry, which adds that directory only: the
checkout's editable-install hook there is not run, so `server`, `catalog`, ... and their files
can only come from the installed wheel (checked, not assumed)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server import vendor
from server.settings import ENV_PREFIX, Settings
from tests.browser.conftest import ServeProcess, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("server", "transcoder", "catalog", "auth", "packager", "media")
VIDEO = "document.getElementById('video')"


def _tracked(*patterns: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--", *patterns], cwd=REPO, capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheelhouse")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    (path,) = out.glob("streamflix-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the repository with the wheel installed; returns its directory."""
    root = tmp_path_factory.mktemp("installed") / "venv"
    assert REPO not in root.parents
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    (Path(purelib) / "_streamflix_test_deps.pth").write_text("".join(f"{d}\n" for d in deps))
    return root


def _clean_env() -> dict[str, str]:
    """The environment without anything that could put the checkout on sys.path."""
    drop = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(ENV_PREFIX)}


def test_wheel_carries_what_the_server_serves(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = _tracked(*(f"{p}/migrations/*.sql" for p in PACKAGES))
    assert migrations and set(migrations) <= names, sorted(set(migrations) - names)
    static = _tracked("server/static")
    assert "server/static/index.html" in static and set(static) <= names, sorted(set(static) - names)

    lock = json.loads((REPO / "package-lock.json").read_text())["packages"]
    with zipfile.ZipFile(wheel) as zf:
        for name, (package, rel) in vendor.shipped_files().items():
            data = zf.read(f"server/static/vendor/{name}")
            assert data == (REPO / "node_modules" / package / rel).read_bytes(), name
        versions = json.loads(zf.read(f"server/static/vendor/{vendor.VERSIONS_FILE}"))
    for package, pinned in versions.items():
        assert pinned["version"] == lock[f"node_modules/{package}"]["version"], package
    assert set(versions) == {package for package, _ in vendor.FILES.values()}


def test_installed_packages_come_from_the_venv(venv: Path, tmp_path: Path) -> None:
    probe = (
        "import json, sys, importlib;"
        f"mods = {{m: importlib.import_module(m).__file__ for m in {PACKAGES!r} + ('server.web',)}};"
        "from server.web import missing_vendor_files;"
        "print(json.dumps({'files': mods, 'path': sys.path, 'missing': missing_vendor_files()}))"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(out.stdout)
    for module, file in seen["files"].items():
        assert Path(file).resolve().is_relative_to(venv.resolve()), (module, file)
    assert str(REPO) not in seen["path"]
    assert seen["missing"] == []


class InstalledServer(ServeProcess):
    """The installed wheel's `streamflix serve` in a process of its own, started from a directory
    outside the checkout, with nothing in its environment that could put the checkout on
    sys.path."""

    def __init__(self, settings: Settings, venv: Path, cwd: Path) -> None:
        super().__init__(settings, cwd, streamflix=venv / "bin" / "streamflix")
        self.venv = venv

    def base_env(self) -> dict[str, str]:
        return _clean_env()


@pytest.fixture
def installed_server(venv: Path, web_settings: Settings, tmp_path: Path) -> Iterator[InstalledServer]:
    cwd = tmp_path / "run"
    cwd.mkdir()
    server = InstalledServer(web_settings, venv, cwd).start()
    try:
        yield server
    finally:
        server.stop()


def test_installed_wheel_plays_a_title_in_the_web_client(
    installed_server: InstalledServer, clip_factory: Any, new_context: Any
) -> None:
    assert "player's libraries are missing" not in installed_server.stderr()
    clip = clip_factory(seconds=12, width=640, height=360)
    title = installed_server.ingest_ready(
        clip, title=f"From the wheel {secrets.token_hex(3)}", year=2024, genres=["test"], description="Installed."
    )
    viewer = installed_server.register_and_login()
    base = installed_server.url

    _ctx, page, watch = new_context(width=1280, height=720)
    sign_in(page, base, viewer)
    page.goto(f"{base}/title/{title['id']}")
    page.locator("#play").click()
    page.wait_for_url(f"**/watch/{title['id']}")
    page.evaluate(f"() => {{ const v = {VIDEO}; if (v) v.muted = true; }}")
    page.wait_for_function(f"() => {VIDEO} && {VIDEO}.currentTime >= 2", timeout=30_000)
    first = page.evaluate(f"{VIDEO}.currentTime")
    page.wait_for_function(f"() => {VIDEO}.currentTime >= {first + 1.5}", timeout=20_000)
    assert page.evaluate(f"{VIDEO}.error") is None

    assert (200, f"{base}/vendor/hls.min.mjs") in watch.responses, watch.responses
    assert any(status == 200 and "/stream/" in url for status, url in watch.responses)
    watch.assert_clean()
