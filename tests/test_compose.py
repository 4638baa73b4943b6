"""docker-compose.yml and the Dockerfile, checked by reading them (Docker cannot run here)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
# The public configuration variables: renaming one breaks every deployment that sets it.
CONTRACT_VARIABLES = {
    "STREAMFLIX_DATABASE_URL",
    "STREAMFLIX_REDIS_URL",
    "STREAMFLIX_STORAGE_URL",
    "STREAMFLIX_S3_ENDPOINT_URL",
    "STREAMFLIX_DATA_DIR",
    "STREAMFLIX_SECRET_KEY",
    "STREAMFLIX_HOST",
    "STREAMFLIX_PORT",
    "STREAMFLIX_PUBLIC_URL",
}
APP_SERVICES = ("server", "worker")


@pytest.fixture(scope="module")
def text() -> str:
    return (ROOT / "docker-compose.yml").read_text()


@pytest.fixture(scope="module")
def services(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)["services"]


def _words(value: Any) -> str:
    """A command, entrypoint or healthcheck test (string or list) as one string."""
    return " ".join(value) if isinstance(value, list) else str(value)


def test_public_variables_are_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    assert CONTRACT_VARIABLES <= set(re.findall(r"STREAMFLIX_[A-Z0-9_]+", readme))


def test_services(services: dict[str, Any]) -> None:
    assert {"postgres", "redis", "minio", "minio-init", "server", "worker"} <= set(services)
    assert "serve" in _words(services["server"]["command"])
    assert "--host 0.0.0.0" in _words(services["server"]["command"])
    assert _words(services["worker"]["command"]).split()[-1] == "worker"
    for name in APP_SERVICES:
        assert services[name]["build"] == "."
    assert services["server"]["ports"] == ["8080:8080"]


def test_healthchecks(services: dict[str, Any]) -> None:
    assert "pg_isready" in _words(services["postgres"]["healthcheck"]["test"])
    assert "redis-cli ping" in _words(services["redis"]["healthcheck"]["test"])
    assert services["minio"]["healthcheck"]["test"]
    server_check = _words(services["server"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8080/healthz" in server_check


def test_migrations_run_before_serving(services: dict[str, Any]) -> None:
    migrate = services.get("migrate")
    if migrate is not None:
        assert _words(migrate["command"]).endswith("streamflix migrate")
        assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
        for name in APP_SERVICES:
            assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    else:
        assert "streamflix migrate &&" in _words(services["server"]["command"])


def test_dependencies_wait_for_health(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        deps = services[name]["depends_on"]
        for dep in ("postgres", "redis", "minio"):
            assert deps[dep]["condition"] == "service_healthy", (name, dep)
        assert deps["minio-init"]["condition"] == "service_completed_successfully"
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"


def test_bucket_is_created_and_credentials_match(services: dict[str, Any]) -> None:
    init = services["minio-init"]
    assert init["image"].startswith("minio/mc")
    script = _words(init.get("entrypoint", "")) + " " + _words(init.get("command", ""))
    for name in APP_SERVICES:
        env = services[name]["environment"]
        m = re.fullmatch(r"s3://([a-z0-9.-]+)/\S+", env["STREAMFLIX_STORAGE_URL"])
        assert m, env["STREAMFLIX_STORAGE_URL"]
        assert f"mc mb --ignore-existing local/{m.group(1)}" in script
        assert env["STREAMFLIX_S3_ENDPOINT_URL"] == "http://minio:9000"
        minio = services["minio"]["environment"]
        assert env["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
        assert env["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
        assert env["STREAMFLIX_DATABASE_URL"].split("@")[1].startswith("postgres:5432/")
        assert env["STREAMFLIX_REDIS_URL"].startswith("redis://redis:6379")


def test_every_streamflix_variable_is_known(text: str, services: dict[str, Any]) -> None:
    from_settings = {ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}
    used = set(re.findall(r"STREAMFLIX_[A-Z0-9_]+", text))
    assert used, "compose sets no STREAMFLIX_* variable"
    assert used <= CONTRACT_VARIABLES | from_settings, used - CONTRACT_VARIABLES - from_settings
    # and the ones the apps get are real settings, so Settings.load picks them up
    for name in APP_SERVICES:
        env_names = {k for k in services[name]["environment"] if k.startswith(ENV_PREFIX)}
        assert env_names <= from_settings


def _stages(dockerfile: str) -> dict[str, str]:
    """Each build stage's text by its `AS` name; the final (unnamed) stage is "final"."""
    parts = re.split(r"^(?=FROM )", dockerfile, flags=re.M)
    out = {}
    for part in parts[1:]:
        m = re.match(r"FROM \S+(?: AS (\S+))?", part)
        assert m, part[:80]
        out[m.group(1) or "final"] = part
    return out


def test_dockerfile() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = _stages(dockerfile)
    final, wheel = stages["final"], stages["wheel"]
    assert re.search(r"^FROM python:3\.11-slim\s*$", final, re.M)
    assert re.search(r"apt-get install\b.*\bffmpeg\b", final)
    # The image installs the wheel, built as anywhere else (setup.py puts the player libraries
    # from node_modules into it): never the checkout's files beside site-packages.
    assert re.search(r"^RUN pip install /wheels/\*\.whl\b", final, re.M)
    assert "COPY --from=wheel /wheels /wheels" in final
    build = wheel.index("RUN pip wheel --no-deps --wheel-dir /wheels .")
    # every package the distribution ships, setup.py and the npm packages are there before it
    for pkg in ("server", "transcoder", "catalog", "auth", "packager", "media"):
        assert 0 <= wheel.find(f"COPY {pkg} ./{pkg}") < build, pkg
    assert 0 <= wheel.find("setup.py") < build
    assert 0 <= wheel.find("COPY --from=web /src/node_modules ./node_modules") < build
    assert "npm ci" in stages["web"] and "package-lock.json" in stages["web"]
