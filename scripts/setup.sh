#!/usr/bin/env bash
# Idempotent set-up for `make test` and `make demo` on a Debian machine with only Python:
# system packages (ffmpeg, Postgres, Redis, nginx, wrk, chromium, node) when missing,
# Postgres and Redis started when stopped, the virtual environment, Python and npm packages.
# Usage: scripts/setup.sh [--browser] [--bench]
set -euo pipefail
cd "$(dirname "$0")/.."

want_browser=0
want_bench=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    --bench) want_bench=1 ;;
  esac
done

say() { printf '==> %s\n' "$*"; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $apt_updated -eq 0 ]; then
    say "apt-get update"
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- system packages --------------------------------------------------------------------
apt_install ffmpeg postgresql redis-server nginx curl
# node/npm only when the commands are missing (next line): a NodeSource `nodejs` already ships
# npm and conflicts with Debian's `npm` package, so asking apt for both would fail there.
if [ $want_browser -eq 1 ]; then apt_install chromium fonts-dejavu-core; fi
if [ $want_bench -eq 1 ]; then apt_install wrk; fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then apt_install nodejs npm; fi

# --- Postgres ---------------------------------------------------------------------------
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  say "starting Postgres"
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -q -h 127.0.0.1 -p 5432 || { echo "Postgres did not start on 127.0.0.1:5432" >&2; exit 1; }

# A fresh Debian Postgres asks for a password on 127.0.0.1. Rather than loosen its
# authentication, give it a `streamflix` role with a generated password, kept in the data dir.
mkdir -p var
if [ -z "${STREAMFLIX_DATABASE_URL:-}" ] && [ ! -s var/database_url ] \
   && ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
  say "creating Postgres role streamflix (password in var/database_url)"
  pw=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d postgres <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'streamflix') THEN
    CREATE ROLE streamflix LOGIN CREATEDB PASSWORD '$pw';
  ELSE
    ALTER ROLE streamflix LOGIN CREATEDB PASSWORD '$pw';
  END IF;
END \$\$;
SQL
  runuser -u postgres -- psql -q -d postgres -c "CREATE DATABASE streamflix OWNER streamflix" 2>/dev/null || true
  umask 077
  echo "postgresql://streamflix:$pw@127.0.0.1:5432/streamflix" > var/database_url
fi

# --- Redis ------------------------------------------------------------------------------
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  say "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/streamflix.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis did not start on 127.0.0.1:6379" >&2; exit 1; }

# --- Python -----------------------------------------------------------------------------
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  $PY -m venv .venv
fi
stamp=.venv/.streamflix-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing Python packages"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi

# --- front-end packages (hls.js, dash.js) ----------------------------------------------
if [ -f package.json ]; then
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    say "installing npm packages"
    # --ignore-scripts: hls.js and dashjs need no install scripts, and nothing may fetch a
    # browser (the tests drive Debian's chromium).
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  fi
fi
say "set-up complete"
