"""One module per `streamflix` command, listed in server/cli.py's COMMANDS.

A command module has `NAME` and `HELP` (its line in `streamflix --help`),
`add_arguments(parser)` (its flags, next to the code that reads them) and
`run(args, settings) -> int` (the exit code). Errors it raises become one line on stderr
(server/cli.py). Adding a command: write the module, add it to COMMANDS.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from server.settings import Settings


class Command(Protocol):
    NAME: str
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, settings: Settings) -> int: ...
