"""The `streamflix` command line. Exit codes: 0 success, 1 failure (one line on stderr,
no traceback unless --debug), 2 bad usage.

Each command is a module of server/commands/ (its flags beside the code that reads them), listed
in COMMANDS, in the order `streamflix --help` shows them."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from server.commands import Command, demo, ingest, migrate, serve, titles, users, worker
from server.commands._args import common_options
from server.commands._runtime import DatabaseUnavailable
from server.settings import Settings
from transcoder.failures import is_database_outage

EXIT_FAILED = 1  # 0 is success; 2, bad usage, is argparse's own

COMMANDS: tuple[Command, ...] = (migrate, serve, worker, ingest, titles, users, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamflix", description="Video streaming origin.", parents=[common_options()]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_arguments(sub.add_parser(command.NAME, parents=[common_options()], help=command.HELP))
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "debug": getattr(args, "debug", None),
    }
    return Settings.load(config_file=getattr(args, "config", None), overrides=overrides)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not debug:
        # asyncpg's own warnings (a pool reconnecting) carry tracebacks; our code says what
        # is wrong in one line instead.
        logging.getLogger("asyncpg").setLevel(logging.ERROR)
    command = next(c for c in COMMANDS if c.NAME == args.command)
    try:
        code = command.run(args, settings_from_args(args))
    except KeyboardInterrupt:
        print("streamflix: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line on stderr, traceback only with --debug
        if debug:
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if is_database_outage(exc) and not isinstance(exc, DatabaseUnavailable):  # that one says it already
            message = f"the database is unreachable ({' '.join(str(exc).split()) or type(exc).__name__})"
        print(f"streamflix {args.command}: error: {message}", file=sys.stderr)
        return EXIT_FAILED
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
