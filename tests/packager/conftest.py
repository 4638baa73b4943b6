"""Make `tests.packager.factories` importable (the repo root is not on sys.path under pytest's
default import mode, and a bare `import factories` would collide with other packages' helpers)."""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
