"""The web player's libraries (hls.js, dash.js, Shaka Player): which files the server answers at `/vendor/*`,
where `npm ci` puts them, and their licence files.

A checkout serves them from `node_modules/` (scripts/setup.sh runs `npm ci`); a wheel carries
copies in `server/static/vendor/`, made by setup.py's build step from the same table, with the
versions package-lock.json pins. setup.py loads this file by path before anything is installed,
so it imports nothing but the standard library.
"""

from __future__ import annotations

from pathlib import Path

# Inside the `server` package: where a wheel carries the files.
VENDOR_DIR = Path("static") / "vendor"

# Public name (under /vendor/) -> (npm package, file inside that package).
FILES: dict[str, tuple[str, str]] = {
    "hls.min.mjs": ("hls.js", "dist/hls.min.mjs"),
    "hls.mjs": ("hls.js", "dist/hls.mjs"),
    "hls.min.js": ("hls.js", "dist/hls.min.js"),
    "dash.all.min.js": ("dashjs", "dist/modern/umd/dash.all.min.js"),
    "dash.all.debug.js": ("dashjs", "dist/modern/umd/dash.all.debug.js"),
    "shaka-player.compiled.js": ("shaka-player", "dist/shaka-player.compiled.js"),
    # the admin's resumable uploads (docs/uploads.md): a UMD bundle, window.tus
    "tus.min.js": ("tus-js-client", "dist/tus.min.js"),
}

# npm package -> its licence files, shipped beside the libraries as `<package>-<file name>`.
LICENCES: dict[str, tuple[str, ...]] = {
    "hls.js": ("LICENSE",),
    # dash.js's own licence, and the notices of what its bundle includes.
    "dashjs": ("LICENSE.md", "dist/modern/umd/dash.all.min.js.LICENSE.txt"),
    "shaka-player": ("LICENSE",),
    "tus-js-client": ("LICENSE",),
}

# Written by the build step: each package's version, licence and integrity from package-lock.json.
VERSIONS_FILE = "versions.json"

HOW_TO_GET = "in a checkout run scripts/setup.sh (npm ci); a wheel must be built where `npm ci` has run"


def licence_name(package: str, rel: str) -> str:
    """The name a licence file gets in the vendor directory: `hls.js-LICENSE`."""
    return f"{package}-{Path(rel).name}"


def shipped_files() -> dict[str, tuple[str, str]]:
    """Every file the build copies from node_modules: name in the vendor dir -> (package, path)."""
    out = dict(FILES)
    for package, rels in LICENCES.items():
        for rel in rels:
            out[licence_name(package, rel)] = (package, rel)
    return out
