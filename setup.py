"""Build hook: a wheel (or sdist) of StreamFlix carries the web player's libraries.

The server answers `/vendor/hls.min.mjs` and the other files of server/vendor.py's table; in a
checkout they live in `node_modules/` (`npm ci`, scripts/setup.sh), which a wheel installed
elsewhere does not have. So the build copies them, with their licence files and the versions
package-lock.json pins, into `server/static/vendor/` of the build tree, and fails, naming the
missing file, when `npm ci` has not run. An editable install (`pip install -e .`) copies
nothing: the checkout serves `node_modules/` directly.

Everything else (metadata, packages, package data) is declared in pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.errors import SetupError

ROOT = Path(__file__).resolve().parent
NODE_MODULES = ROOT / "node_modules"
LOCK = ROOT / "package-lock.json"


def _vendor_table() -> ModuleType:
    # By path, not `import server.vendor`: the build environment has none of the server's deps.
    spec = importlib.util.spec_from_file_location("_streamflix_vendor", ROOT / "server" / "vendor.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


VENDOR = _vendor_table()
# Where an sdist carries the files (it has no node_modules): the wheel built from it reuses them.
PREBUILT = ROOT / "server" / VENDOR.VENDOR_DIR


def _versions() -> dict[str, dict[str, str]]:
    """Each vendored package as package-lock.json pins it, checked against node_modules."""
    if not LOCK.is_file():
        raise SetupError("package-lock.json is missing: the player libraries' versions are pinned there")
    packages = json.loads(LOCK.read_text())["packages"]
    out = {}
    for package in sorted(set(VENDOR.LICENCES) | {p for p, _ in VENDOR.FILES.values()}):
        pinned = packages.get(f"node_modules/{package}")
        if pinned is None:
            raise SetupError(f"package-lock.json does not pin {package}")
        installed = json.loads((NODE_MODULES / package / "package.json").read_text())["version"]
        if installed != pinned["version"]:
            raise SetupError(
                f"node_modules/{package} is {installed} but package-lock.json pins {pinned['version']}: run `npm ci`"
            )
        out[package] = {k: pinned[k] for k in ("version", "license", "integrity") if k in pinned}
    return out


def vendor_contents() -> dict[str, bytes]:
    """Name in server/static/vendor/ -> bytes: the libraries, their licences, versions.json."""
    names = VENDOR.shipped_files()
    if not NODE_MODULES.is_dir() and all((PREBUILT / name).is_file() for name in [*names, VENDOR.VERSIONS_FILE]):
        return {name: (PREBUILT / name).read_bytes() for name in [*names, VENDOR.VERSIONS_FILE]}
    if not NODE_MODULES.is_dir():
        raise SetupError(
            "node_modules/ is missing: run `npm ci` (or scripts/setup.sh) in the source tree before "
            "building; the wheel carries the web player's libraries (hls.js, dash.js) from there"
        )
    missing = [f"node_modules/{p}/{rel}" for p, rel in names.values() if not (NODE_MODULES / p / rel).is_file()]
    if missing:
        raise SetupError(
            f"the web player's libraries are missing ({', '.join(missing)}): run `npm ci` "
            "(or scripts/setup.sh) in the source tree before building; the wheel carries them"
        )
    out = {name: (NODE_MODULES / p / rel).read_bytes() for name, (p, rel) in names.items()}
    out[VENDOR.VERSIONS_FILE] = (json.dumps(_versions(), indent=2, sort_keys=True) + "\n").encode()
    return out


def _write(directory: Path, contents: dict[str, bytes]) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (directory / name).write_bytes(data)
    return [str(directory / name) for name in contents]


def _vendor_names() -> list[str]:
    return [*VENDOR.shipped_files(), VENDOR.VERSIONS_FILE]


class BuildPyWithVendor(build_py):
    """build_py, plus the player libraries copied into the built `server` package."""

    def run(self) -> None:
        if not self.editable_mode:
            # setuptools never empties build/lib, and bdist_wheel ships all of it: a module moved
            # or deleted since an earlier build would still be in the wheel.
            for top in {name.split(".")[0] for name in self.packages or ()}:
                shutil.rmtree(Path(self.build_lib) / top, ignore_errors=True)
        super().run()
        if not self.editable_mode:
            _write(Path(self.build_lib) / "server" / VENDOR.VENDOR_DIR, vendor_contents())

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if not self.editable_mode:
            directory = Path(self.build_lib) / "server" / VENDOR.VENDOR_DIR
            outputs += [str(directory / name) for name in _vendor_names() if str(directory / name) not in outputs]
        return outputs


class SdistWithVendor(sdist):
    """An sdist has no node_modules: it carries the copies, and its wheel reuses them."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        target = Path(base_dir) / "server" / VENDOR.VENDOR_DIR
        if target.exists():
            shutil.rmtree(target)
        _write(target, vendor_contents())


setup(cmdclass={"build_py": BuildPyWithVendor, "sdist": SdistWithVendor})
