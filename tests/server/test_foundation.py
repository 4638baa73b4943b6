"""The foundation: settings precedence, migrations, the error shape, minimal login."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from server.cli import main
from server.migrate import migrate
from server.settings import ConfigError, Settings


def test_settings_precedence(tmp_path):
    cfg = tmp_path / "sf.toml"
    cfg.write_text('port = 9000\nhost = "0.0.0.0"\nredis_url = "redis://file/1"\nsecret_key = "k"\n')
    s = Settings.load(
        config_file=cfg,
        env={"STREAMFLIX_PORT": "9100", "STREAMFLIX_DATA_DIR": str(tmp_path)},
        overrides={"port": 9200, "host": None},
    )
    assert s.port == 9200  # flag beats env
    assert s.host == "0.0.0.0"  # file applies where nothing else says
    assert s.redis_url == "redis://file/1"
    assert s.storage_url == "file://" + str(tmp_path / "media")


def test_settings_env_beats_file(tmp_path):
    cfg = tmp_path / "sf.toml"
    cfg.write_text('[streamflix]\nport = 9000\nsecret_key = "k"\n')
    s = Settings.load(config_file=cfg, env={"STREAMFLIX_PORT": "9100", "STREAMFLIX_DATA_DIR": str(tmp_path)})
    assert s.port == 9100


def test_storage_settings_from_env_reach_the_backend_and_the_s3_client(tmp_path):
    """Seconds are floats in the environment too (`2.5`, not only whole numbers)."""
    from media.storage_s3 import S3Storage

    env = {
        "STREAMFLIX_DATA_DIR": str(tmp_path),
        "STREAMFLIX_SECRET_KEY": "k",
        "STREAMFLIX_STORAGE_THREADS": "3",
        "STREAMFLIX_STORAGE_WAIT_S": "0.5",
        "STREAMFLIX_S3_CONNECT_TIMEOUT_S": "1.5",
        "STREAMFLIX_S3_READ_TIMEOUT_S": "2.5",
        "STREAMFLIX_S3_MAX_ATTEMPTS": "1",
        "STREAMFLIX_STORAGE_BREAKER_S": "0.75",
        "STREAMFLIX_PASSWORD_THREADS": "2",
    }
    s = Settings.load(env=env)
    assert (s.storage_wait_s, s.s3_read_timeout_s, s.storage_breaker_s, s.password_threads) == (0.5, 2.5, 0.75, 2)
    st = S3Storage("s3://b/p", endpoint_url="http://127.0.0.1:1", options=s.storage_options)
    try:
        config = st._client.meta.config
        assert (config.connect_timeout, config.read_timeout, config.retries["total_max_attempts"]) == (1.5, 2.5, 1)
        assert st.pool.size == 3 and st.pool.wait_s == 0.5
    finally:
        st.pool.close()
        st._client.close()


@pytest.mark.parametrize(
    "text",
    [pytest.param("port = [", id="bad-toml"), pytest.param("nope = 1", id="unknown-key")],
)
def test_settings_bad_file(tmp_path, text):
    cfg = tmp_path / "sf.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError):
        Settings.load(config_file=cfg, env={})


def test_secret_generated_once(tmp_path, capsys):
    a = Settings.load(env={"STREAMFLIX_DATA_DIR": str(tmp_path)})
    b = Settings.load(env={"STREAMFLIX_DATA_DIR": str(tmp_path)})
    assert a.secret_key and a.secret_key == b.secret_key
    assert "STREAMFLIX_SECRET_KEY" in capsys.readouterr().err
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


async def test_migrate_twice_concurrently(database_url):
    # The session database is already migrated: two concurrent runs find nothing to do.
    results = await asyncio.gather(migrate(database_url), migrate(database_url))
    assert results == [[], []]
    conn = await asyncpg.connect(database_url)
    try:
        schemas = {r["nspname"] for r in await conn.fetch("SELECT nspname FROM pg_namespace")}
    finally:
        await conn.close()
    assert {"auth", "catalog", "jobs"} <= schemas


async def test_migrate_fresh_database_concurrently():
    import secrets

    from tests.conftest import _drop, _dsn_for

    name = f"sf_test_mig_{secrets.token_hex(3)}"
    dsn = _dsn_for(name)
    try:
        a, b = await asyncio.gather(migrate(dsn), migrate(dsn))
        assert sorted(a + b) == sorted(set(a + b)) and len(a + b) >= 3
    finally:
        await _drop(name)


async def test_pending_migrations_and_the_commands_refusal(database_url, tmp_path, capsys):
    import secrets

    from server.migrate import discover, pending
    from tests.conftest import _drop, _dsn_for

    conn = await asyncpg.connect(database_url)
    try:
        assert await pending(conn) == []  # the session database is migrated
    finally:
        await conn.close()
    name = f"sf_test_pend_{secrets.token_hex(3)}"
    dsn = _dsn_for(name)
    try:
        await migrate(dsn, packages=("auth",))  # half a database: catalog and transcoder missing
        conn = await asyncpg.connect(dsn)
        try:
            left = await pending(conn)
        finally:
            await conn.close()
        assert left == [f"{m.package}/{m.number:04d}_{m.name}" for m in discover() if m.package != "auth"]
        # a command that needs the database says what to do, in one line, and exits 1
        code = await asyncio.to_thread(main, ["titles", "list", "--config", str(_config(tmp_path, dsn))])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and "run `streamflix migrate`" in err[0], err
    finally:
        await _drop(name)


def _config(tmp_path, dsn):
    cfg = tmp_path / "sf.toml"
    cfg.write_text(f'database_url = "{dsn}"\nsecret_key = "k"\ndata_dir = "{tmp_path}"\n')
    return cfg


def test_cli_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--port", "zero"])
    assert exc.value.code == 2


def test_cli_failure_is_one_line(capsys, tmp_path):
    code = main(["--config", str(tmp_path / "missing.toml"), "migrate"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "config file not found" in err[0]


async def test_error_shape_and_login(app_client):
    r = await app_client.get("/api/v1/me")
    assert r.status == 401
    body = await r.json()
    assert set(body) == {"error"} and body["error"]["code"] == "invalid_token"

    r = await app_client.post("/api/v1/auth/register", data="nope", headers={"Content-Type": "text/plain"})
    assert r.status == 415
    r = await app_client.post("/api/v1/auth/register", data="{", headers={"Content-Type": "application/json"})
    assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_json"


async def test_register_login_me(app_client, user_token):
    r = await app_client.get("/api/v1/me", headers={"Authorization": f"Bearer {user_token['access_token']}"})
    assert r.status == 200
    assert (await r.json())["email"] == user_token["email"]
    r = await app_client.post(
        "/api/v1/auth/login", json={"email": user_token["email"].upper(), "password": "wrong password!"}
    )
    assert r.status == 401
