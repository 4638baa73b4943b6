"""`streamflix users create|list|set-role`, run in-process and as a real subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from server.cli import main
from tests.server.accounts_util import PASSWORD, unique_email


@pytest.fixture
def cli_env(settings, monkeypatch):
    env = {
        "STREAMFLIX_DATABASE_URL": settings.database_url,
        "STREAMFLIX_REDIS_URL": settings.redis_url,
        "STREAMFLIX_REDIS_PREFIX": settings.redis_prefix,
        "STREAMFLIX_DATA_DIR": settings.data_dir,
        "STREAMFLIX_SECRET_KEY": settings.secret_key,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def run_cli(argv, stdin="", monkeypatch=None):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(argv)


def test_create_list_set_role(cli_env, monkeypatch, capsys):
    email = unique_email("Cli")
    assert (
        run_cli(
            ["users", "create", email, "--admin", "--password-stdin", "--display-name", "Ops"],
            PASSWORD + "\n",
            monkeypatch,
        )
        == 0
    )
    out = capsys.readouterr()
    user_id = out.out.strip()
    assert len(user_id) == 36 and f"created admin {email}" in out.err

    assert run_cli(["users", "list", "--json"], "", monkeypatch) == 0
    listed = {u["email"]: u for u in json.loads(capsys.readouterr().out)}
    assert listed[email]["role"] == "admin" and listed[email]["display_name"] == "Ops"
    assert listed[email]["id"] == user_id

    assert run_cli(["users", "list"], "", monkeypatch) == 0
    table = capsys.readouterr().out
    assert table.startswith("ID") and email in table

    second = unique_email("Cli")
    assert run_cli(["users", "create", second, "--admin", "--password-stdin"], PASSWORD, monkeypatch) == 0
    assert run_cli(["users", "set-role", email.upper(), "viewer"], "", monkeypatch) == 0
    assert "is now viewer" in capsys.readouterr().out


async def test_last_admin_cannot_be_demoted():
    """In a database of its own, so other tests' admins do not count."""
    import secrets

    import asyncpg

    from auth.errors import LastAdmin
    from auth.users import create_user, set_role
    from server.migrate import migrate
    from tests.conftest import _drop, _dsn_for

    name = f"sf_test_admin_{secrets.token_hex(3)}"
    dsn = _dsn_for(name)
    try:
        await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            a = await create_user(conn, email="a@example.com", password=PASSWORD, role="admin")
            b = await create_user(conn, email="b@example.com", password=PASSWORD, role="admin")
            await set_role(conn, b.id, "viewer")
            with pytest.raises(LastAdmin):
                await set_role(conn, a.id, "viewer")
            assert (await set_role(conn, b.id, "admin")).role == "admin"
        finally:
            await conn.close()
    finally:
        await _drop(name)


def test_duplicate_is_one_line_exit_1(cli_env, monkeypatch, capsys):
    email = unique_email()
    assert run_cli(["users", "create", email, "--password-stdin"], PASSWORD, monkeypatch) == 0
    capsys.readouterr()
    assert run_cli(["users", "create", email.upper(), "--password-stdin"], PASSWORD, monkeypatch) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0]


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        pytest.param(["users", "create", "not-an-email", "--password-stdin"], PASSWORD, "email", id="bad-email"),
        pytest.param(["users", "create", "{email}", "--password-stdin"], "short", "at least 8", id="weak"),
        pytest.param(["users", "create", "{email}", "--password-stdin"], "", "no password", id="empty-stdin"),
        pytest.param(["users", "set-role", "{email}", "admin"], "", "no user", id="unknown-user"),
    ],
)
def test_failures_are_one_line(cli_env, monkeypatch, capsys, argv, stdin, message):
    argv = [a.format(email=unique_email()) for a in argv]
    assert run_cli(argv, stdin, monkeypatch) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_no_tty_without_password_stdin_is_usage_error(cli_env, monkeypatch, capsys):
    assert run_cli(["users", "create", unique_email()], "", monkeypatch) == 2
    assert "--password-stdin" in capsys.readouterr().err


def test_bad_role_is_usage(cli_env, monkeypatch):
    with pytest.raises(SystemExit) as exc:
        run_cli(["users", "set-role", unique_email(), "root"], "", monkeypatch)
    assert exc.value.code == 2


def test_prompts_on_a_tty(cli_env, monkeypatch, capsys):
    answers = iter([PASSWORD, PASSWORD])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    monkeypatch.setattr(sys, "stdin", type("Tty", (io.StringIO,), {"isatty": lambda self: True})())
    assert main(["users", "create", unique_email()]) == 0
    answers = iter([PASSWORD, PASSWORD + "x"])
    assert main(["users", "create", unique_email()]) == 1
    assert "do not match" in capsys.readouterr().err


def test_console_script_subprocess(cli_env):
    """The real entry point, password piped in: what an operator's script does."""
    exe = os.path.join(os.path.dirname(sys.executable), "streamflix")
    argv = [exe] if os.path.exists(exe) else [sys.executable, "-m", "server.cli"]
    email = unique_email()
    p = subprocess.run(
        argv + ["users", "create", email, "--password-stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env={**os.environ, **cli_env},
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    p = subprocess.run(
        argv + ["users", "create", email, "--password-stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env={**os.environ, **cli_env},
        timeout=60,
    )
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1
