# The two commands of the README: `make demo` (a server with a playable title) and
# `make test` (the whole suite). Both do their own set-up and are safe to run again.
.PHONY: setup demo test bench lint

setup:
	scripts/setup.sh

demo:
	scripts/setup.sh
	.venv/bin/streamflix demo

# The suite includes the static checks (tests/test_checks.py); `make lint` runs only those.
# Two pytest processes, a test file each at a time (pytest-xdist); PYTEST_ARGS="-n 0" runs
# them in one. Tests marked `exclusive` run alone either way (tests/exclusive.py).
test:
	scripts/setup.sh --browser
	.venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile $(PYTEST_ARGS)

lint:
	.venv/bin/lint-imports
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

bench:
	scripts/setup.sh --bench
	.venv/bin/python bench/transcode.py
	.venv/bin/python bench/serve.py
	.venv/bin/python bench/fastpath_profile.py
	.venv/bin/python bench/viewers.py
	.venv/bin/python bench/soak.py
	.venv/bin/python bench/auth.py
	.venv/bin/python bench/catalog.py
	.venv/bin/python bench/realtime.py
