"""The static checks, run as part of the suite so `make test` and CI count them.

Each test runs one tool from the repository root with the configuration in pyproject.toml
(import-linter contracts, ruff rules and format, mypy) and fails with the tool's own output.
Run a tool alone the same way, e.g. `.venv/bin/lint-imports` or `.venv/bin/mypy`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The tools are installed beside the interpreter running the tests (the `test` extras).
BIN = Path(sys.executable).parent

CHECKS = [
    pytest.param(["lint-imports", "--no-cache"], id="import-contracts"),
    pytest.param(["ruff", "check", "--no-fix", "--output-format", "concise", "."], id="ruff-lint"),
    pytest.param(["ruff", "format", "--check", "."], id="ruff-format"),
    pytest.param(["mypy"], id="mypy"),
]
# Where our Python lives; node_modules, .venv and var are not ours.
SOURCE_DIRS = ["server", "transcoder", "catalog", "auth", "packager", "media", "tests", "bench", "scripts"]
# `# type: ignore[error-code]  # why`: mypy checks the code (ignore-without-code); this, the why.
IGNORE = re.compile(r"#\s*type:\s*ignore\b(?P<rest>.*)$")
IGNORE_WITH_REASON = re.compile(r"^\[[\w,\s-]+\]\s+#\s*\S")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("argv", CHECKS)
def test_check_passes(argv: list[str]) -> None:
    tool = BIN / argv[0]
    assert tool.exists(), f"{argv[0]} is not installed beside {sys.executable}: pip install -e '.[test]'"
    result = subprocess.run([str(tool), *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        pytest.fail(f"`{' '.join(argv)}` failed ({result.returncode}):\n{result.stdout}{result.stderr}", pytrace=False)


def test_every_type_ignore_says_why() -> None:
    bare = []
    for top in SOURCE_DIRS:
        for path in sorted((ROOT / top).rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                found = IGNORE.search(line)
                if found and not IGNORE_WITH_REASON.match(found["rest"].strip()):
                    bare.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not bare, "a `type: ignore` without `[code]  # reason`:\n" + "\n".join(bare)
