from __future__ import annotations

import argparse

from server.migrate import migrate
from server.settings import Settings


async def run(settings: Settings, args: argparse.Namespace) -> int:
    applied = await migrate(settings.database_url)
    if applied:
        for name in applied:
            print(f"applied {name}")
    else:
        print("database is up to date")
    return 0
