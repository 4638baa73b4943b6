"""packager/ is pure (docs/architecture.md): it takes data and returns text, so it imports no I/O."""

import ast
from pathlib import Path

import pytest

import packager

PACKAGE_DIR = Path(packager.__file__).resolve().parent
FORBIDDEN = {
    "aiohttp",
    "asyncpg",
    "redis",
    "boto3",
    "botocore",
    "aiobotocore",
    "subprocess",
    "socket",
    "requests",
    "httpx",
    "aiofiles",
    "urllib.request",
    "http.client",
    "asyncio",
    "shutil",
    # imports point down only: packager sits below every package that does I/O
    "server",
    "transcoder",
    "catalog",
    "auth",
    "media",
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"open", "__import__"}:
            names.add(f"<call {node.func.id}>")
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE_DIR.glob("*.py")), ids=lambda p: p.name)
def test_no_io_imports(path):
    bad = {
        name
        for name in _imports(path)
        if name.startswith("<call") or any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"
