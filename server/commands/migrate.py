"""`streamflix migrate`: create or upgrade every package's schema (server/migrate.py)."""

from __future__ import annotations

import argparse
import asyncio

from server.migrate import migrate
from server.settings import Settings

NAME = "migrate"
HELP = "create or upgrade every schema"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass  # the common options only


def run(args: argparse.Namespace, settings: Settings) -> int:
    applied = asyncio.run(migrate(settings.database_url))
    if applied:
        for name in applied:
            print(f"applied {name}")
    else:
        print("database is up to date")
    return 0
