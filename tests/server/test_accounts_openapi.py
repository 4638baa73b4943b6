"""The OpenAPI document covers every /api/v1 route, and the running app conforms to it
(schemathesis: generated requests, no 5xx, documented statuses, content types and bodies)."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from server.api.openapi import OPENAPI_PATH, UndocumentedRoute, api_operations, build_spec
from server.app import create_app
from server.settings import Settings

PASSWORD = "correct horse battery"


def _api_routes(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/api/v1/") and route.method not in ("HEAD", "OPTIONS", "*"):
            out.add((route.method.lower(), path))
    return out


def test_every_registered_api_route_is_documented(settings):
    """Every /api/v1 route of the app is in the document, with a success response, and the
    document has no route the app lacks."""
    app = create_app(settings)
    spec = build_spec(app)
    documented = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert documented == _api_routes(app)
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            # 101 Switching Protocols is a WebSocket route's success (the real-time socket)
            ok = [code for code in op["responses"] if code.startswith("2") or code == "101"]
            assert len(ok) == 1, (method, path)
            if ok != ["204"]:
                assert op["responses"][ok[0]].get("content"), f"{method} {path}: its answer is not described"


def test_a_route_without_a_declaration_fails_the_document(settings):
    """A handler added with plain aiohttp routing (no Operation) cannot slip through
    undocumented: building the document, and so starting the app, fails."""
    app = create_app(settings)

    async def stray(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/api/v1/stray", stray)
    with pytest.raises(UndocumentedRoute, match="/api/v1/stray"):
        build_spec(app)
    assert all(op.path != "/api/v1/stray" for op in api_operations(create_app(settings)))


def test_no_schema_is_a_bare_object(settings):
    """Every response and request schema comes from a model: no `{"type": "object"}` stand-in."""
    spec = build_spec(create_app(settings))
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for code, response in op["responses"].items():
                for media in response.get("content", {}).values():
                    assert media["schema"] != {"type": "object"}, (method, path, code)
    for name, schema in spec["components"]["schemas"].items():
        assert schema.get("properties") or schema.get("type") != "object", name


async def test_spec_is_served(app_client):
    r = await app_client.get(OPENAPI_PATH)
    assert r.status == 200 and r.content_type == "application/json"
    spec = await r.json()
    assert spec["openapi"] == "3.1.0" and "/api/v1/auth/login" in spec["paths"]
    body = spec["paths"]["/api/v1/auth/register"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    register = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert set(register["required"]) == {"email", "password"} and register["additionalProperties"] is False


# ---- schemathesis against the app on a real port ------------------------------------------


class LiveServer:
    """The full app on a free port, in a thread with its own event loop (schemathesis speaks
    blocking HTTP through requests)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.base_url = ""

    def _run(self) -> None:
        from aiohttp import web

        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(create_app(self.settings))
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        port = runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.runner = runner
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def __enter__(self) -> LiveServer:
        self.thread.start()
        assert self.ready.wait(30), "server did not start"
        return self

    def __exit__(self, *exc: Any) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


@pytest.fixture(scope="module")
def live(database_url: str, redis_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    s = Settings.load(
        env={},
        overrides={
            "database_url": database_url,
            "redis_url": "redis://127.0.0.1:6379/0",
            "redis_prefix": redis_prefix + "st" + secrets.token_hex(3) + ":",
            "data_dir": str(tmp_path_factory.mktemp("schemathesis")),
            "secret_key": "schemathesis-" + redis_prefix,
        },
    )
    s = dataclasses.replace(
        s,
        rate_limit_api_per_min=0,
        rate_limit_login_per_min=0,
        rate_limit_login_account_per_min=0,
        rate_limit_register_per_min=0,
        rate_limit_register_account_per_min=0,
        rate_limit_reset_per_min=0,
        rate_limit_reset_account_per_min=0,
        rate_limit_verify_account_per_min=0,
    )
    with LiveServer(s) as server:
        email = f"st-{secrets.token_hex(4)}@example.com"
        r = requests.post(f"{server.base_url}/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        assert r.status_code == 201, r.text
        yield {"base_url": server.base_url, "email": email, "started": time.monotonic()}


def _token(live: dict) -> str:
    """A session's access token, replaced when a generated logout or sign-out revoked it
    (checked with one cheap GET instead of an argon2 login per case)."""
    token = live.get("token")
    if (
        token
        and requests.get(
            f"{live['base_url']}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).status_code
        == 200
    ):
        return token
    r = requests.post(f"{live['base_url']}/api/v1/auth/login", json={"email": live["email"], "password": PASSWORD})
    assert r.status_code == 200, r.text
    live["token"] = r.json()["access_token"]
    return live["token"]


# The document of an app built from settings that need nothing running (routes only).
schema = schemathesis.openapi.from_dict(build_spec(create_app(Settings(secret_key="openapi-document"))))
# Where a schema-valid body can still be wrong by meaning (an unknown link token, an address
# the schema cannot describe, an opaque cursor), 400 is the right answer to it: schemathesis'
# "valid data must be accepted" check does not apply there.
SEMANTIC_400 = {
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/verify-email"),
    ("POST", "/api/v1/auth/password-reset"),
    ("GET", "/api/v1/admin/users"),
    ("GET", "/api/v1/titles"),
    ("PUT", "/api/v1/me/history/{title_id}"),
    ("GET", "/api/v1/search"),  # q: at most 200 characters once normalised
    ("GET", "/api/v1/search/suggest"),  # client_ts: a timestamp the schema calls a string
}
# Bounded: a few examples per operation, no shrinking marathons. ~35 operations in < 60 s.
MAX_EXAMPLES = 6


@schema.parametrize()
@hsettings(
    max_examples=MAX_EXAMPLES, deadline=5000, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
def test_api_conforms_to_spec(case, live):
    assert time.monotonic() - live["started"] < 60, "schemathesis run over its time budget"
    headers = {"Authorization": f"Bearer {_token(live)}"} if case.operation.definition.raw.get("security") else {}
    excluded = [positive_data_acceptance] if (case.method.upper(), case.path) in SEMANTIC_400 else []
    if "accounts" not in case.operation.definition.raw.get("tags", []):
        # Other areas' routes: no 5xx and responses as documented. Whether they refuse every
        # schema-violating input (e.g. an empty ?limit=) is their call to tighten.
        excluded += [positive_data_acceptance, negative_data_rejection]
    case.call_and_validate(base_url=live["base_url"], headers=headers, excluded_checks=excluded, timeout=10)
